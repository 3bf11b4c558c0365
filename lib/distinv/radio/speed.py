"""Benchmark: the radio operator's two backends, A and Aᴴ, at one image size and visibility count.

The (u, v) points are a MeerKAT track (:class:`~distinv.radio.observation.ObservationConfig` sampled to
``--vis`` visibilities) and the cell is 0.9 of the Nyquist limit of its longest baseline, so the
image holds the whole uv coverage as a real observation does. Both backends run in single precision
(deepinv's is complex64 only) on the same input, with the same number of threads; each time is the
median of ``--repeats`` runs after one warm-up, and the ratios are measured in the same run. Prints
one JSON object::

    python -m distinv.radio.speed --npix 512 --vis 1e6 [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

__all__ = ["main", "measure_backends"]


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (plans, interpolation tables)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def measure_backends(npix: int, n_visibilities: int, repeats: int = 5, threads: int | None = None,
                     seed: int = 0) -> dict:
    """Median A and Aᴴ seconds of both backends, their ratios and their agreement (module notes).

    :param int npix: image side.
    :param int n_visibilities: number of (u, v) points.
    :param int repeats: timed runs per measurement, ``>= 1`` (after one warm-up).
    :param int threads: torch (and FINUFFT) threads; default: torch's current setting.
    :param int seed: seed of the random test image and measurements.
    """
    import torch

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(npix, n_visibilities, repeats, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(npix: int, n_visibilities: int, repeats: int, seed: int) -> dict:
    import torch

    from distinv.radio.nufft import RadioNUFFT, max_cell_rad
    from distinv.radio.observation import ObservationConfig

    uvw = ObservationConfig().with_visibilities(n_visibilities).uvw_wavelengths()[:n_visibilities]
    uv = torch.from_numpy(uvw[:, :2].copy())
    cell = 0.9 * max_cell_rad(float(uv.abs().max()))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, npix, npix, generator=generator)
    y = torch.randn(1, 1, n_visibilities, dtype=torch.complex64, generator=generator)
    result = {"npix": npix, "n_visibilities": n_visibilities, "cell_arcsec": math.degrees(cell) * 3600,
              "threads": torch.get_num_threads(), "repeats": repeats, "dtype": "float32 / complex64",
              "machine": platform.processor() or platform.machine()}
    outputs = {}
    for backend in ("finufft", "deepinv"):
        physics = RadioNUFFT(uv, npix, cell, backend=backend)
        result[backend] = {"A_s": _median_time(lambda: physics.A(x), repeats),
                           "A_adjoint_s": _median_time(lambda: physics.A_adjoint(y), repeats)}
        outputs[backend] = (physics.A(x), physics.A_adjoint(y))
    result["speedup_finufft_over_deepinv"] = {
        op: result["deepinv"][f"{op}_s"] / result["finufft"][f"{op}_s"] for op in ("A", "A_adjoint")}
    result["relative_difference"] = {
        op: float((outputs["finufft"][k] - outputs["deepinv"][k]).norm() / outputs["deepinv"][k].norm())
        for k, op in enumerate(("A", "A_adjoint"))}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.radio.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--npix", type=int, default=512)
    parser.add_argument("--vis", type=float, default=1e6, help="number of visibilities (1e6 accepted)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.vis < 1 or args.vis != int(args.vis):
        parser.error(f"--vis must be a whole number >= 1, got {args.vis}")
    print(json.dumps(measure_backends(args.npix, int(args.vis), args.repeats, args.threads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
