"""Start ranks of a ``torch.distributed`` job from a notebook cell, a script or a cluster job.

:func:`launch` runs a function on ``nprocs`` local ranks and returns rank 0's result. It is our own
small launcher (in the spirit of accelerate's ``notebook_launcher``): it sets the usual environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), initialises the process
group, relays rank 0's output to the caller, and turns a failure or a hang on any rank into an
exception in the caller after tearing every rank down.

Three ways a call runs:

- ``nprocs == 1``: in the calling process (easy to debug, a one-rank gloo group is set up);
- ``RANK`` and ``WORLD_SIZE`` already set (``torchrun``, SLURM): in place, on the current rank;
- otherwise: ``nprocs`` child processes.

Start methods. Functions that can be imported by name (defined in a module, e.g. ``distinv``) start
with ``forkserver`` (safe with CUDA and with many threads per rank). Functions defined in a notebook
or a ``__main__`` script cannot be found by such children, so they start with ``fork``, which is
unsafe after CUDA was initialised in the parent (we refuse with a clear error) and hangs when the
parent's OpenMP pool is reused with several threads (forked ranks get one intra-op thread). A
function of a module run as ``python -m package.module`` is importable under that name, and is
launched as such: forked ranks would also inherit all of this process's memory (the peak memory a
rank measured then included the outputs its launcher held).
"""

from __future__ import annotations

import atexit
import ctypes
import io
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

__all__ = ["launch", "RankError", "LaunchTimeout", "rank_device", "resolve_nprocs", "BACKENDS", "START_METHODS"]

BACKENDS = ("auto", "gloo", "nccl")
START_METHODS = ("auto", "fork", "forkserver", "spawn")
_TEARDOWN_GRACE_S = 5.0
_ENV_DEVICE = "DISTINV_DEVICE"


class RankError(RuntimeError):
    """An exception raised on a rank, re-raised in the caller with the rank's traceback."""

    def __init__(self, rank: int, remote_traceback: str, exc_type: str = "Exception"):
        self.rank = rank
        self.remote_traceback = remote_traceback
        self.exc_type = exc_type
        super().__init__(f"rank {rank} failed with {exc_type}:\n{remote_traceback}")


class LaunchTimeout(TimeoutError):
    """Ranks still running when the launch timeout expired."""

    def __init__(self, timeout: float, ranks: list[int]):
        self.timeout = timeout
        self.ranks = ranks
        names = ", ".join(str(r) for r in ranks)
        super().__init__(f"ranks still running after timeout={timeout:g} s: {names}; all ranks were stopped")


def rank_device() -> "torch.device":  # noqa: F821
    """The device this rank computes on: ``cuda:k`` when the launcher gave it a GPU, else ``cpu``.

    Under ``torchrun`` it is ``cuda:LOCAL_RANK`` when CUDA is available.

    >>> rank_device().type in ("cpu", "cuda")
    True
    """
    import torch

    name = os.environ.get(_ENV_DEVICE)
    if name:
        return torch.device(name)
    if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_nprocs(nprocs: int, device: str = "auto") -> int:
    """Turn a profile's ``nprocs`` into a rank count: ``-1`` means one rank per visible GPU.

    Without a GPU (or with ``device="cpu"``), ``-1`` gives 2 ranks.

    :param int nprocs: ``-1`` or an integer ``>= 1``.
    :param str device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    >>> resolve_nprocs(3)
    3
    """
    if nprocs == -1:
        gpus = _cuda_device_count() if device != "cpu" else 0
        return gpus if gpus > 0 else 2
    _check_nprocs(nprocs)
    return nprocs


@dataclass(frozen=True)
class _Plan:
    nprocs: int
    backend: str
    device_type: str
    threads: int
    start_method: str
    timeout: float | None
    verbose_ranks: bool
    launcher_pid: int = 0


