"""Tables, sentences and figures of chapter 00 (distributed basics), built from :func:`distinv.equivalence.run_basics`
results."""

from __future__ import annotations

from distinv.plots.images import image_grid, stretch
from distinv.plots.tables import display_table

__all__ = ["equivalence_table", "equality_sentence", "operators_figure", "timing_figure"]

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


def equality_sentence(result: dict) -> str:
    """How closely the distributed forward, adjoint and tiled denoiser match their references, and how the
    tiled denoiser compares with the untiled one.

    >>> rows = [dict(quantity="forward A x", max_abs_diff=1e-7, psnr_db=140.0),
    ...         dict(quantity="tiled denoiser vs untiled", max_abs_diff=0.1, psnr_db=50.04)]
    >>> print(equality_sentence({"rows": rows, "world_size": 2}))  # doctest: +NORMALIZE_WHITESPACE
    On 2 ranks the forward operator, its adjoint and the tiled denoiser match their single-process references
    to within **1.0e-07** (float32 rounding). The tiled denoiser agrees with the untiled one to **50.0 dB**:
    that gap is the tiling itself (cropped overlaps), not the distribution.
    """
    rows = {row["quantity"]: row for row in result["rows"]}
    worst = max(row["max_abs_diff"] for quantity, row in rows.items() if "untiled" not in quantity)
    return (f"On {result['world_size']} ranks the forward operator, its adjoint and the tiled denoiser match their "
            f"single-process references to within **{worst:.1e}** (float32 rounding). The tiled denoiser agrees "
            f"with the untiled one to **{rows['tiled denoiser vs untiled']['psnr_db']:.1f} dB**: that gap is the "
            "tiling itself (cropped overlaps), not the distribution.")


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
