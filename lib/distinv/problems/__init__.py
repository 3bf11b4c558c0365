"""Use cases of the book behind one interface (:mod:`distinv.problems.base`) and a registry by name.

``cfg["problem"]`` of :func:`distinv.solvers.run_reconstruction` (and ``--problem`` of
``python -m distinv.solvers``) picks one of :func:`problem_names`. Adding a use case means writing its
module (option bundle + ``setup`` returning a :class:`~distinv.problems.base.RankProblem`) and one
:func:`register_problem` line here; solvers and benchmarks do not change.

>>> problem_names()
['ct', 'images', 'radio']
>>> get_problem("images").config_type().__name__
'DeblurringConfig'
"""

from __future__ import annotations

from distinv.problems.base import LAYOUTS, ProblemSpec, RankProblem

__all__ = ["ProblemSpec", "RankProblem", "LAYOUTS", "register_problem", "get_problem", "problem_names",
           "DEFAULT_PROBLEM"]

#: The problem of a config without a ``"problem"`` key.
DEFAULT_PROBLEM = "images"

_REGISTRY: dict[str, ProblemSpec] = {}


def register_problem(spec: ProblemSpec, replace: bool = False) -> ProblemSpec:
    """Add a use case to the registry.

    :param ProblemSpec spec: the use case.
    :param bool replace: allow replacing one of the same name.
    """
    if not isinstance(spec, ProblemSpec):
        raise TypeError(f"spec must be a ProblemSpec, got {type(spec).__name__}")
    for name in ("config_class", "setup"):
        if ":" not in getattr(spec, name):
            raise ValueError(f"{name} must be 'module:attribute', got {getattr(spec, name)!r}")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"problem {spec.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[spec.name] = spec
    return spec


def get_problem(name: str) -> ProblemSpec:
    """The registered use case called ``name``.

    :param str name: one of :func:`problem_names`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"problem must be one of {problem_names()}, got {name!r}")
    return _REGISTRY[name]


def problem_names() -> list[str]:
    """Names of the registered use cases, sorted."""
    return sorted(_REGISTRY)


register_problem(ProblemSpec(
    "images", "distinv.problems.images:DeblurringConfig", "distinv.problems.images:setup_rank",
    "multi-frame deblurring of a natural image (chapter 01)",
))
register_problem(ProblemSpec(
    "ct", "distinv.problems.ct:CTConfig", "distinv.problems.ct:setup_rank",
    "3D parallel-beam computed tomography of a phantom volume (chapter 02)",
    # the normalised CT operator is ill-conditioned: CG needs more steps per data step than for blur
    # (measured at 64³, 60 views: 15 steps +0.9 dB over 5 after 8 PnP-HQS iterations), and TV's ADMM with
    # rho = 0.02 converges in about 40 iterations where 0.05 needs over 100; PnP-HQS with the CT prior at
    # 64³: weight 0.05 and a schedule down to 0.01 gave 35.7 dB against 35.4 (0.25, to 0.02) and 34.0 (1.0)
    solver_defaults={"cg_iterations": 15, "tv_rho": 0.02, "hqs_weight": 0.05, "sigma_end": 0.01},
))
register_problem(ProblemSpec(
    "radio", "distinv.problems.radio:RadioConfig", "distinv.problems.radio:setup_rank",
    "radio interferometric imaging of a Measurement Set, its rows split over ranks (chapter 03)",
    # the denoiser schedule ends at 16x the noise level the prior sees (RadioConfig.denoiser_sigma = 0.01): 20
    # PnP-HQS iterations ending at 0.01 / 0.02 / 0.04 reach SNR 1.48 / 1.53 / 1.61 dB and logSNR 3.19 / 3.31 /
    # 3.41 dB on the chapter's sky, and ending at 0.04 / 0.08 / 0.16 SNR 1.48 / 1.52 / 1.54 dB and logSNR
    # 1.55 / 1.73 / 2.46 dB on the held-out sky 11 (the heuristic noise level is below the HQS iterate's, whose
    # dirty-image noise is about 30x it there); the wavelet baseline
    # thresholds at wavelet_weight * denoiser_sigma / tv_rho (rho 0.1 and weight 0.2 reach a higher SNR in 20
    # ADMM iterations than rho 0.01 or 0.001)
    solver_defaults={"sigma_start": 0.2, "sigma_end": 0.16, "tv_rho": 0.1, "wavelet_weight": 0.2},
))
