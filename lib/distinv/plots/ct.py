"""plotly figures and tables of the tomography chapter, built from ``run_reconstruction`` results and
the CT benchmark documents (:mod:`distinv.bench.studies.ct`).

Every function takes plain results (dicts, small CPU tensors) and returns a figure or a table; nothing
here computes a reconstruction.
"""

from __future__ import annotations

import numpy as np
import torch

from distinv.plots.tables import display_table

__all__ = ["orthogonal_planes_figure", "sinogram_figure", "distribution_table", "memory_figure",
           "memory_table", "quality_table", "tv_grid_figure"]

_PLANES = ("axial", "coronal", "sagittal")


def orthogonal_planes_figure(planes: dict, title: str | None = None, row_height: int = 260):
    """One row per volume (truth, FBP, reconstruction, ...), one column per plane through the centre.

    Every image is shown on the truth's grey range ``[0, 1]`` clipped, so rows compare directly.

    :param dict planes: ``{label: {"axial", "coronal", "sagittal": (H, W) tensors}}``.
    :param str title: figure title.
    :param int row_height: pixels per row.

    >>> p = {"axial": torch.zeros(8, 8), "coronal": torch.zeros(8, 8), "sagittal": torch.zeros(8, 8)}
    >>> fig = orthogonal_planes_figure({"truth": p, "fbp": p})
    >>> len(fig.data), fig.layout.height
    (6, 580)
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not planes:
        raise ValueError("planes must hold at least one volume")
    labels = list(planes)
    titles = [f"{label}: {plane}" for label in labels for plane in _PLANES]
    fig = make_subplots(rows=len(labels), cols=3, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.06)
    for row, label in enumerate(labels, start=1):
        for col, plane in enumerate(_PLANES, start=1):
            image = planes[label][plane].detach().float().clamp(0, 1).cpu().numpy()
            fig.add_trace(go.Heatmap(z=image[::-1] if plane != "axial" else image, colorscale="gray", zmin=0,
                                     zmax=1, showscale=False, hovertemplate="%{z:.3f}<extra></extra>"),
                          row=row, col=col)
            fig.update_xaxes(visible=False, row=row, col=col)
            fig.update_yaxes(visible=False, scaleanchor=f"x{(row - 1) * 3 + col}" if (row, col) != (1, 1) else "x",
                             autorange="reversed" if plane == "axial" else True, row=row, col=col)
    fig.update_layout(title=title, height=row_height * len(labels) + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def sinogram_figure(sinogram: torch.Tensor, title: str = "Sinogram of the central slice"):
    """The sinogram of one slice: views down, detector cells across.

    :param torch.Tensor sinogram: ``(views, detectors)``.
    :param str title: figure title.

    >>> sinogram_figure(torch.zeros(6, 10)).data[0].z.shape
    (6, 10)
    """
    import plotly.graph_objects as go

    array = sinogram.detach().float().cpu().numpy()
    fig = go.Figure(go.Heatmap(z=array, colorscale="gray", showscale=True))
    fig.update_layout(title=title, xaxis_title="detector cell", yaxis_title="view", height=320,
                      yaxis_autorange="reversed", margin=dict(l=10, r=10, t=50, b=10))
    return fig


def _per_rank_peak(result: dict) -> list[float]:
    return [(r["peak_mem_bytes"] - r.get("baseline_mem_bytes", 0)) / 2**20 for r in result["per_rank"]]


def distribution_table(runs: dict):
    """Angles against z-slabs: quality, time per iteration, communication and memory per rank.

    :param dict runs: ``{label: result}``.

    >>> final = dict(psnr=30.0, ssim=0.9, t_per_iteration=1.0, t_grad=0.4, t_prior=0.5, t_comm=0.1,
    ...              comm_bytes_per_iteration=1e6, nprocs=2)
    >>> result = {"final": final, "config": {"distribution": "slabs"}, "per_rank": [
    ...     {"peak_mem_bytes": 2**21, "baseline_mem_bytes": 2**20}] * 2}
    >>> float(distribution_table({"slabs": result}).data.iloc[0]["data MiB / rank (max)"])
    1.0
    """
    import pandas as pd

    rows = []
    for label, result in runs.items():
        final = result["final"]
        rows.append({
            "run": label, "distribution": result["config"]["distribution"], "ranks": final["nprocs"],
            "PSNR (dB)": final["psnr"], "SSIM": final["ssim"], "s / iteration": final["t_per_iteration"],
            "data step (s)": final["t_grad"], "prior (s)": final["t_prior"], "communication (s)": final["t_comm"],
            "comm MB / iteration": final["comm_bytes_per_iteration"] / 1e6,
            "data MiB / rank (max)": max(_per_rank_peak(result)),
        })
    decimals = {"PSNR (dB)": 2, "SSIM": 3, "s / iteration": 2, "data step (s)": 2, "prior (s)": 2,
                "communication (s)": 3, "comm MB / iteration": 2, "data MiB / rank (max)": 0}
    return display_table(pd.DataFrame(rows), {c: f"{{:.{d}f}}" for c, d in decimals.items()})


def quality_table(document: dict):
    """The quality benchmark: FBP, CGLS, TV at each weight of its grid, and PnP, on one held-out phantom.

    :param dict document: what ``python -m distinv.bench.studies.ct quality`` wrote (``"rows"``: method, weight,
        PSNR, SSIM, seconds).

    >>> quality_table({"rows": [{"method": "fbp", "psnr": 25.0, "ssim": 0.7, "seconds": 1.0}]}).data.columns.tolist()
    ['method', 'PSNR (dB)', 'SSIM', 'seconds']
    """
    import pandas as pd

    frame = pd.DataFrame(document["rows"]).rename(columns={
        "method": "method", "tv_weight": "TV weight", "psnr": "PSNR (dB)", "ssim": "SSIM", "seconds": "seconds"})
    return display_table(frame, {"PSNR (dB)": "{:.2f}", "SSIM": "{:.3f}", "seconds": "{:.1f}", "TV weight": "{:g}"})


def tv_grid_figure(document: dict):
    """PSNR of TV against its weight (log axis), with FBP and PnP as horizontal lines.

    :param dict document: the quality benchmark's document.

    >>> doc = {"rows": [{"method": "tv", "tv_weight": 1.0, "psnr": 30.0}, {"method": "fbp", "psnr": 25.0}]}
    >>> len(tv_grid_figure(doc).data)
    1
    """
    import plotly.graph_objects as go

    tv = sorted((r for r in document["rows"] if r["method"] == "tv"), key=lambda r: r["tv_weight"])
    fig = go.Figure(go.Scatter(x=[r["tv_weight"] for r in tv], y=[r["psnr"] for r in tv], mode="lines+markers",
                               name="TV"))
    for row in document["rows"]:
        if row["method"] != "tv":
            fig.add_hline(y=row["psnr"], line_dash="dash", annotation_text=row["method"])
    fig.update_layout(xaxis_type="log", xaxis_title="TV weight", yaxis_title="PSNR (dB)", height=360,
                      title="TV's weight, tuned in the same run")
    return fig


def memory_figure(document: dict):
    """Per-rank peak memory above the process baseline against the number of ranks (log-log), per size.

    :param dict document: what ``python -m distinv.bench.studies.ct memory`` wrote (``"rows"``: size, nprocs,
        ``data_mib`` = max over ranks of peak minus baseline).

    >>> doc = {"rows": [{"size": 32, "nprocs": 1, "data_mib": 8.0}, {"size": 32, "nprocs": 2, "data_mib": 4.0}]}
    >>> [trace.name for trace in memory_figure(doc).data]
    ['32³ measured', '32³ ideal 1/P']
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    sizes = sorted({r["size"] for r in document["rows"]})
    for size in sizes:
        rows = sorted((r for r in document["rows"] if r["size"] == size), key=lambda r: r["nprocs"])
        ranks = [r["nprocs"] for r in rows]
        fig.add_trace(go.Scatter(x=ranks, y=[r["data_mib"] for r in rows], mode="lines+markers",
                                 name=f"{size}³ measured"))
        first = rows[0]
        fig.add_trace(go.Scatter(x=ranks, y=[first["data_mib"] * first["nprocs"] / p for p in ranks], mode="lines",
                                 line_dash="dot", name=f"{size}³ ideal 1/P"))
    fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="ranks P",
                      yaxis_title="peak memory per rank above the process baseline (MiB)", height=400,
                      title="Memory per rank, z-slab layout")
    fig.update_xaxes(tickvals=sorted({r["nprocs"] for r in document["rows"]}))
    return fig


