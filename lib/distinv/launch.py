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

``forkserver`` and ``spawn`` import the main module in every rank, as multiprocessing does: a script
that calls :func:`launch` at its top level, without ``if __name__ == "__main__":``, would launch again
from each rank. The ranks refuse at once and the caller gets a :class:`RankError` that says so.

Faults. A rank that raises, dies (a signal, ``os._exit``, a crash in native code), fails to join the
process group or exceeds its memory cap (``memory_limit_bytes``) ends the launch with a
:class:`RankError` naming the rank and the cause, with the rank's traceback or the tail of its stderr;
when several ranks fail, the first rank that failed on its own is named, not the ranks that lost it as
a peer. Ranks still running after ``timeout`` end it with a :class:`LaunchTimeout` that shows where
each of them was (a stack dump taken before they are stopped). Every rank is stopped in all cases.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import importlib.util
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

from distinv.rank_faults import (EXIT_MAIN_REENTERED, LaunchTimeout, RankError, RankFailure, death_failure,
                                 exception_cause, failure_from_exception, main_guard_advice, main_thread_stack,
                                 oom_kill_count, primary_error)

__all__ = ["launch", "RankError", "LaunchTimeout", "rank_device", "resolve_device", "resolve_nprocs", "BACKENDS",
           "START_METHODS"]

BACKENDS = ("auto", "gloo", "nccl")
START_METHODS = ("auto", "fork", "forkserver", "spawn")
_TEARDOWN_GRACE_S = 5.0
_ENV_DEVICE = "DISTINV_DEVICE"
_RANK_NAME = "distinv-rank-"
#: after a first failure, how long other ranks' failures are awaited to tell the cause from its echoes
_CAUSE_GRACE_S = 1.0
#: stack dumps of ranks still running at the timeout: the signal, and how long the dumps are awaited
_STACK_SIGNAL = getattr(signal, "SIGUSR1", None)  # POSIX
_STACK_WAIT_S = 1.5
_MIN_MEMORY_LIMIT = 1 << 20
#: what the launcher keeps of a rank's stderr, to explain a rank that dies
_TAIL_CHARS = 4000
#: private test hook: ``{rank: {NAME: VALUE}}`` set in that rank's environment before it joins the group
_RANK_ENV_FOR_TESTS: dict[int, dict[str, str]] = {}


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



