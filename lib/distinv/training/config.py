"""Options of one training run of the unrolled network, validated on construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["UnrolledTrainingConfig", "LAYOUTS", "INITS", "LOSSES", "DTYPES", "RUN_KEYS", "TRAINING_PHOTOS"]

#: Where the iterate lives on each rank: the whole image (operators dealt across ranks by deepinv's
#: ``DistributedStackedLinearPhysics``), or one slab of rows per rank (every operator a distinv ``ShardedBlur``).
LAYOUTS = ("replicated", "sharded")
#: The denoiser the network starts from: the shipped small DRUNet, or a tiny random DRUNet (tests only).
INITS = ("shipped", "random-tiny")
#: Training losses: the mean squared error over the batch, or the mean over crops of the crops' PSNR loss
#: :math:`10\log_{10}(\mathrm{MSE}_b + 10^{-6})` (every crop's relative error counts alike, as every photo's
#: dB count alike in a mean PSNR).
LOSSES = ("mse", "psnr")
DTYPES = ("float32", "float64")
#: The denoisers' training photos (``TRAIN_IMAGES`` of ``data_scripts/train_denoiser.py``; its validation photos,
#: :data:`distinv.training.quality.HELD_OUT_PHOTOS`, are held out).
TRAINING_PHOTOS = ("astronaut", "coffee", "rocket", "retina", "immunohistochemistry", "hubble_deep_field", "brick",
                   "grass", "gravel", "moon", "clock", "page", "text")
#: Options that do not change the sequence of parameters a run computes (a resumed run may change them).
RUN_KEYS = ("steps", "checkpoint_every", "device", "minutes", "progress")


def _number(name: str, value, *, integer: bool = False, minimum: float | None = None, above: float | None = None,
            maximum: float | None = None) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or (not integer and not math.isfinite(value)):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a finite number'}, got {value!r}")
    if (minimum is not None and value < minimum) or (above is not None and not value > above) or (
            maximum is not None and value > maximum):
        parts = [f">= {minimum}" if minimum is not None else None, f"> {above}" if above is not None else None,
                 f"<= {maximum}" if maximum is not None else None]
        raise ValueError(f"{name} must be {' and '.join(p for p in parts if p)}, got {value!r}")


@dataclass(frozen=True)
class UnrolledTrainingConfig:
    r"""One training run: the network, the problem it learns, the optimiser, the layout and memory options.

    The defaults are the settings of the shipped ``unrolled-hqs-gray`` (``data_scripts/train_unrolled.py``).

    The problem is the natural-images one of chapter 01 on random crops: each step draws ``batch`` crops of
    ``crop``² from the training photos (each photo's central square resized to ``image_side``², as
    :func:`distinv.problems.images.ground_truth` does), observes them through the ``K`` blurs with noise
    ``sigma_n`` (circular padding), and minimises the mean squared error of the network's output.

    :param tuple images: training photo names (``skimage.data``; ``"motorcycle"`` is the stereo pair's left view).
    :param int channels: 1 (gray) or 3 (color).
    :param int n_layers: layers of the network, ``>= 1``.
    :param int cg_iterations: CG steps per layer, ``>= 1``.
    :param str init: one of :data:`INITS`.
    :param str loss: one of :data:`LOSSES`.
    :param int steps: optimisation steps, ``>= 1``.
    :param float lr: peak Adam learning rate of the denoiser, ``> 0`` (cosine decay to ``lr / 100``).
    :param float lr_scalars: peak learning rate of the per-layer :math:`\log\sigma_t`, :math:`\log w_t`, ``> 0``.
    :param int crop: side of the training crops, ``>= 16`` and ``<= image_side``.
    :param int image_side: side the photos are resized to before cropping.
    :param int batch: crops per step, ``>= 1``.
    :param int K: frames, ``>= 1``.
    :param float sigma_n: measurement noise, ``>= 0``.
    :param tuple blur_sigma: Gaussian blur widths (major, minor).
    :param str layout: one of :data:`LAYOUTS`.
    :param int patch: tile core of the tiled prior.
    :param int overlap: tile overlap.
    :param int max_batch_size: tiles per denoiser call (``None``: all of a rank's tiles).
    :param bool checkpoint_layers: recompute each layer in the backward pass instead of keeping its activations.
    :param bool checkpoint_tiles: recompute each tile batch's denoiser activations in the backward pass.
    :param bool autocast: bf16 autocast of the denoiser (on CUDA only; ignored on CPU).
    :param bool channels_last: run the denoiser channels-last.
    :param str dtype: one of :data:`DTYPES` (float64: the equivalence tests).
    :param int seed: seed of the crops and the noise (step ``s`` draws from seeds derived from ``(seed, s)``).
    :param int checkpoint_every: write the resumable checkpoint every this many steps (and at the end).
    :param float minutes: stop after this wall time (the schedule still follows ``steps``; ``None``: no limit).
    :param str device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    :param bool progress: tqdm bar on rank 0.

    >>> UnrolledTrainingConfig(crop=96).to_dict()["crop"]
    96
    >>> UnrolledTrainingConfig(lr=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be > 0, got 0
    """

    images: tuple = TRAINING_PHOTOS
    channels: int = 1
    n_layers: int = 3
    cg_iterations: int = 5
    init: str = "shipped"
    loss: str = "psnr"
    steps: int = 1400
    lr: float = 2e-4
    lr_scalars: float = 3e-2
    crop: int = 128
    image_side: int = 512
    batch: int = 2
    K: int = 4
    sigma_n: float = 0.01
    blur_sigma: tuple = (3.0, 0.7)
    layout: str = "replicated"
    patch: int = 256
    overlap: int = 32
    max_batch_size: int | None = 4
    checkpoint_layers: bool = False
    checkpoint_tiles: bool = False
    autocast: bool = True
    channels_last: bool = True
    dtype: str = "float32"
    seed: int = 0
    checkpoint_every: int = 50
    minutes: float | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        images = tuple(self.images) if isinstance(self.images, (tuple, list)) else ()
        if not images or not all(isinstance(name, str) and name for name in images):
            raise ValueError(f"images must be a non-empty list of photo names, got {self.images!r}")
        object.__setattr__(self, "images", images)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (color), got {self.channels!r}")
        _number("n_layers", self.n_layers, integer=True, minimum=1)
        _number("cg_iterations", self.cg_iterations, integer=True, minimum=1)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        _number("steps", self.steps, integer=True, minimum=1)
        _number("lr", self.lr, above=0)
        _number("lr_scalars", self.lr_scalars, above=0)
        _number("image_side", self.image_side, integer=True, minimum=16)
        _number("crop", self.crop, integer=True, minimum=16)
        if self.crop > self.image_side:
            raise ValueError(f"crop must be <= image_side (the photos are {self.image_side}² before cropping), "
                             f"got crop={self.crop}")
        _number("batch", self.batch, integer=True, minimum=1)
        _number("K", self.K, integer=True, minimum=1)
        _number("sigma_n", self.sigma_n, minimum=0)
        sigmas = tuple(self.blur_sigma) if isinstance(self.blur_sigma, (tuple, list)) else ()
        if len(sigmas) != 2 or not all(isinstance(s, (int, float)) and s > 0 for s in sigmas):
            raise ValueError(f"blur_sigma must be two numbers > 0 (major, minor), got {self.blur_sigma!r}")
        object.__setattr__(self, "blur_sigma", (float(sigmas[0]), float(sigmas[1])))
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        _number("patch", self.patch, integer=True, minimum=8)
        _number("overlap", self.overlap, integer=True, minimum=0)
        if self.max_batch_size is not None:
            _number("max_batch_size", self.max_batch_size, integer=True, minimum=1)
        for name in ("checkpoint_layers", "checkpoint_tiles", "autocast", "channels_last", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        _number("seed", self.seed, integer=True, minimum=0)
        _number("checkpoint_every", self.checkpoint_every, integer=True, minimum=1)
        if self.minutes is not None:
            _number("minutes", self.minutes, above=0)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be one of ('auto', 'cpu', 'cuda'), got {self.device!r}")

    def to_dict(self) -> dict:
        """Plain, JSON-able dict of the fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "UnrolledTrainingConfig":
        """The config of :meth:`to_dict` (unknown keys raise, naming them)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; accepted: {sorted(known)}")
        return cls(**values)
