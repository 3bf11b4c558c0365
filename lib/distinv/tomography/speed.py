r"""Benchmark: our sparse parallel-beam projector against deepinv's torch ``Tomography`` on the CPU.

One JSON document on stdout (and with ``--out FILE`` also there, atomically; an existing file is refused
unless ``--force``). Operators (all float32, the same angles over 180°):

- ``sparse/<backend>`` (``--backends``): :class:`~distinv.tomography.projector.ParallelBeamProjector` on the
  **whole** volume ``(1, 1, N, N, N)``; torch's intra-op threads, or one thread for scipy's sparse products;
- ``deepinv/adjoint_via_backprop`` and ``deepinv/adjoint_via_iradon``: ``deepinv.physics.Tomography``
  (``normalize=False``, ``circle=False``) with ``adjoint_via_backprop=True`` (the exact adjoint, through
  autograd) or ``False`` (deepinv's inverse-Radon back-projection), timed on a slab of ``--slab`` slices
  (a batch of images) and **scaled linearly** to ``N`` slices: the operator acts slice by slice, so its
  cost is :math:`O(Z)` (the JSON says from how many slices).

Per operator: median wall times of :math:`A` and :math:`A^\top` over ``--rounds`` rounds of ``--repeats``
runs (after ``--warmup`` untimed runs), every round timing every operator in turn; the medians of each
round; and two adjointness errors in float64 on 2 slices: ``adjoint_mismatch``, the single random pair
figure :math:`|\langle Ax, y\rangle - \langle x, A^\top y\rangle| / (\|Ax\|\|y\|)` (for random :math:`x, y`
an adjoint error :math:`E` shows only as about :math:`\|E\| / \sqrt m`), and ``adjointness_test``,
deepinv's Monte-Carlo estimate of :math:`\|A - B^\top\|_F / \|A\|_F` (5 samples), which is not diluted.
``ratios``: deepinv's scaled time over the reference sparse backend's, per deepinv adjoint mode, as the
median of the per-round ratios (paired: a shared machine's slow drifts cancel) and as the ratio of the
overall medians.

Example (the reference run of the CT chapter)::

    OMP_NUM_THREADS=2 python -m distinv.tomography.speed --size 256 --views 180 --repeats 5 --rounds 3 \
        --backends torch scipy --out speed.json

Measured here (2 cores shared with other jobs: load average 9.5–18, median 13, so every absolute time is
inflated, the paired ratios much less): 15 min, peak RSS 6.0 GB. Whole volume 256³, float32, A / Aᵀ:
sparse torch 8.14 s / 5.28 s, sparse scipy 6.05 s / 5.24 s (matrices built in 10.6 s); deepinv scaled
from 8 slices: backprop adjoint 100 s / 325 s, inverse-Radon adjoint 94 s / 149 s. Paired ratios deepinv
over sparse torch: A 12.9× and Aᵀ 58.4× (backprop), A 11.7× and Aᵀ 25.8× (inverse Radon). Adjointness
(float64): single-pair mismatch 8e-18 (sparse), 3e-18 (deepinv backprop), 2.5e-5 (deepinv inverse Radon);
``adjointness_test`` 1.8e-15, 1.3e-15 and 0.17 (deepinv's inverse-Radon adjoint is 17 % off at 256²).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from distinv.bench.output import add_output_arguments, emit_document, refuse_existing_output
from distinv.tomography.cone_beam import adjoint_mismatch
from distinv.tomography.geometry import ParallelBeamGeometry
from distinv.tomography.projector import BACKENDS, DEFAULT_BACKEND, ParallelBeamProjector, projection_matrix

__all__ = ["TimedOperator", "sparse_operator", "deepinv_operator", "time_rounds", "run_benchmark", "main"]

#: Slices of the float64 adjointness checks, and samples of deepinv's ``adjointness_test``.
_CHECK_SLICES, _TEST_SAMPLES = 2, 5
_DEEPINV_MODES = {"adjoint_via_backprop": True, "adjoint_via_iradon": False}


@dataclass
class TimedOperator:
    """One operator under test: its two products on fixed inputs, and how its times scale to the volume.

    :param str name: ``"sparse/<backend>"`` or ``"deepinv/<mode>"``.
    :param callable forward: computes :math:`A x` on the timed input.
    :param callable adjoint: computes :math:`A^\top y` on the timed input.
    :param float scale: measured time × ``scale`` = time on the whole volume.
    :param int slices: slices in the timed input.
    :param dict info: extra fields of its JSON row (threads, matrix size, adjointness, ...).
    """

    name: str
    forward: Callable[[], object]
    adjoint: Callable[[], object]
    scale: float
    slices: int
    info: dict


def _random(shape, dtype, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _adjointness(physics, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The two adjointness figures of an operator, in float64 (see the module notes)."""
    torch.manual_seed(0)  # deepinv's test draws from the global generator
    test = physics.adjointness_test(x, num_samples=_TEST_SAMPLES)
    return {"adjoint_mismatch": adjoint_mismatch(physics, x, y), "adjointness_test": float(test)}


