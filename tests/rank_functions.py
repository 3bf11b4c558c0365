"""Rank functions used by the launcher tests (importable, so ranks can start with forkserver)."""

import os
import sys
import time

import torch
import torch.distributed as dist


def describe_rank(offset: float = 0.0) -> list[dict]:
    """Every rank's view of the job, gathered on all ranks."""
    value = torch.tensor([float(dist.get_rank()) + offset])
    dist.all_reduce(value)
    info = {
        "rank": dist.get_rank(), "world_size": dist.get_world_size(), "sum": value.item(),
        "env_rank": os.environ.get("RANK"), "local_rank": os.environ.get("LOCAL_RANK"),
        "threads": torch.get_num_threads(), "pid": os.getpid(), "backend": dist.get_backend(),
    }
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, info)
    return gathered


def fail_on_rank(bad_rank: int) -> str:
    """Raise on ``bad_rank``; the others block in a collective that never completes."""
    if dist.get_rank() == bad_rank:
        raise ValueError(f"deliberate failure on rank {bad_rank}")
    dist.barrier()
    return "unreachable"


def hang_on_rank(slow_rank: int) -> int:
    """``slow_rank`` sleeps for ever; the others return at once."""
    if dist.get_rank() == slow_rank:
        time.sleep(3600)
    return dist.get_rank()


def talk(text: str) -> int:
    print(f"{text} from rank {dist.get_rank()}")
    print(f"{text} on stderr from rank {dist.get_rank()}", file=sys.stderr)
    return dist.get_rank()


def matmul_sum(n: int) -> float:
    """A torch op that uses the intra-op thread pool."""
    a = torch.ones(n, n)
    return float((a @ a).sum())


def start_worker_process() -> int:
    """A rank that starts a process of its own (e.g. DataLoader workers)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=time.sleep, args=(0.1,))
    proc.start()
    proc.join()
    return proc.exitcode


def record_pid_and_wait(folder: str) -> None:
    """Write this rank's pid into ``folder`` and wait (the caller kills the launcher meanwhile)."""
    path = os.path.join(folder, f"rank{dist.get_rank()}.pid")
    with open(path + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(600)
