"""What a rank measures during a benchmark run: peak memory and the time split of one iteration.

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the peak resident set size on CPU.
On Linux the CPU peak (``VmHWM``) is reset at the start of a run by writing ``5`` to
``/proc/self/clear_refs``, so a run executed in a process that ran others before (one rank runs in the
calling process) still reports its own peak; elsewhere ``ru_maxrss`` (the process lifetime peak) is used.
Before the reset, glibc's ``malloc_trim(0)`` hands the heap's free pages back to the system: memory that
earlier work freed but the allocator kept would otherwise stay resident and count in the new window.

>>> clock = IterationClock("cpu")
>>> clock.start()
>>> with clock.part("prior"):
...     pass
>>> sorted(clock.stop())
['comm_bytes', 't_comm', 't_grad', 't_prior', 't_total']
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import torch

from distinv.allocator import release_free_heap
from distinv.distributed import comm

__all__ = ["reset_peak_memory", "peak_memory_bytes", "PeakTracker", "IterationClock", "NetworkTimer", "synchronize",
           "gather_objects"]

_PROC_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work on ``device`` (a no-op on CPU), so wall times are the work's.

    :param torch.device device: the rank's device.
    """
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def gather_objects(obj: object, site: str = "bench.gather") -> list:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` without a process group).

    :param obj: a small picklable object.
    :param str site: communication site name.

    >>> gather_objects({"rank": 0})
    [{'rank': 0}]
    """
    world = comm.world()[1]
    if world == 1:
        return [obj]
    return comm.all_gather_object([None] * world, obj, site=site)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on this rank.

    :param torch.device device: the rank's device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    release_free_heap()
    try:
        with open(_CLEAR_REFS, "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this rank since :func:`reset_peak_memory`, in bytes.

    :param torch.device device: the rank's device.

    >>> peak_memory_bytes(torch.device("cpu")) > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open(_PROC_STATUS) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class PeakTracker:
    """Peak memory of a stretch of work on this rank, leaving out marked parts (e.g. quality metrics).

    :param torch.device device: the rank's device. Construction starts the window (see
        :func:`reset_peak_memory`).

    >>> tracker = PeakTracker("cpu")
    >>> with tracker.excluded():
    ...     pass
    >>> tracker.read() > 0
    True
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._peak = 0
        reset_peak_memory(self.device)

    def read(self) -> int:
        """Peak bytes since construction, outside the excluded parts."""
        return max(self._peak, peak_memory_bytes(self.device))

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """A block whose temporaries do not count (what stays allocated after it does)."""
        self._peak = self.read()
        try:
            yield
        finally:
            synchronize(self.device)
            reset_peak_memory(self.device)


class IterationClock:
    """Times one iteration on this rank and splits it into gradient, prior and communication time.

    ``start()`` and ``stop()`` put a barrier around the iteration (site ``bench.sync``, left out of the
    communication figures), so ``t_total`` is the time of the slowest rank. Communication is read from
    the ledger of :mod:`distinv.distributed.comm` (accounting must be on); ``part("grad")`` and
    ``part("prior")`` time compute blocks, from which the communication inside them is subtracted, so
    the parts are disjoint.

    :param torch.device device: the rank's device (GPU work is synchronised before each reading).
    """

    SYNC_SITE = "bench.sync"

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._parts: dict[str, float] = {}
        self._start = 0.0
        self._comm0 = (0.0, 0)

    def _comm_now(self) -> tuple[float, int]:
        seconds, nbytes = 0.0, 0
        for site, stats in comm.comm_ledger().totals().items():
            if site != self.SYNC_SITE:
                seconds += stats["seconds"]
                nbytes += stats["bytes"]
        return seconds, nbytes

    def start(self) -> None:
        """Barrier, then start the iteration's clock."""
        synchronize(self.device)
        comm.barrier(site=self.SYNC_SITE)
        self._parts = {"grad": 0.0, "prior": 0.0}
        self._comm0 = self._comm_now()
        self._start = time.perf_counter()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time a compute block named ``"grad"`` or ``"prior"`` (communication inside is excluded).

        :param str name: ``"grad"`` or ``"prior"``.
        """
        if name not in ("grad", "prior"):
            raise ValueError(f"part name must be 'grad' or 'prior', got {name!r}")
        comm_before = self._comm_now()[0]
        begin = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            elapsed = time.perf_counter() - begin
            self._parts[name] = self._parts.get(name, 0.0) + elapsed - (self._comm_now()[0] - comm_before)

    def stop(self) -> dict[str, float]:
        """Barrier, stop the clock; returns ``t_total, t_grad, t_prior, t_comm, comm_bytes`` of the iteration."""
        synchronize(self.device)
        comm.barrier(site=self.SYNC_SITE)
        total = time.perf_counter() - self._start
        seconds, nbytes = self._comm_now()
        return {"t_total": total, "t_grad": self._parts.get("grad", 0.0), "t_prior": self._parts.get("prior", 0.0),
                "t_comm": seconds - self._comm0[0], "comm_bytes": nbytes - self._comm0[1]}


class NetworkTimer(torch.nn.Module):
    """A network called ``(x, sigma, ...)`` that adds up the time spent inside its calls.

    It separates what a tiler costs (window copies, blending, communication) from what the network
    costs. CPU calls are timed with ``perf_counter``; CUDA calls with events, read (one synchronisation)
    by :meth:`seconds`, so the timing does not serialise the GPU queue.

    :param torch.nn.Module network: the wrapped network.
    :param torch.device device: where it runs.

    >>> timer = NetworkTimer(lambda x, sigma: 2 * x, "cpu")
    >>> _ = timer(torch.ones(2), 0.1)
    >>> timer.calls, timer.seconds() >= 0
    (1, True)
    """

    def __init__(self, network, device: torch.device | str = "cpu"):
        super().__init__()
        self.network = network
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Start a new count."""
        self.calls = 0
        self._cpu_seconds = 0.0
        self._events: list[tuple] = []

    def forward(self, x: torch.Tensor, sigma, *args, **kwargs):
        self.calls += 1
        if self.device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            out = self.network(x, sigma, *args, **kwargs)
            end.record()
            self._events.append((begin, end))
            return out
        begin = time.perf_counter()
        out = self.network(x, sigma, *args, **kwargs)
        self._cpu_seconds += time.perf_counter() - begin
        return out

    def seconds(self) -> float:
        """Seconds spent in the network since :meth:`reset`."""
        if self._events:
            synchronize(self.device)
        return self._cpu_seconds + sum(begin.elapsed_time(end) for begin, end in self._events) / 1000
