"""The README's ``job.py``, verbatim: as a script, under torchrun, and as two torchrun "nodes" on this host.

The code block is read from README.md at test time, so the test fails when the README drifts. Without its
main guard the script must stop at once with the advice to add it.
"""

import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
SECTION = "## The same function on a cluster with torchrun"
GUARD = 'if __name__ == "__main__":'
DISTRIBUTED_EQUALS_SINGLE = ("forward A x", "adjoint Aᵀ y", "tiled denoiser vs same tiling on 1 rank")


def readme_job() -> str:
    """The first Python block of the README's torchrun section (it starts with ``# job.py``)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert code.startswith("# job.py\n"), code[:40]
    return code


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _printed_rows(stdouts: list[str]) -> list[dict]:
    """The ``rows`` printed by rank 0; exactly one process may print them."""
    lines = [line for out in stdouts for line in out.splitlines() if line.startswith("[{'quantity'")]
    assert len(lines) == 1, stdouts
    return eval(lines[0], {"__builtins__": {}}, {"inf": math.inf, "nan": math.nan})


def _check_rows(rows: list[dict]) -> None:
    by_quantity = {row["quantity"]: row for row in rows}
    for quantity in DISTRIBUTED_EQUALS_SINGLE:  # 2 ranks equal the single-process reference
        assert by_quantity[quantity]["max_abs_diff"] <= 1e-4, by_quantity[quantity]


def test_readme_job_runs_as_a_script(tmp_path):
    (tmp_path / "job.py").write_text(readme_job())
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_rows(_printed_rows([done.stdout]))


def test_readme_job_runs_under_torchrun(tmp_path):
    (tmp_path / "job.py").write_text(readme_job())
    done = subprocess.run([str(TORCHRUN), "--nproc_per_node=2", "--master_addr=127.0.0.1",
                           f"--master_port={_free_port()}", "job.py"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_rows(_printed_rows([done.stdout]))


def test_readme_job_runs_on_two_nodes(tmp_path):
    """Two ``torchrun --nnodes=2`` agents on this host, one rank each: the job's ranks 0 and 1."""
    (tmp_path / "job.py").write_text(readme_job())
    port = _free_port()
    nodes = [subprocess.Popen([str(TORCHRUN), "--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
                               "--master_addr=127.0.0.1", f"--master_port={port}", "job.py"],
                              cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for node in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], [err[-3000:] for _, err in outputs]
    _check_rows(_printed_rows([out for out, _ in outputs]))
    assert outputs[1][0].strip() == ""  # node 1 holds rank 1, which prints nothing


def test_readme_job_without_its_main_guard_stops_at_once_with_the_advice(tmp_path):
    code = readme_job()
    head, body = code.split(GUARD)
    unguarded = head + "\n".join(line.removeprefix("    ") for line in body.split("\n", 1)[1].splitlines()) + "\n"
    assert GUARD not in unguarded and "distinv.launch(run_basics, config, nprocs=2)" in unguarded
    (tmp_path / "job.py").write_text(unguarded)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    seconds = time.monotonic() - start
    assert done.returncode == 1 and seconds < 30
    error = done.stderr.strip().splitlines()
    last = error[error.index(next(line for line in error if line.startswith("distinv.RankError"))):]
    assert last[0] == "distinv.RankError: rank 0 failed with RuntimeError (the main module launched again in the rank):"
    assert f"`{GUARD}` in {tmp_path / 'job.py'}" in last[1]
    assert "out of memory" not in done.stderr and "killed" not in done.stderr
