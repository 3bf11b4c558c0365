"""distinv.launch: ranks from a cell, errors and hangs surfaced, torchrun in place."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

import distinv
from distinv import LaunchTimeout, RankError, launch
from live_children import live_children as _children
import rank_functions as rf

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_every_rank_joins_one_group(nprocs):
    ranks = launch(rf.describe_rank, 0.5, nprocs=nprocs, timeout=120)
    assert [r["rank"] for r in ranks] == list(range(nprocs))
    assert {r["world_size"] for r in ranks} == {nprocs}
    assert ranks[0]["sum"] == pytest.approx(sum(range(nprocs)) + 0.5 * nprocs)
    assert ranks[0]["backend"] == "gloo"
    if nprocs > 1:
        assert len({r["pid"] for r in ranks}) == nprocs and os.getpid() not in {r["pid"] for r in ranks}
        assert [r["local_rank"] for r in ranks] == [str(i) for i in range(nprocs)]
        expected = max(1, (os.cpu_count() or 1) // nprocs)
        assert {r["threads"] for r in ranks} == {expected}
    else:
        assert ranks[0]["pid"] == os.getpid()


def test_threads_per_rank_can_be_set():
    ranks = launch(rf.describe_rank, nprocs=2, threads=3, timeout=120)
    assert {r["threads"] for r in ranks} == {3}


def test_exception_on_rank_1_names_it_and_tears_down():
    start = time.monotonic()
    with pytest.raises(RankError, match="rank 1") as info:
        launch(rf.fail_on_rank, 1, nprocs=3, timeout=120)
    assert time.monotonic() - start < 30
    assert info.value.rank == 1
    assert "deliberate failure on rank 1" in info.value.remote_traceback
    assert "fail_on_rank" in info.value.remote_traceback  # the rank's own traceback
    assert info.value.exc_type == "ValueError"
    time.sleep(0.5)
    assert _children() == []


def test_hanging_rank_raises_timeout_naming_it():
    start = time.monotonic()
    with pytest.raises(LaunchTimeout, match=r"still running after timeout=3 s: 1") as info:
        launch(rf.hang_on_rank, 1, nprocs=2, timeout=3)
    assert info.value.ranks == [1]
    assert time.monotonic() - start < 30
    time.sleep(0.5)
    assert _children() == []


def test_rank0_output_reaches_caller_others_quiet(capfd):
    assert launch(rf.talk, "hello", nprocs=2, timeout=120) == 0
    out, err = capfd.readouterr()
    assert "hello from rank 0" in out and "hello on stderr from rank 0" in err
    assert "rank 1" not in out + err


def test_verbose_ranks_prefix_other_ranks(capfd):
    launch(rf.talk, "hi", nprocs=2, timeout=120, verbose_ranks=True)
    out, _ = capfd.readouterr()
    assert "hi from rank 0" in out and "[rank 1] hi from rank 1" in out


def test_fork_after_parent_used_threads_does_not_hang():
    """fork + OpenMP: the parent computes on several threads first, then forks ranks."""
    torch.set_num_threads(max(2, os.cpu_count() or 1))
    assert rf.matmul_sum(256) == 256.0 ** 3
    assert launch(rf.matmul_sum, 256, nprocs=2, start_method="fork", timeout=60) == 256.0 ** 3


def test_local_function_runs_with_fork():
    def local_fn(scale):
        import torch.distributed as dist
        return scale * dist.get_world_size()

    assert launch(local_fn, 10, nprocs=2, timeout=60) == 20
    with pytest.raises(ValueError, match="start_method='forkserver' needs a function the ranks can import"):
        launch(local_fn, 10, nprocs=2, start_method="forkserver")


@pytest.mark.parametrize("nprocs, error, match", [
    (0, ValueError, r"nprocs must be an integer >= 1, got 0"),
    (-2, ValueError, r"nprocs must be an integer >= 1, got -2"),
    (1.5, TypeError, r"nprocs must be an integer >= 1, got 1.5 \(float\)"),
    ("2", TypeError, r"nprocs must be an integer >= 1, got '2' \(str\)"),
    (True, TypeError, r"nprocs must be an integer >= 1"),
])
def test_bad_nprocs(nprocs, error, match):
    with pytest.raises(error, match=match):
        launch(rf.describe_rank, nprocs=nprocs)


def test_bad_backend_and_options():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'gloo', 'nccl'\), got 'mpi'"):
        launch(rf.describe_rank, nprocs=2, backend="mpi")
    with pytest.raises(ValueError, match=r"timeout must be a positive number"):
        launch(rf.describe_rank, nprocs=2, timeout=0)
    with pytest.raises(ValueError, match=r"threads must be an integer >= 1"):
        launch(rf.describe_rank, nprocs=2, threads=0)
    with pytest.raises(ValueError, match=r"start_method must be one of"):
        launch(rf.describe_rank, nprocs=2, start_method="thread")
    with pytest.raises(TypeError, match="fn must be callable"):
        launch("describe_rank", nprocs=2)


def test_nccl_without_enough_gpus():
    gpus = torch.cuda.device_count()
    with pytest.raises(ValueError, match=r"backend='nccl' needs one GPU per rank"):
        launch(rf.describe_rank, nprocs=gpus + 1, backend="nccl")


def test_torchrun_environment_runs_in_place(tmp_path):
    """Under torchrun, launch(fn, nprocs=5) runs fn on the current rank of torchrun's job."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import distinv, rank_functions as rf
        ranks = distinv.launch(rf.describe_rank, nprocs=5)
        if ranks[0]["pid"] != ranks[1]["pid"]:
            out = os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".json")
            with open(out, "w") as f:
                json.dump([(r["rank"], r["world_size"], r["env_rank"]) for r in ranks], f)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0",
         "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0", str(script)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):  # both torchrun ranks ran fn in place, in torchrun's 2-rank group
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == [[0, 2, "0"], [1, 2, "1"]]