def sparse_operator(geometry: ParallelBeamGeometry, backend: str) -> TimedOperator:
    """:class:`ParallelBeamProjector` on the whole volume (float32), with its float64 adjointness error.

    :param ParallelBeamGeometry geometry: the scan; the volume has ``geometry.size`` slices.
    :param str backend: one of :data:`~distinv.tomography.projector.BACKENDS`.

    >>> operator = sparse_operator(ParallelBeamGeometry(size=16, views=4), "scipy")
    >>> operator.info["threads"], operator.info["adjoint_mismatch"] < 1e-12
    (1, True)
    """
    physics = ParallelBeamProjector(geometry, backend=backend)
    n = geometry.size
    x = _random((1, 1, n, n, n), torch.float32, 0)
    y = physics.A(x)
    matrix = projection_matrix(geometry)
    matrix_bytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    double = ParallelBeamProjector(geometry, dtype=torch.float64, backend=backend)
    x64 = _random((1, 1, _CHECK_SLICES, n, n), torch.float64, 1)
    y64 = _random((1, 1, _CHECK_SLICES) + double.measurement_size, torch.float64, 2)
    stored = backend != "matrix-free"  # the matrix-free backend computes the same weights per product
    info = {"threads": 1 if backend == "scipy" else torch.get_num_threads(), "nnz": int(matrix.nnz),
            "matrices_mb": round(2 * matrix_bytes / 2 ** 20, 1) if stored else 0.0,  # M and its transpose
            **_adjointness(double, x64, y64)}
    return TimedOperator(f"sparse/{backend}", lambda: physics.A(x), lambda: physics.A_adjoint(y), 1.0, n, info)


def _deepinv_tomography(geometry: ParallelBeamGeometry, backprop: bool, dtype: torch.dtype):
    from deepinv.physics import Tomography

    angles = torch.tensor(np.rad2deg(geometry.angles()), dtype=dtype)
    return Tomography(angles=angles, img_width=geometry.size, circle=False, normalize=False,
                      adjoint_via_backprop=backprop, parallel_computation=True, dtype=dtype)


def deepinv_operator(geometry: ParallelBeamGeometry, mode: str, slab: int) -> TimedOperator:
    """deepinv's ``Tomography`` on a slab of ``slab`` slices (float32), scaled to ``geometry.size`` slices.

    :param ParallelBeamGeometry geometry: the scan.
    :param str mode: ``"adjoint_via_backprop"`` or ``"adjoint_via_iradon"``.
    :param int slab: slices timed (a batch of images), ``>= 1``.

    >>> operator = deepinv_operator(ParallelBeamGeometry(size=16, views=4), "adjoint_via_backprop", slab=2)
    >>> operator.scale, operator.info["adjoint_mismatch"] < 1e-6
    (8.0, True)
    """
    physics = _deepinv_tomography(geometry, _DEEPINV_MODES[mode], torch.float32)
    n = geometry.size
    x = _random((slab, 1, n, n), torch.float32, 0)
    y = physics.A(x)
    double = _deepinv_tomography(geometry, _DEEPINV_MODES[mode], torch.float64)
    x64 = _random((_CHECK_SLICES, 1, n, n), torch.float64, 1)
    y64 = _random(tuple(double.A(x64).shape), torch.float64, 2)
    info = {"threads": torch.get_num_threads(), **_adjointness(double, x64, y64)}
    return TimedOperator(f"deepinv/{mode}", lambda: physics.A(x), lambda: physics.A_adjoint(y), n / slab, slab, info)


def time_rounds(operators: list[TimedOperator], repeats: int, warmup: int = 1, rounds: int = 1) -> dict[str, dict]:
    """Time every operator's :math:`A` and :math:`A^\top`, round after round, each round all operators in turn.

    :param list operators: the operators.
    :param int repeats: timed runs per product and round, ``>= 1``.
    :param int warmup: untimed runs per product before the first round.
    :param int rounds: rounds, ``>= 1``.
    :return: per operator name: ``{"A": [round medians], "A_adjoint": [round medians], "A_times": [...], ...}``
        in seconds as measured (not scaled).

    >>> out = time_rounds([TimedOperator("id", lambda: None, lambda: None, 1.0, 1, {})], repeats=2, rounds=3)
    >>> len(out["id"]["A"]), len(out["id"]["A_adjoint_times"])
    (3, 6)
    """
    for operator in operators:
        for _ in range(warmup):
            operator.forward()
            operator.adjoint()
    out = {op.name: {"A": [], "A_adjoint": [], "A_times": [], "A_adjoint_times": []} for op in operators}
    for _ in range(rounds):
        for operator in operators:
            for product, fn in (("A", operator.forward), ("A_adjoint", operator.adjoint)):
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                out[operator.name][product].append(statistics.median(times))
                out[operator.name][f"{product}_times"].extend(times)
    return out