def launch(
    fn: Callable[..., Any],
    *args: Any,
    nprocs: int = 2,
    backend: str = "auto",
    device: str = "auto",
    timeout: float | None = None,
    threads: int | None = None,
    start_method: str = "auto",
    verbose_ranks: bool = False,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` on ``nprocs`` ranks with ``torch.distributed`` initialised.

    :param callable fn: the function every rank runs; a function of a module, or one defined in the
        notebook (then ``fork`` is used).
    :param int nprocs: number of local ranks, ``>= 1``. ``1`` runs in the calling process.
    :param str backend: ``"auto"`` (nccl when every rank has its own GPU, else gloo), ``"gloo"`` or
        ``"nccl"``.
    :param str device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; a rank reads its
        own device with :func:`rank_device`.
    :param float timeout: seconds after which ranks still running are stopped and
        :class:`LaunchTimeout` is raised; ``None`` waits forever.
    :param int threads: intra-op threads per rank; default ``max(1, cores // nprocs)`` (1 under fork).
    :param str start_method: ``"auto"``, ``"fork"``, ``"forkserver"`` or ``"spawn"``.
    :param bool verbose_ranks: relay the output of every rank (prefixed), not only rank 0's.
    :return: rank 0's return value (in place under torchrun: this rank's return value).
    :raises RankError: an exception on a rank, naming it and carrying its traceback.
    :raises LaunchTimeout: ranks still running after ``timeout``.

    >>> import torch.distributed as dist
    >>> launch(dist.get_world_size, nprocs=1)
    1
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_nprocs(nprocs)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be one of ('auto', 'cpu', 'cuda'), got {device!r}")
    if start_method not in START_METHODS:
        raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return _run_in_place(fn, args, kwargs, backend, device)

    device_type, backend = _resolve_device_backend(device, backend, nprocs)
    if nprocs == 1:
        return _run_in_process(fn, args, kwargs, backend, device_type, threads)

    fn = _importable_twin(fn)
    method = _resolve_start_method(fn, start_method, device_type)
    cores = os.cpu_count() or 1
    if threads is None:
        threads = 1 if method == "fork" else max(1, cores // nprocs)
    plan = _Plan(nprocs, backend, device_type, threads, method, timeout, verbose_ranks, os.getpid())
    return _run_children(fn, args, kwargs, plan)


# --------------------------------------------------------------------------- validation


def _check_nprocs(nprocs: Any) -> None:
    if not isinstance(nprocs, int) or isinstance(nprocs, bool):
        raise TypeError(f"nprocs must be an integer >= 1, got {nprocs!r} ({type(nprocs).__name__})")
    if nprocs < 1:
        raise ValueError(f"nprocs must be an integer >= 1, got {nprocs}")


def _cuda_device_count() -> int:
    """Number of GPUs, without initialising CUDA in this process (so fork stays possible)."""
    import torch

    if not torch.backends.cuda.is_built():
        return 0
    if torch.cuda.is_initialized():
        return torch.cuda.device_count()
    counter = getattr(torch.cuda, "_device_count_nvml", None)
    if counter is not None:
        count = counter()
        if count >= 0:
            return count
    return torch.cuda.device_count()


def _resolve_device_backend(device: str, backend: str, nprocs: int) -> tuple[str, str]:
    gpus = _cuda_device_count() if device != "cpu" else 0
    if device == "cuda" and gpus == 0:
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or 'auto'")
    device_type = "cuda" if gpus > 0 else "cpu"
    if backend == "nccl":
        if device_type != "cuda" or gpus < nprocs:
            raise ValueError(
                f"backend='nccl' needs one GPU per rank: nprocs={nprocs} but {gpus} GPU(s) are visible; "
                f"use backend='gloo' or nprocs <= {gpus}" if gpus else
                "backend='nccl' needs one GPU per rank but no GPU is visible; use backend='gloo'"
            )
        return device_type, backend
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" and gpus >= nprocs and nprocs > 1 else "gloo"
    return device_type, backend


def _is_importable(fn: Callable[..., Any]) -> bool:
    module = getattr(fn, "__module__", None)
    if module in (None, "__main__", "__mp_main__") or "<locals>" in getattr(fn, "__qualname__", "<locals>"):
        return False
    try:
        pickle.dumps(fn)
    except Exception:
        return False
    return True


def _importable_twin(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For a function of ``__main__`` run as ``python -m package.module``: the same function imported as
    ``package.module`` (which children can import, as multiprocessing's own children of such a
    ``__main__`` do); otherwise ``fn``. A package's ``__main__`` is left alone, as multiprocessing does."""
    if getattr(fn, "__module__", None) != "__main__" or "<locals>" in getattr(fn, "__qualname__", "<locals>"):
        return fn
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if not name or name == "__main__" or name.endswith(".__main__"):
        return fn
    import importlib

    try:
        twin = importlib.import_module(name)
        for part in fn.__qualname__.split("."):
            twin = getattr(twin, part)
    except (ImportError, AttributeError):
        return fn
    return twin if callable(twin) else fn


def _resolve_start_method(fn: Callable[..., Any], start_method: str, device_type: str) -> str:
    import torch

    importable = _is_importable(fn)
    if start_method == "auto":
        start_method = "forkserver" if importable else "fork"
    if start_method != "fork" and not importable:
        raise ValueError(
            f"start_method={start_method!r} needs a function the ranks can import, but "
            f"{getattr(fn, '__qualname__', fn)!r} is defined in a notebook or __main__: "
            "use start_method='fork', or move the function into a module"
        )
    if start_method == "fork" and torch.cuda.is_initialized():
        raise RuntimeError(
            "cannot fork ranks: CUDA is already initialised in this process (forked children cannot use it). "
            "Restart the kernel and launch before any CUDA call, or define the function in an importable "
            "module (e.g. a .py file next to the notebook) so that the ranks start with 'forkserver'"
        )
    return start_method


# --------------------------------------------------------------------------- in place / in process


def _device_for_local_rank(device_type: str, local_rank: int) -> str:
    if device_type != "cuda":
        return "cpu"
    import torch

    return f"cuda:{local_rank % max(1, torch.cuda.device_count())}"


def _run_in_place(fn, args, kwargs, backend: str, device: str) -> Any:
    """Under torchrun/SLURM: this process is already one rank; join the group and run ``fn``."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
            name = _device_for_local_rank("cuda", local_rank)
            torch.cuda.set_device(torch.device(name))
            os.environ.setdefault(_ENV_DEVICE, name)
        dist.init_process_group(backend=backend, init_method="env://")
        atexit.register(_destroy_process_group)  # a group left to interpreter teardown can abort
    return fn(*args, **kwargs)


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            pass


def _run_in_process(fn, args, kwargs, backend: str, device_type: str, threads: int | None) -> Any:
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return fn(*args, **kwargs)
    saved_env = {k: os.environ.get(k) for k in (_ENV_DEVICE,)}
    saved_threads = torch.get_num_threads()
    os.environ[_ENV_DEVICE] = _device_for_local_rank(device_type, 0)
    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group(backend="gloo" if backend == "auto" else backend, store=dist.HashStore(),
                            rank=0, world_size=1)
    try:
        return fn(*args, **kwargs)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(saved_threads)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------- children


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ConnectionWriter(io.TextIOBase):
    """A text stream whose writes travel to the launcher through a pipe."""

    def __init__(self, conn, stream: str, prefix: str = ""):
        self._conn, self._stream, self._prefix = conn, stream, prefix

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            if self._prefix:
                text = "".join(self._prefix + line if line.strip() else line for line in text.splitlines(True))
            try:
                self._conn.send(("out", self._stream, text))
            except (BrokenPipeError, OSError):
                pass
        return len(text)

    def isatty(self) -> bool:
        return False


def _die_with_launcher(launcher_pid: int) -> None:
    """Kill this rank when the launching process dies (no orphan after a crashed or killed kernel).

    A rank started by fork or spawn is the launcher's child: Linux's parent-death signal does it. A
    forkserver rank is the fork server's child, and the fork server outlives the launcher while any
    rank is alive (the ranks hold its liveness pipe), so a daemon thread waits on the launcher's pidfd
    (polls its pid where pidfds are missing) and kills the rank.
    """
    if not sys.platform.startswith("linux") or launcher_pid <= 0:
        return
    if os.getppid() == launcher_pid:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if os.getppid() == launcher_pid:  # else the launcher died before prctl: fall through and exit
            return
    threading.Thread(target=_watch_launcher, args=(launcher_pid,), name="distinv-launcher-watch",
                     daemon=True).start()


def _watch_launcher(launcher_pid: int) -> None:
    try:
        handle = os.pidfd_open(launcher_pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
    except (AttributeError, OSError):  # no pidfd (old kernel): poll
        while _alive(launcher_pid):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        select.select([handle], [], [])  # readable when the launcher exits
        os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _rank_main(rank: int, fn, args, kwargs, plan: _Plan, port: int, conn) -> None:
    """Entry point of one child rank."""
    _die_with_launcher(plan.launcher_pid)
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(plan.nprocs), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(plan.nprocs),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(plan.threads),
    )
    relay = rank == 0 or plan.verbose_ranks
    prefix = "" if rank == 0 else f"[rank {rank}] "
    if relay:
        sys.stdout = _ConnectionWriter(conn, "stdout", prefix)
        sys.stderr = _ConnectionWriter(conn, "stderr", prefix)
    else:
        sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(plan.threads)
        device = _device_for_local_rank(plan.device_type, rank)
        os.environ[_ENV_DEVICE] = device
        if plan.device_type == "cuda":
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(
            backend=plan.backend, init_method="env://", rank=rank, world_size=plan.nprocs,
            timeout=timedelta(seconds=plan.timeout) if plan.timeout else timedelta(minutes=30),
        )
        result = fn(*args, **kwargs)
        try:
            dist.destroy_process_group()
        except Exception:  # teardown problems must not hide a result
            pass
        # plain pickle: multiprocessing's pickler would share tensor storage through file descriptors
        # that die with this process
        conn.send(("result", pickle.dumps(result if rank == 0 else None, protocol=pickle.HIGHEST_PROTOCOL)))
    except BaseException as exc:  # noqa: BLE001 - every failure travels to the caller
        try:
            conn.send(("error", traceback.format_exc(), type(exc).__name__))
        except Exception:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        conn.close()


def _write_out(stream: str, text: str) -> None:
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.write(text)
    target.flush()


def _stop(processes: list) -> None:
    """Terminate every child still alive; kill it after a grace period."""
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + _TEARDOWN_GRACE_S
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)


def _run_children(fn, args, kwargs, plan: _Plan) -> Any:
    ctx = mp.get_context(plan.start_method)
    if plan.start_method == "forkserver":
        # not deepinv: importing it initialises CUDA, and the forked ranks could not use it
        ctx.set_forkserver_preload(["torch", "torch.distributed", "distinv"])
    port = _free_port()
    processes, parent_conns = [], []
    for rank in range(plan.nprocs):
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_rank_main, args=(rank, fn, args, kwargs, plan, port, child_conn),
            name=f"distinv-rank-{rank}", daemon=False,  # ranks may start workers of their own
        )
        proc.start()
        child_conn.close()
        processes.append(proc)
        parent_conns.append(parent_conn)

    deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
    done: dict[int, Any] = {}
    open_conns = {conn: rank for rank, conn in enumerate(parent_conns)}
    try:
        while len(done) < plan.nprocs:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                running = [r for r in range(plan.nprocs) if r not in done]
                raise LaunchTimeout(plan.timeout, running)
            waitables = list(open_conns) + [p.sentinel for r, p in enumerate(processes) if r not in done]
            ready = mpc.wait(waitables, timeout=remaining)
            for item in ready:
                if item in open_conns:
                    rank = open_conns[item]
                    try:
                        message = item.recv()
                    except (EOFError, OSError):
                        del open_conns[item]
                        continue
                    if message[0] == "out":
                        _write_out(message[1], message[2])
                    elif message[0] == "result":
                        done[rank] = pickle.loads(message[1])
                    elif message[0] == "error":
                        raise RankError(rank, message[1], message[2])
            for rank, proc in enumerate(processes):
                if rank not in done and not proc.is_alive():
                    conn = parent_conns[rank]
                    # drain what the rank sent before it exited
                    while conn in open_conns and conn.poll():
                        try:
                            message = conn.recv()
                        except (EOFError, OSError):
                            break
                        if message[0] == "out":
                            _write_out(message[1], message[2])
                        elif message[0] == "result":
                            done[rank] = pickle.loads(message[1])
                        elif message[0] == "error":
                            raise RankError(rank, message[1], message[2])
                    if rank not in done:
                        raise RankError(rank, f"rank {rank} exited with code {proc.exitcode} without a result "
                                              "(killed, out of memory, or a crash in native code)\n",
                                        "ProcessExit")
        return done[0]
    finally:
        _stop(processes)
        for conn in parent_conns:
            conn.close()
