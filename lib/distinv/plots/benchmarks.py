"""Plotly figures and tables of benchmark results; the notebooks call these.

Every function takes the per-run table of :func:`~distinv.bench.summary.summarise_runs` (one row per
run) and returns a :class:`plotly.graph_objects.Figure` or a :class:`pandas.DataFrame`. Speedups are
ratios of runs of the same ``source`` (machine) and the same settings, never across machines.

>>> import pandas as pd
>>> runs = pd.DataFrame({"variant": ["deepinv"] * 2, "use_case": ["denoise"] * 2, "size": [64, 64],
...                      "nprocs": [1, 2], "t_total": [2.0, 1.25]})
>>> speedup_table(runs)[["nprocs", "speedup", "efficiency"]].to_dict("records")
[{'nprocs': 1, 'speedup': 1.0, 'efficiency': 1.0}, {'nprocs': 2, 'speedup': 1.6, 'efficiency': 0.8}]
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from distinv.bench.summary import TIME_PARTS

__all__ = ["speedup_table", "speedup_figure", "time_breakdown_figure", "memory_figure", "psnr_figure",
           "implementation_figure", "summary_table", "provenance_table", "scaling_figure"]

_PART_NAMES = {"t_grad": "gradient", "t_prior": "prior", "t_comm": "communication", "t_other": "other"}
_GIB = 2 ** 30


def _group_keys(runs: pd.DataFrame) -> list[str]:
    return [k for k in ("source", "use_case", "variant", "size") if k in runs]


def speedup_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Speedup ``T(1)/T(P)`` and efficiency ``speedup / P`` of each run against the one-rank run with
    the same source, use case, variant and size (runs without such a reference are left out).

    :param pandas.DataFrame runs: per-run table.
    """
    keys = _group_keys(runs)
    base = runs[runs["nprocs"] == 1][keys + ["t_total"]].rename(columns={"t_total": "t_one_rank"})
    table = runs.merge(base, on=keys, how="inner")
    table["speedup"] = table["t_one_rank"] / table["t_total"]
    table["efficiency"] = table["speedup"] / table["nprocs"]
    return table.sort_values(keys + ["nprocs"]).reset_index(drop=True)


def _series_label(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    parts = [frame[c].astype(str) if c != "size" else frame[c].astype(int).astype(str) + "²" for c in columns]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def speedup_figure(runs: pd.DataFrame, title: str = "Strong scaling") -> go.Figure:
    """Speedup and parallel efficiency vs number of ranks, one line per variant × image size.

    :param pandas.DataFrame runs: per-run table.
    :param str title: figure title.
    """
    table = speedup_table(runs)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("speedup T(1)/T(P)", "efficiency T(1)/(P·T(P))"))
    if table.empty:
        return fig.update_layout(title=f"{title}: no run has a one-rank reference")
    columns = [c for c in ("source", "variant", "size") if c in table and table[c].nunique() > 1] or ["variant"]
    table = table.assign(series=_series_label(table, columns))
    for i, (name, part) in enumerate(table.groupby("series", sort=False)):
        color = px.colors.qualitative.Plotly[i % 10]
        for col, metric in ((1, "speedup"), (2, "efficiency")):
            fig.add_trace(go.Scatter(x=part["nprocs"], y=part[metric], mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=col == 1, line=dict(color=color)), row=1, col=col)
    ranks = sorted(table["nprocs"].unique())
    fig.add_trace(go.Scatter(x=ranks, y=ranks, mode="lines", name="ideal", line=dict(dash="dot", color="grey")),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=ranks, y=[1.0] * len(ranks), mode="lines", showlegend=False,
                             line=dict(dash="dot", color="grey")), row=1, col=2)
    fig.update_xaxes(title_text="ranks P", tickvals=ranks)
    return fig.update_layout(title=title, height=420)


