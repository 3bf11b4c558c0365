"""Tables, numbers and figures of chapter 00 (distributed basics), built from :func:`distinv.equivalence.run_basics`
results."""

from __future__ import annotations

from distinv.plots.images import image_grid, stretch
from distinv.plots.tables import display_table

__all__ = ["equivalence_table", "equality_numbers", "operators_figure", "timing_figure"]

_HEADERS = {"quantity": "quantity", "max_abs_diff": "max |distributed − reference|",
            "psnr_db": "PSNR vs reference (dB)", "time_distributed_s": "time on {nprocs} ranks (s)",
            "time_single_s": "time of reference (s)"}


def equivalence_table(result: dict):
    """One row per quantity: largest difference to its single-process reference, PSNR against it, times.

    :param dict result: rank 0's result of ``run_basics``.
    :return: a :class:`pandas.io.formats.style.Styler` (its ``data``: the rows), without an index column.

    >>> row = dict(quantity="forward A x", max_abs_diff=0.0, psnr_db=float("inf"), time_distributed_s=0.01,
    ...            time_single_s=0.02)
    >>> list(equivalence_table({"rows": [row], "world_size": 2}).data.columns)[3]
    'time on 2 ranks (s)'
    """
    import pandas as pd

    headers = {key: label.format(nprocs=result["world_size"]) for key, label in _HEADERS.items()}
    table = pd.DataFrame(result["rows"])[list(headers)].rename(columns=headers)
    return display_table(table, dict(zip(list(headers.values())[1:], ("{:.2e}", "{:.1f}", "{:.4f}", "{:.4f}"))))


def equality_numbers(result: dict) -> dict:
    """The numbers of the chapter's conclusion: how closely the distributed forward, adjoint and tiled denoiser
    match their single-process references, and how the tiled denoiser compares with the untiled one.

    :param dict result: rank 0's result of ``run_basics``.
    :return: ``{"ranks": int, "max_abs_diff": float, "tiling_psnr_db": float}``: the ranks, the largest
        absolute difference over every quantity but the untiled comparison, and the PSNR of the tiled denoiser
        against the untiled one.

    >>> rows = [dict(quantity="forward A x", max_abs_diff=1e-7, psnr_db=140.0),
    ...         dict(quantity="adjoint Aᵀ y", max_abs_diff=3e-7, psnr_db=130.0),
    ...         dict(quantity="tiled denoiser vs untiled", max_abs_diff=0.1, psnr_db=50.04)]
    >>> equality_numbers({"rows": rows, "world_size": 2})
    {'ranks': 2, 'max_abs_diff': 3e-07, 'tiling_psnr_db': 50.04}
    """
    rows = {row["quantity"]: row for row in result["rows"]}
    worst = max(row["max_abs_diff"] for quantity, row in rows.items() if "untiled" not in quantity)
    return {"ranks": int(result["world_size"]), "max_abs_diff": float(worst),
            "tiling_psnr_db": float(rows["tiled denoiser vs untiled"]["psnr_db"])}


def operators_figure(images: dict, title: str = "Operators and denoisers on the test image"):
    """Ground truth, first measurement, back-projection, noisy input and both denoiser outputs, each
    stretched to its own range (a back-projection sums K frames, so its range is not the image's).

    :param dict images: ``result["images"]`` of ``run_basics``: ``(B, C, H, W)`` tensors.
    """
    panels = {"ground truth x": "x", "y₁ = A₁x": "y0", "Aᵀy (distributed)": "adjoint", "noisy x + ε": "noisy",
              "tiled denoiser": "tiled", "untiled denoiser": "untiled"}
    return image_grid({label: stretch(images[key][0]) for label, key in panels.items()}, columns=3, title=title,
                      height=280)


def timing_figure(distributed: dict, single: dict, title: str):
    """Median time of each operation on the distributed run's ranks and on one rank, grouped bars, log scale.

    :param dict distributed: ``run_basics`` result on several ranks.
    :param dict single: ``run_basics`` result on one rank (launched with ``nprocs=1``).
    """
    import plotly.graph_objects as go

    quantities = [row["quantity"] for row in distributed["rows"]]
    series = {f"{distributed['world_size']} ranks": distributed, "1 rank (launch, nprocs=1)": single}
    fig = go.Figure([go.Bar(name=name, x=quantities, y=[row["time_distributed_s"] for row in result["rows"]])
                     for name, result in series.items()])
    fig.update_layout(barmode="group", yaxis_title="median time (s)", yaxis_type="log", title=title)
    return fig
