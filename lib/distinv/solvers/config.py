"""Option bundles of the solvers and of the prior, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from distinv.tiling.config import SCHEDULES

__all__ = ["SOLVERS", "DIRECT_SOLVERS", "IMPLEMENTATIONS", "SolverConfig", "PriorConfig"]

#: Solver names: plug-and-play proximal gradient, plug-and-play half-quadratic splitting, TV (ADMM), the
#: unrolled (trained) PnP-HQS network of :mod:`distinv.solvers.unrolled`, ``"fbp"``: the direct
#: reconstruction of problems that have one (the CT problem's start point, no iterations), and
#: ``"wavelet"``: wavelet-l1 sparsity (ADMM, the same iterations as TV with the problem's wavelet prox).
SOLVERS = ("pnp-pgd", "pnp-hqs", "tv", "unrolled", "fbp", "wavelet")
#: Solvers that do not iterate: the problem's own direct reconstruction.
DIRECT_SOLVERS = ("fbp",)
#: Tiled-prior implementations: distinv's ``TiledDenoiser``, deepinv's ``DistributedProcessing``, or the
#: denoiser applied to the whole image on every rank (``"none"``, a reference).
IMPLEMENTATIONS = ("distinv", "deepinv", "none")


def _positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class SolverConfig:
    r"""What the solver does each iteration.

    :param str solver: one of :data:`SOLVERS`.
    :param int iterations: outer iterations, ``>= 1``.
    :param float sigma_start: denoiser strength at the first iteration (images in ``[0, 1]``); the
        strength decreases geometrically to ``sigma_end``. ``None``: the solver's default.
    :param float sigma_end: denoiser strength at the last iteration; ``None``: the solver's default.
    :param float step_scale: PGD step :math:`\gamma = \text{step\_scale} / \|A\|^2`, in ``(0, 2)``.
    :param float hqs_weight: HQS coupling :math:`\mu_t = \text{hqs\_weight}\cdot\sigma_n^2 / \sigma_t^2`.
    :param int cg_iterations: conjugate-gradient iterations of the HQS data step.
    :param float tv_weight: TV weight relative to the noise: the objective is
        :math:`\tfrac12\sum_k\|A_kx-y_k\|^2 + \lambda\,\mathrm{TV}(x)`, :math:`\lambda = \text{tv\_weight}\cdot\sigma_n\sqrt K`.
    :param float tv_rho: ADMM penalty :math:`\rho` of the TV baseline (and of the wavelet one).
    :param int tv_inner_iterations: iterations of deepinv's TV proximal solver per outer iteration (and of
        the wavelet prox when it is iterative: a dictionary of several wavelets).
    :param float wavelet_weight: ``solver="wavelet"``: the weight of :math:`\|\Psi x\|_1` relative to the
        noise, :math:`\lambda = \text{wavelet\_weight}\cdot s_{TV}` (the TV weight's scale).
    :param int pinv_iterations: CG iterations of the pseudo-inverse reported as a baseline (``0``: skip).
    :param str unrolled_weights: ``solver="unrolled"``: a shipped unrolled network's name, ``"auto"`` (the one
        for the problem's channels) or the path of a ``.pt`` with its ``.json`` record. Its layer count
        replaces ``iterations``, its learned :math:`\sigma_t` the schedule, its own denoiser the prior's
        network (tiled as the prior options say).

    >>> [round(s, 4) for s in SolverConfig(solver="pnp-hqs").sigmas(3)]
    [0.1, 0.0447, 0.02]
    """

    solver: str = "pnp-hqs"
    iterations: int = 12
    sigma_start: float | None = None
    sigma_end: float | None = None
    step_scale: float = 1.0
    hqs_weight: float = 0.25
    cg_iterations: int = 5
    tv_weight: float = 1.0
    tv_rho: float = 0.05
    tv_inner_iterations: int = 30
    pinv_iterations: int = 20
    unrolled_weights: str = "auto"
    wavelet_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        _positive("iterations", self.iterations, integer=True)
        for name in ("sigma_start", "sigma_end"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if not (isinstance(self.step_scale, (int, float)) and 0 < self.step_scale < 2):
            raise ValueError(f"step_scale must be in (0, 2), got {self.step_scale!r}")
        _positive("hqs_weight", self.hqs_weight)
        _positive("cg_iterations", self.cg_iterations, integer=True)
        _positive("tv_weight", self.tv_weight)
        _positive("tv_rho", self.tv_rho)
        _positive("tv_inner_iterations", self.tv_inner_iterations, integer=True)
        _positive("wavelet_weight", self.wavelet_weight)
        _positive("pinv_iterations", self.pinv_iterations, integer=True, allow_zero=True)
        if not isinstance(self.unrolled_weights, str) or not self.unrolled_weights:
            raise ValueError(f"unrolled_weights must be a name, 'auto' or a path, got {self.unrolled_weights!r}")

    def sigmas(self, iterations: int | None = None) -> list[float]:
        r"""Denoiser strengths :math:`\sigma_t`, geometric from ``sigma_start`` to ``sigma_end``."""
        n = self.iterations if iterations is None else iterations
        if self.solver in ("tv", "fbp", "wavelet"):  # no denoiser: no strengths (whatever sigma_* say)
            return [0.0] * n
        defaults = {"pnp-hqs": (0.1, 0.02), "pnp-pgd": (0.03, 0.03),
                    "unrolled": (0.1, 0.02)}[self.solver]  # unrolled: the network's learned ones replace these
        start = defaults[0] if self.sigma_start is None else self.sigma_start
        end = defaults[1] if self.sigma_end is None else self.sigma_end
        if n == 1 or start == end:
            return [float(start)] * n
        ratio = (end / start) ** (1.0 / (n - 1))
        return [float(start * ratio ** t) for t in range(n)]


@dataclass(frozen=True)
class PriorConfig:
    """The learned prior and how it is tiled across ranks.

    :param str implementation: one of :data:`IMPLEMENTATIONS`.
    :param int patch: tile side in pixels (a multiple of 8 for DRUNet).
    :param int overlap: pixels of context added on each side of a tile.
    :param int max_batch_size: tiles per denoiser call (``None``: all of this rank's tiles at once).
    :param str blend: how overlapping outputs are combined: ``"smooth"`` (distinv's partition of unity)
        or ``"crop"`` (each pixel from the tile whose core holds it; what deepinv does).
    :param str layout: ``"replicated"``: the solver keeps the whole image on every rank (the sharded
        layout of :class:`distinv.tiling.TiledDenoiser` needs a sharded solver, not this one).
    :param str weights: denoiser name for :func:`distinv.models.load_denoiser`, or ``"random"`` (an
        untrained small DRUNet: wiring checks only).
    :param str weights_source: ``"shipped"``, ``"download"`` or a path.
    :param bool channels_last: run the denoiser channels-last (its weights and windows), whatever the
        implementation. On the 2-core CPU, PnP-HQS at 512² on 2 ranks: 0.59 s per iteration instead of
        0.81, the same PSNR to 1e-5 dB. The solver converts the network it loads itself.
    :param str schedule: ``"static"`` or ``"dynamic"``: which rank runs which tile (see
        :class:`distinv.tiling.TilingConfig`); ``"dynamic"`` is distinv's only.

    >>> PriorConfig(implementation="deepinv", patch=64, overlap=8, blend="crop").window
    80
    """

    implementation: str = "distinv"
    patch: int = 256
    overlap: int = 32
    max_batch_size: int | None = None
    blend: str = "smooth"
    layout: str = "replicated"
    weights: str = "auto"
    weights_source: str = "shipped"
    channels_last: bool = True
    schedule: str = "static"

    def __post_init__(self) -> None:
        if not isinstance(self.channels_last, bool):
            raise TypeError(f"channels_last must be a bool, got {self.channels_last!r}")
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {self.implementation!r}")
        _positive("patch", self.patch, integer=True)
        _positive("overlap", self.overlap, integer=True, allow_zero=True)
        if self.implementation == "distinv" and self.overlap >= self.patch:  # else TilingConfig refuses it on the ranks
            raise ValueError(f"overlap must be smaller than patch (0 <= overlap < patch), got overlap={self.overlap} "
                             f">= patch={self.patch}")
        if self.max_batch_size is not None:
            _positive("max_batch_size", self.max_batch_size, integer=True)
        if self.layout != "replicated":
            raise ValueError(f"layout must be 'replicated' (the solver keeps x on every rank), got {self.layout!r}")
        if self.blend not in ("smooth", "crop"):
            raise ValueError(f"blend must be 'smooth' or 'crop', got {self.blend!r}")
        if self.implementation == "deepinv" and self.blend != "crop":
            raise ValueError(f"implementation='deepinv' crops and assigns overlaps: blend must be 'crop', got {self.blend!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "dynamic" and self.implementation != "distinv":
            raise ValueError(f"schedule='dynamic' needs implementation='distinv' (deepinv deals its tiles "
                             f"round-robin, 'none' has no tiles), got {self.implementation!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(f"weights must be a denoiser name, 'auto' or 'random', got {self.weights!r}")

    @property
    def window(self) -> int:
        """Side of the window a tile's denoiser sees: ``patch + 2 * overlap``."""
        return self.patch + 2 * self.overlap

    def weights_name(self, channels: int) -> str:
        """The denoiser name; ``"auto"`` picks the shipped small DRUNet for ``channels``."""
        if self.weights != "auto":
            return self.weights
        return "drunet-small-gray" if channels == 1 else "drunet-small-color"