def time_breakdown_figure(runs: pd.DataFrame, title: str = "Time per iteration") -> go.Figure:
    """Stacked bars of the median iteration time split into gradient, prior, communication and other.

    :param pandas.DataFrame runs: per-run table (one bar per run).
    :param str title: figure title.
    """
    order = [c for c in ("source", "size", "variant", "nprocs") if c in runs]
    runs = runs.sort_values(order)
    label = (runs["variant"] + " · " + runs["nprocs"].astype(str) + " rank(s)")
    facet = runs["size"].astype(int).astype(str) + "²" if "size" in runs else pd.Series([""] * len(runs))
    if "source" in runs and runs["source"].nunique() > 1:
        facet = runs["source"].astype(str) + " · " + facet
    frame = runs.assign(run=label.values, image=facet.values)
    long = frame.melt(id_vars=["run", "image"], value_vars=list(TIME_PARTS), var_name="part", value_name="seconds")
    long["part"] = long["part"].map(_PART_NAMES)
    fig = px.bar(long, x="run", y="seconds", color="part", facet_col="image", title=title,
                 category_orders={"part": list(_PART_NAMES.values())})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return fig.update_layout(height=460, xaxis_title=None)


def memory_figure(runs: pd.DataFrame, title: str = "Peak memory per rank") -> go.Figure:
    """Peak memory per rank (max over ranks) vs image size, log-log, one line per variant × ranks.

    :param pandas.DataFrame runs: per-run table.
    :param str title: figure title.
    """
    frame = runs.assign(GiB=runs["peak_mem_bytes"] / _GIB,
                        series=runs["variant"] + " · " + runs["nprocs"].astype(str) + " rank(s)")
    facet = "source" if "source" in frame and frame["source"].nunique() > 1 else None
    fig = px.line(frame.sort_values("size"), x="size", y="GiB", color="series", markers=True, log_x=True,
                  log_y=True, facet_col=facet, title=title,
                  labels={"size": "image side (pixels)", "GiB": "peak memory per rank (GiB)"})
    fig.update_yaxes(matches=None, showticklabels=True)
    return fig.update_layout(height=420)