def resolve_device(option: str) -> "torch.device":
    """This rank's device for a ``device`` option: ``"auto"`` (:func:`rank_device`), ``"cpu"``, or ``"cuda"``
    (an error if this rank has no GPU)."""
    import torch

    if option == "cpu":
        return torch.device("cpu")
    device = rank_device()
    if option == "cuda" and device.type != "cuda":
        raise ValueError("device='cuda' but this rank has no GPU; use device='auto' or 'cpu'")
    return device

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
    if isinstance(nprocs, int) and not isinstance(nprocs, bool) and nprocs < 1:
        raise ValueError(f"nprocs must be -1 (one rank per GPU) or an integer >= 1, got {nprocs!r}")
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
    memory_limit_bytes: int | None = None
    rank_env: tuple = ()


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
    memory_limit_bytes: int | None = None,
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
        :class:`LaunchTimeout` is raised; ``None`` waits forever. It is also the process group's
        collective timeout.
    :param int threads: intra-op threads per rank; default ``max(1, cores // nprocs)`` (1 under fork).
    :param str start_method: ``"auto"``, ``"fork"``, ``"forkserver"`` or ``"spawn"``.
    :param bool verbose_ranks: relay the output of every rank (prefixed), not only rank 0's.
    :param int memory_limit_bytes: host memory that ``fn`` may add on each rank beyond what the rank
        holds when ``fn`` starts (imports and process group included), ``>= 2**20``; enforced as an
        address-space limit (``RLIMIT_AS``, Linux), so an allocation past it raises ``MemoryError``
        (or torch's "can't allocate memory") on that rank, reported as out of memory. ``None``: no cap.
        GPU memory is not counted.
    :return: rank 0's return value (in place under torchrun: this rank's return value).
    :raises RankError: an exception on a rank, or a rank that died, naming it and the cause.
    :raises LaunchTimeout: ranks still running after ``timeout``.

    >>> import torch.distributed as dist
    >>> launch(dist.get_world_size, nprocs=1)
    1
    """
    _refuse_while_a_rank_imports_main()
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
    _check_memory_limit(memory_limit_bytes)

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return _run_in_place(fn, args, kwargs, backend, device, memory_limit_bytes)

    device_type, backend = _resolve_device_backend(device, backend, nprocs)
    if nprocs == 1:
        return _run_in_process(fn, args, kwargs, backend, device_type, threads, memory_limit_bytes)

    fn = _importable_twin(fn)
    method = _resolve_start_method(fn, start_method, device_type)
    cores = os.cpu_count() or 1
    if threads is None:
        threads = 1 if method == "fork" else max(1, cores // nprocs)
    rank_env = tuple((rank, tuple(sorted(env.items()))) for rank, env in sorted(_RANK_ENV_FOR_TESTS.items()))
    plan = _Plan(nprocs, backend, device_type, threads, method, timeout, verbose_ranks, os.getpid(),
                 memory_limit_bytes, rank_env)
    return _run_children(fn, args, kwargs, plan)


# --------------------------------------------------------------------------- validation


def _check_nprocs(nprocs: Any) -> None:
    if not isinstance(nprocs, int) or isinstance(nprocs, bool):
        raise TypeError(f"nprocs must be an integer >= 1, got {nprocs!r} ({type(nprocs).__name__})")
    if nprocs < 1:
        raise ValueError(f"nprocs must be an integer >= 1, got {nprocs}")


def _check_memory_limit(memory_limit_bytes: Any) -> None:
    if memory_limit_bytes is None:
        return
    if not isinstance(memory_limit_bytes, int) or isinstance(memory_limit_bytes, bool):
        raise TypeError(f"memory_limit_bytes must be None or an integer number of bytes >= {_MIN_MEMORY_LIMIT}, "
                        f"got {memory_limit_bytes!r} ({type(memory_limit_bytes).__name__})")
    if memory_limit_bytes < _MIN_MEMORY_LIMIT:
        raise ValueError(f"memory_limit_bytes must be None or an integer number of bytes >= {_MIN_MEMORY_LIMIT}, "
                         f"got {memory_limit_bytes}")
    if not sys.platform.startswith("linux"):
        raise ValueError(f"memory_limit_bytes needs Linux (an RLIMIT_AS limit), this is {sys.platform!r}")


def _refuse_while_a_rank_imports_main() -> None:
    """Stop a launch from a process that multiprocessing is still starting (it imports the main module).

    Our own ranks leave at once with a dedicated exit code that the launcher turns into the advice; any
    other process gets the advice as a ``RuntimeError``.
    """
    process = mp.current_process()
    if not getattr(process, "_inheriting", False):  # set by multiprocessing while a child bootstraps
        return
    main = getattr(sys.modules.get("__mp_main__"), "__file__", None) or _main_file()  # being imported
    advice = main_guard_advice(main, "a new process")
    if process.name.startswith(_RANK_NAME):
        sys.stderr.write(f"distinv.launch: {advice}\n")
        sys.stderr.flush()
        os._exit(EXIT_MAIN_REENTERED)
    raise RuntimeError(advice)


def _main_file() -> str:
    return getattr(sys.modules.get("__main__"), "__file__", None) or "the main module"


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


def _run_in_place(fn, args, kwargs, backend: str, device: str, memory_limit_bytes: int | None = None) -> Any:
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
    with _memory_cap(memory_limit_bytes):
        return fn(*args, **kwargs)


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            pass


def _run_in_process(fn, args, kwargs, backend: str, device_type: str, threads: int | None,
                    memory_limit_bytes: int | None = None) -> Any:
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        with _memory_cap(memory_limit_bytes):
            return fn(*args, **kwargs)
    saved_env = {k: os.environ.get(k) for k in (_ENV_DEVICE,)}
    saved_threads = torch.get_num_threads()
    os.environ[_ENV_DEVICE] = _device_for_local_rank(device_type, 0)
    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group(backend="gloo" if backend == "auto" else backend, store=dist.HashStore(),
                            rank=0, world_size=1)
    try:
        with _memory_cap(memory_limit_bytes):
            return fn(*args, **kwargs)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(saved_threads)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _memory_cap(limit_bytes: int | None):
    """Limit this process's address space to its present size plus ``limit_bytes`` for the block."""
    if not limit_bytes:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space_bytes() + limit_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


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


def _rank_main(rank: int, fn, args, kwargs, plan: _Plan, port: int, conn, err_pipe) -> None:
    """Entry point of one child rank.

    Its native stderr (file descriptor 2: C++ warnings, crash reports) goes through ``err_pipe`` to the
    launcher, which relays it and keeps its tail to explain a rank that dies; a Python stack dump is
    written there on a crash, and on ``_STACK_SIGNAL`` (the launcher's timeout).
    """
    _die_with_launcher(plan.launcher_pid)
    _send(conn, ("started",))
    os.dup2(err_pipe.fileno(), 2)
    err_pipe.close()
    faulthandler.enable(file=2, all_threads=True)
    if _STACK_SIGNAL is not None:
        faulthandler.register(_STACK_SIGNAL, file=2, all_threads=True, chain=False)
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(plan.nprocs), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(plan.nprocs),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(plan.threads),
    )
    os.environ.update(dict(dict(plan.rank_env).get(rank, ())))
    relay = rank == 0 or plan.verbose_ranks
    prefix = "" if rank == 0 else f"[rank {rank}] "
    if relay:
        sys.stdout = _ConnectionWriter(conn, "stdout", prefix)
        sys.stderr = _ConnectionWriter(conn, "stderr", prefix)
    else:  # quiet, but what it writes on stderr is kept by the launcher to explain a failure
        sys.stdout = open(os.devnull, "w")
        sys.stderr = _ConnectionWriter(conn, "tail")
    stage = "start"
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(plan.threads)
        device = _device_for_local_rank(plan.device_type, rank)
        os.environ[_ENV_DEVICE] = device
        if plan.device_type == "cuda":
            torch.cuda.set_device(torch.device(device))
        stage = "init"
        dist.init_process_group(
            backend=plan.backend, init_method="env://", rank=rank, world_size=plan.nprocs,
            timeout=timedelta(seconds=plan.timeout) if plan.timeout else timedelta(minutes=30),
        )
        stage = "fn"
        with _memory_cap(plan.memory_limit_bytes):
            result = fn(*args, **kwargs)
        stage = "result"
        try:
            dist.destroy_process_group()
        except Exception:  # teardown problems must not hide a result
            pass
        # plain pickle: multiprocessing's pickler would share tensor storage through file descriptors
        # that die with this process
        conn.send(("result", pickle.dumps(result if rank == 0 else None, protocol=pickle.HIGHEST_PROTOCOL)))
    except BaseException as exc:  # noqa: BLE001 - every failure travels to the caller
        cause = exception_cause(exc, stage, plan.backend, plan.memory_limit_bytes)
        _send(conn, ("error", traceback.format_exc(), type(exc).__name__, cause))
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        conn.close()


