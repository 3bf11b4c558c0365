"""Figures and tables of chapter 04 (training the unrolled network across ranks).

Each takes what the library returns (the training rank function, :func:`distinv.training.equivalence.gradient_agreement`)
or what ``python -m distinv.training.bench {quality,memory}`` wrote.
"""

from __future__ import annotations

import math

from distinv.plots.tables import display_table

__all__ = ["loss_curves_figure", "gradient_groups", "gradient_table", "quality_table", "psnr_time_figure",
           "memory_figure", "memory_table", "memory_ratios"]

GIB = 2 ** 30


def loss_curves_figure(curves: dict, title: str = "Training loss per step"):
    """The loss at every step, one line per run (same steps, so equal curves lie on each other).

    :param dict curves: ``{label: [loss per step]}``.
    :param str title: figure title.

    >>> fig = loss_curves_figure({"1 rank": [-5.0, -6.0], "2 ranks": [-5.0, -6.0]})
    >>> [trace.name for trace in fig.data], list(fig.data[0].x)
    (['1 rank', '2 ranks'], [1, 2])
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for index, (label, losses) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(range(1, len(losses) + 1)), y=list(losses), name=label,
                                 mode="lines+markers" if index == 0 else "lines",
                                 line_dash="solid" if index == 0 else "dash"))
    fig.update_layout(xaxis_title="step", yaxis_title="loss (−PSNR of the batch, dB)", height=380, title=title)
    return fig


def _group(name: str) -> str:
    if name == "loss":
        return "loss"
    if name.startswith("denoiser."):
        return "denoiser weights"
    return name.split(".")[-1].replace("log_", "") + " (per layer)"


def gradient_groups(rows: list[dict]) -> list[dict]:
    """:func:`~distinv.training.equivalence.gradient_agreement` rows gathered by group: the loss, the denoiser's
    tensors, and each per-layer scalar vector; per group the number of tensors, the largest gradient entry and
    the largest relative difference.

    :param list rows: per-parameter rows (the loss first).

    >>> rows = [{"parameter": "loss", "max_abs_gradient": None, "max_abs_difference": 0.0, "relative": 0.0},
    ...         {"parameter": "denoiser.a", "max_abs_gradient": 2.0, "max_abs_difference": 0.0, "relative": 0.0},
    ...         {"parameter": "denoiser.b", "max_abs_gradient": 1.0, "max_abs_difference": 1e-9, "relative": 1e-9},
    ...         {"parameter": "log_sigmas", "max_abs_gradient": 3.0, "max_abs_difference": 0.0, "relative": 0.0}]
    >>> [(g["group"], g["tensors"], g["relative (max)"]) for g in gradient_groups(rows)]
    [('loss', 1, 0.0), ('denoiser weights', 2, 1e-09), ('sigmas (per layer)', 1, 0.0)]
    """
    groups: dict[str, dict] = {}
    for row in rows:
        group = groups.setdefault(_group(row["parameter"]), {"group": _group(row["parameter"]), "tensors": 0,
                                                              "largest gradient": None, "relative (max)": 0.0})
        group["tensors"] += 1
        if row["max_abs_gradient"] is not None:
            group["largest gradient"] = max(group["largest gradient"] or 0.0, row["max_abs_gradient"])
        group["relative (max)"] = max(group["relative (max)"], row["relative"])
    return list(groups.values())


def gradient_table(rows: list[dict], per_parameter: bool = False):
    """The gradient comparison for display: grouped (:func:`gradient_groups`) or one row per tensor.

    :param list rows: :func:`~distinv.training.equivalence.gradient_agreement` rows.
    :param bool per_parameter: one row per parameter tensor instead of per group.
    """
    import pandas as pd

    if per_parameter:
        frame = pd.DataFrame(rows).rename(columns={"max_abs_gradient": "largest gradient",
                                                   "max_abs_difference": "largest difference"})
    else:
        frame = pd.DataFrame(gradient_groups(rows))
    return display_table(frame, {"largest gradient": "{:.3e}", "largest difference": "{:.1e}",
                                 "relative": "{:.1e}", "relative (max)": "{:.1e}"})


def quality_table(document: dict):
    """Per held-out photo: PSNR of the start point, of PnP-HQS with as many iterations as the network has layers,
    of the network, and the gain; the mean last.

    :param dict document: what ``python -m distinv.training.bench quality`` wrote.

    >>> row = {"image": "camera", "psnr_init": 20.0, "unrolled": {"layers": 2, "psnr": 31.0, "seconds": 2.0},
    ...        "hqs": [{"iterations": 2, "psnr": 30.0, "seconds": 2.5}]}
    >>> quality_table({"rows": [row]}).data["gain (dB)"].tolist()
    [1.0, 1.0]
    """
    import pandas as pd

    rows = []
    for row in document["rows"]:
        layers = row["unrolled"]["layers"]
        hqs = next(run for run in row["hqs"] if run["iterations"] == layers)
        rows.append({"photo": row["image"], "start (dB)": row["psnr_init"],
                     f"PnP-HQS, {layers} it. (dB)": hqs["psnr"], f"unrolled, {layers} layers (dB)":
                     row["unrolled"]["psnr"], "gain (dB)": row["unrolled"]["psnr"] - hqs["psnr"],
                     "PnP-HQS (s)": hqs["seconds"], "unrolled (s)": row["unrolled"]["seconds"]})
    frame = pd.DataFrame(rows)
    mean = frame.drop(columns="photo").mean()
    frame = pd.concat([frame, pd.DataFrame([{"photo": "mean", **mean.to_dict()}])], ignore_index=True)
    formats = {column: "{:.2f}" for column in frame.columns if column.endswith("(dB)")}
    formats.update({"PnP-HQS (s)": "{:.1f}", "unrolled (s)": "{:.1f}"})
    return display_table(frame, formats)


def psnr_time_figure(document: dict):
    """Mean PSNR over the held-out photos against wall time: PnP-HQS at each iteration count (each a run of its
    own), the network after each layer, and PnP-HQS's best as a horizontal line.

    :param dict document: the quality benchmark's document (its ``summary``).

    >>> summary = {"psnr_hqs_by_iterations": {"1": 30.0, "2": 31.0}, "seconds_hqs_by_iterations": {"1": 2.0, "2": 4.0},
    ...            "psnr_unrolled_per_layer": [30.5, 31.5], "seconds_unrolled_cumulative": [2.0, 4.0],
    ...            "hqs_best": {"iterations": 2, "psnr": 31.0, "seconds": 4.0}}
    >>> [trace.name for trace in psnr_time_figure({"summary": summary}).data]
    ['PnP-HQS (one run per iteration count)', 'unrolled (after each layer)']
    """
    import plotly.graph_objects as go

    summary = document["summary"]
    counts = sorted(summary["psnr_hqs_by_iterations"], key=int)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[summary["seconds_hqs_by_iterations"][n] for n in counts],
                             y=[summary["psnr_hqs_by_iterations"][n] for n in counts], mode="lines+markers",
                             text=[f"{n} iterations" for n in counts], name="PnP-HQS (one run per iteration count)"))
    layers = len(summary["psnr_unrolled_per_layer"])
    fig.add_trace(go.Scatter(x=summary["seconds_unrolled_cumulative"], y=summary["psnr_unrolled_per_layer"],
                             mode="lines+markers", text=[f"layer {t + 1}" for t in range(layers)],
                             name="unrolled (after each layer)"))
    best = summary["hqs_best"]
    fig.add_hline(y=best["psnr"], line_dash="dot",
                  annotation_text=f"PnP-HQS best ({best['iterations']} iterations)")
    fig.update_layout(xaxis_type="log", xaxis_title="wall time (s, log)", yaxis_title="mean PSNR (dB)", height=420,
                      title="PSNR against time on the held-out photos")
    return fig


def _series(document: dict):
    rows = document["rows"]
    keys = sorted({(r["ranks"], r["checkpointing"]) for r in rows})
    for ranks, checkpointing in keys:
        series = sorted((r for r in rows if r["ranks"] == ranks and r["checkpointing"] == checkpointing),
                        key=lambda r: r["size"])
        label = f"{ranks} rank{'s' if ranks > 1 else ''}, checkpointing {'on' if checkpointing else 'off'}"
        yield label, series


def memory_figure(document: dict):
    """Peak memory per rank of one training step against image side (log-log): measured points filled,
    predicted ones (not run: over the memory cap) hollow on a dotted line.

    :param dict document: what ``python -m distinv.training.bench memory`` wrote.

    >>> rows = [{"size": 512, "ranks": 1, "checkpointing": False, "measured": True, "peak_bytes": 2**31},
    ...         {"size": 1024, "ranks": 1, "checkpointing": False, "measured": False, "peak_bytes": 2**33}]
    >>> [trace.name for trace in memory_figure({"rows": rows}).data]
    ['1 rank, checkpointing off', '1 rank, checkpointing off (predicted)']
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for index, (label, series) in enumerate(_series(document)):
        color = palette[index % len(palette)]
        measured = [r for r in series if r["measured"]]
        fig.add_trace(go.Scatter(x=[r["size"] for r in measured], y=[r["peak_bytes"] / GIB for r in measured],
                                 mode="lines+markers", name=label, line_color=color,
                                 line_dash="solid" if "off" in label else "dash"))
        predicted = [r for r in series if not r["measured"]]
        if predicted:
            joined = measured[-1:] + predicted
            fig.add_trace(go.Scatter(x=[r["size"] for r in joined], y=[r["peak_bytes"] / GIB for r in joined],
                                     mode="lines+markers", name=f"{label} (predicted)", line_color=color,
                                     line_dash="dot", marker_symbol="circle-open", marker_size=10))
    sizes = sorted({r["size"] for r in document["rows"]})
    fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="image side (pixels)",
                      yaxis_title="peak memory per rank (GiB)", height=440,
                      title="One training step: peak memory per rank")
    fig.update_xaxes(tickvals=sizes, ticktext=[f"{s}²" for s in sizes])
    return fig


