r"""3D computed tomography, parallel beam: the second use case of the book (chapter 02).

A volume :math:`x \in \mathbb{R}^{Z \times N \times N}` (here cubic, :math:`Z = N`) is seen from
:math:`V` angles :math:`\theta_v \in [0, \pi)` by a parallel beam perpendicular to the rotation axis
:math:`z`, so every axial slice :math:`x_z` has its own sinogram:

.. math::

    y_z = M x_z + \sigma \varepsilon_z, \qquad \varepsilon_z \sim \mathcal N(0, I), \qquad
    \sigma = \eta\,\sqrt{\tfrac{1}{m}\textstyle\sum_z \|M x_z\|^2},

with :math:`M` the ASTRA ``linear`` projection matrix of one slice (:mod:`distinv.tomography`),
:math:`m` the number of measurements and :math:`\eta` the relative noise level (``noise``): the noise
has :math:`\eta` times the root-mean-square of the clean sinogram. The noise of slice :math:`z` is
drawn from a generator seeded by ``(seed, z)``, so the measurements do not depend on the ranks.

Two distributions of :math:`A = \sum_k A_k`:

- ``"angles"``: view groups :math:`A_k` (interleaved or contiguous) dealt across ranks by deepinv's
  ``DistributedStackedLinearPhysics``; every rank holds the whole volume; :math:`A^\top A` costs one
  all-reduce of a volume.
- ``"slabs"``: each rank holds a z-slab of the volume and of the sinogram (exact: parallel beam is
  slice-separable); products need no communication, CG's inner products one all-reduce of a scalar, and
  **no rank ever holds the whole volume** (phantom, sinogram, iterate and prior are all slabs).

The solvers see the normalised operator :math:`A / \|A\|` and data :math:`y / \|A\|` (so
:math:`\|A\|^2 = 1` and the same solver settings suit every size and view count); :math:`\|A\|` is the
exact norm of the full scan, computed on one slice (:func:`~distinv.tomography.norm.parallel_beam_sqnorm`).
The start point is FBP (:func:`~distinv.tomography.fbp.filtered_back_projection`), computed on each rank
from its views or its slab. The prior is a 2D denoiser applied slice by slice (``prior_mode="slices"``;
when the prior's ``patch`` is smaller than the slice, each slice is tiled in-plane too, so a rank holds one
tile's activations), or a 3D DRUNet inflated from the 2D weights and tiled in 3D with halos (``"volume"``).
The projector stores ASTRA's matrix (``projector="matrix"``, the same on every rank whatever its slab) or
recomputes its weights at every product (``"matrix-free"``): a rank then holds, beyond buffers the size of its
slab, only the network, one tile's activations and the weights of a few rays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from deepinv.physics import LinearPhysics

from distinv.problems.base import RankProblem

__all__ = ["CTConfig", "PROJECTORS", "DISTRIBUTIONS", "ANGLE_SPLITS", "PRIOR_MODES", "MAX_SIZE", "CTRankProblem",
           "setup_rank", "ScaledOperator", "SliceDenoiser", "inflate_to_3d", "view_group_factory", "slice_noise"]

#: How the operator and the volume are split over ranks.
DISTRIBUTIONS = ("angles", "slabs")
#: How views are grouped in the ``"angles"`` distribution.
ANGLE_SPLITS = ("interleaved", "contiguous")
#: How the learned prior sees the volume.
PRIOR_MODES = ("slices", "volume")
#: Slices per tile when the slice-wise prior tiles its slices in-plane (``patch < size``): the tile
#: grid's alignment along z (the 2D network sees them ``max_batch_size`` slices at a time).
SLICE_TILE_DEPTH = 8
#: Largest cube side the problem accepts.
MAX_SIZE = 512
#: Filters of the FBP baseline.
FBP_FILTERS = ("ram-lak", "shepp-logan", "hann")
#: How the projector holds its weights: ASTRA's matrix and its transpose, stored (fast, the same size on every
#: rank), or recomputed per product (``"matrix-free"``: no per-rank constant, 2-4x slower products).
PROJECTORS = ("matrix", "matrix-free")


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")


@dataclass(frozen=True)
class CTConfig:
    r"""The tomography problem: phantom, scan, noise and how it is split over ranks.

    :param int size: cube side :math:`N` (voxels), any integer in ``[16, 512]``.
    :param int views: projection angles :math:`V` over :math:`[0, \pi)`, ``>= 1``.
    :param float noise: relative noise level :math:`\eta \ge 0` (``0.01``: the noise has 1 % of the clean
        sinogram's RMS).
    :param str phantom: ``"textured"`` (seeded, textured: :func:`~distinv.tomography.phantoms.textured_phantom`)
        or ``"shepp-logan"``.
    :param int seed: seed of the phantom and of the noise; the CT prior's training and validation seeds are
        refused (:func:`~distinv.tomography.phantoms.check_phantom_seed`).
    :param str distribution: one of :data:`DISTRIBUTIONS`.
    :param str angle_split: one of :data:`ANGLE_SPLITS` (``"angles"`` only).
    :param int view_groups: operators :math:`A_k` of the ``"angles"`` distribution (``None``: one per rank);
        at least the number of ranks, at most ``views``.
    :param str prior_mode: one of :data:`PRIOR_MODES`.
    :param str fbp_filter: the FBP baseline's filter, one of :data:`FBP_FILTERS`.
    :param str projector: one of :data:`PROJECTORS` (the same operator to ASTRA's float32 weights, about
        1e-5 relative).

    >>> CTConfig(size=24, views=10).distribution
    'slabs'
    >>> CTConfig(views=0)
    Traceback (most recent call last):
    ...
    ValueError: views must be an integer >= 1, got 0
    """

    size: int = 96
    views: int = 60
    noise: float = 0.01
    phantom: str = "textured"
    seed: int = 0
    distribution: str = "slabs"
    angle_split: str = "interleaved"
    view_groups: int | None = None
    prior_mode: str = "slices"
    fbp_filter: str = "ram-lak"
    projector: str = "matrix"

    def __post_init__(self) -> None:
        from distinv.tomography.phantoms import PHANTOMS, check_phantom_seed

        _check_int("size", self.size, 16, MAX_SIZE)
        _check_int("views", self.views, 1)
        if not isinstance(self.noise, (int, float)) or isinstance(self.noise, bool) or not self.noise >= 0:
            raise ValueError(f"noise must be a number >= 0 (relative to the sinogram's RMS), got {self.noise!r}")
        if self.phantom not in PHANTOMS:
            raise ValueError(f"phantom must be one of {PHANTOMS}, got {self.phantom!r}")
        _check_int("seed", self.seed, 0)
        check_phantom_seed(self.seed)
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if self.angle_split not in ANGLE_SPLITS:
            raise ValueError(f"angle_split must be one of {ANGLE_SPLITS}, got {self.angle_split!r}")
        if self.view_groups is not None:
            _check_int("view_groups", self.view_groups, 1, self.views)
        if self.prior_mode not in PRIOR_MODES:
            raise ValueError(f"prior_mode must be one of {PRIOR_MODES}, got {self.prior_mode!r}")
        if self.fbp_filter not in FBP_FILTERS:
            raise ValueError(f"fbp_filter must be one of {FBP_FILTERS}, got {self.fbp_filter!r}")
        if self.projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {self.projector!r}")

    @property
    def projector_backend(self) -> str | None:
        """The :class:`~distinv.tomography.projector.ParallelBeamProjector` backend of :attr:`projector`."""
        return "matrix-free" if self.projector == "matrix-free" else None

    def geometry(self):
        """The scan's :class:`~distinv.tomography.geometry.ParallelBeamGeometry`."""
        from distinv.tomography.geometry import ParallelBeamGeometry

        return ParallelBeamGeometry(size=self.size, views=self.views)

    def check_world(self, world_size: int) -> None:
        """Refuse more ranks than slices (``"slabs"``) or than view groups (``"angles"``)."""
        if self.distribution == "slabs" and world_size > self.size:
            raise ValueError(f"distribution='slabs' needs at most one rank per slice: {world_size} ranks for "
                             f"size={self.size}")
        if self.distribution == "angles":
            groups = world_size if self.view_groups is None else self.view_groups
            if world_size > self.views:
                raise ValueError(f"distribution='angles' needs at most one rank per view: {world_size} ranks for "
                                 f"views={self.views}")
            if groups < world_size:
                raise ValueError(f"view_groups must be >= the number of ranks ({world_size}), got {groups}")

    def to_dict(self) -> dict:
        """Plain dict of the fields."""
        return asdict(self)


# --------------------------------------------------------------------------- operators


class ScaledOperator(LinearPhysics):
    r""":math:`c\,A` for a linear operator :math:`A` and a scalar :math:`c > 0`.

    :param LinearPhysics operator: :math:`A`.
    :param float scale: :math:`c`.

    >>> from deepinv.physics import Blur
    >>> op = ScaledOperator(Blur(torch.ones(1, 1, 1, 1)), 0.5)
    >>> op.A(torch.ones(1, 1, 2, 2)).sum().item(), op.A_adjoint(torch.ones(1, 1, 2, 2)).sum().item()
    (2.0, 2.0)
    """

    def __init__(self, operator: LinearPhysics, scale: float):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        super().__init__()
        self.operator = operator
        self.scale = float(scale)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.scale * self.operator.A(x)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.scale * self.operator.A_adjoint(y)


def view_group_factory(index: int, device: torch.device, factory_kwargs: dict) -> LinearPhysics:
    """deepinv factory: the scaled projector of view group ``index`` (``factory_kwargs``: ``geometry`` dict,
    ``groups``, ``split``, ``scale``)."""
    from distinv.tomography.geometry import ParallelBeamGeometry
    from distinv.tomography.projector import ParallelBeamProjector
    from distinv.tomography.split import view_groups

    geometry = ParallelBeamGeometry.from_dict(factory_kwargs["geometry"])
    views = view_groups(geometry.views, factory_kwargs["groups"], factory_kwargs["split"])[index]
    projector = ParallelBeamProjector(geometry, views, device=device, backend=factory_kwargs.get("backend"))
    return ScaledOperator(projector, factory_kwargs["scale"])


def slice_noise(seed: int, z_range: tuple[int, int], views: int, detectors: int,
                view_indexes=None) -> torch.Tensor:
    r"""Standard normal noise of the sinograms of slices ``[z0, z1)``: ``(1, 1, Z, V', detectors)``.

    Slice :math:`z` uses a generator seeded by ``seed * 1_000_003 + z``, so the noise of a slice or a view
    does not depend on which rank draws it.

    >>> a = slice_noise(0, (0, 3), 4, 5)
    >>> bool(torch.equal(a[:, :, 1:2], slice_noise(0, (1, 2), 4, 5))), slice_noise(0, (0, 3), 4, 5, [1, 3]).shape
    (True, torch.Size([1, 1, 3, 2, 5]))
    """
    z0, z1 = z_range
    slabs = []
    for z in range(z0, z1):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + z)
        noise = torch.randn((views, detectors), generator=generator)
        slabs.append(noise if view_indexes is None else noise[list(view_indexes)])
    return torch.stack(slabs)[None, None]