def run_benchmark(size: int, views: int, repeats: int = 5, warmup: int = 1, slab: int = 8, rounds: int = 1,
                  backends: tuple[str, ...] = (DEFAULT_BACKEND,), deepinv: bool = True) -> dict:
    """The whole comparison, as a JSON-ready dict (see the module notes).

    :param int size: volume side :math:`N` (``N`` slices of ``N × N``).
    :param int views: projection angles over 180°.
    :param int repeats: timed runs per product and round, ``>= 1``.
    :param int warmup: untimed runs first.
    :param int slab: slices on which deepinv's operator is timed, ``1 <= slab <= size``.
    :param int rounds: rounds of interleaved timings, ``>= 1``.
    :param tuple backends: sparse backends to time; ratios use :data:`DEFAULT_BACKEND` if timed, else the first.
    :param bool deepinv: also time deepinv's ``Tomography``.
    """
    from distinv.bench.provenance import collect_provenance

    geometry = ParallelBeamGeometry(size=size, views=views)
    if not 1 <= slab <= size:
        raise ValueError(f"slab must be an integer in [1, {size}] (the volume has {size} slices), got {slab}")
    if repeats < 1 or rounds < 1 or warmup < 0:
        raise ValueError(f"repeats and rounds must be >= 1 and warmup >= 0, got {repeats}, {rounds}, {warmup}")
    start = time.perf_counter()
    projection_matrix(geometry), projection_matrix(geometry, transpose=True)
    build = time.perf_counter() - start
    operators = [sparse_operator(geometry, backend) for backend in backends]
    if deepinv:
        operators += [deepinv_operator(geometry, mode, slab) for mode in _DEEPINV_MODES]
    gc.collect()
    timings = time_rounds(operators, repeats, warmup, rounds)
    rows = {}
    for operator in operators:
        timing = timings[operator.name]
        row = {"A_s": statistics.median(timing["A_times"]) * operator.scale,
               "A_adjoint_s": statistics.median(timing["A_adjoint_times"]) * operator.scale,
               "measured_slices": operator.slices, "scale": operator.scale,
               "round_medians_A_s": [t * operator.scale for t in timing["A"]],
               "round_medians_A_adjoint_s": [t * operator.scale for t in timing["A_adjoint"]]}
        rows[operator.name] = {**row, **operator.info}
    document = {
        "benchmark": "distinv.tomography.speed",
        "geometry": geometry.to_dict(),
        "volume": [1, 1, size, size, size],
        "dtype": "float32",
        "repeats": repeats, "warmup": warmup, "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "matrix_build_s": build,
        "operators": rows,
        "provenance": collect_provenance(),
    }
    if deepinv:
        document["deepinv_scaling"] = (f"deepinv's times were measured on {slab} of {size} slices (a batch of "
                                       f"{slab} images) and multiplied by {size / slab:g}: the operator is "
                                       "slice-separable, its cost is linear in the number of slices")
        reference = f"sparse/{DEFAULT_BACKEND if DEFAULT_BACKEND in backends else backends[0]}"
        document["ratios"] = {"reference": reference}
        for mode in _DEEPINV_MODES:
            theirs, ours = rows[f"deepinv/{mode}"], rows[reference]
            document["ratios"][mode] = {}
            for product in ("A", "A_adjoint"):
                rounds_theirs, rounds_ours = theirs[f"round_medians_{product}_s"], ours[f"round_medians_{product}_s"]
                document["ratios"][mode][product] = {
                    "paired_median": statistics.median(a / b for a, b in zip(rounds_theirs, rounds_ours)),
                    "of_medians": theirs[f"{product}_s"] / ours[f"{product}_s"],
                }
    return document


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distinv.tomography.speed", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="volume side N (N slices of N x N)")
    parser.add_argument("--views", type=int, default=180, help="projection angles over 180 degrees")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per product and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (paired ratios)")
    parser.add_argument("--slab", type=int, default=8, help="slices on which deepinv's operator is timed")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=[DEFAULT_BACKEND],
                        help="sparse backends to time")
    parser.add_argument("--skip-deepinv", action="store_true", help="time the sparse backends only")
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Command line: parse, refuse an existing ``--out``, run, print (and write) the JSON document."""
    parser = _parser()
    args = parser.parse_args(argv)
    refuse_existing_output(parser, args)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        document = run_benchmark(args.size, args.views, args.repeats, args.warmup, args.slab, args.rounds,
                                 tuple(args.backends), deepinv=not args.skip_deepinv)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    emit_document(document, args)
    return document


if __name__ == "__main__":
    main(sys.argv[1:])
