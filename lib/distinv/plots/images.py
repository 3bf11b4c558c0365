"""plotly figures, tables and the conclusion's numbers of the natural-images chapter, built from
``run_reconstruction`` results.

Every function takes plain results (dicts, small CPU tensors) and returns a figure, a table or a dict of
numbers (the chapter's sentences glue them in); nothing here computes a reconstruction.
"""

from __future__ import annotations

import numpy as np
import torch

from distinv.plots.tables import display_table

__all__ = [
    "stretch", "image_grid", "image_row", "measurements_figure", "tile_zoom_figure", "psnr_figure",
    "time_breakdown_figure", "results_table", "run_label", "summary_numbers",
]


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8."""
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return (np.transpose(array, (1, 2, 0)) * 255 + 0.5).astype(np.uint8)


def stretch(image: torch.Tensor) -> torch.Tensor:
    """``image`` mapped linearly onto [0, 1] (its minimum black, its maximum white), for display.

    >>> stretch(torch.tensor([[2.0, 4.0]])).tolist()
    [[0.0, 1.0]]
    """
    image = image.detach().float()
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else torch.zeros_like(image)


def image_grid(images: dict, columns: int, title: str | None = None, height: int = 320):
    """Images in a grid of ``columns`` columns, one subplot each, titled by the dict keys.

    :param dict images: ``{label: tensor (C, H, W) in [0, 1]}``.
    :param int columns: subplots per row.
    :param str title: figure title.
    :param int height: height of one row in pixels.

    >>> fig = image_grid({k: torch.zeros(1, 4, 4) for k in "abcde"}, columns=3)
    >>> len(fig.data), fig.layout.height
    (5, 640)
    >>> image_grid({"a": torch.zeros(1, 4, 4)}, columns=0)
    Traceback (most recent call last):
    ...
    ValueError: columns must be an integer >= 1, got 0
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an integer >= 1, got {columns!r}")
    if not images:
        raise ValueError("images must hold at least one image")
    labels = list(images)
    rows = -(-len(labels) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=labels, horizontal_spacing=0.02,
                        vertical_spacing=0.08 if rows > 1 else 0.0)
    for index, label in enumerate(labels):
        fig.add_trace(go.Image(z=_to_uint8(images[label]), name=label), row=index // columns + 1,
                      col=index % columns + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=title, height=rows * height, margin=dict(l=10, r=10, t=60 if title else 30, b=10),
                      plot_bgcolor="white")
    return fig


def image_row(images: dict, title: str | None = None, height: int = 320):
    """Images side by side (:func:`image_grid` with one row).

    >>> fig = image_row({"a": torch.zeros(1, 4, 4), "b": torch.ones(3, 4, 4)})
    >>> len(fig.data)
    2
    """
    return image_grid(images, columns=len(images), title=title, height=height)


def measurements_figure(measurements: list, kernels: list, height: int = 300):
    """The blur kernels :math:`h_k` (top row) and the measurements :math:`y_k` (bottom row).

    :param list measurements: previews of :math:`y_k`, ``(C, H, W)``.
    :param list kernels: kernels ``(1, 1, k, k)`` or ``(k, k)``.
    :param int height: height per row in pixels.

    >>> fig = measurements_figure([torch.zeros(1, 4, 4)], [torch.tensor([[0.0, 0.5], [0.25, 0.25]])])
    >>> [trace.type for trace in fig.data], int(fig.data[0].z.max())  # a kernel's peak is white
    (['image', 'image'], 255)
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    count = len(measurements)
    titles = [f"h_{k}" for k in range(count)] + [f"y_{k}" for k in range(count)]
    fig = make_subplots(rows=2, cols=count, subplot_titles=titles, vertical_spacing=0.08, horizontal_spacing=0.02)
    for k, (y, h) in enumerate(zip(measurements, kernels)):
        kernel = torch.as_tensor(h).reshape(torch.as_tensor(h).shape[-2:]).float()
        fig.add_trace(go.Image(z=_to_uint8(kernel[None] / kernel.max())), row=1, col=k + 1)  # peak = white
        fig.add_trace(go.Image(z=_to_uint8(y)), row=2, col=k + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=2 * height, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white")
    return fig


def tile_zoom_figure(crops: dict, patch: int, height: int = 340):
    """Full-resolution crops around a corner where four tiles meet, tile borders dashed.

    :param dict crops: ``result["crops"]``: ``box`` = ``[top, left, side]`` and ``(C, side, side)``
        tensors ``x_true``, ``x_init``, ``x_hat``.
    :param int patch: tile side, to draw the borders.
    :param int height: figure height.
    """
    top, left, side = crops["box"]
    images = {"ground truth": crops["x_true"], "start (back-projection)": crops["x_init"],
              "reconstruction": crops["x_hat"]}
    fig = image_row(images, height=height)
    borders = [b - top for b in range(0, top + side + 1, patch) if top < b < top + side]
    for col in range(1, len(images) + 1):
        for b in borders:
            fig.add_hline(y=b - 0.5, line_dash="dash", line_color="yellow", line_width=1, row=1, col=col)
            fig.add_vline(x=b - 0.5, line_dash="dash", line_color="yellow", line_width=1, row=1, col=col)
    return fig


def psnr_figure(histories: dict, title: str = "PSNR per iteration"):
    """PSNR against iteration, one line per run.

    :param dict histories: ``{label: result["history"]}``.
    :param str title: figure title.

    >>> psnr_figure({"run": [{"iteration": 1, "psnr": 20.0}]}).data[0].name
    'run'
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, history in histories.items():
        rows = [r for r in history if r.get("psnr") is not None]
        fig.add_trace(go.Scatter(x=[r["iteration"] for r in rows], y=[r["psnr"] for r in rows],
                                 mode="lines+markers", name=label))
    fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="PSNR (dB)", height=380)
    return fig


