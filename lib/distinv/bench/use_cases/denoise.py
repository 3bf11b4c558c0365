r"""The ``denoise`` use case: the tiled prior alone, the prior benchmark of the book.

A grey test image :math:`x` (scikit-image's *camera*, resized to ``size``) is observed as
:math:`y = x + \sigma n`, :math:`n \sim \mathcal{N}(0, I)`, and denoised by iterating the tiled
denoiser :math:`x_{k+1} = D_\sigma(x_k)`, :math:`x_0 = y`: one prior application per iteration, so the
per-iteration cost is that of the prior inside any plug-and-play solver. PSNR and SSIM against
:math:`x` are recorded after every iteration; because the output feeds the next iteration, any
difference between a tiled multi-rank and a single-rank run would grow and show.

The denoiser is a small DRUNet (``nc=(16, 32, 64, 128)``, ``nb=2``, grey). ``weights="random"`` uses
seeded random weights (same on every rank): enough for timing and for single- vs multi-rank
equivalence, not for image quality; any other value is passed to ``distinv.models.load_denoiser``.

Two implementations of the tiled prior, with the same tile settings:

- ``"deepinv"``: :class:`deepinv.distributed.DistributedProcessing` (round-robin tiles, every rank holds
  the full image, overlaps cropped without blending: ``blend='crop'``, ``layout='replicated'``); its all-reduce goes through
  :mod:`distinv.distributed.comm` (site ``tiling.allreduce``);
- ``"distinv"``: ``distinv.tiling.TiledDenoiser``.

>>> from distinv.bench.registry import COMMON_PARAMS, get_use_case
>>> cfg = {**COMMON_PARAMS, **get_use_case("denoise").parameters(), "size": 64, "patch": 32, "overlap": 8,
...        "iterations": 1, "device": "cpu"}
>>> result = run_denoise(cfg)
>>> len(result["history"]), result["final"]["tile_work_multiplier"]
(1, 2.25)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from distinv.bench.provenance import device_name
from distinv.bench.measure import IterationClock, gather_objects, peak_memory_bytes, reset_peak_memory
from distinv.distributed import comm

__all__ = ["run_denoise", "camera_image", "small_drunet", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("deepinv", "distinv")


def camera_image(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """scikit-image's *camera* (512², grey), resized to ``size × size``, values in [0, 1], shape (1, 1, size, size).

    :param int size: side of the image in pixels, ``>= 8``.
    :param torch.device device: where the tensor lives.

    >>> camera_image(32).shape
    torch.Size([1, 1, 32, 32])
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    from skimage import data

    image = torch.from_numpy(data.camera().astype("float32") / 255.0)[None, None]
    if image.shape[-1] != size:
        image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=size < 512,
                                                align_corners=False)
    return image.clamp(0, 1).to(device)


def small_drunet(weights: str = "random", seed: int = 0) -> torch.nn.Module:
    """The benchmark's grey DRUNet, in eval mode without gradients.

    :param str weights: ``"random"`` (seeded, same on every rank) or a name for ``distinv.models.load_denoiser``.
    :param int seed: seed of the random weights.
    """
    if weights == "random":
        from deepinv.models import DRUNet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DRUNet(in_channels=1, out_channels=1, nc=[16, 32, 64, 128], nb=2, pretrained=None)
    else:
        from distinv.models import load_denoiser

        model = load_denoiser(weights)
    return model.eval().requires_grad_(False)