def memory_table(document: dict):
    """The memory benchmark's rows: size, ranks, baseline, peak and their difference per rank, and the
    ratio to the ideal ``1/P`` of the one-rank figure.

    :param dict document: the memory benchmark's document.

    >>> doc = {"rows": [{"size": 32, "nprocs": 1, "data_mib": 8.0, "baseline_mib": 500.0, "peak_mib": 508.0}]}
    >>> float(memory_table(doc).data.iloc[0]["vs ideal 1/P"])
    1.0
    """
    import pandas as pd

    rows = []
    for row in document["rows"]:
        one = next((r for r in document["rows"] if r["size"] == row["size"] and r["nprocs"] == 1), None)
        ideal = one["data_mib"] / row["nprocs"] if one else np.nan
        rows.append({"size": f"{row['size']}³", "ranks": row["nprocs"], "baseline MiB": row.get("baseline_mib"),
                     "peak MiB": row.get("peak_mib"), "above baseline MiB": row["data_mib"],
                     "vs ideal 1/P": row["data_mib"] / ideal if ideal else np.nan})
    return display_table(pd.DataFrame(rows), {"baseline MiB": "{:.0f}", "peak MiB": "{:.0f}",
                                              "above baseline MiB": "{:.0f}", "vs ideal 1/P": "{:.2f}"})
