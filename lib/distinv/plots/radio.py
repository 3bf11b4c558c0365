"""plotly figures and tables of the radio chapter, built from ``run_reconstruction`` results (``problem="radio"``)
and the radio benchmark documents (:mod:`distinv.bench.studies.radio`).

Every function takes plain results (dicts, arrays, small CPU tensors) and returns a figure or a table; nothing
here computes a reconstruction. Sky images are drawn with north up and east left, as astronomers show them:
``img[i, j]`` is at ``l = (j - N//2)·cell`` (east), ``m = (i - N//2)·cell`` (north).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from distinv.plots.tables import display_table

__all__ = ["array_figure", "uv_coverage_figure", "sky_figure", "snr_figure", "gradient_figure",
           "scaling_model_figure", "runs_table", "quality_table", "gradient_table", "log_display", "ranks_table",
           "model_table"]

_RANK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def array_figure(array, height: int = 420):
    """The dishes of an array on the ground (east and north in km about the reference).

    :param distinv.radio.array.AntennaArray array: the array.

    >>> from distinv.radio.array import load_array
    >>> len(array_figure(load_array()).data[0].x)
    64
    """
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=array.enu[:, 0] / 1e3, y=array.enu[:, 1] / 1e3, mode="markers", text=list(array.names),
                               marker={"size": 7}, name=array.name))
    fig.update_layout(title=f"{array.name}: {array.n_antennas} dishes", xaxis_title="east (km)",
                      yaxis_title="north (km)", height=height, width=height + 60, showlegend=False)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def uv_coverage_figure(uv_by_rank: list, height: int = 440):
    """The (u, v) points each rank read (a subsample), and their mirror :math:`(-u, -v)`, in kilo-wavelengths.

    :param list uv_by_rank: one ``(K_r, 2)`` tensor or array per rank.

    >>> fig = uv_coverage_figure([torch.ones(3, 2), torch.zeros(2, 2)])
    >>> [trace.name for trace in fig.data], len(fig.data[0].x)
    (['rank 0', 'rank 1'], 6)
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for rank, uv in enumerate(uv_by_rank):
        uv = np.asarray(uv, dtype=np.float64) / 1e3
        fig.add_trace(go.Scattergl(x=np.concatenate([uv[:, 0], -uv[:, 0]]), y=np.concatenate([uv[:, 1], -uv[:, 1]]),
                                   mode="markers", marker={"size": 2, "color": _RANK_COLOURS[rank % 8]},
                                   name=f"rank {rank}"))
    fig.update_layout(title="uv coverage, coloured by the rank that read the rows", xaxis_title="u (kλ)",
                      yaxis_title="v (kλ)", height=height, width=height + 80)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def log_display(image, dynamic_range: float, peak: float | None = None) -> np.ndarray:
    """``log10(image / peak)`` clipped below at ``-log10(dynamic_range)``: a log colour scale for a sky.

    >>> log_display(np.array([[1.0, 0.01], [0.0, -1.0]]), 1e3).tolist()
    [[0.0, -2.0], [-3.0, -3.0]]
    """
    image = np.asarray(image, dtype=np.float64)
    peak = float(image.max()) if peak is None else peak
    floor = peak / dynamic_range
    return np.log10(np.maximum(image, floor) / peak) if peak > 0 else np.full(image.shape, -math.log10(dynamic_range))