def psnr_figure(frame: pd.DataFrame, title: str = "PSNR per iteration, one rank vs several") -> go.Figure:
    """PSNR per iteration of each run (tidy run × iteration table), one panel per variant and size.

    Curves of the same settings on 1 and P ranks lie on top of each other when the distributed result
    equals the single-process one.

    :param pandas.DataFrame frame: tidy table with ``psnr`` and a ``variant`` column
        (add it with :func:`~distinv.bench.summary.variant_label`).
    :param str title: figure title.
    """
    data = frame[frame["status"] == "ok"].dropna(subset=["psnr"])
    data = data.assign(ranks=data["nprocs"].astype(str),
                       panel=data["variant"] + " · " + data["size"].astype(int).astype(str) + "²")
    fig = px.line(data.sort_values("iteration"), x="iteration", y="psnr", color="ranks", line_dash="ranks",
                  facet_col="panel", facet_col_wrap=3, markers=True, title=title, labels={"psnr": "PSNR (dB)"})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return fig.update_layout(height=320 * max(1, -(-data["panel"].nunique() // 3)))


def implementation_figure(runs: pd.DataFrame, title: str = "distinv vs deepinv, same tile settings") -> go.Figure:
    """Side-by-side bars of time per iteration and peak memory per rank for each variant.

    :param pandas.DataFrame runs: per-run table.
    :param str title: figure title.
    """
    frame = runs.assign(setting=runs["size"].astype(int).astype(str) + "² · " + runs["nprocs"].astype(str) + " rk",
                        GiB=runs["peak_mem_bytes"] / _GIB).sort_values(["size", "nprocs"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time per iteration (s)", "peak memory per rank (GiB)"))
    for i, (variant, part) in enumerate(frame.groupby("variant", sort=True)):
        color = px.colors.qualitative.Plotly[i % 10]
        fig.add_trace(go.Bar(x=part["setting"], y=part["t_total"], name=variant, legendgroup=variant,
                             marker_color=color), row=1, col=1)
        fig.add_trace(go.Bar(x=part["setting"], y=part["GiB"], name=variant, legendgroup=variant,
                             showlegend=False, marker_color=color), row=1, col=2)
    return fig.update_layout(barmode="group", title=title, height=420)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A compact table of the runs: settings, time split (ms), memory (MiB), PSNR, work multiplier.

    :param pandas.DataFrame runs: per-run table.
    """
    columns = {"source": "source", "variant": "variant", "size": "size", "nprocs": "ranks",
               "threads_per_rank": "threads/rank", "t_total": "total ms", "t_prior": "prior ms",
               "t_comm": "comm ms", "t_other": "other ms", "comm_bytes": "comm MiB/it",
               "peak_mem_bytes": "peak MiB/rank", "psnr": "PSNR dB", "tile_work_multiplier": "work ×"}
    present = {k: v for k, v in columns.items() if k in runs}
    table = runs[list(present)].rename(columns=present).copy()
    for col in ("total ms", "prior ms", "comm ms", "other ms"):
        if col in table:
            table[col] = (table[col] * 1e3).round(1)
    for col in ("comm MiB/it", "peak MiB/rank"):
        if col in table:
            table[col] = (table[col] / 2 ** 20).round(1)
    for col, digits in (("PSNR dB", 2), ("work ×", 3)):
        if col in table:
            table[col] = table[col].round(digits)
    order = [c for c in ("source", "variant", "size", "ranks") if c in table]
    return table.sort_values(order).reset_index(drop=True)


def provenance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Where each source's results come from: device, commit, versions, host, date.

    :param pandas.DataFrame runs: per-run table (with a ``source`` column, else one row).
    """
    frame = runs if "source" in runs else runs.assign(source="local")
    columns = [c for c in ("device_name", "commit", "dirty", "version_distinv", "version_deepinv", "version_torch",
                           "python", "hostname", "cpu_count", "threads_per_rank", "launcher", "recorded_at")
               if c in frame]
    table = frame.groupby("source")[columns].agg(lambda s: ", ".join(sorted({str(v) for v in s.dropna()})))
    if "commit" in table:
        table["commit"] = table["commit"].map(lambda text: ", ".join(c[:10] for c in text.split(", ")))
    if "recorded_at" in table:
        table["recorded_at"] = frame.groupby("source")["recorded_at"].agg(
            lambda s: f"{min(s)[:16]} … {max(s)[:16]}")
    return table.reset_index()


def scaling_figure(predictions: dict[str, pd.DataFrame], published: pd.DataFrame | None = None,
                   title: str = "Strong scaling: model vs published") -> go.Figure:
    """Speedup vs ranks, log-log: model curves (lines) and published measurements (markers).

    :param dict predictions: ``{label: table}`` from :meth:`~distinv.bench.studies.scaling.StrongScalingModel.predict`.
    :param pandas.DataFrame published: :func:`~distinv.bench.studies.scaling.load_published_scaling` rows with
        ``problem, image, gpus, speedup`` (each series relative to its smallest GPU count).
    :param str title: figure title.
    """
    fig = go.Figure()
    for i, (label, table) in enumerate(predictions.items()):
        fig.add_trace(go.Scatter(x=table["nprocs"], y=table["speedup"], mode="lines+markers", name=label,
                                 line=dict(color=px.colors.qualitative.Plotly[i % 10])))
    if published is not None and not published.empty:
        for i, ((problem, image), part) in enumerate(published.groupby(["problem", "image"])):
            fig.add_trace(go.Scatter(x=part["gpus"], y=part["speedup"], mode="markers+lines",
                                     name=f"published V100 · {problem} {image}²",
                                     line=dict(dash="dot", color=px.colors.qualitative.Dark2[i % 8]),
                                     marker=dict(symbol="diamond", size=9)))
    ranks = sorted({int(r) for t in predictions.values() for r in t["nprocs"]} or {1, 64})
    fig.add_trace(go.Scatter(x=ranks, y=ranks, mode="lines", name="ideal", line=dict(dash="dot", color="grey")))
    fig.update_xaxes(type="log", title_text="ranks / GPUs", tickvals=ranks)
    fig.update_yaxes(type="log", title_text="speedup")
    return fig.update_layout(title=title, height=460)
