"""Per-run summaries, figures and tables computed from a synthetic results table."""

import pandas as pd
import pytest

from distinv.plots import benchmarks
from distinv.plots.explorer import ResultsExplorer
from distinv.bench.studies.scaling import CollectiveCost, StrongScalingModel, load_published_scaling
from distinv.bench.summary import summarise_runs, variant_label


def _tidy():
    rows = []
    for run_id, impl, layout, nprocs, size, t in [("a", "deepinv", "replicated", 1, 64, 4.0),
                                                  ("b", "deepinv", "replicated", 2, 64, 2.5),
                                                  ("c", "distinv", "sharded", 2, 64, 2.0),
                                                  ("d", "distinv", "sharded", 1, 64, 3.0)]:
        for iteration, scale in ((1, 1.0), (2, 3.0), (3, 1.0)):  # median = t, the mean is not
            rows.append({"source": "cpu", "run_id": run_id, "status": "ok", "use_case": "denoise",
                         "implementation": impl, "layout": layout, "nprocs": nprocs, "size": size,
                         "iteration": iteration, "t_total": t * scale, "t_prior": 0.5 * t * scale,
                         "t_comm": 0.25 * t * scale if nprocs > 1 else 0.0, "t_grad": 0.0,
                         "comm_bytes": 100 * (nprocs - 1), "peak_mem_bytes": 2 ** 30 * (iteration + nprocs),
                         "psnr": 20.0 + iteration, "threads_per_rank": 1, "device_name": "cpu0",
                         "commit": "abc", "recorded_at": "2026-01-01T00:00"})
    rows.append({"source": "cpu", "run_id": "e", "status": "error", "use_case": "denoise", "error": "boom"})
    return pd.DataFrame(rows)


@pytest.fixture
def runs():
    frame = _tidy()
    frame["variant"] = [variant_label(i, l) for i, l in zip(frame["implementation"], frame["layout"])]
    return summarise_runs(frame)


def test_summary_uses_medians_peaks_and_last_psnr_and_drops_failures(runs):
    assert sorted(runs["run_id"]) == ["a", "b", "c", "d"]
    a = runs.set_index("run_id").loc["a"]
    assert a["t_total"] == 4.0 and a["psnr"] == 23.0 and a["peak_mem_bytes"] == 4 * 2 ** 30
    assert a["t_other"] == pytest.approx(2.0) and a["variant"] == "deepinv"
    assert runs.set_index("run_id").loc["c", "variant"] == "distinv (sharded)"


def test_speedup_is_relative_to_the_same_variant_on_one_rank(runs):
    table = benchmarks.speedup_table(runs).set_index("run_id")
    assert table.loc["b", "speedup"] == pytest.approx(4.0 / 2.5)
    assert table.loc["c", "speedup"] == pytest.approx(3.0 / 2.0)
    assert table.loc["c", "efficiency"] == pytest.approx(0.75)
    fig = benchmarks.speedup_figure(runs)
    speedups = {t.name: list(t.y) for t in fig.data if t.xaxis == "x" and t.name != "ideal"}
    assert speedups == {"deepinv": [1.0, 1.6], "distinv (sharded)": [1.0, 1.5]}


def test_time_breakdown_bars_stack_to_the_total(runs):
    fig = benchmarks.time_breakdown_figure(runs)
    totals = {}
    for trace in fig.data:
        for label, value in zip(trace.x, trace.y):
            totals[label] = totals.get(label, 0.0) + value
    assert totals["deepinv · 2 rank(s)"] == pytest.approx(2.5)
    assert {t.name for t in fig.data} == {"gradient", "prior", "communication", "other"}


def test_memory_figure_is_log_log_in_gib(runs):
    fig = benchmarks.memory_figure(runs)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert max(max(t.y) for t in fig.data) == pytest.approx(5.0)


def test_psnr_and_implementation_figures_have_one_trace_per_series(runs):
    frame = _tidy()
    frame["variant"] = [variant_label(i, l) for i, l in zip(frame["implementation"], frame["layout"])]
    assert len(benchmarks.psnr_figure(frame).data) == 4  # 2 variants x (1, 2 ranks)
    assert {t.name for t in benchmarks.implementation_figure(runs).data} == {"deepinv", "distinv (sharded)"}


def test_tables(runs):
    table = benchmarks.summary_table(runs)
    assert table.loc[0, "total ms"] == 4000.0 and table.loc[0, "peak MiB/rank"] == 4096.0
    provenance = benchmarks.provenance_table(runs)
    assert provenance.loc[0, "device_name"] == "cpu0" and provenance.loc[0, "commit"] == "abc"


def test_scaling_figure_shows_model_and_published_series():
    model = StrongScalingModel(1e-8, CollectiveCost(1e-5, 1e-10))
    fig = benchmarks.scaling_figure({"model": model.predict(4096, 448, 32)}, load_published_scaling())
    names = [t.name for t in fig.data]
    assert names[0] == "model" and "published V100 · sr8 4096²" in names and names[-1] == "ideal"


def test_explorer_default_figure_and_validation(runs):
    explorer = ResultsExplorer(runs, view="speedup")
    assert explorer.sources() == ["cpu"] and explorer.use_cases("cpu") == ["denoise"]
    assert explorer.default_figure().layout.title.text == "Strong scaling · cpu · denoise"
    assert "no 'ct' runs" in explorer.figure("cpu", "ct", "memory").layout.title.text
    box = explorer.widget()
    assert [c.description for c in box.children[0].children] == ["source", "use case", "view"]
    with pytest.raises(ValueError, match="view must be one of"):
        ResultsExplorer(runs, view="pie")
    with pytest.raises(ValueError, match="runs is empty"):
        ResultsExplorer(pd.DataFrame())
