"""The CT memory study (``python -m distinv.bench.studies.ct memory``) at a tiny size: every rank warms up
on a small run first, the measured run is the one asked for, and the lean settings reach the ranks."""

import json

import pytest

from distinv.bench.studies import ct


def test_memory_study_measures_the_asked_run_after_a_warm_up(tmp_path, monkeypatch):
    calls = []
    from distinv.solvers import run as solver_run

    original = solver_run.run_reconstruction

    def recording(cfg):
        calls.append((cfg["size"], cfg["iterations"]))
        return original(cfg)

    monkeypatch.setattr(solver_run, "run_reconstruction", recording)
    out = tmp_path / "memory.json"
    document = ct.main(["memory", "--sizes", "20", "--ranks", "1", "--views", "8", "--weights", "random",
                        "--set", "projector=matrix-free", "patch=8", "overlap=4", "max_batch_size=1",
                        "--out", str(out)])
    assert calls == [(20, 1), (20, 1)]  # nprocs=1 runs in place: the warm-up (min(20, 72) = 20), then the run
    written = json.loads(out.read_text())
    assert written["config"]["projector"] == "matrix-free" and written["config"]["warm_up_size"] == ct.WARM_UP_SIZE
    (row,) = written["rows"]
    assert row["size"] == 20 and row["nprocs"] == 1 and row["data_mib"] > 0
    assert written["ratio_to_ideal"] == {"20:1": pytest.approx(1.0)}
    assert document["rows"] == written["rows"]


def test_memory_study_refuses_a_malformed_setting(capsys):
    with pytest.raises(SystemExit):
        ct.main(["memory", "--sizes", "20", "--set", "projector"])
    assert "--set entries must be KEY=VALUE, got 'projector'" in capsys.readouterr().err
