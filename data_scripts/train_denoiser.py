"""Train the small DRUNet denoisers that distinv ships, on scikit-image's own images.

The network is deepinv's :class:`~deepinv.models.DRUNet` (``nc=(32, 64, 128, 256)``, ``nb=2``,
about 4.25 M parameters), trained to minimise

.. math::

    \\mathbb{E}_{x, \\sigma, n} \\; \\ell\\big(D_\\theta(x + \\sigma n, \\sigma), x\\big),
    \\qquad \\sigma \\sim \\mathcal{U}[0, \\sigma_{\\max}], \\; n \\sim \\mathcal{N}(0, I),

on random flipped / rotated patches of the natural images that scikit-image ships in its wheel
(no download), or, with ``--dataset ct-phantoms`` (the CT chapter's prior, ``drunet-small-ct``,
1 channel), of random axial / coronal / sagittal slices of distinv's analytic textured CT
phantoms (seeds from ``PRIOR_TRAINING_SEEDS``, a few cube sides, some Shepp–Logan slices; no
download either), or, with ``--dataset radio-skies`` (the radio chapter's prior, ``drunet-small-radio``,
1 channel), of generated high-dynamic-range radio skies (:func:`distinv.radio.sky.training_sky`, seeds
from ``SKY_PRIOR_TRAIN_SEEDS``) scaled as the radio problem scales its image (:class:`RadioSkySampler`).
Held-out images (or slices of ``PRIOR_VALIDATION_SEEDS`` volumes, or skies of
``SKY_PRIOR_VALIDATION_SEEDS``) are used for validation; the run ends with a validation table
(PSNR per sigma of the noisy input, of deepinv's ``TVDenoiser`` at its best lambda from a grid,
and of the network with the fp16 weights that ship) and writes, atomically, into ``--out-dir``:

- ``<name>.pt``: fp16 state dict (loaded with ``torch.load(weights_only=True)``),
- ``<name>.json``: sha256 of the ``.pt``, architecture, data, training settings, validation,
- ``MODEL_CARD.md``: a human summary of every ``*.json`` in ``--out-dir``.

Examples::

    OMP_NUM_THREADS=1 python data_scripts/train_denoiser.py --channels 1 --minutes 15
    python data_scripts/train_denoiser.py --channels 3 --device cuda --minutes 1.5 --force
    python data_scripts/train_denoiser.py --export-data images.npz      # for a node without data
    OMP_NUM_THREADS=1 python data_scripts/train_denoiser.py --dataset ct-phantoms --minutes 25
    OMP_NUM_THREADS=1 python data_scripts/train_denoiser.py --dataset radio-skies --minutes 25
    python data_scripts/train_denoiser.py --channels 3 --data-npz images.npz --device cuda ...
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from distinv.files import write_atomically
from distinv.models import sha256_of

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "lib" / "distinv" / "weights"

#: Natural images of ``skimage.data`` that live in the wheel (no pooch download).
#: ``cat`` is left out: it is the same picture as ``chelsea``.
TRAIN_IMAGES = (
    "astronaut", "coffee", "rocket", "retina", "immunohistochemistry", "hubble_deep_field",
    "brick", "grass", "gravel", "moon", "clock", "page", "text",
)
#: Held out: never seen in training, used for the validation table and the tests.
VALIDATION_IMAGES = ("camera", "coins", "chelsea", "motorcycle")
VALIDATION_SIGMAS = (0.025, 0.05, 0.1, 0.15, 0.2)
TV_LAMBDA_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5)  # lambda = factor * sigma
TV_ITERATIONS = 100
VALIDATION_CROP = 256

#: Initialisations: identity, random, or a shipped denoiser of the same architecture to fine-tune.
INITS = ("identity", "random", "drunet-small-gray", "drunet-small-color", "drunet-small-ct")
#: Training data: ``skimage`` (natural images, the shipped gray / color priors) or ``ct-phantoms``.
DATASETS = ("skimage", "ct-phantoms", "radio-skies")
#: CT prior: cube sides whose slices are drawn (the phantom is the same object at every side).
CT_SIZES = (128, 192, 256, 384)
#: CT prior: Shepp–Logan slices are drawn at the sides of CT_SIZES up to this one.
CT_SHEPP_LOGAN_MAX_SIZE = 256
#: CT prior validation: this many slices (axial, coronal, sagittal in turn) of this side.
CT_VALIDATION_COUNT, CT_VALIDATION_SIZE = 6, 256
CT_AXES = ("axial", "coronal", "sagittal")
#: Radio prior: side of the generated skies (the chapter's images are of this order).
RADIO_NPIX = 256
#: Radio prior validation: this many held-out skies; scaled to these dynamic ranges (peak / sigma_d) and
#: noise levels (multiples of sigma_d).
RADIO_VALIDATION_COUNT = 6
RADIO_VALIDATION_RANGES = (1e3, 1e4)
RADIO_VALIDATION_NOISE = (1.0, 3.0, 10.0)
#: Radio prior validation: the logSNR's dynamic range (distinv.radio.metrics).
RADIO_LOG_RANGE = 1e4


@dataclass
class TrainingConfig:
    """Settings of one training run (recorded in the model card).

    :param int channels: 1 (gray) or 3 (color).
    :param str device: torch device string.
    :param float minutes: wall-time budget of the optimisation loop, or None.
    :param int steps: number of optimisation steps, or None (at least one of the two is set).
    :param int patch: patch side in pixels (a multiple of 8).
    :param int batch: patches per step.
    :param float lr: peak Adam learning rate (cosine decay to ``lr / 100``).
    :param str loss: ``"l1"`` or ``"l2"``.
    :param str init: ``"identity"`` (see :func:`initialise_as_identity`), ``"random"``, or the name of a
        shipped denoiser of the same architecture to fine-tune (e.g. ``"drunet-small-gray"`` for the CT prior).
    :param float sigma_max: noise levels are drawn uniformly in ``[0, sigma_max]``.
    :param int seed: seed of every random draw.
    :param tuple nc: DRUNet channels per scale.
    :param int nb: DRUNet residual blocks per scale.
    :param str dataset: one of :data:`DATASETS`; ``"ct-phantoms"`` trains ``drunet-small-ct``.
    :param tuple ct_sizes: ``ct-phantoms``: cube sides of the slices (each ``>= patch``).
    :param int ct_pool: ``ct-phantoms``: slices held at once.
    :param float ct_refresh: ``ct-phantoms``: slices of the pool replaced per step (0.25: one every
        4 steps).
    :param float ct_shepp_logan: ``ct-phantoms``: fraction of Shepp–Logan slices, in [0, 1].
    :param float radio_sigma: ``radio-skies``: :math:`\\sigma_d`, the noise level the radio problem's scaled
        image holds (``RadioConfig.denoiser_sigma``); noise levels are drawn log-uniformly in
        ``[radio_sigma / 2, sigma_max]``.
    :param tuple radio_range: ``radio-skies``: dynamic ranges (sky peak over the heuristic noise level) drawn
        log-uniformly: the scaled sky's peak is ``radio_sigma`` times one.
    :param int radio_pool: ``radio-skies``: skies held at once (one replaced per step).
    """

    channels: int
    device: str
    minutes: float | None
    steps: int | None
    patch: int
    batch: int
    lr: float
    loss: str
    init: str
    sigma_max: float
    seed: int
    nc: tuple[int, int, int, int] = (32, 64, 128, 256)
    nb: int = 2
    dataset: str = "skimage"
    ct_sizes: tuple[int, ...] = CT_SIZES
    ct_pool: int = 256
    ct_refresh: float = 1.0
    ct_shepp_logan: float = 0.1
    radio_sigma: float = 0.01
    radio_range: tuple[float, float] = (1e2, 1e5)
    radio_pool: int = 64
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.minutes is None and self.steps is None:
            raise ValueError("give --minutes or --steps (or both), got neither")
        if self.patch % 8 or self.patch < 32:
            raise ValueError(f"patch must be a multiple of 8 and >= 32, got {self.patch}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        self.name = "drunet-small-" + ("gray" if self.channels == 1 else "color")
        if self.dataset == "ct-phantoms":
            self._check_ct()
            self.name = "drunet-small-ct"
        if self.dataset == "radio-skies":
            self._check_radio()
            self.name = "drunet-small-radio"

    def _check_radio(self) -> None:
        if self.channels != 1:
            raise ValueError(f"dataset 'radio-skies' is one Stokes-I image: channels must be 1, got {self.channels}")
        if not 0 < self.radio_sigma / 2 < self.sigma_max:
            raise ValueError(f"need 0 < radio_sigma / 2 < sigma_max, got radio_sigma={self.radio_sigma}, "
                             f"sigma_max={self.sigma_max}")
        low, high = self.radio_range
        if not 1 <= low <= high:
            raise ValueError(f"radio_range must be (low, high) with 1 <= low <= high, got {self.radio_range}")
        if self.radio_pool < 1 or self.patch > RADIO_NPIX:
            raise ValueError(f"radio_pool must be >= 1 and patch <= {RADIO_NPIX}, got radio_pool={self.radio_pool}, "
                             f"patch={self.patch}")

    def _check_ct(self) -> None:
        if self.channels != 1:
            raise ValueError(f"dataset 'ct-phantoms' is gray: channels must be 1, got {self.channels}")
        if not self.ct_sizes or any(s < self.patch for s in self.ct_sizes):
            raise ValueError(f"ct_sizes must be cube sides >= patch={self.patch}, got {self.ct_sizes}")
        if self.ct_pool < 1 or not 0 < self.ct_refresh <= self.ct_pool:
            raise ValueError(f"ct_pool must be >= 1 and ct_refresh in (0, ct_pool], got "
                             f"ct_pool={self.ct_pool}, ct_refresh={self.ct_refresh}")
        if not 0.0 <= self.ct_shepp_logan <= 1.0:
            raise ValueError(f"ct_shepp_logan must be in [0, 1], got {self.ct_shepp_logan}")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _skimage_image(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def collect_images(data_npz: Path | None) -> dict[str, dict[str, np.ndarray]]:
    """Uint8 images by split: ``{"train": {name: array}, "val": {name: array}}``.

    :param pathlib.Path data_npz: an archive written by ``--export-data``, or None for skimage.
    """
    if data_npz is not None:
        archive = np.load(data_npz)
        images: dict[str, dict[str, np.ndarray]] = {"train": {}, "val": {}}
        for key in archive.files:
            split, name = key.split("__", 1)
            images[split][name] = archive[key]
        return images
    return {
        "train": {n: _skimage_image(n) for n in TRAIN_IMAGES},
        "val": {n: _skimage_image(n) for n in VALIDATION_IMAGES},
    }


def to_tensor(image: np.ndarray, channels: int) -> torch.Tensor | None:
    """A (C, H, W) float tensor in [0, 1] with ``channels`` channels, or None if not convertible.

    Color images become gray for ``channels=1`` (ITU-R 709 luma); gray images are skipped for
    ``channels=3``.
    """
    x = torch.from_numpy(np.ascontiguousarray(image)).float() / 255.0
    if x.ndim == 2:
        return x[None] if channels == 1 else None
    x = x[..., :3].permute(2, 0, 1)
    if channels == 1:
        weights = torch.tensor([0.2125, 0.7154, 0.0721]).view(3, 1, 1)
        return (x * weights).sum(0, keepdim=True)
    return x


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


class PatchSampler:
    """Random patches, flips and quarter turns; each image is drawn with the same probability.

    Not in proportion to area: retina and hubble_deep_field, mostly dark background, hold 57 % of
    the pixels and made a first model (drawn by area) worse than the noisy input at low sigma.
    """

    def __init__(self, images: list[torch.Tensor], patch: int, generator: torch.Generator):
        self.images = [im for im in images if min(im.shape[-2:]) >= patch]
        self.weights = torch.ones(len(self.images)) / len(self.images)
        self.patch = patch
        self.generator = generator

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch: int) -> torch.Tensor:
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=self.generator)
        patches = []
        for index in picks.tolist():
            image = self.images[index]
            h, w = image.shape[-2:]
            top, left = self._randint(h - self.patch + 1), self._randint(w - self.patch + 1)
            p = image[:, top : top + self.patch, left : left + self.patch]
            if self._randint(2):
                p = p.flip(-1)
            p = torch.rot90(p, self._randint(4), dims=(-2, -1))
            patches.append(p)
        return torch.stack(patches)


class PhantomSliceSampler:
    """Random patches of random slices of distinv's textured CT phantoms (the CT prior's data).

    A slice is drawn as: a seed of ``PRIOR_TRAINING_SEEDS``, a cube side of ``sizes``, an axis
    (axial, coronal, sagittal) and an index in the middle 70 % of the cube; with probability
    ``shepp_logan`` it is instead a slice of the Shepp–Logan phantom (sides up to
    :data:`CT_SHEPP_LOGAN_MAX_SIZE`). ``pool`` slices are held; each :meth:`sample` replaces
    ``refresh`` of them on average (a fraction: one slice every ``1 / refresh`` calls) by the next
    slices of a fixed sequence (seeded by ``seed``), computed ahead by a background thread: the run
    stays reproducible and the network rarely waits. Patches are flipped and turned as in
    :class:`PatchSampler`. :attr:`used` describes every slice that entered the pool.
    """

    def __init__(self, patch: int, generator: torch.Generator, seed: int, sizes=CT_SIZES,
                 pool: int = 256, refresh: float = 1.0, shepp_logan: float = 0.1, device: str = "cpu"):
        self.patch, self.generator, self.refresh, self.device = patch, generator, refresh, device
        self._credit = 0.0
        self.sizes, self.shepp_logan = tuple(sizes), shepp_logan
        self.used: list[dict] = []
        self._rng = np.random.default_rng(seed)
        self._shepp_logan_volumes: dict[int, torch.Tensor] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=4 * math.ceil(refresh))
        self._stop = threading.Event()
        self.slices = []
        for _ in range(pool):
            image, info = self._next_slice()
            self.slices.append(image)
            self.used.append(info)
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _next_slice(self) -> tuple[torch.Tensor, dict]:
        from distinv.tomography.phantoms import (
            PRIOR_TRAINING_SEEDS, shepp_logan_phantom, textured_phantom_slice)

        rng = self._rng
        small = [s for s in self.sizes if s <= CT_SHEPP_LOGAN_MAX_SIZE]
        shepp_logan = bool(small) and rng.uniform() < self.shepp_logan
        size = int(rng.choice(small if shepp_logan else self.sizes))
        axis = int(rng.integers(3))
        index = int(rng.integers(int(0.15 * size), int(0.85 * size)))
        if shepp_logan:
            if size not in self._shepp_logan_volumes:
                self._shepp_logan_volumes[size] = shepp_logan_phantom(size)
            image = self._shepp_logan_volumes[size].select(axis, index).clone()
            info = {"kind": "shepp-logan", "size": size, "axis": axis, "index": index}
        else:
            seed = int(PRIOR_TRAINING_SEEDS[int(rng.integers(len(PRIOR_TRAINING_SEEDS)))])
            image = textured_phantom_slice(size, seed, axis, index)
            info = {"kind": "textured", "seed": seed, "size": size, "axis": axis, "index": index}
        return image[None].to(self.device), info

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                self._put(self._next_slice())
        except BaseException as error:  # handed to the training loop, which raises it
            self._put(error)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch: int) -> torch.Tensor:
        self._credit += self.refresh
        while self._credit >= 1.0:
            self._credit -= 1.0
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise RuntimeError("the phantom slice producer failed") from item
            image, info = item
            self.slices[self._randint(len(self.slices))] = image
            self.used.append(info)
        patches = []
        for _ in range(batch):
            image = self.slices[self._randint(len(self.slices))]
            h, w = image.shape[-2:]
            top, left = self._randint(h - self.patch + 1), self._randint(w - self.patch + 1)
            p = image[:, top : top + self.patch, left : left + self.patch]
            if self._randint(2):
                p = p.flip(-1)
            patches.append(torch.rot90(p, self._randint(4), dims=(-2, -1)))
        return torch.stack(patches)

    def close(self) -> None:
        """Stop the producer thread."""
        self._stop.set()
        self._thread.join(timeout=10)


class RadioSkySampler:
    """Patches of generated radio skies, scaled as the radio problem scales its image.

    The radio problem (:mod:`distinv.problems.radio`) hands its prior :math:`u = x / \\alpha`, where the
    heuristic noise level becomes :math:`\\sigma_d` (``radio_sigma``): :math:`u` holds noise
    :math:`\\sigma_d` and a peak of :math:`\\sigma_d` times the data's dynamic range :math:`R` (the sky's
    peak over the heuristic noise). So each patch comes from a sky (:func:`distinv.radio.sky.training_sky`,
    a seed of ``SKY_PRIOR_TRAIN_SEEDS``) divided by its own peak and multiplied by :math:`\\sigma_d R`, with
    :math:`R` log-uniform in ``dynamic_range``; :meth:`noise_levels` draws :math:`\\sigma` log-uniformly in
    ``[sigma_d / 2, sigma_max]`` (the solver's schedule runs from its start down to :math:`\\sigma_d`).
    ``pool`` skies are held, one replaced per :meth:`sample` by the next of a seeded sequence.
    Patches are flipped and turned as in :class:`PatchSampler`. :attr:`used` lists the seeds drawn.
    """

    def __init__(self, patch: int, generator: torch.Generator, seed: int, sigma_d: float,
                 dynamic_range: tuple[float, float], pool: int = 64, npix: int = RADIO_NPIX, device: str = "cpu"):
        self.patch, self.generator, self.sigma_d, self.npix, self.device = patch, generator, sigma_d, npix, device
        self.log_range = (math.log(dynamic_range[0]), math.log(dynamic_range[1]))
        self._rng = np.random.default_rng(seed)
        self.used: list[int] = []
        self.skies = [self._next_sky() for _ in range(pool)]

    def _next_sky(self) -> torch.Tensor:
        from distinv.radio.sky import SKY_PRIOR_TRAIN_SEEDS, training_sky

        seed = int(SKY_PRIOR_TRAIN_SEEDS[int(self._rng.integers(len(SKY_PRIOR_TRAIN_SEEDS)))])
        self.used.append(seed)
        sky = training_sky(seed, self.npix)
        return torch.from_numpy(sky / sky.max()).float()[None].to(self.device)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch: int) -> torch.Tensor:
        self.skies[self._randint(len(self.skies))] = self._next_sky()
        low, high = self.log_range
        patches = []
        for _ in range(batch):
            sky = self.skies[self._randint(len(self.skies))]
            top, left = self._randint(self.npix - self.patch + 1), self._randint(self.npix - self.patch + 1)
            p = sky[:, top : top + self.patch, left : left + self.patch]
            if self._randint(2):
                p = p.flip(-1)
            peak = self.sigma_d * math.exp(low + (high - low) * float(torch.rand(1, generator=self.generator)))
            patches.append(peak * torch.rot90(p, self._randint(4), dims=(-2, -1)))
        return torch.stack(patches)

    def noise_levels(self, batch: int, generator: torch.Generator, sigma_max: float) -> torch.Tensor:
        """``batch`` noise levels, log-uniform in ``[sigma_d / 2, sigma_max]``."""
        low, high = math.log(self.sigma_d / 2), math.log(sigma_max)
        u = torch.rand(batch, generator=generator, device=generator.device)
        return torch.exp(low + (high - low) * u)


def radio_validation_images() -> dict[str, torch.Tensor]:
    """Held-out (1, N, N) skies of ``SKY_PRIOR_VALIDATION_SEEDS``, divided by their peak."""
    from distinv.radio.sky import SKY_PRIOR_VALIDATION_SEEDS, training_sky

    images = {}
    for i in range(RADIO_VALIDATION_COUNT):
        seed = int(SKY_PRIOR_VALIDATION_SEEDS[i])
        sky = training_sky(seed, RADIO_NPIX)
        images[f"sky-{seed}"] = torch.from_numpy(sky / sky.max()).float()[None]
    return images


def ct_validation_images(crop: int) -> dict[str, torch.Tensor]:
    """Held-out (1, H, W) slices of ``PRIOR_VALIDATION_SEEDS`` volumes, center-cropped to ``crop``."""
    from distinv.tomography.phantoms import PRIOR_VALIDATION_SEEDS, textured_phantom_slice

    size, images = CT_VALIDATION_SIZE, {}
    for i in range(CT_VALIDATION_COUNT):
        seed, axis = int(PRIOR_VALIDATION_SEEDS[i]), i % len(CT_AXES)
        index = size // 2 + (i - CT_VALIDATION_COUNT // 2) * size // 32
        image = textured_phantom_slice(size, seed, axis, index)[None]
        images[f"textured-{seed}-{CT_AXES[axis]}-{index}of{size}"] = center_crop(image, crop)
    return images


@torch.no_grad()
def initialise_as_identity(model) -> None:
    """Make a fresh DRUNet output its input image exactly: :math:`D(y, \\sigma) = y`.

    The first ``C`` channels of ``m_head`` copy the image (centre tap 1), ``m_tail`` reads them
    back, and the decoder's last up-sampling (``m_up1[0]``) starts at zero, so the bias-free U-Net
    branch adds nothing (as zero-initialised residual branches in Fixup / ReZero). Training then
    starts from the noisy input's PSNR instead of a random output; a plain DRUNet learns the
    near-identity that low sigma needs only slowly.
    """
    channels = model.m_tail.out_channels
    model.m_head.weight[:channels].zero_()
    model.m_tail.weight.zero_()
    model.m_up1[0].weight.zero_()
    centre = model.m_head.kernel_size[0] // 2
    for c in range(channels):
        model.m_head.weight[c, c, centre, centre] = 1.0
        model.m_tail.weight[c, c, centre, centre] = 1.0


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    mse = torch.mean((x_hat.clamp(0, 1) - x) ** 2).item()
    return 10 * math.log10(1.0 / mse)


@torch.no_grad()
def validate(models: dict, images: dict[str, torch.Tensor], device: str, seed: int) -> list[dict]:
    """Mean PSNR over the validation images, per sigma: noisy, TV (best lambda), each model.

    ``models`` maps a column name (``"model"``, ``"model_fp32"``) to a network.

    TV gets the lambda of ``TV_LAMBDA_FACTORS * sigma`` that is best on these very images (an
    oracle choice, in TV's favour), ``TV_ITERATIONS`` iterations of deepinv's ``TVDenoiser``.
    """
    from deepinv.models import TVDenoiser

    tv = TVDenoiser(tau=0.05, n_it_max=TV_ITERATIONS, crit=1e-6)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in VALIDATION_SIGMAS:
        scores = {"noisy": [], **{column: [] for column in models}}
        tv_scores = {f: [] for f in TV_LAMBDA_FACTORS}
        for x in images.values():
            x = x[None].to(device)
            y = x + sigma * torch.randn(x.shape, generator=generator).to(device)
            scores["noisy"].append(psnr(y, x))
            for column, model in models.items():
                scores[column].append(psnr(model(y, sigma), x))
            for factor in TV_LAMBDA_FACTORS:
                tv.restart = True
                tv_scores[factor].append(psnr(tv(y, ths=factor * sigma), x))
        best = max(TV_LAMBDA_FACTORS, key=lambda f: float(np.mean(tv_scores[f])))
        rows.append(
            {
                "sigma": sigma,
                "psnr_noisy": round(float(np.mean(scores["noisy"])), 2),
                "psnr_tv": round(float(np.mean(tv_scores[best])), 2),
                "tv_lambda": round(best * sigma, 5),
                **{f"psnr_{c}": round(float(np.mean(scores[c])), 2) for c in models},
            }
        )
    return rows


@torch.no_grad()
def validate_radio(models: dict, images: dict[str, torch.Tensor], device: str, seed: int,
                   sigma_d: float) -> list[dict]:
    """SNR and logSNR (dB) on held-out skies scaled as the radio problem scales them: noisy, TV, each model.

    For each dynamic range ``R`` of :data:`RADIO_VALIDATION_RANGES` and noise factor ``f`` of
    :data:`RADIO_VALIDATION_NOISE`, a sky of peak 1 becomes ``sigma_d * R * sky + f * sigma_d * n``. TV's
    lambda is the best of ``TV_LAMBDA_FACTORS * sigma`` on these very images (by SNR), as in :func:`validate`.
    """
    from deepinv.models import TVDenoiser

    from distinv.radio.metrics import log_snr, snr

    tv = TVDenoiser(tau=0.05, n_it_max=TV_ITERATIONS, crit=1e-6)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for dynamic_range in RADIO_VALIDATION_RANGES:
        for factor in RADIO_VALIDATION_NOISE:
            sigma = factor * sigma_d
            scores = {"noisy": [], **{column: [] for column in models}}
            tv_scores = {f: [] for f in TV_LAMBDA_FACTORS}
            for sky in images.values():
                x = (sigma_d * dynamic_range * sky)[None].to(device)
                y = x + sigma * torch.randn(x.shape, generator=generator).to(device)
                scores["noisy"].append(y)
                for column, model in models.items():
                    scores[column].append(model(y, sigma))
                for f in TV_LAMBDA_FACTORS:
                    tv.restart = True
                    tv_scores[f].append(tv(y, ths=f * sigma))
            truths = [(sigma_d * dynamic_range * sky)[None] for sky in images.values()]

            def mean(metric, estimates):
                return round(float(np.mean([metric(t, e.cpu()) for t, e in zip(truths, estimates)])), 2)

            best = max(TV_LAMBDA_FACTORS, key=lambda f: mean(snr, tv_scores[f]))
            row = {"dynamic_range": dynamic_range, "sigma": round(sigma, 6), "tv_lambda": round(best * sigma, 6)}
            for column, estimates in (("noisy", scores["noisy"]), ("tv", tv_scores[best]),
                                      *((c, scores[c]) for c in models)):
                row[f"snr_{column}"] = mean(snr, estimates)
                row[f"logsnr_{column}"] = mean(lambda t, e: log_snr(t, e, RADIO_LOG_RANGE), estimates)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------

def git_commit() -> str | None:
    """Short commit of the checkout, else ``$DISTINV_COMMIT`` (a copy without ``.git``)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        commit = out.stdout.strip()
    except OSError:
        commit = ""
    return commit or os.environ.get("DISTINV_COMMIT")


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def write_model_card(out_dir: Path) -> None:
    """Rewrite ``MODEL_CARD.md`` from every ``*.json`` record in ``out_dir``."""
    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    data = ("the natural images that scikit-image ships (no download), for Gaussian noise",)
    if any(r["data"].get("dataset") == "ct-phantoms" for r in records):
        data = ("the natural images that scikit-image ships (`drunet-small-ct`: on slices of distinv's",
                "analytic CT phantoms; no download either), for Gaussian noise")
    if any(r["data"].get("dataset") == "radio-skies" for r in records):
        data = (*data[:-1], data[-1].replace(", for Gaussian noise", ""),
                "(`drunet-small-radio`: on distinv's procedural radio skies, scaled as the radio problem scales",
                "its image), for Gaussian noise")
    lines = [
        "# distinv shipped denoisers",
        "",
        "Small DRUNet denoisers (deepinv `DRUNet`) trained by `data_scripts/train_denoiser.py` on",
        *data,
        "σ ∈ [0, σ_max] on images in [0, 1]. Weights are fp16 state dicts; load them with",
        "`distinv.models.load_denoiser(name)`, which checks the sha256 below and uses",
        "`torch.load(weights_only=True)`. These are small, quickly trained priors for tutorials",
        "and benchmarks, not state-of-the-art denoisers: for quality use the official DRUNet",
        "(`load_denoiser('drunet-color', source='download')`).",
        "",
    ]
    for r in records:
        t, a, d = r["training"], r["architecture"], r["data"]
        lines += [
            f"## {r['name']}",
            "",
            f"- file: `{r['file']}` ({r['size_bytes'] / 1e6:.2f} MB, fp16), "
            f"sha256 `{r['sha256']}`",
            f"- architecture: DRUNet in/out channels {a['in_channels']}, nc {a['nc']}, "
            f"nb {a['nb']}, {a['parameters']:,} parameters",
            (f"- noise: σ log-uniform in [{d['radio_sigma'] / 2:g}, {t['sigma_max']}], loss {t['loss']} "
             "in units of σ, " if d.get("dataset") == "radio-skies" else
             f"- noise: σ ~ U[0, {t['sigma_max']}], loss {t['loss']}, ")
            + f"init {t.get('init', 'random')}",
            (f"- training data: {'; '.join(d['train'])}" if d.get("dataset") in ("ct-phantoms", "radio-skies")
             else
             f"- training images: {', '.join(d['train'])} "
             f"({'converted to gray' if a['in_channels'] == 1 else 'color ones only'})"),
            f"- validation images (held out): {', '.join(d['validation'])}, "
            f"center {d['validation_crop']}² crops",
            f"- training: {t['steps']} steps in {t['minutes']:.1f} min on {t['device']} "
            f"({t['device_name']}), patch {t['patch']}, batch {t['batch']}, Adam lr {t['lr']} "
            f"cosine, seed {t['seed']}, bf16 autocast {t['bf16_autocast']}",
            f"- software: torch {t['torch']}, deepinv {t['deepinv']}, commit {t['commit']}, "
            f"{t['date']}",
            *_init_lines(t),
            "",
        ]
        if d.get("dataset") == "radio-skies":
            lines += _radio_validation_table(r["validation"])
            continue
        lines += [
            "| σ | noisy PSNR | TV PSNR (λ) | model PSNR (shipped fp16) | model PSNR (fp32) |",
            "|---|---|---|---|---|",
        ]
        for v in r["validation"]:
            lines.append(
                f"| {v['sigma']} | {v['psnr_noisy']:.2f} | {v['psnr_tv']:.2f} ({v['tv_lambda']}) "
                f"| {v['psnr_model']:.2f} | {v.get('psnr_model_fp32', float('nan')):.2f} |"
            )
        lines += [
            "",
            f"TV: deepinv `TVDenoiser`, {TV_ITERATIONS} iterations, λ = best of "
            f"{list(TV_LAMBDA_FACTORS)} × σ on the validation images themselves (oracle, in "
            "TV's favour). Same noise draws for every column.",
            "",
        ]
    write_atomically(out_dir / "MODEL_CARD.md", lambda p: p.write_text("\n".join(lines)))


def _radio_validation_table(rows: list[dict]) -> list[str]:
    """The radio prior's validation table (SNR / logSNR in dB) and its note."""
    lines = ["| dynamic range | σ | noisy SNR / logSNR | TV SNR / logSNR (λ) | model SNR / logSNR (shipped fp16) "
             "| model SNR / logSNR (fp32) |", "|---|---|---|---|---|---|"]
    for v in rows:
        lines.append(
            f"| {v['dynamic_range']:g} | {v['sigma']} | {v['snr_noisy']:.2f} / {v['logsnr_noisy']:.2f} "
            f"| {v['snr_tv']:.2f} / {v['logsnr_tv']:.2f} ({v['tv_lambda']}) "
            f"| {v['snr_model']:.2f} / {v['logsnr_model']:.2f} "
            f"| {v['snr_model_fp32']:.2f} / {v['logsnr_model_fp32']:.2f} |")
    return lines + [
        "",
        f"Held-out skies (SKY_PRIOR_VALIDATION_SEEDS) of peak σ_d × dynamic range plus noise σ; logSNR with "
        f"a = {RADIO_LOG_RANGE:g} (distinv.radio.metrics). TV: deepinv `TVDenoiser`, {TV_ITERATIONS} iterations, "
        f"λ = best of {list(TV_LAMBDA_FACTORS)} × σ by SNR on these images (oracle). Same noise draws for every "
        "column.",
        "",
    ]


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def train(config: TrainingConfig, images, out_dir: Path, force: bool,
          validation_crop: int = VALIDATION_CROP) -> dict:
    from deepinv.models import DRUNet
    from tqdm import tqdm

    weights_path = out_dir / f"{config.name}.pt"
    if weights_path.exists() and not force:
        raise FileExistsError(f"{weights_path} exists; pass --force to overwrite it")
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    device = config.device
    generator = torch.Generator().manual_seed(config.seed)  # patch positions (CPU)
    noise_generator = torch.Generator(device).manual_seed(config.seed)  # sigma and noise
    if config.dataset == "ct-phantoms":
        sampler = PhantomSliceSampler(config.patch, generator, config.seed, config.ct_sizes,
                                      config.ct_pool, config.ct_refresh, config.ct_shepp_logan, device)
        val_images = ct_validation_images(validation_crop)
    elif config.dataset == "radio-skies":
        sampler = RadioSkySampler(config.patch, generator, config.seed, config.radio_sigma, config.radio_range,
                                  config.radio_pool, device=device)
        val_images = radio_validation_images()
    else:
        train_images = [to_tensor(im, config.channels) for im in images["train"].values()]
        train_names = [n for n, t in zip(images["train"], train_images) if t is not None]
        sampler = PatchSampler([t.to(device) for t in train_images if t is not None], config.patch,
                               generator)
        val_images = {
            n: center_crop(t, validation_crop)
            for n, im in images["val"].items()
            if (t := to_tensor(im, config.channels)) is not None
        }

    model = DRUNet(config.channels, config.channels, nc=config.nc, nb=config.nb,
                   pretrained=None, device=device)
    parent = None  # the record of the shipped denoiser this run fine-tunes, if any
    if config.init == "identity":
        initialise_as_identity(model)
    elif config.init != "random":  # fine-tune a shipped denoiser (sha256-checked, weights_only)
        from distinv.models import load_denoiser

        shipped = load_denoiser(config.init, device=device)
        model.load_state_dict(shipped.state_dict(), strict=True)
        parent = _parent_record(config.init)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    use_bf16 = device.startswith("cuda")
    torch.backends.cudnn.benchmark = use_bf16  # fixed shapes: let cuDNN pick its kernels
    loss_fn = torch.nn.functional.l1_loss if config.loss == "l1" else torch.nn.functional.mse_loss

    budget_s = None if config.minutes is None else 60.0 * config.minutes
    interval = 5 if sys.stderr.isatty() else 30
    progress = tqdm(total=config.steps, desc=config.name, mininterval=interval, file=sys.stderr)
    model.train()
    step, start, running = 0, time.perf_counter(), None
    while True:
        elapsed = time.perf_counter() - start
        fraction = max(step / config.steps if config.steps else 0.0,
                       elapsed / budget_s if budget_s else 0.0)
        if fraction >= 1.0:
            break
        lr = config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * fraction)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = sampler.sample(config.batch)
        radio = isinstance(sampler, RadioSkySampler)
        if radio:
            sigma = sampler.noise_levels(config.batch, noise_generator, config.sigma_max)
        else:
            sigma = config.sigma_max * torch.rand(config.batch, generator=noise_generator,
                                                  device=device)
        noise = torch.randn(x.shape, generator=noise_generator, device=device)
        y = x + sigma.view(-1, 1, 1, 1) * noise
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            # radio: the error in units of each patch's noise (peaks span 1e5), so every patch weighs alike
            unit = sigma.view(-1, 1, 1, 1) if radio else 1.0
            loss = loss_fn(model(y, sigma).float() / unit, x / unit)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}", refresh=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    minutes = (time.perf_counter() - start) / 60
    progress.close()
    if isinstance(sampler, PhantomSliceSampler):
        sampler.close()

    # What ships is fp16: validate the fp16-rounded weights, computed in fp32.
    model.eval()
    model_fp32 = copy.deepcopy(model)
    state_fp16 = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state_fp16.items()})
    if config.dataset == "radio-skies":
        validation = validate_radio({"model": model, "model_fp32": model_fp32}, val_images, device,
                                    seed=config.seed + 1, sigma_d=config.radio_sigma)
    else:
        validation = validate({"model": model, "model_fp32": model_fp32}, val_images, device,
                              seed=config.seed + 1)

    write_atomically(weights_path, lambda p: torch.save(state_fp16, p))
    import deepinv

    record = {
        "name": config.name,
        "file": weights_path.name,
        "sha256": sha256_of(weights_path),
        "size_bytes": weights_path.stat().st_size,
        "dtype": "float16",
        "architecture": {
            "class": "deepinv.models.DRUNet",
            "in_channels": config.channels,
            "out_channels": config.channels,
            "nc": list(config.nc),
            "nb": config.nb,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "data": (_ct_data_record(config, sampler) if config.dataset == "ct-phantoms" else
                 _radio_data_record(config, sampler) if config.dataset == "radio-skies" else {
            "source": "skimage.data (images in the wheel)",
            "train": train_names,
        }) | {"validation": list(val_images), "validation_crop": validation_crop},
        "training": {
            **{k: v for k, v in asdict(config).items()
               if k not in ("nc", "nb", "name", "dataset") and not k.startswith(("ct_", "radio_"))},
            "minutes_budget": config.minutes,
            "steps_budget": config.steps,
            "steps": step,
            "minutes": round(minutes, 2),
            "device_name": device_name(device),
            "bf16_autocast": use_bf16,
            "final_loss": round(running, 5),
            "torch": torch.__version__,
            "deepinv": deepinv.__version__,
            "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        } | ({"init_sha256": parent["sha256"], "init_training": parent["training"]} if parent else {}),
        "validation": validation,
    }
    write_atomically(out_dir / f"{config.name}.json",
                     lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))
    write_model_card(out_dir)
    return record


def _init_lines(training: dict) -> list[str]:
    """Card lines for the runs a fine-tuned model started from, newest first."""
    lines, sha = [], training.get("init_sha256")
    parent = training.get("init_training")
    while parent is not None:
        lines.append(f"- started from `{training['init']}` sha256 `{sha}`: {parent['steps']} steps in "
                     f"{parent['minutes']:.1f} min, σ ~ U[0, {parent['sigma_max']}], Adam lr {parent['lr']}, "
                     f"init {parent.get('init', 'random')}, commit {parent['commit']}")
        training, sha, parent = parent, parent.get("init_sha256"), parent.get("init_training")
    return lines


def _parent_record(name: str) -> dict:
    """The shipped record (sha256, training) of the denoiser ``name`` that a run fine-tunes: a fine-tuned
    model's card then says what it started from, run after run."""
    from distinv.models import shipped_record

    return shipped_record(name)


def _radio_data_record(config: TrainingConfig, sampler: RadioSkySampler) -> dict:
    from distinv.radio.sky import SKY_PRIOR_TRAIN_SEEDS, SKY_PRIOR_VALIDATION_SEEDS

    return {
        "source": "distinv.radio.sky.training_sky (procedural radio skies; no download)",
        "dataset": "radio-skies",
        "train": [
            f"{RADIO_NPIX}² skies with seeds from SKY_PRIOR_TRAIN_SEEDS = {SKY_PRIOR_TRAIN_SEEDS}",
            "points, radio galaxies and diffuse blobs, flux ranges 10^2.5 to 10^5",
            f"scaled as the radio problem scales its image: peak sigma_d * R, sigma_d = {config.radio_sigma}, "
            f"R log-uniform in {list(config.radio_range)}",
            f"noise sigma log-uniform in [{config.radio_sigma / 2}, {config.sigma_max}], loss in units of sigma",
            f"{len(sampler.used)} skies used, pool {config.radio_pool}, one replaced per step",
        ],
        "train_seeds": [SKY_PRIOR_TRAIN_SEEDS.start, SKY_PRIOR_TRAIN_SEEDS.stop],
        "validation_seeds": [SKY_PRIOR_VALIDATION_SEEDS.start, SKY_PRIOR_VALIDATION_SEEDS.stop],
        "radio_sigma": config.radio_sigma,
        "skies_used": len(sampler.used),
    }


def _ct_data_record(config: TrainingConfig, sampler: PhantomSliceSampler) -> dict:
    from distinv.tomography.phantoms import PRIOR_TRAINING_SEEDS, PRIOR_VALIDATION_SEEDS

    kinds = [d["kind"] for d in sampler.used]
    return {
        "source": "distinv.tomography.phantoms (analytic textured phantoms, Shepp-Logan; no download)",
        "dataset": "ct-phantoms",
        "train": [
            f"slices of textured phantoms with seeds from PRIOR_TRAINING_SEEDS = {PRIOR_TRAINING_SEEDS}",
            f"cube sides {', '.join(map(str, config.ct_sizes))}",
            "axial, coronal and sagittal slices in the middle 70 % of the cube",
            f"Shepp-Logan slices with probability {config.ct_shepp_logan} (sides <= {CT_SHEPP_LOGAN_MAX_SIZE})",
            f"{len(kinds)} slices used ({kinds.count('shepp-logan')} Shepp-Logan), pool {config.ct_pool}, "
            f"{config.ct_refresh} replaced per step",
        ],
        "train_seeds": [PRIOR_TRAINING_SEEDS.start, PRIOR_TRAINING_SEEDS.stop],
        "validation_seeds": [PRIOR_VALIDATION_SEEDS.start, PRIOR_VALIDATION_SEEDS.stop],
        "slices_used": len(kinds),
    }


def export_data(path: Path) -> None:
    """Write the training and validation images to an ``.npz`` (keys ``train__name``)."""
    images = collect_images(None)
    arrays = {
        f"{split}__{name}": im for split, group in images.items() for name, im in group.items()
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    write_atomically(path, write)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="skimage",
                        help="skimage: natural images (drunet-small-gray / -color); ct-phantoms: "
                             "slices of distinv's CT phantoms (drunet-small-ct, 1 channel); radio-skies: "
                             "generated radio skies (drunet-small-radio, 1 channel)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the loop")
    parser.add_argument("--steps", type=int, default=None, help="number of steps")
    parser.add_argument("--patch", type=int, default=None, help="default 64 on CPU, 128 on CUDA")
    parser.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 32 on CUDA")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1")
    parser.add_argument("--init", choices=INITS, default="identity",
                        help="identity, random, or a shipped denoiser to fine-tune")
    parser.add_argument("--sigma-max", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--data-npz", type=Path, default=None,
                        help="read images from this archive instead of skimage.data")
    parser.add_argument("--export-data", type=Path, default=None,
                        help="write the images to this .npz and exit")
    parser.add_argument("--validation-crop", type=int, default=VALIDATION_CROP,
                        help="side of the center crops of the validation images")
    parser.add_argument("--ct-sizes", type=int, nargs="+", default=list(CT_SIZES),
                        help="ct-phantoms: cube sides of the slices")
    parser.add_argument("--ct-pool", type=int, default=256, help="ct-phantoms: slices held at once")
    parser.add_argument("--ct-refresh", type=float, default=1.0,
                        help="ct-phantoms: slices of the pool replaced per step (0.25: one every 4)")
    parser.add_argument("--ct-shepp-logan", type=float, default=0.1,
                        help="ct-phantoms: fraction of Shepp-Logan slices")
    parser.add_argument("--radio-sigma", type=float, default=0.01,
                        help="radio-skies: the noise level of the radio problem's scaled image (denoiser_sigma)")
    parser.add_argument("--radio-range", type=float, nargs=2, default=[1e2, 1e5],
                        help="radio-skies: dynamic ranges drawn log-uniformly (scaled peak = radio_sigma * R)")
    parser.add_argument("--radio-pool", type=int, default=64, help="radio-skies: skies held at once")
    parser.add_argument("--force", action="store_true", help="overwrite existing weights")
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite MODEL_CARD.md from the json records")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ct = args.dataset in ("ct-phantoms", "radio-skies")  # generated data
    if ct and (args.export_data is not None or args.data_npz is not None):
        raise SystemExit(f"--dataset {args.dataset} generates its data: --export-data and --data-npz "
                         "apply to the skimage images only")
    if args.export_data is not None:
        export_data(args.export_data)
        print(f"wrote {args.export_data}")
        return 0
    if args.card_only:
        write_model_card(args.out_dir)
        return 0
    if args.minutes is None and args.steps is None:
        args.minutes = 15.0
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    config = TrainingConfig(
        channels=args.channels, device=args.device, minutes=args.minutes, steps=args.steps,
        patch=args.patch or (128 if on_cuda else 64), batch=args.batch or (32 if on_cuda else 8),
        lr=args.lr, loss=args.loss, init=args.init, sigma_max=args.sigma_max, seed=args.seed,
        dataset=args.dataset, ct_sizes=tuple(args.ct_sizes), ct_pool=args.ct_pool,
        ct_refresh=args.ct_refresh, ct_shepp_logan=args.ct_shepp_logan, radio_sigma=args.radio_sigma,
        radio_range=tuple(args.radio_range), radio_pool=args.radio_pool,
    )
    images = None if ct else collect_images(args.data_npz)
    record = train(config, images, args.out_dir, args.force, args.validation_crop)
    print(json.dumps({"name": record["name"], "steps": record["training"]["steps"],
                      "minutes": record["training"]["minutes"],
                      "validation": record["validation"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