def sky_figure(images: dict, cell_arcsec: float, dynamic_range: float = 1e4, height: int = 330):
    """Sky images side by side, linear (top row, each on the truth's range) and logarithmic (bottom row, each
    from the truth's peak down ``dynamic_range``), offsets from the phase centre in arcminutes.

    :param dict images: ``{label: (N, N) tensor or array}`` in Jy per pixel, the first one the reference
        (usually the truth; ``None`` entries are skipped).
    :param float cell_arcsec: pixel size.
    :param float dynamic_range: how far below the peak the log scale goes.

    >>> fig = sky_figure({"truth": np.eye(16), "dirty": np.ones((16, 16))}, 2.0)
    >>> len(fig.data), fig.layout.height
    (4, 660)
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    images = {k: np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
              for k, v in images.items() if v is not None}
    if not images:
        raise ValueError("images must hold at least one image")
    labels = list(images)
    reference = images[labels[0]]
    low, high = float(min(reference.min(), 0.0)), float(reference.max()) or 1.0
    n = reference.shape[0]
    fig = make_subplots(rows=2, cols=len(labels), subplot_titles=[f"{k} (linear)" for k in labels]
                        + [f"{k} (log)" for k in labels], horizontal_spacing=0.03, vertical_spacing=0.08)
    for col, label in enumerate(labels, start=1):
        image = images[label]
        axis_x = (np.arange(image.shape[1]) - image.shape[1] // 2) * cell_arcsec * n / image.shape[1] / 60.0
        axis_y = (np.arange(image.shape[0]) - image.shape[0] // 2) * cell_arcsec * n / image.shape[0] / 60.0
        fig.add_trace(go.Heatmap(z=image, x=axis_x, y=axis_y, zmin=low, zmax=high, colorscale="Inferno",
                                 showscale=col == len(labels), colorbar={"title": "Jy/px", "len": 0.45, "y": 0.78}),
                      row=1, col=col)
        fig.add_trace(go.Heatmap(z=log_display(image, dynamic_range, peak=high), x=axis_x, y=axis_y,
                                 zmin=-math.log10(dynamic_range), zmax=0.0, colorscale="Inferno",
                                 showscale=col == len(labels),
                                 colorbar={"title": "log10(x/peak)", "len": 0.45, "y": 0.22}), row=2, col=col)
    for row in (1, 2):
        for col in range(1, len(labels) + 1):
            fig.update_xaxes(autorange="reversed", showticklabels=row == 2, row=row, col=col)  # east to the left
            fig.update_yaxes(scaleanchor=f"x{'' if (row, col) == (1, 1) else (row - 1) * len(labels) + col}",
                             showticklabels=col == 1, row=row, col=col)
    fig.update_xaxes(title_text="Δα (arcmin, east left)", row=2, col=1)
    fig.update_yaxes(title_text="Δδ (arcmin)", row=1, col=1)
    fig.update_layout(height=2 * height, margin={"t": 40, "b": 40})
    return fig


def snr_figure(histories: dict, height: int = 380):
    """SNR and logSNR against iteration, one line per run (two panels).

    :param dict histories: ``{label: result["history"]}``.

    >>> fig = snr_figure({"run": [{"iteration": 1, "snr": 2.0, "logsnr": 1.0}]})
    >>> [t.name for t in fig.data]
    ['run', 'run']
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["SNR (dB)", "logSNR (dB)"])
    for index, (label, history) in enumerate(histories.items()):
        rows = [r for r in history if r.get("snr") is not None]
        colour = _RANK_COLOURS[index % 8]
        for col, key in enumerate(("snr", "logsnr"), start=1):
            fig.add_trace(go.Scatter(x=[r["iteration"] for r in rows], y=[r[key] for r in rows], mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=col == 1, line={"color": colour}),
                          row=1, col=col)
    fig.update_xaxes(title_text="iteration")
    fig.update_layout(height=height)
    return fig


def gradient_figure(document: dict, height: int = 420):
    """Gradient seconds against visibilities (log-log), one line per (backend, ranks), from a gradient study.

    >>> doc = {"rows": [{"backend": "finufft", "nprocs": 1, "n_visibilities": 10, "t_grad": 1.0}]}
    >>> gradient_figure(doc).data[0].name
    'finufft, 1 rank'
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    keys = sorted({(r["backend"], r["nprocs"]) for r in document["rows"]})
    for backend, nprocs in keys:
        rows = sorted((r for r in document["rows"] if (r["backend"], r["nprocs"]) == (backend, nprocs)),
                      key=lambda r: r["n_visibilities"])
        fig.add_trace(go.Scatter(x=[r["n_visibilities"] for r in rows], y=[r["t_grad"] for r in rows],
                                 mode="lines+markers", name=f"{backend}, {nprocs} rank{'' if nprocs == 1 else 's'}",
                                 line={"dash": "solid" if nprocs == 1 else "dash"}))
    fig.update_xaxes(type="log", title_text="visibilities")
    fig.update_yaxes(type="log", title_text="gradient time (s, median)")
    fig.update_layout(height=height, title="Data-term gradient against visibility count")
    return fig


def scaling_model_figure(table, measured: dict | None = None, height: int = 400):
    """Predicted gradient time against ranks (log-log), split into compute and all-reduce, with measured points.

    :param pandas.DataFrame table: :func:`distinv.bench.studies.radio.data_term_model`'s table.
    :param dict measured: ``{nprocs: seconds}`` measured at the same visibility count.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, name in (("t_total", "predicted total"), ("t_compute", "compute"), ("t_comm", "all-reduce")):
        fig.add_trace(go.Scatter(x=table["nprocs"], y=table[key], mode="lines+markers", name=name,
                                 line={"dash": "solid" if key == "t_total" else "dot"}))
    if measured:
        fig.add_trace(go.Scatter(x=list(measured), y=list(measured.values()), mode="markers", name="measured",
                                 marker={"size": 12, "symbol": "x"}))
    fig.update_xaxes(type="log", title_text="ranks")
    fig.update_yaxes(type="log", title_text="seconds per gradient")
    fig.update_layout(height=height, title="Scaling model of the data term")
    return fig


