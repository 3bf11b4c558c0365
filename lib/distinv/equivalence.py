"""Distributed vs single-process: the check behind the book's first chapter.

A stack of blur operators :math:`A = [A_1; \\dots; A_K]` is split over ranks with deepinv's
``DistributedStackedLinearPhysics`` (each rank builds only its own :math:`A_k` from a factory) and a
denoiser is tiled over ranks with deepinv's ``DistributedProcessing``. Every rank also computes the
single-process reference, so the comparison needs no extra communication.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.distributed as dist

__all__ = ["BasicsConfig", "blur_stack_factory", "test_image", "run_basics"]


@dataclass(frozen=True)
class BasicsConfig:
    """Settings of the equivalence check.

    :param int size: side of the square test image (pixels), >= 32.
    :param int n_operators: number of blur operators K, >= 1.
    :param int patch_size: tile size of the tiled denoiser.
    :param int overlap: tile overlap of the tiled denoiser.
    :param int repeats: timed repetitions (the median is reported), >= 1.
    :param int seed: seed of the noise added to the denoiser's input.
    """

    size: int = 256
    n_operators: int = 4
    patch_size: int = 128
    overlap: int = 16
    repeats: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("size", 32), ("n_operators", 1), ("patch_size", 8), ("repeats", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= self.overlap < self.patch_size:
            raise ValueError(f"overlap must be in [0, patch_size={self.patch_size}), got {self.overlap}")


def blur_stack_factory(n_operators: int, size: int) -> Callable:
    """Factory ``(index, device, kwargs) -> Blur``: anisotropic Gaussian blurs at K angles.

    :param int n_operators: K, the number of operators.
    :param int size: image side; the kernel is kept well below it.
    """
    from deepinv.physics import Blur
    from deepinv.physics.blur import gaussian_blur

    def factory(index: int, device: torch.device, kwargs: dict | None = None) -> Blur:
        if not 0 <= index < n_operators:
            raise IndexError(f"operator index must be in [0, {n_operators}), got {index}")
        angle = 180.0 * index / n_operators
        kernel = gaussian_blur(sigma=(max(1.0, size / 128), max(0.5, size / 512)), angle=angle)
        return Blur(filter=kernel.to(device), padding="circular", device=device)

    return factory


def test_image(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """scikit-image's ``camera`` resized to ``size``², as a ``(1, 1, size, size)`` tensor in [0, 1]."""
    from skimage import data

    image = torch.from_numpy(data.camera()).float().div(255.0)[None, None]
    image = torch.nn.functional.interpolate(image, size=(size, size), mode="bicubic", antialias=True)
    return image.clamp(0, 1).to(device)


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        if dist.is_initialized():
            dist.barrier()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    peak = b.abs().max().item()
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def _row(quantity: str, distributed, reference, t_dist: float, t_ref: float) -> dict:
    if isinstance(distributed, torch.Tensor):
        distributed, reference = [distributed], [reference]
    diff = max((d - r).abs().max().item() for d, r in zip(distributed, reference))
    psnr = min(_psnr(d, r) for d, r in zip(distributed, reference))
    return {"quantity": quantity, "max_abs_diff": diff, "psnr_db": psnr,
            "time_distributed_s": t_dist, "time_single_s": t_ref}


def run_basics(config: BasicsConfig | dict | None = None) -> dict:
    """Rank function: compare distributed forward, adjoint and tiled denoiser with single-process ones.

    Run it with :func:`distinv.launch`; rank 0's return value holds one row per quantity with the
    maximum absolute difference, the PSNR of the distributed result against the reference and the
    median times, plus the images for plots.

    :param BasicsConfig config: the settings (a dict of its fields is accepted).
    :return: ``{"rows": [...], "world_size", "config", "images": {...}}``.

    >>> out = run_basics(BasicsConfig(size=64, n_operators=2, patch_size=32, overlap=8, repeats=1))
    >>> out["rows"][0]["max_abs_diff"] < 1e-5
    True
    """
    from deepinv.distributed import DistributedContext, distribute
    from deepinv.physics import StackedLinearPhysics

    from distinv.models import load_denoiser

    if config is None:
        config = BasicsConfig()
    elif isinstance(config, dict):
        config = BasicsConfig(**config)
    world_size = dist.get_world_size() if dist.is_initialized() else 1

    from distinv.launch import rank_device

    with DistributedContext(device_mode="gpu" if rank_device().type == "cuda" else "cpu") as ctx:
        device = ctx.device
        x = test_image(config.size, device)
        factory = blur_stack_factory(config.n_operators, config.size)

        physics = distribute(factory, ctx, num_operators=config.n_operators, type_object="linear_physics")
        reference = StackedLinearPhysics([factory(k, device, None) for k in range(config.n_operators)])

        y, t_fwd = _median_time(lambda: physics.A(x), config.repeats)
        y_ref, t_fwd_ref = _median_time(lambda: reference.A(x), config.repeats)
        y_list = [y[k] for k in range(config.n_operators)]
        xt, t_adj = _median_time(lambda: physics.A_adjoint(y_list), config.repeats)
        xt_ref, t_adj_ref = _median_time(lambda: reference.A_adjoint(y_ref), config.repeats)

        denoiser = load_denoiser("drunet-small-gray", device=device)
        sigma = 0.1
        noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(config.seed)).to(device)
        if dist.is_initialized():
            dist.broadcast(noisy, src=0)  # identical input on every rank
        tiled = distribute(denoiser, ctx, patch_size=config.patch_size, overlap=config.overlap,
                           tiling_dims=(-2, -1))
        with torch.no_grad():
            den, t_den = _median_time(lambda: tiled(noisy, sigma), config.repeats)
            untiled, t_untiled = _median_time(lambda: denoiser(noisy, sigma), config.repeats)
            tiled_one, t_one = _median_time(lambda: _tiled_on_one_rank(denoiser, noisy, sigma, config),
                                            config.repeats)

    rows = [
        _row("forward A x", [y[k] for k in range(config.n_operators)], list(y_ref), t_fwd, t_fwd_ref),
        _row("adjoint Aᵀ y", xt, xt_ref, t_adj, t_adj_ref),
        _row("tiled denoiser vs same tiling on 1 rank", den, tiled_one, t_den, t_one),
        _row("tiled denoiser vs untiled", den, untiled, t_den, t_untiled),
    ]
    return {
        "rows": rows,
        "world_size": world_size,
        "config": asdict(config),
        "images": {"x": x.cpu(), "y0": y_ref[0].cpu(), "adjoint": xt.cpu(), "noisy": noisy.cpu(),
                   "tiled": den.cpu(), "untiled": untiled.cpu()},
    }


def _tiled_on_one_rank(denoiser, noisy: torch.Tensor, sigma: float, config: BasicsConfig) -> torch.Tensor:
    """deepinv's tiling, run patch by patch in this process alone (the single-process reference)."""
    from deepinv.distributed.strategies.distributed_strategies import TilingStrategy

    strategy = TilingStrategy(noisy.shape, tiling_dims=(-2, -1), patch_size=config.patch_size,
                              overlap=config.overlap)
    pairs = strategy.get_local_patches(noisy, list(range(strategy.get_num_patches())))
    batches = strategy.apply_batching([patch for _, patch in pairs], max_batch_size=None)
    outputs = strategy.unpack_batched_results([denoiser(b, sigma) for b in batches], len(pairs))
    out = torch.zeros_like(noisy)
    strategy.reduce_patches(out, list(zip([index for index, _ in pairs], outputs)))
    return out
