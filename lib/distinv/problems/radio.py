r"""Radio interferometric imaging of a Measurement Set: the third use case of the book (chapter 03).

The visibilities of an MS (any tool may have written it: ``data_scripts/simulate_observation.py`` runs
pyuvsim or matvis in their own environment) are, for an image :math:`x` of the sky (Jy per pixel),

.. math::

    V_k = \sum_{i,j} x_{ij}\, e^{+2\pi i (u_k l_j + v_k m_i)} + n_k, \qquad
    y = \sqrt{w}\odot V = A x + \sqrt{w}\odot n, \qquad A = \mathrm{diag}(\sqrt w)\,F,

with natural weights :math:`w_k` (inverse variances, so the noise of :math:`y` is white and of unit
variance per real component; :mod:`distinv.radio.nufft`). The rows are cut into ``blocks`` visibility
blocks, :math:`A = \sum_k A_k` (:mod:`distinv.radio.blocks`), dealt across ranks by deepinv's
``distribute``: **each rank reads only the rows of its own blocks**, the image is replicated, and the data
term's gradient is one all-reduce of an image.

**What the solver sees.** With :math:`L = \|A\|^2` (an exact, distributed power iteration,
:func:`~distinv.distributed.norm.stacked_sqnorm`) and an image scale :math:`\alpha`, the solver iterates
on :math:`u = x / \alpha` with the normalised operator and data

.. math:: \hat A_k = A_k / \sqrt L, \qquad \hat y_k = y_k / (\alpha\sqrt L),

so :math:`\tfrac12\|\hat A u - \hat y\|^2 = \tfrac{1}{2\alpha^2 L}\|Ax - y\|^2` (the same minimisers),
:math:`\|\hat A\| = 1` and the noise of :math:`\hat y` has standard deviation
:math:`\sigma_n = 1/(\alpha\sqrt L)` (:attr:`RadioRankProblem.sigma_n`).

**The image scale (AIRI's rule, our version).** AIRI (Terris, Dabbech, Tang & Wiaux 2023, MNRAS 518, 604;
the AIRI code's ``imager.m`` / ``get_net_detail.m``) takes the *heuristic noise level* of the image domain
of naturally weighted data, :math:`\sigma_h = 1/\sqrt{2L}` (Jy per pixel), and applies a denoiser trained at
noise level :math:`\sigma_s` to :math:`x / \alpha` with :math:`\alpha = \sigma_h / \sigma_s`, so that the
noise the denoiser sees matches its training; it picks :math:`\sigma_s` from a shelf of networks so that
the scaled peak stays in the training range. Our denoiser is *noise-conditional* and bias-free (DRUNet:
:math:`D(cx, c\sigma) = cD(x, \sigma)`), so one network replaces the shelf: we fix the noise level the
prior sees, ``denoiser_sigma`` :math:`= \sigma_d`, and set

.. math:: \alpha = s\,\sigma_h / \sigma_d = \frac{s}{\sigma_d\sqrt{2L}},

(:math:`s` = ``noise_scale``, AIRI's ``heuNoiseScale``, 1 when the weights are true inverse variances).
The scaled image then holds noise :math:`\sigma_d` and a peak of :math:`\sigma_d` times the data's dynamic
range :math:`\max x / \sigma_h`: the radio prior ``drunet-small-radio`` is trained on skies scaled exactly
so (``data_scripts/train_denoiser.py --dataset radio-skies``), and the solver's last denoiser strength
should be a multiple of :math:`\sigma_d` (the problem's solver defaults end the schedule at
:math:`16\sigma_d`: measured on the benchmarks' skies, the HQS iterate is noisier than the heuristic says).

**Start point and baseline**: the dirty image :math:`\mathrm{Re}(F^H W V)/\sum_k w_k` (Jy per beam: an
unresolved source at the phase centre peaks at its flux; :mod:`distinv.radio.dirty`), from the data term's
back-projection at no extra cost. **Metrics** against the true sky (Jy per pixel, the ``.sky.npz`` the
simulator writes beside the MS, put on this grid by :func:`~distinv.radio.sky.sky_on_grid`): PSNR (peak
of the truth), SSIM, SNR and logSNR (:mod:`distinv.radio.metrics`, dynamic range ``log_dynamic_range``).

The sparsity baseline (``solver="wavelet"``, uSARA-like) thresholds the SARA-like dictionary of the eight
Daubechies wavelets db1–db8 (deepinv's ``WaveletPrior`` with a list of wavelets), then clips at zero.

Command line: ``python -m distinv.problems.radio dirty PATH.ms --npix N --cell ARCSEC ...`` is
``python -m distinv.radio.dirty`` (:mod:`distinv.radio.dirty`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from distinv.problems.base import RankProblem

__all__ = ["RadioConfig", "RadioRankProblem", "setup_rank", "heuristic_noise", "image_scale", "MAX_NPIX",
           "SARA_WAVELETS"]

#: Largest image side the problem accepts.
MAX_NPIX = 8192
#: The wavelet baseline's dictionary (SARA's Daubechies part).
SARA_WAVELETS = ["db1", "db2", "db3", "db4", "db5", "db6", "db7", "db8"]
_ARCSEC = math.pi / (180 * 3600)


def heuristic_noise(sqnorm: float, noise_scale: float = 1.0) -> float:
    r"""AIRI's heuristic noise level of the image domain, :math:`s/\sqrt{2L}` for :math:`L = \|A\|^2` (whitened data).

    >>> heuristic_noise(50.0)
    0.1
    """
    if not sqnorm > 0:
        raise ValueError(f"sqnorm must be > 0, got {sqnorm!r}")
    return noise_scale / math.sqrt(2.0 * sqnorm)


def image_scale(sqnorm: float, denoiser_sigma: float, noise_scale: float = 1.0) -> float:
    r""":math:`\alpha = \sigma_h / \sigma_d`: the solver's image is :math:`x/\alpha` (module notes).

    >>> image_scale(50.0, 0.01)
    10.0
    """
    return heuristic_noise(sqnorm, noise_scale) / denoiser_sigma


def _check_number(name: str, value, low: float, high: float | None = None, low_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")


@dataclass(frozen=True)
class RadioConfig:
    r"""The radio imaging problem: which Measurement Set, which image, how it is split and scaled.

    :param str ms: path of the Measurement Set (``None`` only in default listings; a run needs one). It must be
        a casacore table folder with the MS subtables and the data column: checked on construction
        (metadata only, no visibility is read).
    :param str column: the data column, e.g. ``"DATA"``, ``"CORRECTED_DATA"``.
    :param str weight_column: ``"auto"`` (``WEIGHT_SPECTRUM``, else ``WEIGHT``), ``"WEIGHT_SPECTRUM"``,
        ``"WEIGHT"`` or ``"none"``; the weights are taken as inverse noise variances (natural weighting).
    :param int npix: image side :math:`N`, in ``[16, 8192]``.
    :param float cell_arcsec: pixel size; it must resolve the longest baseline,
        ``cell <= 1 / (2 max |u|, |v|)`` (checked on the ranks' rows together: an error gives both numbers).
    :param str sky: the true sky (``.npz`` with ``image`` in Jy per pixel and ``cell_arcsec``, as
        ``data_scripts/simulate_observation.py`` writes it beside the MS); ``None``: ``NAME.sky.npz`` beside
        ``NAME.ms`` if there, else no truth (the metrics are then ``nan``). A sky on another grid is
        re-binned onto this one (:func:`~distinv.radio.sky.sky_on_grid`; the result's ``sky_grid`` says
        which case applied).
    :param str backend: the NUFFT, ``"finufft"`` (CPU, default) or ``"deepinv"`` (torchkbnufft, CPU or CUDA).
    :param int blocks: visibility blocks (operators); ``None``: one per rank. At least the number of ranks,
        at most the number of rows.
    :param float denoiser_sigma: :math:`\sigma_d`, the noise level the prior sees in the scaled image (module
        notes: :math:`\alpha = s\,\sigma_h/\sigma_d`); the solver's denoiser schedule ends at a multiple of it (the
        radio solver defaults end at :math:`16\sigma_d`, measured on the benchmarks' skies).
    :param float noise_scale: :math:`s`, a factor of the heuristic noise level (AIRI's ``heuNoiseScale``): 1
        when the MS weights are inverse variances; the noise's standard deviation when they are all 1.
    :param float log_dynamic_range: :math:`a` of the logSNR (:mod:`distinv.radio.metrics`), ``> 1``.
    :param bool positivity: clip the prior's (and the wavelet prox's) output at 0: a sky is non-negative.
    :param float eps: FINUFFT's relative tolerance.

    >>> RadioConfig().backend, RadioConfig().blocks
    ('finufft', None)
    >>> RadioConfig(ms="/nonexistent.ms")
    Traceback (most recent call last):
    ...
    FileNotFoundError: path '/nonexistent.ms' does not exist
    """

    ms: str | None = None
    column: str = "DATA"
    weight_column: str = "auto"
    npix: int = 256
    cell_arcsec: float = 2.0
    sky: str | None = None
    backend: str = "finufft"
    blocks: int | None = None
    denoiser_sigma: float = 0.01
    noise_scale: float = 1.0
    log_dynamic_range: float = 1e4
    positivity: bool = True
    eps: float = 1e-6

    def __post_init__(self) -> None:
        from distinv.radio.ms import WEIGHT_COLUMNS
        from distinv.radio.nufft import BACKENDS

        if isinstance(self.npix, bool) or not isinstance(self.npix, int) or not 16 <= self.npix <= MAX_NPIX:
            raise ValueError(f"npix must be an integer in [16, {MAX_NPIX}], got {self.npix!r}")
        _check_number("cell_arcsec", self.cell_arcsec, 0.0)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.blocks is not None and (isinstance(self.blocks, bool) or not isinstance(self.blocks, int)
                                        or self.blocks < 1):
            raise ValueError(f"blocks must be None (one per rank) or an integer >= 1, got {self.blocks!r}")
        _check_number("denoiser_sigma", self.denoiser_sigma, 0.0)
        _check_number("noise_scale", self.noise_scale, 0.0)
        _check_number("log_dynamic_range", self.log_dynamic_range, 1.0)
        _check_number("eps", self.eps, 0.0, 0.1)
        if not isinstance(self.positivity, bool):
            raise TypeError(f"positivity must be a bool, got {self.positivity!r}")
        if not isinstance(self.column, str) or not self.column:
            raise ValueError(f"column must be a column name such as 'DATA', got {self.column!r}")
        if self.weight_column not in WEIGHT_COLUMNS:
            raise ValueError(f"weight_column must be one of {WEIGHT_COLUMNS}, got {self.weight_column!r}")
        if self.sky is not None and not Path(self.sky).is_file():
            raise ValueError(f"sky must be None or the path of a sky .npz file, got {self.sky!r} (no such file)")
        if self.ms is not None:
            if not isinstance(self.ms, (str, os.PathLike)):
                raise TypeError(f"ms must be the path of a Measurement Set, got {self.ms!r}")
            object.__setattr__(self, "ms", os.fspath(self.ms))
            self.info()  # a clear error now for a path that is not an MS or lacks the column

    @property
    def cell_rad(self) -> float:
        """The pixel size in radians."""
        return self.cell_arcsec * _ARCSEC

    def info(self):
        """The MS's metadata (:class:`~distinv.radio.ms.MeasurementSetInfo`; no visibility is read)."""
        from distinv.radio.ms import open_measurement_set

        if self.ms is None:
            raise ValueError("ms must be the path of a Measurement Set, got None: pass ms=PATH.ms")
        return open_measurement_set(self.ms, column=self.column, weight_column=self.weight_column)

    def sky_path(self) -> Path | None:
        """The true sky file: ``sky``, else ``NAME.sky.npz`` beside ``NAME.ms`` if it exists, else ``None``."""
        if self.sky is not None:
            return Path(self.sky)
        if self.ms is None:
            return None
        beside = Path(self.ms).with_suffix(".sky.npz")
        return beside if beside.is_file() else None

    def check_world(self, world_size: int, n_rows: int) -> int:
        """The number of blocks for ``world_size`` ranks; refuses fewer blocks than ranks, more than rows."""
        from distinv.radio.blocks import block_rows

        blocks = world_size if self.blocks is None else self.blocks
        if blocks < world_size:
            raise ValueError(f"blocks must be >= the number of ranks ({world_size}), got {blocks}")
        if world_size > n_rows:
            raise ValueError(f"{world_size} ranks but the Measurement Set {self.ms!r} has only n_rows={n_rows} rows: "
                             f"every rank needs at least one row, use at most {n_rows} ranks")
        block_rows(n_rows, blocks, 0)
        return blocks

    def to_dict(self) -> dict:
        """Plain dict of the fields."""
        return asdict(self)


# --------------------------------------------------------------------------- the runner's interface


class _Positive(torch.nn.Module):
    """A denoiser (or prox) whose output is clipped at 0."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.inner(x, *args, **kwargs).clamp_min(0.0)


class RadioRankProblem(RankProblem):
    """This rank's share of the radio problem (see :mod:`distinv.problems.base` and the module notes)."""

    layout = "replicated"
    channels = 1
    wavelets = SARA_WAVELETS
    wavelet_levels = 4

    def __init__(self, config: RadioConfig, ctx, device: torch.device):
        from deepinv.distributed import distribute

        from distinv.distributed.norm import PowerIteration, stacked_sqnorm
        from distinv.radio.blocks import block_factory
        from distinv.radio.ms import require_samples
        from distinv.radio.nufft import check_cell
        from distinv.solvers.data_term import StackedDataTerm

        if config.ms is None:
            raise ValueError("ms must be the path of a Measurement Set, got None: set ms=PATH.ms")
        if config.backend == "finufft" and device.type != "cpu":
            raise ValueError(f"backend='finufft' runs on CPU; this rank's device is {device}: use backend='deepinv' "
                             "(torchkbnufft) on a GPU, or device='cpu'")
        self.config, self.device = config, device
        self.rank, self.world = ctx.rank, ctx.world_size
        self.distributed = self.world > 1 and torch.distributed.is_initialized()
        info = config.info()
        self.stokes_i, self.n_rows = info.stokes_i, info.n_rows
        self.blocks = config.check_world(self.world, info.n_rows)

        tic = time.perf_counter()
        kwargs = {"ms": config.ms, "column": config.column, "weight_column": config.weight_column,
                  "blocks": self.blocks, "npix": config.npix, "cell_rad": config.cell_rad, "backend": config.backend,
                  "eps": config.eps}
        self.physics = distribute(block_factory, ctx, num_operators=self.blocks, type_object="linear_physics",
                                  factory_kwargs=kwargs)
        self.read_s = time.perf_counter() - tic
        local = self.physics.local_physics
        # every rank raises the same error: the checks read all-reduced totals
        uv_max = self._all_reduce(torch.tensor([max((op.uv_max for op in local), default=0.0)], dtype=torch.float64),
                                  "radio.checks", torch.distributed.ReduceOp.MAX)
        totals = self._all_reduce(torch.tensor([float(sum(op.n_visibilities for op in local)),
                                                sum(op.sum_weights for op in local)], dtype=torch.float64),
                                  "radio.checks")
        require_samples(int(totals[0]), info)
        check_cell(config.cell_rad, float(uv_max[0]))
        self.uv_max, self.n_visibilities, self.sum_weights = float(uv_max[0]), int(totals[0]), float(totals[1])

        n = config.npix
        generator = torch.Generator().manual_seed(0)
        x0 = 1.0 + 0.1 * torch.rand(1, 1, n, n, generator=generator)
        with torch.no_grad():
            estimate = stacked_sqnorm(self.physics, x0.to(device), PowerIteration(max_iter=300, tol=1e-6))
        self.raw_sqnorm = float(estimate.value)
        self.norm_iterations = estimate.iterations
        self.sigma_heuristic = heuristic_noise(self.raw_sqnorm, config.noise_scale)
        self.alpha = image_scale(self.raw_sqnorm, config.denoiser_sigma, config.noise_scale)
        operator_scale = 1.0 / math.sqrt(self.raw_sqnorm)
        y: list = [None] * self.blocks
        for index, op in zip(self.physics.local_indexes, local):
            op.scale = operator_scale
            y[index] = op.y * (operator_scale / self.alpha)
        self.data = StackedDataTerm(self.physics, y)
        self.sigma_n = operator_scale / self.alpha
        # lambda of the TV / wavelet baselines: tv_weight (wavelet_weight) times the noise level the prior sees
        self.tv_scale = config.denoiser_sigma
        self.x_true, self.sky_grid = self._truth()

    # -- helpers ----------------------------------------------------------------

    def _all_reduce(self, tensor: torch.Tensor, site: str, op=None) -> torch.Tensor:
        from distinv.distributed import comm

        if not self.distributed:
            return tensor
        return comm.all_reduce(tensor, site=site) if op is None else comm.all_reduce(tensor, site=site, op=op)

    def _truth(self) -> tuple[torch.Tensor | None, str]:
        from distinv.radio.sky import load_sky, sky_on_grid

        path = self.config.sky_path()
        if path is None:
            return None, "no true sky (metrics are nan)"
        sky = load_sky(path)
        if "cell_arcsec" not in sky:
            raise ValueError(f"sky file {str(path)!r} has no 'cell_arcsec': it must hold 'image' and 'cell_arcsec'")
        image, note = sky_on_grid(sky["image"], sky["cell_arcsec"], self.config.npix, self.config.cell_arcsec)
        return torch.from_numpy(image).float()[None, None].to(self.device), note

    def to_jy(self, x: torch.Tensor) -> torch.Tensor:
        """The solver's image in Jy per pixel: :math:`\\alpha u`."""
        return self.alpha * x

    # -- interface ----------------------------------------------------------------

    def sqnorm(self) -> float:
        r""":math:`\|\hat A\|^2 = 1` up to rounding (the power iteration's :math:`L` divided by itself)."""
        return self.raw_sqnorm / self.raw_sqnorm

    def start(self, pinv_iterations: int):
        """The dirty image (the start point and the baseline ``"dirty"``) and :math:`\\hat A^\\top \\hat y`."""
        with torch.no_grad():
            aty = self.data.back_projection()
            # A^H y = aty * alpha * L; the dirty image (Jy/beam) is A^H y / sum(w), divided by alpha for u
            dirty = aty * (self.raw_sqnorm / self.sum_weights)
        return dirty, {"dirty": dirty}, aty

    def prior(self, config, prior_ctx):
        """The radio DRUNet (``weights="auto"``: ``drunet-small-radio``), tiled across ranks, output clipped at 0."""
        from distinv.solvers.prior import load_prior_denoiser, tiled_prior

        if config.weights == "auto":
            config = type(config)(**{**asdict(config), "weights": "drunet-small-radio"})
        prior = tiled_prior(load_prior_denoiser(config, 1, self.device), config, prior_ctx)
        return _Positive(prior) if self.config.positivity else prior

    def tv_prox(self, inner_iterations: int):
        """deepinv's ``TVPrior`` prox on the whole image (every rank), clipped at 0 with ``positivity``."""
        from deepinv.optim.prior import TVPrior

        prox = TVPrior(n_it_max=inner_iterations).prox
        return _Positive(prox) if self.config.positivity else prox

    def wavelet_prox(self, inner_iterations: int):
        """The SARA-like dictionary's l1 prox (:data:`SARA_WAVELETS`, 4 levels), clipped at 0 with ``positivity``."""
        prox = super().wavelet_prox(inner_iterations)
        return _Positive(prox) if self.config.positivity else prox

    def quality(self, x: torch.Tensor) -> dict | None:
        """PSNR (the truth's peak), SSIM, SNR and logSNR of :math:`\\alpha u` against the true sky, on rank 0."""
        if self.rank != 0:
            return None
        if self.x_true is None:
            return {"psnr": math.nan, "ssim": math.nan, "snr": math.nan, "logsnr": math.nan}
        from distinv.metrics import banded_ssim
        from distinv.radio.metrics import log_snr, psnr_peak, snr

        x_jy, truth = self.to_jy(x).float(), self.x_true
        peak = float(truth.abs().max()) or 1.0
        return {"psnr": psnr_peak(truth, x_jy),
                "ssim": float(banded_ssim(x_jy / peak, truth / peak, max_pixel=1.0)),
                "snr": snr(truth, x_jy), "logsnr": log_snr(truth, x_jy, self.config.log_dynamic_range)}

    def rank_record(self) -> dict:
        ops = self.physics.local_physics
        return {"blocks": list(self.physics.local_indexes), "ms_rows": [list(op.rows) for op in ops],
                "visibilities": int(sum(op.n_visibilities for op in ops)),
                "read_s": float(sum(op.read_s for op in ops)), "setup_read_s": self.read_s}

    def rank_previews(self, size: int) -> dict:
        """A subsample of this rank's (u, v) points (at most 20,000 over all ranks) for the chapter's figure."""
        uv = torch.cat([op.uv for op in self.physics.local_physics]) if self.physics.local_physics else None
        if uv is None or uv.shape[0] == 0:
            return {"uv": torch.zeros(0, 2)}
        stride = max(1, math.ceil(self.n_visibilities / 20_000))
        return {"uv": uv[::stride].float().cpu()}

    def result_extras(self, x_hat, x_init, baselines, gathered, options, prior_config) -> dict:
        """Images in Jy per pixel (truth, dirty, reconstruction; downsampled above ``preview_size``), the uv
        subsample of every rank, and the scaling figures."""
        if self.rank != 0:
            return {}
        from distinv.metrics import preview

        def image(t):
            t = t.detach().float().cpu()
            return (t if t.shape[-1] <= options.preview_size else preview(t, options.preview_size))[0, 0]

        return {
            "images": {"truth": None if self.x_true is None else image(self.x_true),
                       "dirty": image(self.to_jy(baselines["dirty"])), "reconstruction": image(self.to_jy(x_hat))},
            "uv_by_rank": [entry["previews"].get("uv", torch.zeros(0, 2)) for entry in gathered],
            "radio": {"alpha": self.alpha, "sigma_heuristic": self.sigma_heuristic, "raw_sqnorm": self.raw_sqnorm,
                      "norm_iterations": self.norm_iterations, "sum_weights": self.sum_weights,
                      "n_visibilities": self.n_visibilities, "n_rows": self.n_rows, "blocks": self.blocks,
                      "uv_max": self.uv_max, "stokes_i": self.stokes_i, "sky_grid": self.sky_grid,
                      "cell_arcsec": self.config.cell_arcsec, "npix": self.config.npix},
        }


def setup_rank(config: RadioConfig, ctx, device: torch.device) -> RadioRankProblem:
    """The runner's entry: this rank's share of the radio problem (a collective)."""
    return RadioRankProblem(config, ctx, device)


def main(argv: list[str] | None = None) -> int:
    """``python -m distinv.problems.radio dirty PATH.ms ...``: the dirty image (:mod:`distinv.radio.dirty`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "dirty":
        print("usage: python -m distinv.problems.radio dirty PATH.ms --npix N --cell ARCSEC [--column DATA] "
              "[--nprocs P] --out dirty.npy", file=sys.stderr)
        return 2
    from distinv.radio.dirty import main as dirty_main

    return dirty_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
