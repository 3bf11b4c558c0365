"""glibc's policy for a CPU rank's large tensors: mapped on their own, handed back when freed.

glibc serves an allocation from its heap unless it is at least the *mmap threshold*, which starts at
128 KiB and rises to the size of every mapped block that is freed, up to 32 MiB. After a rank frees its
first 16 MiB tensor, every later slab-sized tensor below 32 MiB comes from the heap, and what it frees
there stays resident (the heap shrinks only from its top): the rank's resident memory is what it once
held plus the holes between what it holds.

:func:`map_large_allocations` pins the threshold (which also stops its rising): blocks of at least
``threshold_bytes`` get their own mapping and go back to the system when freed. It trades time for
memory, since every new large tensor is then fresh pages the kernel must fault in and zero: it is the
run option ``map_large_allocations`` (:class:`distinv.solvers.run.RunOptions`), off by default, one of
the lean settings of the CT memory study (chapter 02 gives both effects as measured).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

__all__ = ["map_large_allocations", "release_free_heap", "DEFAULT_MMAP_THRESHOLD"]

#: Allocations of at least this many bytes are mapped on their own (4 MiB: a 96² window's activations and a
#: 256² slice stay on the heap, a 64-slice slab of 256² (16 MiB) is mapped).
DEFAULT_MMAP_THRESHOLD = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_GLIBC_MAX = 32 * 2**20  # half of HEAP_MAX_SIZE on 64-bit: mallopt refuses a larger threshold


@lru_cache(maxsize=None)
def _glibc_function(name: str):
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the heap's free pages to the system (nothing elsewhere)."""
    trim = _glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def map_large_allocations(threshold_bytes: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at ``threshold_bytes`` in this process; ``False`` where there is no glibc.

    :param int threshold_bytes: the smallest allocation mapped on its own, from 4 KiB to 32 MiB.

    >>> map_large_allocations(64 * 2**20)
    Traceback (most recent call last):
    ...
    ValueError: threshold_bytes must be an integer from 4096 to 33554432 (32 MiB), got 67108864
    """
    if not isinstance(threshold_bytes, int) or isinstance(threshold_bytes, bool) or not (
            4096 <= threshold_bytes <= _GLIBC_MAX):
        raise ValueError(f"threshold_bytes must be an integer from 4096 to {_GLIBC_MAX} (32 MiB), "
                         f"got {threshold_bytes!r}")
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
