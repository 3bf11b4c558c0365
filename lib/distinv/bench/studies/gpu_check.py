"""One prepared GPU check (``make gpu-check``): every figure the GPU issues ask for, in one short run.

Steps, each a subprocess with its own time limit, results as JSON under ``--out``:

1. ``launcher``: :func:`distinv.launch` on CUDA: one rank in process, two ranks sharing the GPU
   through gloo (CUDA all-reduce equals the sum), a notebook-style function through ``fork``;
2. ``prior``: :mod:`distinv.bench.studies.prior` with the colour default DRUNet (random weights), 4096²,
   bf16 autocast: untiled vs deepinv tiled vs distinv at a few tile settings (time, peak memory),
   gathered in ``prior.json``;
3. ``images``: the natural-images use case at the GPU profile's size (4096² colour, shipped prior,
   PnP-HQS), on one rank and on two ranks sharing the GPU, the latter with the dynamic tile schedule
   (PSNR must agree), gathered in ``images.json``;
4. ``ct``: the CT operators (:func:`distinv.bench.studies.ct.gpu_operator_check`: the sparse parallel-beam
   projector at 256³, ASTRA's cone beam at 512³ / 360 views split into two view groups, its adjoint mismatch);
5. ``radio``: the NUFFT at 10⁸ visibilities and 4096² (:func:`distinv.bench.studies.radio.gpu_operator_check`);
6. ``training``: one unrolled training step at 4096² colour, bf16, checkpointing, and the 2048² memory ratio
   with and without checkpointing (:func:`distinv.training.bench.gpu_training_check`).

Seven JSON files (the device tool brings back at most eight). The whole check stays under five minutes:
each step gets a time limit and a step that does not fit the remaining budget is recorded as skipped.

On a node without deepinv, install the carried wheels first (shared/gpu/prepare_node.sh). Test the
whole script on CPU with ``--dry-run`` (tiny sizes, CPU): it exercises the same code paths.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "launcher_checks"]


def _square(k: int) -> float:
    import torch
    import torch.distributed as dist

    from distinv import rank_device

    value = torch.tensor([float(dist.get_rank() + k)], device=rank_device()) ** 2
    dist.all_reduce(value)
    return value.item()


def launcher_checks(device: str) -> dict:
    """distinv.launch on ``device``: a local function (fork, before CUDA is touched here), two ranks
    (forkserver, gloo), one rank in process, then the clear error of a fork after CUDA was initialised."""
    import distinv
    from distinv.launch import _cuda_device_count

    def local_square(k):  # defined here: ranks must start with fork
        return _square(k)

    out = {"device": device, "gpus": _cuda_device_count()}
    out["two_ranks_fork"] = distinv.launch(local_square, 1, nprocs=2, device=device, timeout=300)
    out["two_ranks_gloo"] = distinv.launch(_square, 1, nprocs=2, device=device, backend="gloo", timeout=300)
    out["one_rank"] = distinv.launch(_square, 1, nprocs=1, device=device, timeout=120)
    try:
        distinv.launch(local_square, 1, nprocs=2, device=device, timeout=60)
        out["fork_after_cuda"] = "no error" if device == "cuda" else "not applicable on cpu"
    except RuntimeError as exc:
        out["fork_after_cuda"] = str(exc)
    out["ok"] = (out["one_rank"] == 1.0 and out["two_ranks_gloo"] == 5.0 and out["two_ranks_fork"] == 5.0
                 and (device != "cuda" or "CUDA is already initialised" in out["fork_after_cuda"]))
    return out


def _run(step: str, command: list[str], timeout: float, log: list) -> bool:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        ok = done.returncode == 0
        tail = (done.stdout[-2000:] + done.stderr[-4000:])
    except subprocess.TimeoutExpired as exc:
        ok, tail = False, f"timed out after {timeout:g} s\n{(exc.stderr or b'')[-4000:]!r}"
    log.append({"step": step, "ok": ok, "seconds": round(time.perf_counter() - start, 1), "tail": tail})
    print(f"[gpu-check] {step}: {'ok' if ok else 'FAILED'} in {log[-1]['seconds']} s", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.bench.studies.gpu_check", description=__doc__)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="folder for the JSON files")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU: check the script itself")
    parser.add_argument("--budget-s", type=float, default=290.0, help="time limit of the whole check")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.dry_run else "cuda"
    deadline = time.monotonic() + args.budget_s
    log: list = []

    slack = 3.0 if args.dry_run else 1.0  # a dry run shares a small CPU: its steps get more time

    def left(cap: float) -> float:
        return max(10.0, min(cap * slack, deadline - time.monotonic()))

    launcher_json = out / "launcher.json"
    code = (f"import json, distinv.bench.studies.gpu_check as g; r = g.launcher_checks({device!r}); "
            f"open({str(launcher_json)!r}, 'w').write(json.dumps(r)); assert r['ok'], r")
    _run("launcher", [sys.executable, "-c", code], left(90), log)

    size, model, channels = (64, "small", 1) if args.dry_run else (4096, "default", 3)
    dtype = "float32" if args.dry_run else "bfloat16"
    common = [sys.executable, "-m", "distinv.bench.studies.prior", "--device", device, "--model", model,
              "--channels", str(channels), "--sizes", str(size), "--ranks", "1", "--dtype", dtype,
              "--repeats", "2" if args.dry_run else "5", "--warmup", "1", "--force"]
    settings = [((32,), 8, ["untiled", "deepinv", "distinv"])] if args.dry_run else [
        ((448,), 32, ["untiled", "deepinv", "distinv"]),  # deepinv's reference setting (DESIGN.md §3)
        # 2 x 3 tiles: windows of about 2080 x 1400 (a third of the untiled memory), work multiplier 1.047
        ((2048, 1366), 32, ["distinv"]),
    ]
    documents = []
    with tempfile.TemporaryDirectory() as scratch:
        for patch, overlap, impls in settings:
            name = "x".join(map(str, patch))
            target = Path(scratch) / f"prior_{name}_{overlap}.json"
            _run(f"prior patch {name} overlap {overlap}",
                 common + ["--patch", *map(str, patch), "--overlap", str(overlap),
                           "--max-batch-size", "1" if max(patch) > 448 else "8",
                           "--impls", *impls, "--out", str(target)], left(60), log)
            if target.exists():
                documents.append(json.loads(target.read_text()))
    # one file for every tile setting: the device tool brings back at most 8 files
    (out / "prior.json").write_text(json.dumps({"runs": documents}, indent=1))

    images = (["size=64", "K=2", "blur_sigma=[1.5,0.5]", "patch=32", "overlap=8", "iterations=2", "device=cpu"]
              if args.dry_run else
              ["size=4096", "channels=3", "image=chelsea", "patch=448", "overlap=32", "max_batch_size=8",
               "iterations=8", "device=cuda"])
    # the two-rank run deals the tiles with the dynamic schedule: it paces its claims by CUDA events,
    # a path only a GPU runs, and must still give the one-rank (static) PSNR
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for solver, nprocs, schedule in (("pnp-hqs", 1, "static"), ("pnp-hqs", 2, "dynamic")):
            target = Path(scratch) / f"images_{solver}_{nprocs}.json"
            _run(f"images {solver} on {nprocs} rank(s), {schedule} schedule",
                 ["bash", "-c", f'{sys.executable} -m distinv.solvers --nprocs {nprocs} --set solver={solver} '
                                f'schedule={schedule} {" ".join(images)} > {target}'], left(60), log)
            if target.exists() and target.stat().st_size:
                runs[f"{solver}_{nprocs}"] = json.loads(target.read_text())
    (out / "images.json").write_text(json.dumps({"runs": runs}, indent=1))

    # the other use cases' operators and the training step, each in its own process
    for step, call, cap in (
        ("ct", f"from distinv.bench.studies.ct import gpu_operator_check as f; "
               f"r = f({device!r}, dry_run={args.dry_run})", 50),
        ("radio", f"from distinv.bench.studies.radio import gpu_operator_check as f; "
                  f"r = f({device!r}, dry_run={args.dry_run})", 50),
    ):
        target = out / f"{step}.json"
        code = f"import json; {call}; open({str(target)!r}, 'w').write(json.dumps(r, indent=1, default=str))"
        if deadline - time.monotonic() < 20:
            log.append({"step": step, "ok": False, "seconds": 0.0, "tail": "skipped: the time budget ran out"})
            continue
        _run(step, [sys.executable, "-c", code], left(cap), log)
    if deadline - time.monotonic() >= 30:
        code = (f"from distinv.training.bench import gpu_training_check as f; "
                f"f({str(out)!r}, dry_run={args.dry_run}, timeout={max(20.0, deadline - time.monotonic() - 10) / 3:.0f})")
        _run("training", [sys.executable, "-c", code], left(120), log)
    else:
        log.append({"step": "training", "ok": False, "seconds": 0.0, "tail": "skipped: the time budget ran out"})

    (out / "gpu_check.json").write_text(json.dumps({"steps": log}, indent=1))
    return 0 if all(step["ok"] for step in log) else 1


if __name__ == "__main__":
    sys.exit(main())