def time_breakdown_figure(finals: dict, title: str = "Time per iteration"):
    """Stacked bars of the median iteration: data-step compute, prior compute, communication, other.

    :param dict finals: ``{label: result}`` (uses the history's per-phase times).
    :param str title: figure title.
    """
    import plotly.graph_objects as go

    parts = {"data step (compute)": [], "prior (compute)": [], "communication": [], "other": []}
    labels = list(finals)
    for label in labels:
        history = finals[label]["history"]
        rows = history[1:] if len(history) > 1 else history

        def median(key):
            return float(np.median([r[key] for r in rows]))

        comm = median("t_comm")
        data = median("t_grad") - median("t_comm_data")
        prior = median("t_prior") - median("t_comm_prior")
        parts["data step (compute)"].append(data)
        parts["prior (compute)"].append(prior)
        parts["communication"].append(comm)
        parts["other"].append(max(0.0, median("t_total") - data - prior - comm))
    fig = go.Figure([go.Bar(name=name, x=labels, y=values) for name, values in parts.items()])
    fig.update_layout(barmode="stack", title=title, yaxis_title="seconds (median iteration)", height=380)
    return fig


def results_table(results: dict):
    """Final PSNR/SSIM, time and memory per run, with the starting points for comparison.

    :param dict results: ``{label: result}``.
    :return: a :class:`pandas.io.formats.style.Styler` (its ``data``: one row per run), without an index
        column, numbers rounded for reading.

    >>> final = dict(nprocs=2, psnr=30.123, ssim=0.9, psnr_init=20.0, psnr_pinv=25.0, t_per_iteration=0.5,
    ...              iterations=8, peak_mem_bytes=2**30, comm_bytes_per_iteration=2e6)
    >>> results_table({"pnp, 2 ranks": {"final": final}}).data.iloc[0].to_dict()["PSNR (dB)"]
    30.123
    """
    import pandas as pd

    rows = []
    for label, result in results.items():
        final = result["final"]
        rows.append({
            "run": label, "ranks": final["nprocs"], "PSNR (dB)": final["psnr"], "SSIM": final["ssim"],
            "start (dB)": final["psnr_init"], "pseudo-inverse (dB)": final["psnr_pinv"],
            "s / iteration": final["t_per_iteration"], "iterations": final["iterations"],
            "peak GiB / rank": final["peak_mem_bytes"] / 2**30,
            "comm MB / iteration": final["comm_bytes_per_iteration"] / 1e6,
        })
    decimals = {"PSNR (dB)": 2, "SSIM": 3, "start (dB)": 2, "pseudo-inverse (dB)": 2, "s / iteration": 3,
                "peak GiB / rank": 2, "comm MB / iteration": 1}
    return display_table(pd.DataFrame(rows), {column: f"{{:.{places}f}}" for column, places in decimals.items()})


