"""Use cases the benchmark runner knows: ``name -> rank entry point fn(cfg: dict) -> dict``.

Every rank of a run calls the entry point with the run's parameters. The entry point returns (rank 0's
value is kept)::

    {"history": [{"iteration", "psnr", "ssim", "t_total", "t_grad", "t_prior", "t_comm",
                  "comm_bytes", "peak_mem_bytes"}, ...],
     "final": {...},                       # scalars describing the run (tiles, work multiplier, ...)
     "per_rank": [{"rank", "peak_mem_bytes", "comm_bytes", "comm_seconds"}, ...]}

Times are seconds per iteration on rank 0 between barriers; ``t_grad``, ``t_prior`` and ``t_comm`` are
disjoint parts of ``t_total`` (data-fidelity gradient compute, prior compute, communication); missing
keys are recorded as empty. Entry points are named ``"module:function"`` and imported only when a run
needs them, so a use case whose module is not installed does not break the others.

>>> get_use_case("denoise").entry
'distinv.bench.use_cases.denoise:run_denoise'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["UseCase", "register_use_case", "get_use_case", "use_case_names", "COMMON_PARAMS"]

#: Parameters every use case accepts, with their defaults.
COMMON_PARAMS: dict[str, Any] = {
    "use_case": None,
    "nprocs": 1,
    "iterations": 3,
    "warmup": 1,
    "seed": 0,
    "device": "auto",
    "threads": None,
}

#: Prior (tiling) settings shared by the imaging use cases.
TILING_PARAMS: dict[str, Any] = {
    "implementation": "deepinv",
    "patch": 128,
    "overlap": 16,
    "max_batch_size": 4,
    "blend": "crop",
    "layout": "replicated",
}


@dataclass(frozen=True)
class UseCase:
    """A benchmarkable problem.

    :param str name: registry key, e.g. ``"denoise"``.
    :param str entry: ``"module:function"`` of the rank entry point ``fn(cfg: dict) -> dict``.
    :param params: the parameters it accepts beyond :data:`COMMON_PARAMS`, with defaults; or
        ``"module:function"`` of a function returning them (imported on first use, so listing use cases
        does not import every problem's dependencies).
    :param str description: one line shown in listings.
    """

    name: str
    entry: str
    params: dict[str, Any] | str = field(default_factory=dict)
    description: str = ""

    def parameters(self) -> dict[str, Any]:
        """The accepted parameters beyond :data:`COMMON_PARAMS`, with their defaults."""
        if isinstance(self.params, str):
            return {k: v for k, v in _import(self.params, self.name)().items() if k not in COMMON_PARAMS}
        return dict(self.params)

    def load(self) -> Callable[[dict], dict]:
        """Import and return the entry point (a module-level function, so ranks can import it too)."""
        return _import(self.entry, self.name)


def _import(target: str, use_case: str) -> Callable:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"use case {use_case!r}: module {module_name!r} has no function {attr!r}") from None


_REGISTRY: dict[str, UseCase] = {}


def register_use_case(use_case: UseCase, replace: bool = False) -> UseCase:
    """Add a use case to the registry.

    :param UseCase use_case: the use case.
    :param bool replace: allow replacing one with the same name.
    """
    if not isinstance(use_case, UseCase):
        raise TypeError(f"use_case must be a UseCase, got {type(use_case).__name__}")
    if ":" not in use_case.entry:
        raise ValueError(f"entry must be 'module:function', got {use_case.entry!r}")
    if use_case.name in _REGISTRY and not replace:
        raise ValueError(f"use case {use_case.name!r} is already registered; pass replace=True to replace it")
    clash = sorted(set(use_case.params if isinstance(use_case.params, dict) else ())
                   & (set(COMMON_PARAMS) - {"use_case"}))
    if clash:
        raise ValueError(f"use case {use_case.name!r} redefines common parameter(s) {clash}")
    _REGISTRY[use_case.name] = use_case
    return use_case


def get_use_case(name: str) -> UseCase:
    """The registered use case called ``name``.

    :param str name: registry key.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown use case {name!r}; registered use cases are {use_case_names()}")
    return _REGISTRY[name]


def use_case_names() -> list[str]:
    """Names of the registered use cases, sorted."""
    return sorted(_REGISTRY)


register_use_case(UseCase(
    "denoise", "distinv.bench.use_cases.denoise:run_denoise",
    {**TILING_PARAMS, "size": 256, "sigma": 0.1, "weights": "random"},
    "tiled DRUNet prior alone: noisy image -> denoised, one prior application per iteration",
))
register_use_case(UseCase(
    "allreduce", "distinv.bench.use_cases.collectives:run_allreduce",
    {"size": 1024},
    "all-reduce of a size x size float32 image: the collective cost the scaling model needs",
))
register_use_case(UseCase(
    "images", "distinv.bench.use_cases.reconstruction:run_problem",
    "distinv.bench.use_cases.reconstruction:image_params",
    "multi-frame deblurring of a natural image: distributed physics + tiled prior inside a solver",
))
register_use_case(UseCase(
    "ct", "distinv.bench.use_cases.reconstruction:run_problem",
    "distinv.bench.use_cases.reconstruction:ct_params",
    "3D parallel-beam tomography: view groups or z-slabs across ranks + a slice-wise or 3D tiled prior",
))
register_use_case(UseCase(
    "radio", "distinv.bench.use_cases.reconstruction:run_problem",
    "distinv.bench.use_cases.reconstruction:radio_params",
    "radio interferometry: a Measurement Set's rows split over ranks (NUFFT blocks) + a tiled radio prior",
))
