r"""The solvers' iterations, each split into a *data* phase and a *prior* phase that are timed apart.

With :math:`f(x) = \tfrac12\sum_k\|A_kx-y_k\|^2`, :math:`L = \|A\|^2` and a denoiser
:math:`D_\sigma` (the tiled prior):

- **PnP-PGD** (plug-and-play proximal gradient), step :math:`\gamma = s/L`:

  .. math:: x_{t+1} = D_{\sigma_t}\big(x_t - \gamma \nabla f(x_t)\big).

- **PnP-HQS** (half-quadratic splitting), with :math:`\mu_t = w\,\sigma_n^2/\sigma_t^2`:

  .. math:: z_{t+1} = \arg\min_z f(z) + \tfrac{\mu_t}{2}\|z - x_t\|^2, \qquad x_{t+1} = D_{\sigma_t}(z_{t+1}).

  The data step is the linear system :math:`(A^\top A + \mu_t I)z = A^\top y + \mu_t x_t`, solved by a
  few CG iterations warm-started at :math:`x_t` (exact HQS needs the exact solve; a handful of CG
  steps on this well-conditioned system is the usual practice, cf. DPIR). The strength
  :math:`\sigma_t` decreases geometrically, so early iterations denoise hard and later ones trust
  the data.

- **TV** (the baseline), ADMM on :math:`f(x) + \lambda\,\mathrm{TV}(x)`, :math:`\lambda = w_{TV}\,s_{TV}`
  (:math:`s_{TV}` is the problem's scale, e.g. :math:`\sigma_n\sqrt K` for :math:`K` frames), penalty :math:`\rho`:

  .. math:: z_{t+1} = \arg\min_z f(z) + \tfrac{\rho}{2}\|z - x_t + u_t\|^2, \quad
            x_{t+1} = \mathrm{prox}_{(\lambda/\rho) \mathrm{TV}}(z_{t+1} + u_t), \quad
            u_{t+1} = u_t + z_{t+1} - x_{t+1},

  the same CG data step as HQS, and the problem's TV proximal operator (deepinv's ``TVPrior``: on every
  rank on the whole image for a replicated iterate, slice by slice on each rank's slab for a sharded
  volume). Unlike HQS, ADMM converges to the minimiser of the TV objective.

- **Wavelet** (the sparsity baseline, uSARA-like), the same ADMM on :math:`f(x) + \lambda\|\Psi x\|_1`,
  :math:`\lambda = w_{\Psi}\,s_{TV}`, with the problem's wavelet proximal operator
  (:meth:`~distinv.problems.base.RankProblem.wavelet_prox`: deepinv's ``WaveletPrior`` by default).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from distinv.distributed import comm
from distinv.solvers.config import SolverConfig
from distinv.solvers.data_term import StackedDataTerm

__all__ = ["PhaseTimes", "Solver", "make_solver"]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: Communication sites of each phase: the data term's, and the prior's (deepinv's tiler through an
#: accounted context, distinv's ``TiledDenoiser`` directly).
PHASE_SITES = {"physics": ("physics.",), "prior": ("prior.", "tiling.")}
#: Solvers that run ADMM with a proximal operator (``prior(x, gamma=...)``) instead of a denoiser.
ADMM_SOLVERS = ("tv", "wavelet")


def _comm_seconds(prefixes: tuple[str, ...] | None = None) -> float:
    totals = comm.comm_ledger().totals()
    return sum(s["seconds"] for site, s in totals.items() if prefixes is None or site.startswith(prefixes))


def _comm_bytes() -> int:
    return int(sum(s["bytes"] for s in comm.comm_ledger().totals().values()))


@dataclass
class PhaseTimes:
    """Wall seconds of one iteration (device synchronised), and its communication from the ledger.

    ``t_grad`` and ``t_prior`` include their own communication (``t_comm_data``, ``t_comm_prior``);
    ``t_comm`` is all the communication of the iteration.
    """

    t_total: float = 0.0
    t_grad: float = 0.0
    t_prior: float = 0.0
    t_comm: float = 0.0
    t_comm_data: float = 0.0
    t_comm_prior: float = 0.0
    comm_bytes: int = 0


class _Phase:
    """Times a phase and reads the ledger delta of its sites."""

    def __init__(self, device: torch.device, phase: str):
        self.device, self.sites = device, PHASE_SITES[phase]

    def __enter__(self):
        _synchronize(self.device)
        self.comm0 = _comm_seconds(self.sites)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _synchronize(self.device)
        self.seconds = time.perf_counter() - self.t0
        self.comm = _comm_seconds(self.sites) - self.comm0


@dataclass
class Solver:
    r"""An iterative solver: ``step(t)`` advances the iterate ``x`` by one iteration and times it.

    :param StackedDataTerm data: the data term.
    :param callable prior: the tiled denoiser ``prior(x, sigma)`` (PnP) or ``prox(x, gamma)`` (TV).
    :param SolverConfig config: solver options.
    :param torch.Tensor x: the current iterate (start point on construction).
    :param float step_size: :math:`\gamma` (PGD) or ``nan`` (HQS, TV).
    :param float sigma_n: noise level of the measurements.
    :param float tv_scale: :math:`s_{TV}`, the TV weight's scale.
    """

    data: StackedDataTerm
    prior: Callable
    config: SolverConfig
    x: torch.Tensor
    step_size: float
    sigma_n: float
    aty: torch.Tensor | None = None
    tv_scale: float = 1.0
    sigmas: list[float] = field(default_factory=list)
    _u: torch.Tensor | None = None

    def __post_init__(self):
        self.sigmas = self.config.sigmas()
        self.device = self.x.device
        if self.config.solver in ("pnp-hqs",) + ADMM_SOLVERS and self.aty is None:
            self.aty = self.data.back_projection()
        if self.config.solver in ADMM_SOLVERS:
            self._u = torch.zeros_like(self.x)

    def step(self, t: int) -> PhaseTimes:
        """Iteration ``t`` (0-based); returns its times."""
        times = PhaseTimes()
        comm_total0, bytes0 = _comm_seconds(), _comm_bytes()
        _synchronize(self.device)
        start = time.perf_counter()
        solver = self.config.solver
        with torch.no_grad():
            with _Phase(self.device, "physics") as data_phase:
                if solver == "pnp-pgd":
                    v = self.x - self.step_size * self.data.gradient(self.x)
                elif solver == "pnp-hqs":
                    mu = self.config.hqs_weight * max(self.sigma_n, 1e-3) ** 2 / self.sigmas[t] ** 2
                    v = self.data.proximal(self.x, mu, self.config.cg_iterations, self.aty)
                else:
                    z = self.data.proximal(self.x - self._u, self.config.tv_rho, self.config.cg_iterations, self.aty)
                    v = z + self._u
            with _Phase(self.device, "prior") as prior_phase:
                if solver in ADMM_SOLVERS:
                    weight = (self.config.tv_weight if solver == "tv" else self.config.wavelet_weight) * self.tv_scale
                    x_new = self.prior(v, gamma=weight / self.config.tv_rho)
                    self._u = v - x_new
                else:
                    x_new = self.prior(v, self.sigmas[t])
            self.x = x_new
        _synchronize(self.device)
        times.t_total = time.perf_counter() - start
        times.t_grad, times.t_prior = data_phase.seconds, prior_phase.seconds
        times.t_comm_data, times.t_comm_prior = data_phase.comm, prior_phase.comm
        times.t_comm = _comm_seconds() - comm_total0
        times.comm_bytes = _comm_bytes() - bytes0
        return times


def make_solver(config: SolverConfig, data, prior: Callable, x0: torch.Tensor, sqnorm: float, sigma_n: float,
                aty: torch.Tensor | None = None, tv_scale: float | None = None) -> Solver:
    r"""A :class:`Solver` for ``config.solver`` starting at ``x0``.

    For ``"unrolled"`` it is a :class:`~distinv.solvers.unrolled.UnrolledSolver` whose ``config.iterations``
    is the network's layer count (read the loop length from the returned solver's ``config``).

    :param SolverConfig config: solver options.
    :param data: the data term (:class:`StackedDataTerm` or :class:`~distinv.solvers.data_term.ShardedDataTerm`).
    :param callable prior: tiled denoiser ``(x, sigma)`` for PnP; for ``"tv"`` the TV proximal operator
        ``prox(x, gamma=...)`` (``None``: deepinv's ``TVPrior`` on the whole signal); for ``"unrolled"`` the
        tiled prior whose network is replaced by the unrolled network's own denoiser.
    :param torch.Tensor x0: start point.
    :param float sqnorm: :math:`\|A\|^2`.
    :param float sigma_n: noise level.
    :param torch.Tensor aty: :math:`A^\top y` if already computed (HQS needs it).
    :param float tv_scale: :math:`s_{TV}` (``None``: :math:`\max(\sigma_n, 10^{-3})\sqrt K` with ``K``
        the data term's operator count).
    """
    if not sqnorm > 0:
        raise ValueError(f"sqnorm must be > 0, got {sqnorm!r}")
    if config.solver == "unrolled":  # the trained network: its layers are the iterations (see its module)
        from distinv.solvers.unrolled import make_unrolled_solver

        return make_unrolled_solver(config, data, prior, x0, sigma_n, aty)
    if config.solver == "tv" and prior is None:
        from deepinv.optim.prior import TVPrior

        prior = TVPrior(n_it_max=config.tv_inner_iterations).prox
    if tv_scale is None:
        tv_scale = max(sigma_n, 1e-3) * math.sqrt(data.physics.num_operators)
    step = config.step_scale / sqnorm if config.solver == "pnp-pgd" else float("nan")
    return Solver(data=data, prior=prior, config=config, x=x0.clone(), step_size=step, sigma_n=sigma_n, aty=aty,
                  tv_scale=tv_scale)