def _send(conn, message: tuple) -> None:
    try:
        conn.send(message)
    except Exception:
        pass


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


class _Rank:
    """The launcher's view of one child rank: its process, message pipe and stderr pipe."""

    def __init__(self, rank: int, proc, conn, err):
        self.rank, self.proc, self.conn, self.err = rank, proc, conn, err
        self.started = self.finished = False
        self.result: Any = None
        self.tail = ""
        self.capture: list[str] | None = None  # stderr collected while a stack dump is awaited
        self.conn_open = self.err_open = True

    def add_tail(self, text: str) -> None:
        self.tail = (self.tail + text)[-_TAIL_CHARS:]
        if self.capture is not None:
            self.capture.append(text)

    def read_stderr(self) -> bool:
        """Relay what the rank wrote on its stderr (as before: to our own stderr) and keep its tail."""
        try:
            data = os.read(self.err.fileno(), 65536)
        except OSError:
            data = b""
        if not data:
            self.err_open = False
            return False
        if self.capture is None:  # a stack dump asked for goes into the timeout's message instead
            try:
                os.write(2, data)
            except OSError:
                pass
        self.add_tail(data.decode(errors="replace"))
        return True

    def drain_stderr(self) -> None:
        while self.err_open and self.err.poll(0):
            if not self.read_stderr():
                break


def _forkserver_preload() -> list[str]:
    """What the fork server imports once for every rank it forks: torch and distinv, and deepinv (2 s per rank
    otherwise) where there is no GPU. Not on a GPU machine: importing deepinv initialises CUDA, and ranks
    forked from an initialised process cannot use it."""
    import torch

    modules = ["torch", "torch.distributed", "distinv"]
    if not torch.cuda.is_available() and importlib.util.find_spec("deepinv") is not None:
        modules.append("deepinv")
    return modules


