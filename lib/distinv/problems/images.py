r"""Multi-frame deblurring / super-resolution of a natural image: the first use case of the book.

We observe one image :math:`x \in \mathbb{R}^{C \times N \times N}` through :math:`K` cameras, each
with its own anisotropic Gaussian blur :math:`h_k` (same widths, angle :math:`\theta_k = k\pi/K`),
an optional subsampling :math:`S` by a factor :math:`s`, and white Gaussian noise:

.. math::

    y_k = A_k x + \sigma_n \varepsilon_k, \qquad A_k = S\,(h_k \ast \cdot), \qquad
    \varepsilon_k \sim \mathcal{N}(0, I), \quad k = 0, \dots, K-1.

The blur uses ``"circular"`` padding by default (the usual model of plug-and-play deblurring
benchmarks). ``"valid"`` padding (each :math:`y_k` smaller than :math:`x` by the kernel width minus
one, what a real sensor sees) is available; with it a band of about the kernel radius along the
border is barely observed (only by the kernel's tails), every solver must extrapolate it, and that
band dominates a whole-image PSNR (measured at 256²: PnP-HQS 20.1 dB whole image but 32.9 dB
16 pixels in, TV 25.0 / 27.7 dB).

Operators are built by a *factory* ``(index, device, factory_kwargs) -> LinearPhysics`` so that
deepinv's :class:`~deepinv.distributed.DistributedStackedLinearPhysics` builds, on each rank,
only the operators that rank owns; the noise of :math:`y_k` is drawn from a generator seeded by
``(seed, k)``, so a measurement does not depend on which rank computed it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from deepinv.physics import Blur, BlurFFT, Downsampling, LinearPhysics
from deepinv.physics.functional import gaussian_blur

from distinv.problems.base import RankProblem
from distinv.validation import check_finite

__all__ = [
    "DeblurringConfig", "SKIMAGE_IMAGES", "PADDINGS", "ground_truth", "make_physics", "physics_factory",
    "measure", "distributed_problem", "native_side", "DeblurringRankProblem", "setup_rank", "crop_box",
]

#: Natural images shipped by scikit-image (no download).
SKIMAGE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "retina", "cat", "immunohistochemistry")
#: Blur boundary models (deepinv's ``Blur`` paddings).
PADDINGS = ("valid", "circular", "reflect", "replicate")
#: Largest image side the problem accepts.
MAX_SIZE = 8192


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")


@dataclass(frozen=True)
class DeblurringConfig:
    r"""The multi-frame deblurring problem: image, operators and noise.

    :param int size: side :math:`N` of the square ground truth, ``8 <= size <= 8192``; it must exceed
        the blur kernel (``kernel_size``).
    :param int K: number of frames / operators, ``>= 1``.
    :param float sigma_n: noise standard deviation on images in ``[0, 1]``, ``>= 0``.
    :param tuple blur_sigma: Gaussian widths ``(major, minor)`` in pixels, both ``> 0``.
    :param int downsample: subsampling factor :math:`s` after the blur, ``1`` (deblurring) or ``2``
        (super-resolution).
    :param str image: a scikit-image image name (see :data:`SKIMAGE_IMAGES`) or the path of an image
        file (e.g. fetched by ``data_scripts/fetch_images.py``).
    :param int channels: ``1`` (gray) or ``3`` (color).
    :param str padding: blur boundary model, one of :data:`PADDINGS`.
    :param bool use_fft: FFT convolutions (faster for kernels wider than ~9 pixels). With ``"circular"``
        padding the operator is deepinv's ``BlurFFT``, which keeps the kernel's transform (one FFT pair per
        application instead of three transforms; it holds ``channels × N × (N/2 + 1)`` complex values per
        operator, 200 MB at 4096² colour).
    :param int seed: seed of the noise; frame ``k`` uses ``seed * 1_000_003 + k``.

    >>> cfg = DeblurringConfig(size=64, K=3, sigma_n=0.01)
    >>> cfg.kernel_size, [round(cfg.angle(k)) for k in range(cfg.K)]
    (23, [0, 60, 120])
    """

    size: int = 512
    K: int = 4
    sigma_n: float = 0.01
    blur_sigma: tuple[float, float] = (3.0, 0.7)
    downsample: int = 1
    image: str = "camera"
    channels: int = 1
    padding: str = "circular"
    use_fft: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("K", self.K, 1)
        if not isinstance(self.sigma_n, (int, float)) or isinstance(self.sigma_n, bool) or not self.sigma_n >= 0:
            raise ValueError(f"sigma_n must be a number >= 0, got {self.sigma_n!r}")
        sigmas = tuple(self.blur_sigma) if isinstance(self.blur_sigma, (tuple, list)) else ()
        if len(sigmas) != 2 or not all(isinstance(s, (int, float)) and s > 0 for s in sigmas):
            raise ValueError(f"blur_sigma must be two numbers > 0 (major, minor), got {self.blur_sigma!r}")
        object.__setattr__(self, "blur_sigma", (float(sigmas[0]), float(sigmas[1])))
        if self.downsample not in (1, 2):
            raise ValueError(f"downsample must be 1 or 2, got {self.downsample!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (color), got {self.channels!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if not isinstance(self.image, str) or not (self.image in SKIMAGE_IMAGES or Path(self.image).is_file()):
            raise ValueError(f"image must be one of {SKIMAGE_IMAGES} or an existing image file, got {self.image!r}")
        _check_int("seed", self.seed, 0)
        _check_int("size", self.size, 8, MAX_SIZE)
        if self.size <= self.kernel_size:
            raise ValueError(
                f"size must be larger than the blur kernel ({self.kernel_size} pixels for blur_sigma="
                f"{self.blur_sigma}), got size={self.size}"
            )

    @property
    def kernel_size(self) -> int:
        """Side of the blur kernels (deepinv's rule: ``2 * int(max_sigma / 0.3 + 1) + 1``)."""
        return 2 * int(max(self.blur_sigma) / 0.3 + 1) + 1

    @property
    def blurred_size(self) -> int:
        """Side of :math:`h_k \\ast x` (smaller than ``size`` with ``"valid"`` padding)."""
        return self.size - self.kernel_size + 1 if self.padding == "valid" else self.size

    @property
    def measurement_size(self) -> int:
        """Side of each :math:`y_k`."""
        return math.ceil(self.blurred_size / self.downsample)

    def angle(self, index: int) -> float:
        """Blur angle :math:`\\theta_k` of frame ``index``, in degrees."""
        return 180.0 * index / self.K

    def kernel(self, index: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Blur kernel :math:`h_k` of frame ``index``, shape ``(1, 1, k, k)``, summing to one."""
        _check_int("index", index, 0, self.K - 1)
        return gaussian_blur(sigma=self.blur_sigma, angle=self.angle(index), device=device)

    def to_dict(self) -> dict:
        """Plain dict (picklable, JSON-able) of the fields."""
        out = asdict(self)
        out["blur_sigma"] = list(self.blur_sigma)
        return out


# --------------------------------------------------------------------------- ground truth


def _load_image(image: str) -> np.ndarray:
    """An ``(H, W, C)`` or ``(H, W)`` float array in ``[0, 1]``."""
    import skimage.data
    import skimage.io
    import skimage.util

    array = getattr(skimage.data, image)() if image in SKIMAGE_IMAGES else skimage.io.imread(image)
    array = skimage.util.img_as_float32(array)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return array


def native_side(image: str) -> int:
    """Side of the central square that :func:`ground_truth` takes from ``image`` before resizing.

    :param str image: a scikit-image name or an image file.

    >>> native_side("chelsea")
    300
    """
    return int(min(_load_image(image).shape[:2]))


def ground_truth(config: DeblurringConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    r"""The ground truth :math:`x`: the image's central square resized to ``size`` (bicubic), in ``[0, 1]``.

    Sizes above the image's own are upsampled (smooth at large sizes; fetch a real high-resolution
    image with ``data_scripts/fetch_images.py`` for those).

    :param DeblurringConfig config: the problem.
    :param torch.device device: where the tensor lives.
    :return: tensor of shape ``(1, channels, size, size)``.
    :raises ValueError: the image (a float file) holds a NaN or an infinity.

    >>> ground_truth(DeblurringConfig(size=32, channels=1, blur_sigma=(1.0, 0.5))).shape
    torch.Size([1, 1, 32, 32])
    """
    array = _load_image(config.image)
    check_finite(f"image {config.image!r}", array)  # a float file (TIFF) may hold NaN or Inf
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()
    if config.channels == 1:
        x = (0.2125 * x[:, 0:1] + 0.7154 * x[:, 1:2] + 0.0721 * x[:, 2:3])
    side = min(x.shape[-2:])
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    x = x[..., top:top + side, left:left + side]
    if side != config.size:
        x = torch.nn.functional.interpolate(x, size=(config.size, config.size), mode="bicubic",
                                            align_corners=False, antialias=config.size < side)
    return x.clamp_(0.0, 1.0).contiguous().to(device)


# --------------------------------------------------------------------------- physics


def make_physics(index: int, config: DeblurringConfig, device: torch.device | str = "cpu") -> LinearPhysics:
    r"""Operator :math:`A_k = S (h_k \ast \cdot)` of frame ``index``.

    :param int index: frame :math:`k`, ``0 <= index < K``.
    :param DeblurringConfig config: the problem.
    :param torch.device device: where the operator's buffers live.
    :return: a deepinv ``LinearPhysics``: ``BlurFFT`` (circular padding with ``use_fft``) or ``Blur``,
        composed with ``Downsampling`` when ``downsample > 1``.

    >>> cfg = DeblurringConfig(size=32, K=2, blur_sigma=(1.0, 0.5), downsample=2)
    >>> make_physics(1, cfg).A(torch.ones(1, 1, 32, 32)).shape
    torch.Size([1, 1, 16, 16])
    """
    if config.padding == "circular" and config.use_fft:
        # the same operator as Blur(padding="circular") with the kernel's transform kept (measured:
        # A^T A 2.5x faster at 1024² colour on one CPU thread)
        blur = BlurFFT(img_size=(config.channels, config.size, config.size), filter=config.kernel(index, device),
                       device=device)
    else:
        blur = Blur(filter=config.kernel(index, device), padding=config.padding, use_fft=config.use_fft,
                    device=device)
    if config.downsample == 1:
        return blur
    side = config.blurred_size
    subsample = Downsampling(img_size=(config.channels, side, side), filter=None, factor=config.downsample,
                             padding="circular", device=device)
    return subsample * blur


def physics_factory(index: int, device: torch.device, factory_kwargs: dict | None) -> LinearPhysics:
    """Factory in deepinv's ``(index, device, factory_kwargs)`` form; ``factory_kwargs["problem"]`` is
    :meth:`DeblurringConfig.to_dict`.

    >>> type(physics_factory(0, torch.device("cpu"), {"problem": {"size": 32, "blur_sigma": [1.0, 0.5]}})).__name__
    'BlurFFT'
    """
    if not factory_kwargs or "problem" not in factory_kwargs:
        raise ValueError(f"factory_kwargs must hold the key 'problem' (a DeblurringConfig dict), got {factory_kwargs!r}")
    return make_physics(index, DeblurringConfig(**factory_kwargs["problem"]), device)


def measure(index: int, x: torch.Tensor, physics: LinearPhysics, config: DeblurringConfig) -> torch.Tensor:
    r"""Noisy measurement :math:`y_k = A_k x + \sigma_n \varepsilon_k` with rank-independent noise.

    :param int index: frame :math:`k`.
    :param torch.Tensor x: ground truth.
    :param LinearPhysics physics: :math:`A_k`.
    :param DeblurringConfig config: the problem (noise level and seed).
    :return: :math:`y_k`.

    >>> cfg = DeblurringConfig(size=32, K=1, blur_sigma=(1.0, 0.5))
    >>> x = ground_truth(cfg)
    >>> bool(torch.equal(measure(0, x, make_physics(0, cfg), cfg), measure(0, x, make_physics(0, cfg), cfg)))
    True
    """
    clean = physics.A(x)
    generator = torch.Generator(device="cpu").manual_seed(config.seed * 1_000_003 + index)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    return clean + config.sigma_n * noise.to(clean.device)


def distributed_problem(config: DeblurringConfig, ctx, x: torch.Tensor):
    r"""This rank's share of the problem: the stacked operator :math:`A = [A_0; \dots; A_{K-1}]` and the
    measurements of the frames it owns (``None`` for the others).

    :param DeblurringConfig config: the problem.
    :param deepinv.distributed.DistributedContext ctx: an entered context.
    :param torch.Tensor x: ground truth, on ``ctx.device``.
    :return: ``(physics, y)``: a ``DistributedStackedLinearPhysics`` and a list of length ``K``.

    >>> from deepinv.distributed import DistributedContext
    >>> cfg = DeblurringConfig(size=32, K=2, blur_sigma=(1.0, 0.5))
    >>> with DistributedContext(device_mode="cpu") as ctx:
    ...     physics, y = distributed_problem(cfg, ctx, ground_truth(cfg))
    >>> [tuple(t.shape) for t in y]
    [(1, 1, 32, 32), (1, 1, 32, 32)]
    """
    from deepinv.distributed import distribute

    physics = distribute(physics_factory, ctx, num_operators=config.K, type_object="linear_physics",
                         factory_kwargs={"problem": config.to_dict()})
    y: list[torch.Tensor | None] = [None] * config.K
    for index, operator in zip(physics.local_indexes, physics.local_physics):
        y[index] = measure(index, x, operator, config)
    return physics, y


# --------------------------------------------------------------------------- the runner's interface


class DeblurringRankProblem(RankProblem):
    """This rank's share of the multi-frame deblurring problem (see :mod:`distinv.problems.base`).

    Replicated layout: every rank holds the whole image; the operators :math:`A_k` are dealt across
    ranks by deepinv's ``DistributedStackedLinearPhysics``.
    """

    layout = "replicated"

    def __init__(self, config: DeblurringConfig, ctx, device: torch.device):
        from distinv.solvers.data_term import StackedDataTerm

        self.config, self.device, self.rank = config, device, ctx.rank
        self.channels = config.channels
        self.x_true = ground_truth(config, device)
        self.physics, self.y = distributed_problem(config, ctx, self.x_true)
        self.data = StackedDataTerm(self.physics, self.y)
        self.sigma_n = config.sigma_n
        # the TV weight follows the noise of the K stacked frames
        self.tv_scale = max(config.sigma_n, 1e-3) * math.sqrt(config.K)

    def sqnorm(self) -> float:
        r""":math:`\|A\|^2` exactly, by a distributed power iteration."""
        from distinv.distributed.norm import PowerIteration, stacked_sqnorm

        generator = torch.Generator().manual_seed(self.config.seed)
        x0 = (1.0 + 0.1 * torch.rand(self.x_true.shape, generator=generator)).to(self.x_true.device)
        with torch.no_grad():
            return float(stacked_sqnorm(self.physics, x0, PowerIteration(max_iter=200, tol=1e-6)).value)

    def start(self, pinv_iterations: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """The normalised back-projection, the pseudo-inverse by ``pinv_iterations`` CG steps, and :math:`A^\top y`."""
        with torch.no_grad():
            aty = self.data.back_projection()
            x_init = self.data.normalized_back_projection()
            x_pinv = self.data.least_squares(x_init, pinv_iterations, aty) if pinv_iterations else None
        return x_init, {"init": x_init, "pinv": x_pinv}, aty

    def prior(self, config, prior_ctx):
        """The shipped (or random) DRUNet, tiled across the ranks of ``prior_ctx``."""
        from distinv.solvers.prior import load_prior_denoiser, tiled_prior

        return tiled_prior(load_prior_denoiser(config, self.channels, self.device), config, prior_ctx)

    def tv_prox(self, inner_iterations: int):
        """deepinv's ``TVPrior`` proximal operator on the whole image (every rank)."""
        from deepinv.optim.prior import TVPrior

        return TVPrior(n_it_max=inner_iterations).prox

    def quality(self, x: torch.Tensor) -> dict | None:
        """PSNR and SSIM against the ground truth, on rank 0 (the image is replicated)."""
        if self.rank != 0:
            return None
        from distinv.metrics import image_quality

        return image_quality(x, self.x_true)

    def rank_record(self) -> dict:
        return {"operators": list(self.physics.local_indexes)}

    def rank_previews(self, size: int) -> dict:
        from distinv.metrics import preview

        return {k: preview(self.y[k], size) for k in self.physics.local_indexes}

    def result_extras(self, x_hat, x_init, baselines, gathered, options, prior_config) -> dict:
        from distinv.metrics import preview

        if self.rank != 0:
            return {}
        top, left, side = crop_box(self.config.size, prior_config.patch, options.crop_size)
        box = (..., slice(top, top + side), slice(left, left + side))
        previews = {}
        for entry in gathered:
            previews.update(entry.pop("previews"))
        x_true = self.x_true
        return {
            "x_hat_preview": preview(x_hat, options.preview_size),
            "x_true_preview": preview(x_true, options.preview_size),
            "x_init_preview": preview(x_init, options.preview_size),
            "measurement_previews": [previews[k] for k in sorted(previews)],
            "crops": {"box": [top, left, side], "x_true": x_true[box][0].cpu(),
                      "x_hat": x_hat[box][0].clamp(0, 1).cpu(), "x_init": x_init[box][0].clamp(0, 1).cpu()},
        }


def crop_box(size: int, patch: int, crop: int) -> tuple[int, int, int]:
    """A square of side ``crop`` around the corner where four tiles meet (or the centre if one tile).

    >>> crop_box(512, 256, 96)
    (208, 208, 96)
    """
    crop = min(crop, size)
    centre = patch if patch < size else size // 2
    top = int(min(max(centre - crop // 2, 0), size - crop))
    return top, top, crop


def setup_rank(config: DeblurringConfig, ctx, device: torch.device) -> DeblurringRankProblem:
    """The runner's entry: this rank's share of the deblurring problem (a collective)."""
    return DeblurringRankProblem(config, ctx, device)