# --------------------------------------------------------------------------- priors


class SliceDenoiser(torch.nn.Module):
    """A 2D denoiser applied to every axial slice of a ``(B, C, Z, H, W)`` volume, ``batch`` slices at a time.

    :param torch.nn.Module denoiser: called ``(x, sigma)`` on ``(S, C, H, W)``.
    :param int batch: slices per call.

    >>> SliceDenoiser(lambda x, sigma: 2 * x, batch=2)(torch.ones(1, 1, 5, 4, 4), 0.1).sum().item()
    160.0
    """

    def __init__(self, denoiser, batch: int = 8):
        super().__init__()
        _check_int("batch", batch, 1)
        self.denoiser = denoiser
        self.batch = batch

    def forward(self, x: torch.Tensor, sigma, **kwargs) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"x must be a (B, C, Z, H, W) volume, got shape {tuple(x.shape)}")
        b, c, z, h, w = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(b * z, c, h, w)
        out = torch.cat([self.denoiser(slices[i:i + self.batch], sigma)
                         for i in range(0, slices.shape[0], self.batch)]) if slices.shape[0] else slices
        return out.reshape(b, z, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def inflate_to_3d(denoiser: torch.nn.Module) -> torch.nn.Module:
    r"""A 3D DRUNet with the architecture of the 2D DRUNet ``denoiser``, initialised from its weights.

    Axial inflation: a 2D kernel :math:`w` of odd size :math:`k` becomes the central slice of a
    :math:`k\times k\times k` kernel (zero elsewhere); the strided :math:`2\times2` downsampling convolution
    becomes :math:`w/2` in both of its slices (it sums two planes), the transposed upsampling convolution
    :math:`w` in both (each output plane receives one input plane). So on a volume that is constant along
    :math:`z` the 3D network computes exactly the 2D one on every slice: a starting point for a 3D prior
    (its halos along :math:`z` then matter once it is fine-tuned), not a trained 3D prior.

    deepinv 0.5's ``initialize_3d_from_2d`` puts the kernel in slice :math:`k//2 + 1` (not the centre:
    every layer then shifts the volume by one plane, and the last planes come out zero) and halves the
    transposed convolutions; hence our own.

    :param torch.nn.Module denoiser: a deepinv 2D ``DRUNet``.
    """
    from deepinv.models import DRUNet

    if type(denoiser).__name__ != "DRUNet":
        raise TypeError(f"denoiser must be a deepinv DRUNet to inflate, got {type(denoiser).__name__}")
    channels = denoiser.m_tail.weight.shape[0]
    nc = (denoiser.m_head.weight.shape[0], denoiser.m_down1[-1].weight.shape[0],
          denoiser.m_down2[-1].weight.shape[0], denoiser.m_down3[-1].weight.shape[0])
    nb = len(denoiser.m_down1) - 1
    net = DRUNet(channels, channels, nc=nc, nb=nb, pretrained=None, dim=3)
    weights2d = dict(denoiser.named_modules())
    with torch.no_grad():
        for name, module in net.named_modules():
            if not isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                continue
            w2d = weights2d[name].weight.detach().float().cpu()
            depth = module.kernel_size[0]
            module.weight.zero_()
            if depth % 2 == 1:
                module.weight[:, :, depth // 2] = w2d
            elif isinstance(module, torch.nn.ConvTranspose3d):
                module.weight[:] = w2d[:, :, None]
            else:
                module.weight[:] = w2d[:, :, None] / depth
            if module.bias is not None:
                module.bias.copy_(weights2d[name].bias.detach())
    return net.eval().to(denoiser.m_head.weight.device)


# --------------------------------------------------------------------------- the runner's interface


class CTRankProblem(RankProblem):
    """This rank's share of the tomography problem (see :mod:`distinv.problems.base`)."""

    channels = 1
    direct_solver = "fbp"

    def __init__(self, config: CTConfig, ctx, device: torch.device):
        from distinv.bench.measure import peak_memory_bytes, reset_peak_memory
        from distinv.distributed import comm
        from distinv.distributed.sharding import SlabLayout
        from distinv.solvers.data_term import ShardedDataTerm, StackedDataTerm
        from distinv.tomography.norm import parallel_beam_sqnorm
        from distinv.tomography.phantoms import phantom
        from distinv.tomography.projector import ParallelBeamProjector

        reset_peak_memory(device)  # the process baseline: what the imports (and the caller) hold now
        self.baseline_mem_bytes = peak_memory_bytes(device)
        self.config, self.device = config, device
        self.rank, self.world = ctx.rank, ctx.world_size
        config.check_world(self.world)
        self.geometry = geometry = config.geometry()
        backend = config.projector_backend
        self.full_sqnorm = float(parallel_beam_sqnorm(geometry, matrix_free=backend == "matrix-free"))
        self.scale = 1.0 / math.sqrt(self.full_sqnorm)
        n, v, d = config.size, config.views, geometry.detectors
        self.distributed = self.world > 1 and torch.distributed.is_initialized()

        if config.distribution == "slabs":
            self.layout = "sharded"
            self.z_range = SlabLayout.balanced(n, self.world).bounds[self.rank]
            self.x_true = phantom(config.phantom, n, config.seed, self.z_range).to(device)[None, None]
            projector = ParallelBeamProjector(geometry, device=device, backend=backend)
            self.fbp_parts = [(projector, None)]
            with torch.no_grad():
                clean = projector.A(self.x_true)
            sum_squares = torch.sum(clean.double() ** 2).reshape(1)
            noise = slice_noise(config.seed, self.z_range, v, d).to(device)
            self.view_indexes = list(range(v))
        else:
            self.layout = "replicated"
            self.z_range = (0, n)
            self.x_true = phantom(config.phantom, n, config.seed).to(device)[None, None]
            from deepinv.distributed import distribute

            from distinv.tomography.split import view_groups

            groups = self.world if config.view_groups is None else config.view_groups
            kwargs = {"geometry": geometry.to_dict(), "groups": groups, "split": config.angle_split,
                      "scale": self.scale, "backend": backend}
            self.physics = distribute(view_group_factory, ctx, num_operators=groups, type_object="linear_physics",
                                      factory_kwargs=kwargs)
            all_groups = view_groups(v, groups, config.angle_split)
            local = list(self.physics.local_indexes)
            self.view_indexes = [view for k in local for view in all_groups[k]]
            self.fbp_parts = [(ParallelBeamProjector(geometry, all_groups[k], device=device, backend=backend), k)
                              for k in local]
            clean_parts = {}
            with torch.no_grad():
                for projector, k in self.fbp_parts:
                    clean_parts[k] = projector.A(self.x_true)
            sum_squares = sum(torch.sum(c.double() ** 2) for c in clean_parts.values()).reshape(1)
        if self.distributed:
            sum_squares = comm.all_reduce(sum_squares, site="physics.noise_level")
        self.sigma_raw = config.noise * math.sqrt(float(sum_squares[0]) / (n * v * d))

        if config.distribution == "slabs":
            self.y_raw = [clean + self.sigma_raw * noise]
            self.data = ShardedDataTerm(ScaledOperator(projector, self.scale), self.scale * self.y_raw[0],
                                        num_operators=self.world)
        else:
            y_scaled: list = [None] * groups
            self.y_raw = []
            for projector, k in self.fbp_parts:
                noise = slice_noise(config.seed, (0, n), v, d, all_groups[k]).to(device)
                raw = clean_parts[k] + self.sigma_raw * noise
                self.y_raw.append(raw)
                y_scaled[k] = self.scale * raw
            self.data = StackedDataTerm(self.physics, y_scaled)
        self.sigma_n = self.sigma_raw * self.scale
        self.tv_scale = max(self.sigma_n, 1e-6)

    # -- interface ------------------------------------------------------------

    def sqnorm(self) -> float:
        r""":math:`\|A/\|A\|\|^2` (1 up to rounding): the exact norm is that of one slice's full scan."""
        return self.full_sqnorm * self.scale ** 2

    def _all_reduce(self, tensor: torch.Tensor, site: str) -> torch.Tensor:
        from distinv.distributed import comm

        return comm.all_reduce(tensor, site=site) if self.distributed else tensor

    def start(self, pinv_iterations: int):
        """FBP (the start point and a baseline), CGLS by ``pinv_iterations`` CG steps (a baseline), :math:`A^\\top y`."""
        from distinv.tomography.fbp import filtered_back_projection

        with torch.no_grad():
            fbp = sum(filtered_back_projection(y, projector, filter=self.config.fbp_filter)
                      for (projector, _), y in zip(self.fbp_parts, self.y_raw))
            if self.layout == "replicated":
                fbp = self._all_reduce(fbp, "physics.fbp")
            aty = self.data.back_projection()
            cgls = (self.data.least_squares(torch.zeros_like(fbp), pinv_iterations, aty)
                    if pinv_iterations else None)
        return fbp, {"fbp": fbp, "cgls": cgls}, aty

    def prior(self, config, prior_ctx):
        """The slice-wise 2D prior or the 3D tiled prior, in this problem's layout."""
        from distinv.solvers.prior import load_prior_denoiser
        from distinv.tiling import TiledDenoiser, TilingConfig

        if config.implementation not in ("distinv", "none"):
            raise ValueError(f"implementation must be 'distinv' or 'none' for the CT problem (deepinv's tiler is "
                             f"2D), got {config.implementation!r}")
        if config.implementation == "none" and self.layout == "sharded":
            raise ValueError("implementation='none' (the whole volume on every rank) needs distribution='angles'")
        if config.weights == "auto":
            config = type(config)(**{**asdict(config), "weights": "drunet-small-ct"})
        net = load_prior_denoiser(config, 1, self.device)
        batch = config.max_batch_size or 8
        n = self.config.size
        if self.config.prior_mode == "slices":
            slices = SliceDenoiser(net, batch=batch)
            if config.implementation == "none":
                return slices
            if config.patch < n:  # in-plane tiles: a rank holds one window's activations, not a whole slice's
                tiling = TilingConfig(patch=(SLICE_TILE_DEPTH, config.patch, config.patch),
                                      overlap=(0, config.overlap, config.overlap), blend=config.blend,
                                      max_batch_size=1, layout=self.layout)
                return TiledDenoiser(slices, tiling)
            if self.layout == "sharded":
                return slices  # the slab's slices, no communication
            tiling = TilingConfig(patch=(-(-n // self.world), n, n), overlap=0, blend="crop", align=1,
                                  max_batch_size=1, layout="replicated")
            return TiledDenoiser(slices, tiling)
        net3d = inflate_to_3d(net)
        if config.implementation == "none":
            return net3d
        tiling = TilingConfig(patch=config.patch, overlap=config.overlap, blend=config.blend,
                              max_batch_size=config.max_batch_size,
                              layout="sharded" if self.layout == "sharded" else "replicated")
        return TiledDenoiser(net3d, tiling)

    def tv_prox(self, inner_iterations: int):
        """2D TV of every axial slice (deepinv's ``TVPrior`` on the slices as a batch; local to a slab)."""
        from deepinv.optim.prior import TVPrior

        tv = TVPrior(def_crit=0.0, n_it_max=inner_iterations)  # fixed iterations: the same on any slab

        def prox(x: torch.Tensor, gamma: float) -> torch.Tensor:
            slices = x[0].transpose(0, 1)  # (Z, C, H, W)
            return tv.prox(slices.contiguous(), gamma=gamma).transpose(0, 1)[None].contiguous()

        return prox

    def quality(self, x: torch.Tensor) -> dict | None:
        """Volume PSNR (peak 1) and mean slice SSIM; with slabs, sums all-reduced over the ranks."""
        from distinv.metrics import psnr_from_sums, volume_quality_sums

        if self.layout == "replicated":
            return psnr_from_sums(volume_quality_sums(x, self.x_true)) if self.rank == 0 else None
        sums = self._all_reduce(volume_quality_sums(x, self.x_true).to(x.device), "metrics.quality")
        return psnr_from_sums(sums.cpu())

    def rank_record(self) -> dict:
        return {"slices": list(self.z_range) if self.layout == "sharded" else [0, self.config.size],
                "views": len(self.view_indexes), "baseline_mem_bytes": int(self.baseline_mem_bytes)}

    def result_extras(self, x_hat, x_init, baselines, gathered, options, prior_config) -> dict:
        """Orthogonal planes of the truth, FBP and the reconstruction, and the central slice's sinogram."""
        from distinv.distributed import comm

        n, mid = self.config.size, self.config.size // 2
        z0, z1 = self.z_range
        send = None
        if self.layout == "sharded" or self.rank == 0:
            send = {"z0": z0, "planes": {name: _planes(t, z0, z1, mid) for name, t in
                                         (("truth", self.x_true), ("fbp", baselines["fbp"]), ("reconstruction", x_hat))}}
        sinogram = None
        if z0 <= mid < z1:
            sinogram = {"views": self.view_indexes,
                        "rows": torch.cat([y[0, 0, mid - z0] for y in self.y_raw]).cpu()}
        parts = [None] * self.world
        if self.distributed:
            comm.all_gather_object(parts, (send, sinogram), site="results.previews")
        else:
            parts = [(send, sinogram)]
        if self.rank != 0:
            return {}
        planes = _assemble_planes([p[0] for p in parts if p[0] is not None], n)
        rows = torch.zeros(self.config.views, self.geometry.detectors)
        for _, sino in parts:
            if sino is not None:
                rows[sino["views"]] = sino["rows"]
        return {"planes": planes, "sinogram": rows, "sigma_noise": self.sigma_raw, "full_sqnorm": self.full_sqnorm}


def _planes(x: torch.Tensor, z0: int, z1: int, mid: int) -> dict:
    """The axial slice ``mid`` (if in the slab) and this slab's rows of the coronal and sagittal planes."""
    v = x[0, 0].detach().float().cpu()
    return {"axial": v[mid - z0].clone() if z0 <= mid < z1 else None,
            "coronal": v[:, mid, :].clone(), "sagittal": v[:, :, mid].clone()}


def _assemble_planes(parts: list[dict], n: int) -> dict:
    out = {}
    parts = sorted(parts, key=lambda p: p["z0"])
    for name in parts[0]["planes"]:
        axial = next(p["planes"][name]["axial"] for p in parts if p["planes"][name]["axial"] is not None)
        out[name] = {"axial": axial,
                     "coronal": torch.cat([p["planes"][name]["coronal"] for p in parts]),
                     "sagittal": torch.cat([p["planes"][name]["sagittal"] for p in parts])}
    return out


def setup_rank(config: CTConfig, ctx, device: torch.device) -> CTRankProblem:
    """The runner's entry: this rank's share of the tomography problem (a collective)."""
    return CTRankProblem(config, ctx, device)
