r"""The one interface every use case implements, so that solvers and benchmarks never import a problem.

A use case is a :class:`ProblemSpec` (name, option bundle, ``setup``) in the registry of
:mod:`distinv.problems`. On every rank, ``setup(config, ctx, device)`` (``ctx``: the physics' distributed context) returns a
:class:`RankProblem`: this rank's share of the problem, which the solver runner
(:func:`distinv.solvers.run_reconstruction`) drives without knowing what it is:

- ``data``: the data term :math:`f(x) = \tfrac12\|Ax - y\|^2` on this rank (a
  :class:`~distinv.solvers.data_term.StackedDataTerm` over operators, or a
  :class:`~distinv.solvers.data_term.ShardedDataTerm` over a slab of the signal), with ``gradient``,
  ``normal``, ``back_projection``, ``proximal`` and ``dot`` (a global inner product);
- ``layout``: ``"replicated"`` (every rank holds the whole iterate) or ``"sharded"`` (each rank its slab
  along the first spatial axis: no rank ever holds the whole signal);
- ``sigma_n``: noise standard deviation of the measurements *as the solver sees them*, and ``tv_scale``:
  the factor of the TV weight (``tv_weight * tv_scale`` is :math:`\lambda`);
- ``sqnorm()``: :math:`\|A\|^2` of the operator the solver sees (exact, distributed);
- ``start(pinv_iterations)``: the start point, the baselines (dict of name → estimate) every solver is
  compared to, and :math:`A^\top y`;
- ``prior(prior_config, prior_ctx)``: the prior's callable ``(x, sigma)`` in the problem's layout,
  ``tv_prox(inner_iterations)``: the TV baseline's ``prox(x, gamma)``, and ``wavelet_prox(inner_iterations)``:
  the wavelet-l1 baseline's (a default here: deepinv's ``WaveletPrior`` on the whole image);
- ``quality(x)``: a collective returning the metrics of ``x`` (rank 0's value counts): a dict with at
  least ``psnr`` and ``ssim``;
- ``rank_record()`` / ``result_extras(...)``: what this rank adds to the per-rank table, and what rank 0
  adds to the result (previews for the chapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["ProblemSpec", "RankProblem", "LAYOUTS"]

#: Where the iterate lives: on every rank, or one slab per rank.
LAYOUTS = ("replicated", "sharded")


@dataclass(frozen=True)
class ProblemSpec:
    """A use case the runner can solve.

    :param str name: registry key (``cfg["problem"]``).
    :param str config_class: ``"module:Class"`` of the frozen dataclass of the problem's options
        (validated on construction).
    :param str setup: ``"module:function"`` of ``setup(config, ctx, device) -> RankProblem``
        (imported on first use, so listing problems does not import every problem's dependencies).
    :param str description: one line for listings.
    :param dict solver_defaults: solver/prior options whose default differs for this problem (e.g. a
        CT prior's weights), applied before the user's keys.
    """

    name: str
    config_class: str
    setup: str
    description: str = ""
    solver_defaults: dict | None = None

    def config_type(self) -> type:
        """The option bundle's class (imported on first use)."""
        return _import(self.config_class)

    def build(self, config, ctx, device: torch.device) -> "RankProblem":
        """Import the setup function and build this rank's share of the problem (a collective)."""
        return _import(self.setup)(config, ctx, device)


def _import(target: str):
    import importlib

    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class RankProblem:
    """This rank's share of a problem (see the module docstring). Subclasses set the attributes below."""

    #: the data term (gradient, normal, back_projection, proximal, least_squares, dot)
    data: Any
    #: ``"replicated"`` or ``"sharded"``
    layout: str = "replicated"
    #: noise standard deviation of the measurements the solver sees
    sigma_n: float = 0.0
    #: the TV weight's scale: ``lambda = tv_weight * tv_scale``
    tv_scale: float = 1.0
    #: channels the prior sees
    channels: int = 1
    #: the name of the problem's direct reconstruction (its start point), e.g. ``"fbp"``; ``None``: none
    direct_solver: str | None = None

    def sqnorm(self) -> float:
        r""":math:`\|A\|^2` of the operator the solver sees."""
        raise NotImplementedError

    def start(self, pinv_iterations: int) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], torch.Tensor]:
        """The start point, the baselines (name → estimate, in this rank's layout) and :math:`A^\top y`."""
        raise NotImplementedError

    def prior(self, config, prior_ctx) -> Callable:
        """The prior's ``(x, sigma)`` callable for the PnP solvers, in this problem's layout."""
        raise NotImplementedError

    def tv_prox(self, inner_iterations: int) -> Callable:
        """``prox(x, gamma)`` of the TV baseline, in this problem's layout."""
        raise NotImplementedError

    #: the wavelet baseline's dictionary: one wavelet name, or a list of names (deepinv averages their proxes)
    wavelets: str | list = "db4"
    #: decomposition levels of the wavelet baseline
    wavelet_levels: int = 3

    def wavelet_prox(self, inner_iterations: int) -> Callable:
        r"""``prox(x, gamma)`` of :math:`\gamma\|\Psi x\|_1` (detail coefficients), deepinv's ``WaveletPrior``.

        The default acts on a replicated 2D iterate ``(B, C, H, W)`` on every rank (no communication);
        problems with another layout or positivity override it. With a list of wavelets (:attr:`wavelets`)
        the prox is iterative (``inner_iterations`` is then its iteration count), else exact.

        :param int inner_iterations: iterations of an iterative prox.

        >>> prox = RankProblem().wavelet_prox(1)
        >>> x = torch.zeros(1, 1, 16, 16); x[..., 8, 8] = 1.0
        >>> float(prox(x, gamma=0.0).sub(x).abs().max()) < 1e-5, float(prox(x, gamma=10.0).abs().max()) < 1.0
        (True, True)
        """
        from deepinv.optim.prior import WaveletPrior

        if self.layout != "replicated":
            raise NotImplementedError(f"the default wavelet prox needs a replicated iterate, this problem's layout "
                                      f"is {self.layout!r}: override wavelet_prox")
        prior = WaveletPrior(level=self.wavelet_levels, wv=self.wavelets, p=1)
        if isinstance(self.wavelets, list):
            prior.WaveletDenoiser.max_iter = inner_iterations

        def prox(x: torch.Tensor, gamma: float) -> torch.Tensor:
            return prior.prox(x, ths=1.0, gamma=gamma)

        return prox

    def quality(self, x: torch.Tensor) -> dict[str, float] | None:
        """Metrics of ``x`` (a collective; rank 0's value counts, other ranks may return ``None``)."""
        raise NotImplementedError

    def rank_record(self) -> dict:
        """Plain values this rank adds to its row of the per-rank table (picklable)."""
        return {}

    def rank_previews(self, size: int) -> dict:
        """Small tensors this rank sends to rank 0 for :meth:`result_extras` (e.g. its measurements)."""
        return {}

    def result_extras(self, x_hat: torch.Tensor, x_init: torch.Tensor, baselines: dict, gathered: list[dict],
                      options, prior_config) -> dict:
        """Collective: what rank 0 adds to the result (previews); other ranks' return value is ignored."""
        return {}