def run_label(solver: str, nprocs: int) -> str:
    """The chapter's name of a run, e.g. ``"pnp-hqs, 2 ranks"``.

    >>> run_label("tv", 1), run_label("pnp-pgd", 3)
    ('tv, 1 rank', 'pnp-pgd, 3 ranks')
    """
    return f"{solver}, {nprocs} rank{'' if nprocs == 1 else 's'}"


def summary_numbers(runs: dict, solver: str, n_ranks: int, problem) -> dict:
    """The numbers of the chapter's conclusion: the solver against TV and the starting points, one rank against
    ``n_ranks``, and how the ground truth was resized.

    :param dict runs: ``{run_label(...): result}``: the solver and TV on ``n_ranks`` ranks, and optionally the
        solver on one rank.
    :param str solver: the PnP solver's name.
    :param int n_ranks: ranks of the main run.
    :param problem: the :class:`~distinv.problems.images.DeblurringConfig` of the runs.
    :return: plain numbers and names, for the chapter's glue:

        - the problem: ``size``, ``frames``, ``sigma_n``, ``image``, ``solver``;
        - final quality on ``n_ranks`` ranks: ``psnr`` and ``ssim`` of the solver, ``psnr_tv``, ``gain_tv`` (the
          solver's PSNR minus TV's), ``psnr_init`` (start point) and ``psnr_pinv`` (pseudo-inverse), in dB;
        - one rank against ``n_ranks``: ``ranks``, ``rank_gap_db`` (largest PSNR difference over the
          iterations), ``final_gap_db`` (at the last one), ``t_iteration`` and ``t_iteration_one_rank`` (median
          seconds per iteration), ``speedup`` (their ratio), ``device``, ``threads`` (per rank); the comparisons are
          ``nan`` when ``runs`` has no one-rank run of the solver;
        - ``native_side`` (the side of the image's central square) and ``resize_factor`` (``size`` over it: above
          1 the ground truth was upsampled).

    >>> from distinv.problems.images import DeblurringConfig
    >>> def run(psnr, seconds):
    ...     final = dict(psnr=psnr, ssim=0.9, psnr_init=20.0, psnr_pinv=25.0, t_per_iteration=seconds, device="cpu",
    ...                  threads=1)
    ...     return {"final": final, "history": [{"psnr": psnr - 1}, {"psnr": psnr}]}
    >>> runs = {"pnp-hqs, 2 ranks": run(30.0, 0.5), "pnp-hqs, 1 rank": run(30.25, 0.8), "tv, 2 ranks": run(28.5, 0.2)}
    >>> numbers = summary_numbers(runs, "pnp-hqs", 2, DeblurringConfig(size=1024, image="camera"))
    >>> numbers["gain_tv"], numbers["rank_gap_db"], numbers["speedup"], numbers["resize_factor"]
    (1.5, 0.25, 1.6, 2.0)
    """
    from distinv.problems.images import native_side

    pnp, tv = runs[run_label(solver, n_ranks)], runs[run_label("tv", n_ranks)]
    final, one = pnp["final"], runs.get(run_label(solver, 1))
    nan = float("nan")
    if one is None:
        rank_gap = final_gap = t_one = nan
    else:
        gaps = [abs(a["psnr"] - b["psnr"]) for a, b in zip(one["history"], pnp["history"])
                if a.get("psnr") is not None and b.get("psnr") is not None]
        rank_gap = float(max(gaps)) if gaps else nan
        final_gap = float(abs(final["psnr"] - one["final"]["psnr"]))
        t_one = float(one["final"]["t_per_iteration"])
    native = native_side(problem.image)
    return {
        "size": int(problem.size), "frames": int(problem.K), "sigma_n": float(problem.sigma_n),
        "image": str(problem.image), "solver": str(solver),
        "psnr": float(final["psnr"]), "ssim": float(final["ssim"]), "psnr_tv": float(tv["final"]["psnr"]),
        "gain_tv": float(final["psnr"] - tv["final"]["psnr"]), "psnr_init": float(final["psnr_init"]),
        "psnr_pinv": float(final["psnr_pinv"]),
        "ranks": int(n_ranks), "rank_gap_db": rank_gap, "final_gap_db": final_gap,
        "t_iteration": float(final["t_per_iteration"]), "t_iteration_one_rank": t_one,
        "speedup": t_one / float(final["t_per_iteration"]), "device": str(final["device"]),
        "threads": int(final["threads"]), "native_side": int(native), "resize_factor": problem.size / native,
    }