def runs_table(runs: dict):
    """Final SNR, logSNR, PSNR, the dirty image's, time and communication per run.

    >>> final = dict(nprocs=2, snr=10.0, logsnr=5.0, psnr=40.0, snr_dirty=-20.0, logsnr_dirty=-10.0,
    ...              t_per_iteration=0.5, iterations=8, comm_bytes_per_iteration=2e6)
    >>> float(runs_table({"pnp": {"final": final}}).data.iloc[0]["SNR (dB)"])
    10.0
    """
    import pandas as pd

    rows = []
    for label, result in runs.items():
        final = result["final"]
        rows.append({"run": label, "ranks": final["nprocs"], "SNR (dB)": final["snr"], "logSNR (dB)": final["logsnr"],
                     "PSNR (dB)": final["psnr"], "dirty SNR (dB)": final["snr_dirty"],
                     "dirty logSNR (dB)": final["logsnr_dirty"], "s / iteration": final["t_per_iteration"],
                     "iterations": final["iterations"], "comm MB / iteration": final["comm_bytes_per_iteration"] / 1e6})
    formats = {c: "{:.2f}" for c in ("SNR (dB)", "logSNR (dB)", "PSNR (dB)", "dirty SNR (dB)", "dirty logSNR (dB)")}
    formats.update({"s / iteration": "{:.3f}", "comm MB / iteration": "{:.2f}"})
    return display_table(pd.DataFrame(rows), formats)


def quality_table(document: dict):
    """Every row of a quality study (dirty, wavelet weights, PnP)."""
    import pandas as pd

    frame = pd.DataFrame(document["rows"]).rename(columns={"method": "method", "wavelet_weight": "wavelet weight",
                                                           "snr": "SNR (dB)", "logsnr": "logSNR (dB)",
                                                           "psnr": "PSNR (dB)", "seconds": "seconds"})
    return display_table(frame, {"SNR (dB)": "{:.2f}", "logSNR (dB)": "{:.2f}", "PSNR (dB)": "{:.2f}",
                                 "seconds": "{:.1f}", "wavelet weight": "{:g}"})


def gradient_table(document: dict):
    """Every row of a gradient study: seconds, the all-reduce's share, bytes."""
    import pandas as pd

    frame = pd.DataFrame([{"backend": r["backend"], "visibilities": r["n_visibilities"], "ranks": r["nprocs"],
                           "gradient (s)": r["t_grad"], "all-reduce (s)": r["t_comm"],
                           "all-reduce MB": r["comm_bytes"] / 1e6} for r in document["rows"]])
    return display_table(frame, {"gradient (s)": "{:.4f}", "all-reduce (s)": "{:.4f}", "all-reduce MB": "{:.2f}",
                                 "visibilities": "{:.0e}"})


def ranks_table(result: dict):
    """What each rank read: its blocks, their rows of the MS, its visibilities and the seconds it took.

    >>> result = {"per_rank": [{"rank": 0, "blocks": [0], "ms_rows": [[0, 5]], "visibilities": 10, "read_s": 0.1}]}
    >>> ranks_table(result).data.iloc[0]["rows of the MS"]
    '[0, 5)'
    """
    import pandas as pd

    frame = pd.DataFrame([{"rank": r["rank"], "blocks": ", ".join(map(str, r["blocks"])),
                           "rows of the MS": ", ".join(f"[{a}, {b})" for a, b in r["ms_rows"]),
                           "visibilities": r["visibilities"], "read (s)": r["read_s"]} for r in result["per_rank"]])
    return display_table(frame, {"read (s)": "{:.3f}", "visibilities": "{:,}"})


def model_table(table):
    """The scaling model's predictions (:func:`distinv.bench.studies.radio.data_term_model`) for reading."""
    frame = table.rename(columns={"nprocs": "ranks", "t_compute": "compute (s)", "t_comm": "all-reduce (s)",
                                  "t_total": "total (s)", "speedup": "speedup", "efficiency": "efficiency"})
    return display_table(frame, {"compute (s)": "{:.4f}", "all-reduce (s)": "{:.4f}", "total (s)": "{:.4f}",
                                 "speedup": "{:.2f}", "efficiency": "{:.2f}"})
