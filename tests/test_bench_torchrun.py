"""The same grid runs in place under torchrun: only points of the job's world size, rank 0 writes."""

import os
import subprocess
import sys
from pathlib import Path

from distinv.bench.store import ResultsStore

CONFIG = """
name: torchrun
timeout_s: 120
fixed: {use_case: allreduce, size: 16, iterations: 2, device: cpu}
grid:
  nprocs: [1, 2]
"""


def test_grid_runs_in_place_under_torchrun(tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text(CONFIG)
    results = tmp_path / "results"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "distinv.bench", "run",
                           str(config), "--results-dir", str(results)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped (needs 1 ranks, the job has 2)" in done.stdout
    frame = ResultsStore(results).load()
    assert frame["nprocs"].unique().tolist() == [2]
    assert (frame["status"] == "ok").all() and (frame["launcher"] == "torchrun").all()
    assert (frame["comm_bytes"] == 16 * 16 * 4).all()
    assert len(ResultsStore(results).load_ranks()) == 2
