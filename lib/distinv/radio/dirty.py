r"""The dirty image of a Measurement Set, its rows split over ranks.

Each rank reads only its block of rows (:func:`~distinv.radio.ms.rows_for_rank`), forms its partial
:math:`\mathrm{Re}(F_r^H W_r V_r)` and :math:`\sum w_r` (:mod:`distinv.radio.nufft`), and one all-reduce
(site ``"radio.dirty.allreduce"``) sums them, so that

.. math::

    \mathrm{dirty} = \frac{\sum_r \mathrm{Re}(F_r^H W_r V_r)}{\sum_r \sum_k w_{r,k}}

is the same image on every rank count, with an unresolved source at the phase centre peaking at its
Stokes-I flux. Before that, one small all-reduce (``"radio.dirty.checks"``: the longest baseline and the
number of samples left) lets every rank raise the same error when every sample is flagged or when
the cell is too large for the longest baseline. The image is ``(N, N)``, ``img[i, j]`` at
:math:`l = (j - \lfloor N/2 \rfloor)\,\mathrm{cell}`, :math:`m = (i - \lfloor N/2 \rfloor)\,\mathrm{cell}`
(``l`` towards east, ``m`` towards north).

Command line::

    python -m distinv.radio.dirty PATH.ms --npix 512 --cell 1.5 [--column DATA] [--nprocs 2] \
        [--backend finufft] --out dirty.npy [--force]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["DirtyImageConfig", "dirty_image", "dirty_image_rank", "main"]

_ARCSEC = math.pi / (180 * 3600)


@dataclass(frozen=True)
class DirtyImageConfig:
    """What to image.

    :param str path: the Measurement Set.
    :param int npix: image side ``N``, ``>= 2``.
    :param float cell_arcsec: pixel size in arcseconds, ``> 0``.
    :param str column: the data column.
    :param str backend: ``"finufft"`` or ``"deepinv"`` (:mod:`distinv.radio.nufft`).
    :param str weight_column: ``"auto"``, ``"WEIGHT_SPECTRUM"``, ``"WEIGHT"`` or ``"none"``.
    """

    path: str
    npix: int
    cell_arcsec: float
    column: str = "DATA"
    backend: str = "finufft"
    weight_column: str = "auto"

    def __post_init__(self):
        from distinv.radio.nufft import BACKENDS

        if isinstance(self.npix, bool) or not isinstance(self.npix, int) or self.npix < 2:
            raise ValueError(f"npix must be an integer >= 2, got {self.npix!r}")
        if (isinstance(self.cell_arcsec, bool) or not isinstance(self.cell_arcsec, (int, float))
                or not math.isfinite(self.cell_arcsec) or self.cell_arcsec <= 0):
            raise ValueError(f"cell_arcsec must be a positive number of arcseconds, got {self.cell_arcsec!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @property
    def cell_rad(self) -> float:
        """The pixel size in radians."""
        return self.cell_arcsec * _ARCSEC


def dirty_image_rank(config: DirtyImageConfig) -> dict | None:
    """Rank function (importable, for :func:`distinv.launch`): read this rank's rows, one all-reduce.

    :return: on rank 0 ``{"image": (N, N) float64 array, "n_visibilities", "sum_weights", "n_rows",
        "stokes_i", "read_s", "imaging_s"}`` (totals over ranks, times of rank 0); ``None`` elsewhere.
    """
    import torch

    from distinv.distributed import comm
    from distinv.radio.ms import open_measurement_set, read_rows, require_samples, rows_for_rank
    from distinv.radio.nufft import RadioNUFFT, check_cell

    rank, world = comm.world()
    tic = time.perf_counter()
    info = open_measurement_set(config.path, column=config.column, weight_column=config.weight_column)
    start, stop = rows_for_rank(info.n_rows, world, rank)
    block = read_rows(info, start, stop)
    read_s = time.perf_counter() - tic

    tic = time.perf_counter()
    uv_max = float(np.abs(block.uv).max()) if block.n_visibilities else 0.0
    checks = torch.tensor([uv_max, float(block.n_visibilities)], dtype=torch.float64)
    comm.all_reduce(checks, site="radio.dirty.checks", op=torch.distributed.ReduceOp.MAX)
    require_samples(int(checks[1]), info)
    check_cell(config.cell_rad, float(checks[0]))

    total = torch.zeros(config.npix * config.npix + 2, dtype=torch.float64)
    if block.n_visibilities:
        physics = RadioNUFFT(block.uv, config.npix, config.cell_rad, weights=block.weight, backend=config.backend)
        vis = torch.from_numpy(block.vis)
        partial = physics.A_adjoint(physics.weigh(vis)[None, None])[0, 0]
        total[:-2] = partial.reshape(-1).to(torch.float64)
        total[-2] = physics.sum_weights
        total[-1] = block.n_visibilities
    comm.all_reduce(total, site="radio.dirty.allreduce")
    image = (total[:-2] / total[-2]).reshape(config.npix, config.npix)
    imaging_s = time.perf_counter() - tic
    if rank != 0:
        return None
    return {"image": image.numpy(), "n_visibilities": int(total[-1]), "sum_weights": float(total[-2]),
            "n_rows": info.n_rows, "stokes_i": info.stokes_i, "read_s": read_s, "imaging_s": imaging_s}


def _unwrap_rank_error(error) -> Exception:
    """A ValueError raised on a rank, as the same ValueError in the caller (other errors unchanged)."""
    if getattr(error, "exc_type", "") == "ValueError":
        last = error.remote_traceback.strip().splitlines()[-1]
        return ValueError(last.partition(": ")[2] or last)
    return error


def dirty_image(path: str, npix: int, cell_arcsec: float, column: str = "DATA", nprocs: int = 1,
                backend: str = "finufft", weight_column: str = "auto") -> dict:
    """The dirty image of an MS on ``nprocs`` ranks (see the module notes).

    :param str path: the Measurement Set.
    :param int npix: image side.
    :param float cell_arcsec: pixel size in arcseconds.
    :param str column: the data column.
    :param int nprocs: ranks; at most the number of rows.
    :param str backend: ``"finufft"`` or ``"deepinv"``.
    :param str weight_column: see :func:`~distinv.radio.ms.open_measurement_set`.
    :return: the dict of :func:`dirty_image_rank` (``"image"`` is ``(npix, npix)``).
    :raises FileNotFoundError: no such path.
    :raises ValueError: not an MS, a missing column, more ranks than rows, every row flagged, or a cell too
        large for the longest baseline.
    """
    import distinv
    from distinv.radio.ms import open_measurement_set, rows_for_rank

    config = DirtyImageConfig(str(path), npix, cell_arcsec, column, backend, weight_column)
    info = open_measurement_set(config.path, column=column, weight_column=weight_column)
    rows_for_rank(info.n_rows, nprocs, 0)
    try:
        return distinv.launch(dirty_image_rank, config, nprocs=nprocs)
    except distinv.RankError as error:
        unwrapped = _unwrap_rank_error(error)
        if unwrapped is error:
            raise
        raise unwrapped from error


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as stream:  # a file object: np.save would append ".npy" to a temporary name
        np.save(stream, array)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.radio.dirty",
                                     description="Dirty image of a Measurement Set (Stokes I, natural weighting).")
    parser.add_argument("ms", help="path of the Measurement Set")
    parser.add_argument("--npix", type=int, required=True, help="image side N (pixels)")
    parser.add_argument("--cell", type=float, required=True, help="pixel size in arcseconds")
    parser.add_argument("--column", default="DATA", help="data column (default DATA)")
    parser.add_argument("--nprocs", type=int, default=1, help="ranks reading rows (default 1)")
    parser.add_argument("--backend", default="finufft", help="finufft (default) or deepinv")
    parser.add_argument("--weight-column", default="auto", help="auto, WEIGHT_SPECTRUM, WEIGHT or none")
    parser.add_argument("--out", required=True, help="the .npy file to write")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    from distinv.files import write_atomically

    out = Path(args.out)
    try:
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists: pass --force to overwrite it")
        result = dirty_image(args.ms, args.npix, args.cell, column=args.column, nprocs=args.nprocs,
                             backend=args.backend, weight_column=args.weight_column)
        write_atomically(out, lambda tmp: _save_npy(tmp, result["image"]), overwrite=args.force,
                         refusal_hint="pass --force to overwrite it")
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {key: value for key, value in result.items() if key != "image"}
    summary.update(out=str(out), config=asdict(DirtyImageConfig(args.ms, args.npix, args.cell, args.column,
                                                                args.backend, args.weight_column)),
                   nprocs=args.nprocs, peak=float(result["image"].max()))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
