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


def all_reduce_until_killed(doomed_rank: int, after_s: float = 0.5) -> None:
    """Every rank all-reduces in a loop; ``doomed_rank`` is SIGKILLed meanwhile, the others stay blocked."""
    import signal
    import threading

    if dist.get_rank() == doomed_rank:
        threading.Timer(after_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
    value = torch.ones(1 << 14)
    while True:
        dist.all_reduce(value)


def allocate_on_rank(hungry_rank: int, nbytes: int, kind: str = "torch") -> int:
    """``hungry_rank`` allocates and touches ``nbytes`` (a torch tensor or a bytearray); all meet in a barrier."""
    if dist.get_rank() == hungry_rank:
        if kind == "torch":
            torch.empty(nbytes, dtype=torch.uint8).fill_(1)
        else:
            bytearray(nbytes)
    dist.barrier()
    return nbytes


def all_reduce_on_rank(lonely_rank: int) -> int:
    """``lonely_rank`` enters an all-reduce that the other ranks never call: they return at once."""
    if dist.get_rank() == lonely_rank:
        dist.all_reduce(torch.ones(4))
    return dist.get_rank()


def all_reduce_while_others_sleep(lonely_rank: int) -> int:
    """``lonely_rank`` waits in an all-reduce while the other ranks, alive, sleep elsewhere: a hang."""
    if dist.get_rank() == lonely_rank:
        dist.all_reduce(torch.ones(4))
    else:
        time.sleep(600)
    return dist.get_rank()


def die_on_rank(dying_rank: int, how: str) -> int:
    """``dying_rank`` says why on stderr, then leaves without a result: ``os._exit(3)`` or a segfault."""
    if dist.get_rank() == dying_rank:
        print(f"rank {dying_rank} is about to die by {how}", file=sys.stderr, flush=True)
        if how == "exit":
            os._exit(3)
        import ctypes

        ctypes.string_at(0)  # SIGSEGV
    dist.barrier()
    return dist.get_rank()


def freed_slabs_kept_mib(map_first: bool = False) -> float:
    """MiB that stay resident after freeing four 16 MiB tensors, once glibc's dynamic mmap threshold rose.

    A freed 24 MiB block raises glibc's default threshold to 24 MiB; a small tensor allocated after the
    slabs keeps them off the heap's top. ``map_first``: pin the threshold here first
    (:func:`distinv.allocator.map_large_allocations`).
    """
    from distinv.allocator import map_large_allocations

    def resident() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))

    if map_first:
        map_large_allocations()
    torch.ones(6 * 2**20)
    before = resident()
    slabs = [torch.ones(4 * 2**20) for _ in range(4)]
    small = torch.ones(2**14)
    del slabs
    kept = (resident() - before) / 2**20
    del small
    return kept


def freed_slabs_kept_after_a_run(map_large_allocations: bool) -> float:
    """:func:`freed_slabs_kept_mib` on this rank after a small reconstruction run with that run option."""
    from distinv.solvers.run import run_reconstruction

    run_reconstruction(dict(size=48, K=2, blur_sigma=[1.0, 0.5], iterations=1, weights="random", patch=16,
                            overlap=8, progress=False, pinv_iterations=0,
                            map_large_allocations=map_large_allocations))
    return freed_slabs_kept_mib()