class _PixelCounter(torch.nn.Module):
    """Wraps a denoiser and counts the pixels it processes (the tile work)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.pixels = 0

    def forward(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self.pixels += x.shape[0] * x[0, 0].numel()
        return self.model(x, sigma)


def _deepinv_tiled(cfg: dict, model: torch.nn.Module, device: torch.device) -> tuple[Callable, ...]:
    """``(apply, local_part, full_image)`` for deepinv's tiled processing (replicated: both identities)."""
    from deepinv.distributed import DistributedContext
    from deepinv.distributed.framework import DistributedProcessing

    if cfg["blend"] != "crop" or cfg["layout"] != "replicated":
        raise ValueError("implementation 'deepinv' supports blend='crop' and layout='replicated' only, "
                         f"got blend={cfg['blend']!r}, layout={cfg['layout']!r}")
    ctx = DistributedContext(device_mode="gpu" if device.type == "cuda" else "cpu").__enter__()
    processing = DistributedProcessing(
        ctx, model, strategy_kwargs={"patch_size": cfg["patch"], "overlap": cfg["overlap"], "tiling_dims": (-2, -1)},
        max_batch_size=cfg["max_batch_size"],
    )

    def apply(x: torch.Tensor, clock: IterationClock) -> torch.Tensor:
        with clock.part("prior"):
            local = processing(x, cfg["sigma"], gather=False)
        return comm.all_reduce(local, site="tiling.allreduce")

    return apply, _identity, _identity


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _distinv_tiled(cfg: dict, model: torch.nn.Module, device: torch.device) -> tuple[Callable, ...]:
    from distinv.distributed.sharding import gather_slabs, slab_bounds
    from distinv.tiling import TiledDenoiser, TilingConfig

    config = TilingConfig(patch=cfg["patch"], overlap=cfg["overlap"], max_batch_size=cfg["max_batch_size"],
                          blend=cfg["blend"], layout=cfg["layout"])
    tiled = TiledDenoiser(model, config)

    def apply(x: torch.Tensor, clock: IterationClock) -> torch.Tensor:
        with clock.part("prior"):
            return tiled(x, cfg["sigma"])

    if cfg["layout"] != "sharded":
        return apply, _identity, _identity
    rank, world = comm.world()

    def local_part(x: torch.Tensor) -> torch.Tensor:
        start, stop = slab_bounds(x.shape[2], world, rank, align=config.align)
        return x[:, :, start:stop].clone()

    def full_image(x: torch.Tensor) -> torch.Tensor | None:
        return gather_slabs(x, dst=0, dim=2, site="bench.metrics")

    return apply, local_part, full_image


def _device(name: str) -> torch.device:
    from distinv.launch import rank_device

    if name in ("auto", None):
        return rank_device()
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        return rank_device() if rank_device().type == "cuda" else torch.device("cuda")
    return device


def run_denoise(cfg: dict[str, Any]) -> dict[str, Any]:
    """Rank entry point of the ``denoise`` use case (every rank calls it; see the module docstring).

    :param dict cfg: the run's parameters: ``size, sigma, weights, implementation, patch, overlap,
        max_batch_size, blend, layout, iterations, warmup, seed, device``.
    :return: ``{"history", "final", "per_rank"}`` as described in :mod:`distinv.bench.registry`.
    """
    if cfg["implementation"] not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {cfg['implementation']!r}")
    if not isinstance(cfg["sigma"], (int, float)) or cfg["sigma"] < 0:
        raise ValueError(f"sigma must be a number >= 0, got {cfg['sigma']!r}")
    from deepinv.loss.metric import PSNR, SSIM

    rank, world = comm.world()
    device = _device(cfg["device"])
    x_true = camera_image(cfg["size"], device)
    generator = torch.Generator().manual_seed(cfg["seed"])
    y = x_true + cfg["sigma"] * torch.randn(x_true.shape, generator=generator).to(device)
    psnr, ssim = PSNR(max_pixel=1.0), SSIM(max_pixel=1.0)
    final = {"psnr_noisy": float(psnr(y, x_true)), "device_name": device_name(device)}

    counter = _PixelCounter(small_drunet(cfg["weights"], cfg["seed"]).to(device))
    build = _deepinv_tiled if cfg["implementation"] == "deepinv" else _distinv_tiled
    denoise, local_part, full_image = build(cfg, counter, device)
    y = local_part(y)  # this rank's slab in the sharded layout, the full image otherwise
    if rank != 0:
        x_true = None

    history = []
    with torch.no_grad():
        idle = IterationClock(device)
        for _ in range(cfg["warmup"]):
            idle.start()
            denoise(y, idle)
        counter.pixels = 0
        reset_peak_memory(device)
        with comm.accounting():
            clock = IterationClock(device)
            x = y
            for iteration in range(1, cfg["iterations"] + 1):
                clock.start()
                x = denoise(x, clock)
                history.append({"iteration": iteration, **clock.stop()})
                estimate = full_image(x)  # after the clock: metrics are not part of the iteration
                if rank == 0:
                    history[-1].update(psnr=float(psnr(estimate, x_true)), ssim=float(ssim(estimate, x_true)))
        peak = peak_memory_bytes(device)

    per_rank = gather_objects({"rank": rank, "peak_mem_bytes": peak,
                               "comm_bytes": sum(r["comm_bytes"] for r in history) / len(history),
                               "comm_seconds": sum(r["t_comm"] for r in history) / len(history),
                               "pixels": counter.pixels / len(history)})
    pixels = sum(r.pop("pixels") for r in per_rank)
    for row in history:
        row["peak_mem_bytes"] = max(r["peak_mem_bytes"] for r in per_rank)
    final.update(tile_work_multiplier=pixels / cfg["size"] ** 2, world_size=world)
    return {"history": history, "final": final, "per_rank": per_rank}
