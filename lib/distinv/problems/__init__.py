"""Use cases of the book behind one interface (:mod:`distinv.problems.base`) and a registry by name.

``cfg["problem"]`` of :func:`distinv.solvers.run_reconstruction` (and ``--problem`` of
``python -m distinv.solvers``) picks one of :func:`problem_names`. Adding a use case means writing its
module (option bundle + ``setup`` returning a :class:`~distinv.problems.base.RankProblem`) and one
:func:`register_problem` line here; solvers and benchmarks do not change.

>>> problem_names()
['ct', 'images']
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
))