def test_function_of_a_module_run_with_dash_m_does_not_inherit_the_launcher(tmp_path):
    """``python -m pkg.job`` launching ``job.rank_fn``: the ranks import it (forkserver) rather than being
    forked, so the state the launcher built under ``__main__`` (outputs it holds) is not in the ranks."""
    package = tmp_path / "jobpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "job.py").write_text(textwrap.dedent("""
        import json, sys
        import distinv

        def rank_fn():
            main = sys.modules["__main__"]
            return {"launcher_state_inherited": hasattr(main, "HELD"), "fn_module": rank_fn.__module__}

        if __name__ == "__main__":
            HELD = bytearray(1 << 20)  # what a launcher holds: earlier results
            print(json.dumps(distinv.launch(rank_fn, nprocs=2, timeout=120)))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "jobpkg.job"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"launcher_state_inherited": False, "fn_module": "jobpkg.job"}


def test_notebook_defined_function_under_papermill(tmp_path):
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("nprocs = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(textwrap.dedent("""
            import torch, torch.distributed as dist, distinv
            torch.ones(64, 64) @ torch.ones(64, 64)  # the kernel used torch before launching
            def square_sum(k):
                value = torch.tensor([float(dist.get_rank() + k)]) ** 2
                dist.all_reduce(value)
                print("rank", dist.get_rank(), "says hi")
                return value.item()
            result = distinv.launch(square_sum, 1, nprocs=nprocs, timeout=120)
            print("RESULT", result)
        """)),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "tiny.ipynb", tmp_path / "tiny_out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(executed), parameters={"nprocs": 3}, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    out = nbformat.read(executed, as_version=4)
    text = "".join(o.get("text", "") for o in out.cells[-1].outputs)
    assert "RESULT 14.0" in text  # 1 + 4 + 9 on three ranks
    assert "rank 0 says hi" in text and "rank 1 says hi" not in text


def test_rank_device_follows_launcher():
    devices = launch(_device_names, nprocs=2, device="cpu", timeout=60)
    assert devices == ["cpu", "cpu"]


def _device_names():
    import torch.distributed as dist

    names = [None] * dist.get_world_size()
    dist.all_gather_object(names, str(distinv.rank_device()))
    return names


def test_ranks_may_start_processes_of_their_own():
    assert launch(rf.start_worker_process, nprocs=2, timeout=120) == 0


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_ranks_die_with_a_killed_launcher(tmp_path, start_method):
    """A kernel killed mid-run (SIGKILL: no cleanup runs) leaves no rank behind, whatever the start method."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT / 'lib')!r}]
        import distinv, rank_functions
        distinv.launch(rank_functions.record_pid_and_wait, {str(tmp_path)!r}, nprocs=2, timeout=600,
                       start_method={start_method!r})
    """)
    launcher = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("rank*.pid"))) < 2:
            assert launcher.poll() is None, "the launcher exited early"
            assert time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in tmp_path.glob("rank*.pid")]
    finally:
        launcher.kill()
        launcher.wait()

    def alive(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:
        psutil.Process(pid).kill()
    assert not survivors, f"ranks {survivors} outlived their launcher"
