"""The prepared GPU check runs end to end in its CPU dry-run (same code paths, tiny sizes)."""

import json

from distinv.bench.studies.gpu_check import main


def test_gpu_check_dry_run_writes_every_step(tmp_path):
    assert main(["--dry-run", "--out", str(tmp_path), "--budget-s", "900"]) == 0
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert [s["step"] for s in steps][0] == "launcher" and all(s["ok"] for s in steps)
    launcher = json.loads((tmp_path / "launcher.json").read_text())
    assert (launcher["one_rank"], launcher["two_ranks_gloo"], launcher["two_ranks_fork"]) == (1.0, 5.0, 5.0)
    images = json.loads((tmp_path / "images.json").read_text())["runs"]
    runs = [images[f"pnp-hqs_{n}"] for n in (1, 2)]
    assert [run["config"]["schedule"] for run in runs] == ["static", "dynamic"]
    one, two = (run["final"] for run in runs)
    assert (one["nprocs"], two["nprocs"]) == (1, 2)
    assert abs(one["psnr"] - two["psnr"]) < 0.01  # the use case's equivalence target
    (prior,) = [run["results"] for run in json.loads((tmp_path / "prior.json").read_text())["runs"]]
    assert {row["impl"] for row in prior} == {"untiled", "deepinv", "distinv"}
    assert [s["step"] for s in steps][-3:] == ["ct", "radio", "training"]
    ct = json.loads((tmp_path / "ct.json").read_text())
    assert ct["parallel_beam"]["adjoint_mismatch"] < 1e-5 and "CUDA" in ct["cone_beam"]["refused"]
    radio = json.loads((tmp_path / "radio.json").read_text())
    assert radio["backend"] == "finufft" and radio["attempts"]["finufft"]["A_seconds"] > 0
    training = json.loads((tmp_path / "training.json").read_text())
    assert training["dry_run"] and training["big"].get("peak_bytes")
    assert len(list(tmp_path.iterdir())) <= 8  # the device tool brings back at most 8 files