def memory_table(document: dict):
    """Every case of the memory benchmark: peak, step (peak minus what the rank held before), seconds, measured.

    :param dict document: the memory benchmark's document.
    """
    import pandas as pd

    frame = pd.DataFrame([{"size": f"{r['size']}²", "ranks": r["ranks"],
                           "checkpointing": "on" if r["checkpointing"] else "off",
                           "peak GiB / rank": r["peak_bytes"] / GIB,
                           "step GiB / rank": r["step_bytes"] / GIB if r.get("step_bytes") else math.nan,
                           "seconds": r.get("seconds", math.nan),
                           "measured": "yes" if r["measured"] else "no: " + r.get("reason", "")}
                          for r in document["rows"]])
    return display_table(frame, {"peak GiB / rank": "{:.2f}", "step GiB / rank": "{:.2f}", "seconds": "{:.0f}"})


def memory_ratios(document: dict) -> dict:
    """The memory targets at every size: checkpointing on over off (per rank count) and 2 ranks over 1 (per
    setting), each with ``measured`` (both peaks measured) or predicted.

    :param dict document: the memory benchmark's document.
    :return: ``{size: {"on_over_off_<P>": {"ratio", "measured"}, "two_over_one_<on|off>": {...}}}``.

    >>> rows = [{"size": 64, "ranks": p, "checkpointing": c, "measured": True, "peak_bytes": b}
    ...         for p, c, b in [(1, False, 8), (1, True, 2), (2, False, 4), (2, True, 2)]]
    >>> memory_ratios({"rows": rows})[64]["on_over_off_1"], memory_ratios({"rows": rows})[64]["two_over_one_off"]
    ({'ratio': 0.25, 'measured': True}, {'ratio': 0.5, 'measured': True})
    """
    peaks = {(r["size"], r["ranks"], r["checkpointing"]): r for r in document["rows"]}
    out: dict = {}

    def ratio(a, b):
        if a is None or b is None:
            return None
        return {"ratio": a["peak_bytes"] / b["peak_bytes"], "measured": bool(a["measured"] and b["measured"])}

    for size in sorted({r["size"] for r in document["rows"]}):
        entry = {}
        for ranks in sorted({r["ranks"] for r in document["rows"]}):
            entry[f"on_over_off_{ranks}"] = ratio(peaks.get((size, ranks, True)), peaks.get((size, ranks, False)))
        for setting, flag in (("off", False), ("on", True)):
            entry[f"two_over_one_{setting}"] = ratio(peaks.get((size, 2, flag)), peaks.get((size, 1, flag)))
        out[size] = entry
    return out