def _run_children(fn, args, kwargs, plan: _Plan) -> Any:
    ctx = mp.get_context(plan.start_method)
    if plan.start_method == "forkserver":
        ctx.set_forkserver_preload(_forkserver_preload())
    port = _free_port()
    oom_kills = oom_kill_count()
    ranks: list[_Rank] = []
    try:
        for rank in range(plan.nprocs):
            parent_conn, child_conn = ctx.Pipe(duplex=False)
            err_read, err_write = ctx.Pipe(duplex=False)  # used as a raw pipe for the rank's stderr bytes
            proc = ctx.Process(
                target=_rank_main, args=(rank, fn, args, kwargs, plan, port, child_conn, err_write),
                name=f"{_RANK_NAME}{rank}", daemon=False,  # ranks may start workers of their own
            )
            proc.start()
            child_conn.close()
            err_write.close()
            ranks.append(_Rank(rank, proc, parent_conn, err_read))
        return _supervise(ranks, plan, oom_kills)
    finally:
        _stop([r.proc for r in ranks])
        for r in ranks:
            r.drain_stderr()
            r.conn.close()
            r.err.close()


def _supervise(ranks: list[_Rank], plan: _Plan, oom_kills: int | None) -> Any:
    """Relay the ranks' output until every rank returned (rank 0's result) or one failed (an exception)."""
    deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
    failures: list[RankFailure] = []
    grace_end = None
    while True:
        failed = {f.rank for f in failures}
        pending = [r for r in ranks if not r.finished and r.rank not in failed]
        now = time.monotonic()
        if failures and (not pending or now >= grace_end):
            raise primary_error(failures, [r.rank for r in ranks if r.finished], len(ranks))
        if not pending:
            return ranks[0].result
        if deadline is not None and now >= deadline and not failures:
            raise _timeout_error(plan, ranks)
        limits = [t - now for t in (deadline, grace_end) if t is not None]
        waitables = ([r.conn for r in ranks if r.conn_open] + [r.err for r in ranks if r.err_open]
                     + [r.proc.sentinel for r in pending])
        ready = set(mpc.wait(waitables, timeout=max(0.0, min(limits)) if limits else None))
        for r in ranks:
            if r.err in ready:
                r.read_stderr()
            if r.conn in ready:
                _receive(r, failures)
        for r in pending:
            if r.proc.is_alive() or r.rank in {f.rank for f in failures}:
                continue
            while r.conn_open and r.conn.poll():  # what the rank sent before it exited
                _receive(r, failures)
            r.drain_stderr()
            if not r.finished and r.rank not in {f.rank for f in failures}:
                failures.append(death_failure(r.rank, r.proc.exitcode, r.started, r.tail, plan.start_method,
                                              plan.memory_limit_bytes, oom_kills, len(failures)))
        if failures and grace_end is None:
            grace_end = time.monotonic() + _CAUSE_GRACE_S


def _receive(r: _Rank, failures: list[RankFailure]) -> None:
    try:
        message = r.conn.recv()
    except (EOFError, OSError):
        r.conn_open = False
        return
    kind = message[0]
    if kind == "started":
        r.started = True
    elif kind == "out":
        if message[1] in ("stdout", "stderr"):
            _write_out(message[1], message[2])
        if message[1] != "stdout":
            r.add_tail(message[2])
    elif kind == "result":
        r.result = pickle.loads(message[1])
        r.finished = True
    elif kind == "error":
        _, text, exc_type, cause = message
        failures.append(failure_from_exception(r.rank, text, exc_type, cause, len(failures)))


def _timeout_error(plan: _Plan, ranks: list[_Rank]) -> LaunchTimeout:
    """Ask the ranks still running for a stack dump (faulthandler), then name them with where they were."""
    running = [r for r in ranks if not r.finished]
    dumping = [r for r in running if r.started and r.proc.is_alive() and _STACK_SIGNAL is not None]
    for r in dumping:
        r.capture = []
        try:
            os.kill(r.proc.pid, _STACK_SIGNAL)
        except OSError:
            pass
    end = time.monotonic() + _STACK_WAIT_S
    while dumping and time.monotonic() < end:
        if all(_stack(r) for r in dumping):
            time.sleep(0.05)  # the main thread's block is the last one written: let it finish
            for r in dumping:
                r.drain_stderr()
            break
        ready = mpc.wait([r.err for r in dumping if r.err_open], timeout=max(0.0, end - time.monotonic()))
        for r in dumping:
            if r.err in ready:
                r.read_stderr()
    stacks = {r.rank: _stack(r) for r in dumping}
    return LaunchTimeout(plan.timeout, [r.rank for r in running], {k: v for k, v in stacks.items() if v},
                         [r.rank for r in ranks if r.finished])


def _stack(r: _Rank) -> str:
    """Where a rank was, from the stack dump it wrote, without the machinery that started it."""
    hidden = (os.sep + "multiprocessing" + os.sep, __file__, '"<string>"')
    return main_thread_stack("".join(r.capture or ()), hidden)
