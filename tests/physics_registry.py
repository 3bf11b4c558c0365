"""Registry of sharded operators for property tests: each case builds the sharded operator and its
single-process deepinv reference from the same data.

Properties checked over the registry (tests/test_distributed_blur.py): gathered ``A x`` and ``Aᵀ y``
equal the reference's on 1, 2 and 3 ranks, in float32 and float64; ``<A x, y> = <x, Aᵀ y>`` with
inner products summed over ranks; and (tests/test_norm.py) the distributed ``||A||²``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from deepinv.physics import Blur

from distinv.distributed.blur import PADDINGS, ShardedBlur
from distinv.distributed.sharding import SlabLayout

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


@dataclass(frozen=True)
class BlurCase:
    """A blur problem: signal shape, filter shape, padding and (optionally) uneven slab lengths.

    :param str name: test id.
    :param tuple shape: global signal shape ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
    :param tuple filter_shape: ``(b, c, h, w)`` or ``(b, c, d, h, w)``.
    :param str padding: one of :data:`distinv.distributed.blur.PADDINGS`.
    :param dict lengths: slab lengths per world size, for layouts other than the balanced one.
    :param bool use_fft: deepinv's FFT convolutions.
    """

    name: str
    shape: tuple
    filter_shape: tuple
    padding: str
    lengths: tuple = ()
    use_fft: bool = False

    def layout(self, world_size: int) -> SlabLayout:
        for world, lengths in self.lengths:
            if world == world_size:
                return SlabLayout.from_lengths(lengths)
        return SlabLayout.balanced(self.shape[2], world_size)

    def signal(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(self.shape, generator=_generator(self.name, 1), dtype=dtype)

    def filter(self, dtype: torch.dtype) -> torch.Tensor:
        taps = torch.rand(self.filter_shape, generator=_generator(self.name, 2), dtype=dtype)
        return taps / taps.sum()

    def sharded(self, dtype: torch.dtype, world_size: int) -> ShardedBlur:
        return ShardedBlur(self.filter(dtype), layout=self.layout(world_size), padding=self.padding,
                           use_fft=self.use_fft)

    def reference(self, dtype: torch.dtype) -> Blur:
        return Blur(self.filter(dtype), padding=self.padding, use_fft=self.use_fft)

    def measurement(self, dtype: torch.dtype) -> torch.Tensor:
        """A random global measurement (the shape of the reference's output)."""
        shape = self.reference(dtype).A(self.signal(dtype)).shape
        return torch.randn(shape, generator=_generator(self.name, 3), dtype=dtype)


def _generator(name: str, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(sum(map(ord, name)) * 10 + salt)


def _all_paddings(prefix: str, shape, filter_shape, **extra) -> list[BlurCase]:
    return [BlurCase(f"{prefix}-{padding}", shape, filter_shape, padding, **extra) for padding in PADDINGS]


BLUR_CASES: list[BlurCase] = [
    # odd sizes, odd filter, 3 channels sharing one filter
    *_all_paddings("37x53-k7x5", (2, 3, 37, 53), (1, 1, 7, 5)),
    # even filter: the halo is asymmetric (1 row before, 2 after; 2 columns before, 3 after)
    *_all_paddings("37x53-k4x6-per-channel", (1, 2, 37, 53), (1, 2, 4, 6)),
    # 3D: split along depth, the two other axes padded locally
    *_all_paddings("3d-11x8x7-k3x4x5", (1, 2, 11, 8, 7), (1, 1, 3, 4, 5)),
    # a filter taller than a slab: halos come from two ranks away (3 ranks: slabs of 13, 12, 12 rows)
    *[case for case in _all_paddings("37x53-k29x5-multihop", (1, 1, 37, 53), (1, 1, 29, 5)) if case.padding != "valid"],
    # uneven slabs, a 3-row middle slab: rank 0's halo crosses it, "valid" still gives every rank rows
    BlurCase("37x20-k9x3-thin-middle-valid", (1, 1, 37, 20), (1, 1, 9, 3), "valid", lengths=((3, (15, 3, 19)),)),
    BlurCase("37x20-k9x3-thin-middle-reflect", (1, 1, 37, 20), (1, 1, 9, 3), "reflect", lengths=((3, (15, 3, 19)),)),
    BlurCase("37x53-k7x5-fft-circular", (1, 1, 37, 53), (1, 1, 7, 5), "circular", use_fft=True),
    BlurCase("37x53-k7x5-fft-valid", (1, 1, 37, 53), (1, 1, 7, 5), "valid", use_fft=True),
]
