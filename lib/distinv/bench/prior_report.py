"""Tables and figures of the tiled-prior benchmark (:mod:`distinv.bench.prior`) for the book.

The benchmark writes one JSON document per run (``--out``); ``make gpu-check`` gathers several in
one ``{"runs": [...]}`` file. :func:`load_prior_runs` reads either kind from a folder into one table,
one row per (file, implementation, size, ranks, overlap), with the run's device and date.

>>> import pandas as pd
>>> rows = pd.DataFrame({"source": "x", "impl": ["deepinv", "distinv", "distinv"], "size": 64, "ranks": 2,
...                      "overlap": [32, 16, 32], "median_s": [2.0, 1.5, 1.9], "agreement_psnr_db": [60., 62., 70.]})
>>> cheapest_at_least_as_good(rows, "deepinv", 32)[["impl", "overlap", "speedup"]].to_dict("records")
[{'impl': 'distinv', 'overlap': 16, 'speedup': 1.3333333333333333}]
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from distinv.plots.tables import display_table

__all__ = ["load_prior_runs", "prior_table", "styled_table", "source_caption", "region_sentence", "overlap_sweeps",
           "agreement_cost_figure", "cheapest_at_least_as_good", "tradeoff_sentences", "memory_growth_sentence",
           "network_layout_sentence", "network_share_sentence", "paired_speedups",
           "round_drift_sentence", "ratio_summary"]

_MIB = 2 ** 20
#: Image regions of ``agreement_regions_db`` (see :func:`distinv.bench.prior.agreement_by_region`).
REGIONS = ("border", "seams", "elsewhere")


def _finite(value):
    """Identical outputs give inf: a table cell reads better empty (the text says "exact")."""
    return None if value is None or math.isinf(value) else value


def _documents(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data["runs"] if "runs" in data else [data]


def _settings_key(args: dict) -> str:
    """The benchmark's command-line settings but the network layout and the output options, as one string:
    files with equal keys differ only in whether the network ran channels-last."""
    ignored = {"channels_last", "out", "force", "timeout"}
    # older files stored a single overlap as a number, newer ones as a list of one
    return json.dumps({k: v[0] if isinstance(v, list) and len(v) == 1 else v
                       for k, v in sorted(args.items()) if k not in ignored})


def load_prior_runs(folder: str | Path) -> pd.DataFrame:
    """Every result row of the benchmark JSON files in ``folder`` (failed cells left out).

    :param folder: a folder of ``distinv.bench.prior`` JSON outputs.
    :return: columns ``source`` (file stem), ``device``, ``channels_last`` (the network's layout),
        ``settings_key`` (the run's other settings), ``recorded_at``,
        ``channels``, ``peak_mib_per_rank``, ``date``, ``model``, ``impl``, ``size``,
        ``ranks``, ``patch``, ``overlap`` (an integer, or ``"ROWSxCOLS"`` per axis), ``median_s``,
        ``times_s`` (every timed run, round after round), ``round_medians_s`` (the median of each round
        of a ``--rounds`` run, else empty),
        ``network_s`` (slowest rank),
        ``overhead_s``, ``work_multiplier``, ``peak_mib`` (largest rank), ``agreement_psnr_db`` and, where
        recorded, the agreement by region ``border_db``, ``seams_db``, ``elsewhere_db`` (exact: empty).
    """
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        for document in _documents(path):
            provenance = document.get("provenance", {})
            for row in document.get("results", []):
                if "error" in row:
                    continue
                network = row.get("network_s_per_rank")
                overlap = row.get("overlap", row.get("settings", {}).get("overlap"))
                if isinstance(overlap, list):  # per axis (the one-slab-per-rank setting)
                    overlap = overlap[0] if len(set(overlap)) == 1 else "x".join(map(str, overlap))
                agreement = row.get("agreement_psnr_db")
                rows.append({
                    "source": path.stem, "device": row.get("device_name") or row.get("device"),
                    "channels_last": bool(document.get("args", {}).get("channels_last", False)),
                    "settings_key": _settings_key(document.get("args", {})),
                    "channels": row.get("channels", 1), "peak_mib_per_rank": [b / _MIB for b in row["peak_bytes_per_rank"]],
                    "date": str(provenance.get("recorded_at", provenance.get("date", "")))[:10],
                    "recorded_at": str(provenance.get("recorded_at", provenance.get("date", ""))),
                    "model": row.get("model"), "impl": row["impl"], "size": row["size"], "ranks": row["ranks"],
                    "patch": str(row.get("settings", {}).get("patch", "")),
                    "overlap": overlap,
                    "median_s": row["median_s"], "times_s": row.get("times_s"),
                    "round_medians_s": row.get("round_medians_s"),
                    "network_s": max(network) if network else None,
                    "overhead_s": row.get("tiling_overhead_s"), "work_multiplier": row["tile_work_multiplier"],
                    "peak_mib": max(row["peak_bytes_per_rank"]) / _MIB,
                    "agreement_psnr_db": _finite(agreement),
                    **{f"{region}_db": _finite(row.get("agreement_regions_db", {}).get(region))
                       for region in REGIONS},
                })
    return pd.DataFrame(rows)


def prior_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of one benchmark file as the book shows them: one row per case, rounded, columns that
    hold no value left out (e.g. the regions of files recorded before they were measured).

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    """
    columns = {"size": "size", "ranks": "ranks", "impl": "tiler", "overlap": "overlap", "median_s": "median s",
               "overhead_s": "tiler overhead s", "work_multiplier": "work multiplier", "peak_mib": "peak MiB / rank",
               "agreement_psnr_db": "agreement (dB)", "border_db": "border (dB)", "seams_db": "seams (dB)",
               "elsewhere_db": "elsewhere (dB)"}
    table = runs[list(columns)].rename(columns=columns).dropna(axis=1, how="all")
    table["size"] = table["size"].map(lambda n: f"{n}²")
    table["overlap"] = table["overlap"].map(lambda v: "–" if v is None or v != v else str(v))
    return table.round(TABLE_DECIMALS).reset_index(drop=True)


#: Decimals of each number column of :func:`prior_table` (also its display format in the book).
TABLE_DECIMALS = {"median s": 3, "tiler overhead s": 3, "work multiplier": 3, "peak MiB / rank": 0,
                  "agreement (dB)": 1, "border (dB)": 1, "seams (dB)": 1, "elsewhere (dB)": 1}


def styled_table(table: pd.DataFrame):
    """:func:`prior_table` for display: no index, each column with its decimals, empty cells as dashes."""
    return display_table(table, {column: f"{{:.{decimals}f}}" for column, decimals in TABLE_DECIMALS.items()})


def source_caption(runs: pd.DataFrame) -> str:
    """``"file: model, network layout, device, date"`` for the rows of one benchmark file."""
    first = runs.iloc[0]
    layout = "channels-last" if first.get("channels_last", False) else "NCHW"
    return (f"`{first['source']}`: {first['model']} model ({layout} network), {first['device']}, "
            f"{first['date'] or 'undated'}")


def memory_growth_sentence(runs: pd.DataFrame) -> str:
    """How each tiler's per-rank peak memory grows from the smallest to the largest size of one file, in MiB
    and in *slab shares* (the growth of one rank's share of the float32 signal), for each multi-rank count.

    A sharded rank holds its input and its output slab, so its growth stays near two slab shares on any
    number of ranks, and in MiB it falls with more ranks; a replicated rank holds whole signals, so its
    growth in MiB does not fall.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: one Markdown sentence per number of ranks, or ``""`` when the file has fewer than two sizes
        on several ranks.

    >>> rows = pd.DataFrame({"impl": "distinv-sharded", "ranks": 2, "channels": 1, "size": [1024, 4096],
    ...                      "peak_mib_per_rank": [[600.0, 610.0], [660.0, 680.0]]})
    >>> print(memory_growth_sentence(rows))
    From 1024² to 4096² on 2 ranks, one rank's share of the signal grows by 30 MiB and the peak memory per rank by: distinv-sharded +60 and +70 MiB (2.0 and 2.3 slab shares).
    """
    sentences = []
    for ranks, rows in runs[runs["ranks"] > 1].groupby("ranks"):
        if rows["size"].nunique() < 2:
            continue
        small, large = rows["size"].min(), rows["size"].max()
        share = (large ** 2 - small ** 2) * int(rows["channels"].iloc[0]) * 4 / ranks / _MIB
        parts = []
        for impl, group in rows.groupby("impl", sort=False):
            by_size = group.set_index("size")["peak_mib_per_rank"]
            if small not in by_size.index or large not in by_size.index:
                continue
            growth = [b - a for a, b in zip(by_size[small], by_size[large])]
            parts.append(f"{impl} " + " and ".join(f"{g:+.0f}" for g in growth) + " MiB ("
                         + " and ".join(f"{g / share:.1f}" for g in growth) + " slab shares)")
        if parts:
            sentences.append(f"From {small}² to {large}² on {ranks} ranks, one rank's share of the signal grows by "
                             f"{share:.0f} MiB and the peak memory per rank by: " + "; ".join(parts) + ".")
    return " ".join(sentences)


def network_layout_sentence(runs: pd.DataFrame) -> str:
    """How much faster each implementation ran with a channels-last network than with an NCHW one, over the
    cases of files run with the same settings but the network layout (equal ``settings_key``); each
    channels-last file is compared with the latest such NCHW file.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` (several files).
    :return: one Markdown sentence, or ``""`` when no case was measured both ways.

    >>> rows = pd.DataFrame({"source": ["a", "a", "b", "b"], "channels_last": [False, False, True, True],
    ...     "settings_key": "{}", "recorded_at": "",
    ...     "impl": ["untiled", "distinv"] * 2, "size": 64, "ranks": 1, "overlap": 8, "patch": "32",
    ...     "model": "small", "device": "cpu", "median_s": [2.0, 1.0, 1.0, 0.8]})
    >>> print(network_layout_sentence(rows))
    The same cases with a channels-last network instead of NCHW (`b` against `a`): untiled 2.00× faster, distinv 1.25× faster.
    """
    keys = ["settings_key", "impl", "size", "ranks", "overlap", "patch", "model", "device"]
    rows = runs.assign(overlap=runs["overlap"].astype(str))
    nchw, last = rows[~rows["channels_last"]], rows[rows["channels_last"]]
    latest = nchw.groupby("settings_key")["recorded_at"].transform("max")
    nchw = nchw[nchw["recorded_at"] == latest]
    pairs = nchw.merge(last, on=keys, suffixes=("_nchw", "_last"))
    if pairs.empty:
        return ""
    pairs["speedup"] = pairs["median_s_nchw"] / pairs["median_s_last"]
    parts = []
    for impl, group in pairs.groupby("impl", sort=False):
        low, high = group["speedup"].min(), group["speedup"].max()
        parts.append(f"{impl} {low:.2f}×" + (f"–{high:.2f}×" if high - low >= 0.005 else "") + " faster")
    sources = ", ".join(f"`{b}` against `{a}`" for a, b in
                        pairs[["source_nchw", "source_last"]].drop_duplicates().itertuples(index=False))
    return f"The same cases with a channels-last network instead of NCHW ({sources}): " + ", ".join(parts) + "."


def _rows_with_rounds(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``--rounds`` runs (two rounds or more)."""
    if "round_medians_s" not in runs:
        return runs.iloc[0:0]
    return runs[runs["round_medians_s"].map(lambda v: isinstance(v, list) and len(v) >= 2)]


def ratio_summary(ratios) -> str:
    """Paired ratios as ``"median× (min–max)"``.

    >>> ratio_summary([1.5, 1.0, 1.5])
    '1.50× (1.00–1.50)'
    """
    ratios = sorted(ratios)
    return f"{statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def _ratio_cell(numerators, denominators) -> str:
    return ratio_summary(a / b for a, b in zip(numerators, denominators))


def paired_speedups(runs: pd.DataFrame) -> pd.DataFrame:
    """Speedups of every tiled row of one ``--rounds`` file over deepinv on as many ranks (same size and
    overlap) and over the untiled network (one process), paired by round: the ratio of the two cases'
    medians in each round, then the median and the range of those ratios over the rounds.

    Cases of the same round ran minutes apart at most, so a slow drift of the machine's speed cancels out of
    their ratio; a ratio of medians taken over the whole run does not have that protection.

    Beside the speedup over deepinv, ``work ratio`` is deepinv's tile work multiplier over the row's: the
    speedup to expect from the tiles alone, when the network takes all the time and costs the same per pixel
    in both tilers' windows.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: columns ``size``, ``ranks``, ``tiler``, ``overlap``, ``rounds``, ``vs deepinv``,
        ``work ratio``, ``vs untiled`` (``"median× (min–max)"``; ``"–"`` when there is no such baseline);
        no row when the file has fewer than two rounds.

    >>> rows = pd.DataFrame({"impl": ["untiled", "deepinv", "distinv"], "size": 64, "ranks": [1, 2, 2],
    ...                      "overlap": [None, 8, 8], "work_multiplier": [1.0, 1.5625, 1.41],
    ...                      "round_medians_s": [[4.0, 6.0], [2.0, 3.45], [1.6, 3.0]]})
    >>> paired_speedups(rows).to_dict("records")[1]
    {'size': '64²', 'ranks': 2, 'tiler': 'distinv', 'overlap': 8, 'rounds': 2, 'vs deepinv': '1.20× (1.15–1.25)', 'work ratio': '1.11×', 'vs untiled': '2.25× (2.00–2.50)'}
    """
    columns = ["size", "ranks", "tiler", "overlap", "rounds", "vs deepinv", "work ratio", "vs untiled"]
    paired = _rows_with_rounds(runs)
    records = []
    for _, row in paired[paired["impl"] != "untiled"].iterrows():
        same_size = paired[paired["size"] == row["size"]]
        untiled = same_size[same_size["impl"] == "untiled"]
        deepinv = same_size[(same_size["impl"] == "deepinv") & (same_size["ranks"] == row["ranks"])
                            & (same_size["overlap"].astype(str) == str(row["overlap"]))]
        rounds = row["round_medians_s"]
        records.append({
            "size": f"{row['size']}²", "ranks": row["ranks"], "tiler": row["impl"],
            "overlap": int(row["overlap"]) if isinstance(row["overlap"], float) else row["overlap"],
            "rounds": len(rounds),
            "vs deepinv": (_ratio_cell(deepinv.iloc[0]["round_medians_s"], rounds)
                           if row["impl"] != "deepinv" and not deepinv.empty else "–"),
            "work ratio": (f"{deepinv.iloc[0]['work_multiplier'] / row['work_multiplier']:.2f}×"
                           if row["impl"] != "deepinv" and not deepinv.empty else "–"),
            "vs untiled": _ratio_cell(untiled.iloc[0]["round_medians_s"], rounds) if not untiled.empty else "–",
        })
    return pd.DataFrame(records, columns=columns)


def network_share_sentence(runs: pd.DataFrame) -> str:
    """How much of a tiled call's median time the network took (on its slowest rank), over the tiled rows of
    one file: what bounds a tiler's speedup at equal tile settings to the work ratio.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: one Markdown sentence, or ``""`` when no tiled row recorded its network time.

    >>> rows = pd.DataFrame({"impl": ["untiled", "deepinv", "distinv", "distinv-sharded"],
    ...                      "median_s": [2.0, 1.0, 0.8, 0.8], "network_s": [None, 0.97, 0.79, 0.81]})
    >>> print(network_share_sentence(rows))
    In these tiled calls the network's median time on the slowest rank is 99 % of the call's median time (97 to 101 %; two medians of separate timings, so the ratio can pass 100 %).
    """
    tiled = runs[(runs["impl"] != "untiled") & runs["network_s"].notna()]
    if tiled.empty:
        return ""
    shares = 100 * tiled["network_s"] / tiled["median_s"]
    return (f"In these tiled calls the network's median time on the slowest rank is {shares.median():.0f} % of the "
            f"call's median time ({shares.min():.0f} to {shares.max():.0f} %; two medians of separate timings, so the "
            f"ratio can pass 100 %).")


def round_drift_sentence(runs: pd.DataFrame) -> str:
    """How much a case's time moved between the rounds of one ``--rounds`` file, against how much it moved
    between the repeats inside one round: the reason to pair ratios by round.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: one Markdown sentence, or ``""`` when the file has fewer than two rounds.

    >>> rows = pd.DataFrame({"round_medians_s": [[1.0, 1.2], [2.0, 2.1], [1.0, 1.1]],
    ...                      "times_s": [[1.0, 1.01, 1.2, 1.2], [2.0, 2.0, 2.1, 2.12], [1.0, 1.0, 1.1, 1.1]]})
    >>> print(round_drift_sentence(rows))
    Over the 3 cases of this file, the median of a case moved by up to 20 % from one round to another (median 10 %), its repeats inside one round by up to 1 % (median 1 %).
    """
    paired = _rows_with_rounds(runs)
    if paired.empty:
        return ""
    between, within = [], []
    for rounds, times in zip(paired["round_medians_s"], paired["times_s"]):
        between.append(max(rounds) / min(rounds) - 1)
        per_round = len(times) // len(rounds)
        within.append(max(max(chunk) / min(chunk) - 1 for chunk in
                          (times[i:i + per_round] for i in range(0, len(times), per_round))))
    def percents(values) -> tuple[float, float]:
        return 100 * max(values), 100 * statistics.median(values)

    return ("Over the {} cases of this file, the median of a case moved by up to {:.0f} % from one round to another "
            "(median {:.0f} %), its repeats inside one round by up to {:.0f} % (median {:.0f} %)."
            .format(len(between), *percents(between), *percents(within)))


def _numeric_overlaps(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows with one overlap for every axis (per-axis overlaps such as ``"32x0"`` drop out), as integers."""
    numeric = runs.assign(overlap=pd.to_numeric(runs["overlap"], errors="coerce")).dropna(subset=["overlap"])
    return numeric.assign(overlap=numeric["overlap"].astype(int))


def overlap_sweeps(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The (source, size, ranks) groups in which a tiler ran at several overlaps, with their untiled row.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs`.
    :return: ``[((source, size, ranks), rows), ...]``.
    """
    if runs.empty:
        return []
    tiled = _numeric_overlaps(runs)
    sweeps = []
    for key, group in tiled.groupby(["source", "size", "ranks"]):
        if group.groupby("impl")["overlap"].nunique().max() > 1:
            untiled = runs[(runs["source"] == key[0]) & (runs["size"] == key[1]) & (runs["impl"] == "untiled")]
            sweeps.append((key, pd.concat([group, untiled], ignore_index=True)))
    return sweeps


def agreement_cost_figure(runs: pd.DataFrame, title: str = "Agreement with the untiled network against time") -> go.Figure:
    """Agreement (dB) against median time, one line per implementation, points labelled by overlap.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one run (one source, size, ranks).
    :param str title: figure title.
    """
    tiled = _numeric_overlaps(runs).dropna(subset=["agreement_psnr_db"]).sort_values(["impl", "overlap"])
    figure = px.line(tiled, x="median_s", y="agreement_psnr_db", color="impl", text="overlap", markers=True,
                     labels={"median_s": "median time per call (s)", "agreement_psnr_db": "agreement (dB)",
                             "impl": "tiler"}, title=title, height=380)
    figure.update_traces(textposition="top center")
    untiled = runs[runs["impl"] == "untiled"]
    for time_s in untiled["median_s"]:
        figure.add_vline(x=time_s, line_dash="dot", annotation_text="untiled")
    return figure


def cheapest_at_least_as_good(runs: pd.DataFrame, reference_impl: str, reference_overlap: int) -> pd.DataFrame:
    """The fastest row of every other tiler whose agreement is at least the reference's, with its speedup.

    :param pandas.DataFrame runs: rows of one run (one source, size and rank count).
    :param str reference_impl: e.g. ``"deepinv"``.
    :param int reference_overlap: the reference's overlap.
    """
    runs = _numeric_overlaps(runs)
    reference = runs[(runs["impl"] == reference_impl) & (runs["overlap"] == reference_overlap)]
    if reference.empty:
        return runs.iloc[0:0].assign(speedup=[])
    ref = reference.iloc[0]
    better = runs[(runs["impl"] != reference_impl) & (runs["agreement_psnr_db"] >= ref["agreement_psnr_db"])]
    best = better.sort_values("median_s").groupby("impl", as_index=False).first()
    return best.assign(speedup=ref["median_s"] / best["median_s"]).reset_index(drop=True)


def tradeoff_sentences(runs: pd.DataFrame, reference_impl: str = "deepinv", reference_overlap: int = 32) -> list[str]:
    """One Markdown sentence per other tiler: its fastest setting that agrees at least as well as the reference.

    :param pandas.DataFrame runs: rows of one sweep (see :func:`overlap_sweeps`).
    :param str reference_impl: the tiler compared against.
    :param int reference_overlap: its overlap.
    """
    best = cheapest_at_least_as_good(runs, reference_impl, reference_overlap)
    if best.empty:
        return []
    numeric = _numeric_overlaps(runs)
    ref = numeric[(numeric["impl"] == reference_impl) & (numeric["overlap"] == reference_overlap)].iloc[0]
    return [
        f"{row['impl']} at overlap {row['overlap']} agrees with the untiled network to "
        f"{row['agreement_psnr_db']:.1f} dB against {ref['agreement_psnr_db']:.1f} dB for {reference_impl} at "
        f"overlap {reference_overlap}, in {row['median_s']:.2f} s against {ref['median_s']:.2f} s: "
        f"**{row['speedup']:.2f}× faster at equal or better agreement** (the network processes "
        f"{row['work_multiplier']:.2f} against {ref['work_multiplier']:.2f} pixels per image pixel: "
        f"{ref['work_multiplier'] / row['work_multiplier']:.2f}× less work)."
        for _, row in best.iterrows()
    ]


def region_sentence(runs: pd.DataFrame, overlap: int = 32) -> str:
    """What separates the tilers of one sweep at ``overlap``, region by region (border band, seams,
    elsewhere): smooth blending against crop-assign on the same tiles (``distinv`` vs ``distinv-crop``),
    and distinv's tiles against deepinv's under the same crop rule (``distinv-crop`` vs ``deepinv``).

    :param pandas.DataFrame runs: rows of one sweep (see :func:`overlap_sweeps`).
    :param int overlap: the overlap compared.
    """
    rows = _numeric_overlaps(runs)
    rows = rows[rows["overlap"] == overlap].set_index("impl")

    def gains(better: str, worse: str) -> str:
        parts = [f"{rows.loc[better, f'{r}_db'] - rows.loc[worse, f'{r}_db']:+.1f} dB {label}"
                 for r, label in zip(REGIONS, ("in the border band", "at the seams", "elsewhere"))
                 if pd.notna(rows.loc[better, f"{r}_db"]) and pd.notna(rows.loc[worse, f"{r}_db"])]
        return ", ".join(parts)

    sentences = []
    if {"distinv", "distinv-crop"} <= set(rows.index) and gains("distinv", "distinv-crop"):
        sentences.append(f"At overlap {overlap}, on the same tiles, smooth blending against crop-assign: "
                         f"{gains('distinv', 'distinv-crop')}.")
    if {"distinv-crop", "deepinv"} <= set(rows.index) and gains("distinv-crop", "deepinv"):
        sentences.append(f"Under the same crop rule, distinv's tiles (cut at the signal border) against deepinv's "
                         f"(reflect-padded there): {gains('distinv-crop', 'deepinv')}.")
    return " ".join(sentences)
