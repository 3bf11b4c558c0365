"""Tables, figures and numbers of the tiled-prior benchmark (:mod:`distinv.bench.studies.prior`) for the book.

Tables come with the display formats of their number columns (``*_FORMATS``, for
:func:`distinv.plots.tables.display_table`); the chapter's sentences glue in numbers of the dicts
returned here, never sentences built here.

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

__all__ = ["load_prior_runs", "prior_table", "styled_table", "file_summary", "memory_growth", "slab_share_range",
           "network_layout_speedups", "paired_speedups", "paired_speedups_by_file", "ratio_summary", "network_share",
           "round_drift", "overlap_sweeps", "agreement_cost_figure", "cheapest_at_least_as_good", "tradeoff_table",
           "best_tradeoff", "region_gains", "REGIONS", "REGION_COMPARISONS", "FILE_SUMMARY_FORMATS",
           "MEMORY_GROWTH_FORMATS", "NETWORK_LAYOUT_FORMATS", "TRADEOFF_FORMATS", "REGION_FORMATS"]

_MIB = 2 ** 20
#: Image regions of ``agreement_regions_db`` (see :func:`distinv.bench.studies.prior.agreement_by_region`).
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

    :param folder: a folder of ``distinv.bench.studies.prior`` JSON outputs.
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


def _overlap_text(value) -> str:
    """An overlap for a table cell: ``"32"`` (not ``"32.0"``), ``"32x0"`` per axis, ``"–"`` for none."""
    if value is None or value != value:
        return "–"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


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
    table["overlap"] = table["overlap"].map(_overlap_text)
    return table.round(TABLE_DECIMALS).reset_index(drop=True)


#: Decimals of each number column of :func:`prior_table` (also its display format in the book).
TABLE_DECIMALS = {"median s": 3, "tiler overhead s": 3, "work multiplier": 3, "peak MiB / rank": 0,
                  "agreement (dB)": 1, "border (dB)": 1, "seams (dB)": 1, "elsewhere (dB)": 1}


def styled_table(table: pd.DataFrame):
    """:func:`prior_table` for display: no index, each column with its decimals, empty cells as dashes."""
    return display_table(table, {column: f"{{:.{decimals}f}}" for column, decimals in TABLE_DECIMALS.items()})


def file_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per benchmark file: what ran (model, network layout, device, date, cases, rounds) and how far
    its times can be trusted: how much a case moved between rounds and between the repeats of one round
    (:func:`round_drift`), and the network's median share of a tiled call (:func:`network_share`).

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` (any number of files).
    :return: columns ``file``, ``model``, ``network``, ``device``, ``date``, ``cases``, ``rounds``,
        ``drift between rounds (max %)``, ``spread of repeats (max %)``, ``network share (median %)``
        (empty where the file has one round, or no network time).

    >>> rows = pd.DataFrame({"source": "a", "model": "small", "channels_last": True, "device": "cpu", "date": "",
    ...                      "impl": ["untiled", "distinv"], "median_s": [2.0, 1.0], "network_s": [None, 0.9],
    ...                      "round_medians_s": [[2.0, 2.2], [1.0, 1.0]], "times_s": [[2.0, 2.0, 2.2, 2.2], [1.0] * 4]})
    >>> file_summary(rows).round(1).to_dict("records")[0]  # doctest: +NORMALIZE_WHITESPACE
    {'file': 'a', 'model': 'small', 'network': 'channels-last', 'device': 'cpu', 'date': 'undated', 'cases': 2,
     'rounds': 2, 'drift between rounds (max %)': 10.0, 'spread of repeats (max %)': 0.0,
     'network share (median %)': 90.0}
    """
    rows = []
    for source, group in runs.groupby("source", sort=False):
        first, drift, share = group.iloc[0], round_drift(group), network_share(group)
        rows.append({"file": source, "model": first["model"],
                     "network": "channels-last" if first.get("channels_last", False) else "NCHW",
                     "device": first["device"], "date": first["date"] or "undated", "cases": len(group),
                     "rounds": drift["rounds"], "drift between rounds (max %)": 100 * drift["between_max"],
                     "spread of repeats (max %)": 100 * drift["within_max"],
                     "network share (median %)": 100 * share["median"]})
    return pd.DataFrame(rows)


#: Display formats of :func:`file_summary`'s number columns.
FILE_SUMMARY_FORMATS = {"rounds": "{:.0f}", "drift between rounds (max %)": "{:.0f}",
                        "spread of repeats (max %)": "{:.0f}", "network share (median %)": "{:.0f}"}


def memory_growth(runs: pd.DataFrame) -> pd.DataFrame:
    """How each tiler's per-rank peak memory grows from the smallest to the largest size of one file, for each
    multi-rank count: in MiB, and in *slab shares* (the growth of one rank's share of the float32 signal).

    A sharded rank holds its input and its output slab, so its growth stays near two slab shares on any
    number of ranks, and in MiB it falls with more ranks; a replicated rank holds whole signals, so its
    growth in MiB does not fall.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` (any number of files).
    :return: one row per (file, ranks, tiler): ``file``, ``ranks``, ``tiler``, ``from``, ``to`` (image sides),
        ``slab share growth (MiB)``, the growth over the ranks ``peak growth min (MiB)``,
        ``peak growth max (MiB)``, and in slab shares ``slab shares min``, ``slab shares max``; no row for a
        file with fewer than two sizes on several ranks.

    >>> rows = pd.DataFrame({"source": "f", "impl": "distinv-sharded", "ranks": 2, "channels": 1, "size": [1024, 4096],
    ...                      "peak_mib_per_rank": [[600.0, 610.0], [660.0, 680.0]]})
    >>> memory_growth(rows).drop(columns=["file", "ranks", "tiler"]).to_dict("records")[0]
    ... # doctest: +NORMALIZE_WHITESPACE
    {'from': 1024, 'to': 4096, 'slab share growth (MiB)': 30.0, 'peak growth min (MiB)': 60.0,
     'peak growth max (MiB)': 70.0, 'slab shares min': 2.0, 'slab shares max': 2.3333333333333335}
    """
    records = []
    for (source, ranks), rows in runs[runs["ranks"] > 1].groupby(["source", "ranks"], sort=False):
        if rows["size"].nunique() < 2:
            continue
        small, large = int(rows["size"].min()), int(rows["size"].max())
        share = (large ** 2 - small ** 2) * int(rows["channels"].iloc[0]) * 4 / ranks / _MIB
        for impl, group in rows.groupby("impl", sort=False):
            by_size = group.set_index("size")["peak_mib_per_rank"]
            if small not in by_size.index or large not in by_size.index:
                continue
            growth = [b - a for a, b in zip(by_size[small], by_size[large])]
            records.append({"file": source, "ranks": int(ranks), "tiler": impl, "from": small, "to": large,
                            "slab share growth (MiB)": share, "peak growth min (MiB)": min(growth),
                            "peak growth max (MiB)": max(growth), "slab shares min": min(growth) / share,
                            "slab shares max": max(growth) / share})
    return pd.DataFrame(records, columns=["file", "ranks", "tiler", "from", "to", "slab share growth (MiB)",
                                          "peak growth min (MiB)", "peak growth max (MiB)", "slab shares min",
                                          "slab shares max"])


#: Display formats of :func:`memory_growth`'s number columns.
MEMORY_GROWTH_FORMATS = {"slab share growth (MiB)": "{:.0f}", "peak growth min (MiB)": "{:+.0f}",
                         "peak growth max (MiB)": "{:+.0f}", "slab shares min": "{:.1f}", "slab shares max": "{:.1f}"}


def slab_share_range(growth: pd.DataFrame, tiler: str) -> dict:
    """The smallest and the largest growth in slab shares of one tiler over every file and rank count.

    :param pandas.DataFrame growth: :func:`memory_growth`.
    :param str tiler: e.g. ``"distinv-sharded"``.
    :return: ``{"low", "high"}`` (``nan`` when the tiler has no row).

    >>> growth = pd.DataFrame({"tiler": ["deepinv", "deepinv"], "slab shares min": [10.0, 15.3],
    ...                        "slab shares max": [11.1, 16.7]})
    >>> slab_share_range(growth, "deepinv"), slab_share_range(growth, "distinv")["low"]
    ({'low': 10.0, 'high': 16.7}, nan)
    """
    rows = growth[growth["tiler"] == tiler]
    if rows.empty:
        return {"low": math.nan, "high": math.nan}
    return {"low": float(rows["slab shares min"].min()), "high": float(rows["slab shares max"].max())}


def network_layout_speedups(runs: pd.DataFrame) -> pd.DataFrame:
    """How much faster each implementation ran with a channels-last network than with an NCHW one, over the
    cases of files run with the same settings but the network layout (equal ``settings_key``); each
    channels-last file is compared with the latest such NCHW file.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` (several files).
    :return: one row per (pair of files, tiler): ``tiler``, ``cases``, ``speedup min``, ``speedup max`` (NCHW time
        over channels-last time), ``channels-last file``, ``NCHW file``; no row when no case was measured both
        ways.

    >>> rows = pd.DataFrame({"source": ["a", "a", "b", "b"], "channels_last": [False, False, True, True],
    ...     "settings_key": "{}", "recorded_at": "",
    ...     "impl": ["untiled", "distinv"] * 2, "size": 64, "ranks": 1, "overlap": 8, "patch": "32",
    ...     "model": "small", "device": "cpu", "median_s": [2.0, 1.0, 1.0, 0.8]})
    >>> network_layout_speedups(rows)[["tiler", "cases", "speedup min", "speedup max"]].to_dict("records")
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'tiler': 'untiled', 'cases': 1, 'speedup min': 2.0, 'speedup max': 2.0},
     {'tiler': 'distinv', 'cases': 1, 'speedup min': 1.25, 'speedup max': 1.25}]
    """
    columns = ["tiler", "cases", "speedup min", "speedup max", "channels-last file", "NCHW file"]
    keys = ["settings_key", "impl", "size", "ranks", "overlap", "patch", "model", "device"]
    rows = runs.assign(overlap=runs["overlap"].astype(str))
    nchw, last = rows[~rows["channels_last"]], rows[rows["channels_last"]]
    latest = nchw.groupby("settings_key")["recorded_at"].transform("max")
    nchw = nchw[nchw["recorded_at"] == latest]
    pairs = nchw.merge(last, on=keys, suffixes=("_nchw", "_last"))
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    pairs["speedup"] = pairs["median_s_nchw"] / pairs["median_s_last"]
    table = (pairs.groupby(["source_last", "source_nchw", "impl"], sort=False)["speedup"]
             .agg(["size", "min", "max"]).reset_index())
    table.columns = ["channels-last file", "NCHW file", "tiler", "cases", "speedup min", "speedup max"]
    return table[columns]


#: Display formats of :func:`network_layout_speedups`'s number columns.
NETWORK_LAYOUT_FORMATS = {"speedup min": "{:.2f}×", "speedup max": "{:.2f}×"}


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

def paired_speedups_by_file(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`paired_speedups` of every file, one table with the file's name first.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` (any number of files).
    :return: ``file`` and the columns of :func:`paired_speedups`; no row when no file has two rounds.
    """
    columns = ["file", "size", "ranks", "tiler", "overlap", "rounds", "vs deepinv", "work ratio", "vs untiled"]
    tables = [paired_speedups(rows).assign(file=source) for source, rows in runs.groupby("source", sort=False)]
    tables = [table for table in tables if not table.empty]
    return pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)


def network_share(runs: pd.DataFrame) -> dict:
    """How much of a tiled call's median time the network took on its slowest rank, over the tiled rows of one
    file (fractions): what bounds a tiler's speedup at equal tile settings to the work ratio. Two medians of
    separate timings, so a share can pass 1.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: ``{"median", "low", "high"}``; ``nan`` when no tiled row recorded its network time.

    >>> rows = pd.DataFrame({"impl": ["untiled", "deepinv", "distinv", "distinv-sharded"],
    ...                      "median_s": [2.0, 1.0, 0.8, 0.8], "network_s": [None, 0.97, 0.79, 0.81]})
    >>> {key: round(value, 4) for key, value in network_share(rows).items()}
    {'median': 0.9875, 'low': 0.97, 'high': 1.0125}
    """
    tiled = runs[(runs["impl"] != "untiled") & runs["network_s"].notna()] if "network_s" in runs else runs.iloc[0:0]
    if tiled.empty:
        return {"median": math.nan, "low": math.nan, "high": math.nan}
    shares = tiled["network_s"] / tiled["median_s"]
    return {"median": float(shares.median()), "low": float(shares.min()), "high": float(shares.max())}


def round_drift(runs: pd.DataFrame) -> dict:
    """How much a case's time moved between the rounds of one ``--rounds`` file, against how much it moved
    between the repeats inside one round (fractions: largest over smallest, minus 1): the reason to pair
    ratios by round.

    :param pandas.DataFrame runs: rows of :func:`load_prior_runs` of one ``source``.
    :return: ``{"cases", "rounds", "between_max", "between_median", "within_max", "within_median"}``; ``cases``
        0 and ``nan`` elsewhere when the file has fewer than two rounds.

    >>> rows = pd.DataFrame({"round_medians_s": [[1.0, 1.2], [2.0, 2.1], [1.0, 1.1]],
    ...                      "times_s": [[1.0, 1.01, 1.2, 1.2], [2.0, 2.0, 2.1, 2.12], [1.0, 1.0, 1.1, 1.1]]})
    >>> {key: round(value, 4) for key, value in round_drift(rows).items()}
    {'cases': 3, 'rounds': 2, 'between_max': 0.2, 'between_median': 0.1, 'within_max': 0.01, 'within_median': 0.0095}
    """
    paired = _rows_with_rounds(runs)
    if paired.empty:
        return {"cases": 0, "rounds": math.nan, "between_max": math.nan, "between_median": math.nan,
                "within_max": math.nan, "within_median": math.nan}
    between, within = [], []
    for rounds, times in zip(paired["round_medians_s"], paired["times_s"]):
        between.append(max(rounds) / min(rounds) - 1)
        per_round = len(times) // len(rounds)
        within.append(max(max(chunk) / min(chunk) - 1 for chunk in
                          (times[i:i + per_round] for i in range(0, len(times), per_round))))
    return {"cases": len(between), "rounds": max(len(r) for r in paired["round_medians_s"]),
            "between_max": max(between), "between_median": statistics.median(between),
            "within_max": max(within), "within_median": statistics.median(within)}


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

def tradeoff_table(runs: pd.DataFrame, reference_impl: str = "deepinv", reference_overlap: int = 32) -> pd.DataFrame:
    """The reference tiler's row, then every other tiler's fastest setting that agrees with the untiled network at
    least as well as the reference (:func:`cheapest_at_least_as_good`), with its speedup and work ratio.

    :param pandas.DataFrame runs: rows of one sweep (see :func:`overlap_sweeps`).
    :param str reference_impl: the tiler compared against.
    :param int reference_overlap: its overlap.
    :return: columns ``tiler``, ``overlap``, ``agreement (dB)``, ``median s``, ``work multiplier``,
        ``speedup`` (the reference's time over the row's), ``work ratio`` (the reference's work multiplier over
        the row's); no row without the reference.

    >>> rows = pd.DataFrame({"impl": ["deepinv", "distinv", "distinv"], "overlap": [32, 16, 32],
    ...                      "median_s": [2.0, 1.6, 1.9], "agreement_psnr_db": [60.0, 62.0, 70.0],
    ...                      "work_multiplier": [1.5625, 1.25, 1.41]})
    >>> tradeoff_table(rows)[["tiler", "overlap", "speedup", "work ratio"]].to_dict("records")
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'tiler': 'deepinv', 'overlap': 32, 'speedup': 1.0, 'work ratio': 1.0},
     {'tiler': 'distinv', 'overlap': 16, 'speedup': 1.25, 'work ratio': 1.25}]
    """
    columns = ["tiler", "overlap", "agreement (dB)", "median s", "work multiplier", "speedup", "work ratio"]
    numeric = _numeric_overlaps(runs)
    reference = numeric[(numeric["impl"] == reference_impl) & (numeric["overlap"] == reference_overlap)]
    if reference.empty:
        return pd.DataFrame(columns=columns)
    rows = pd.concat([reference.iloc[:1], cheapest_at_least_as_good(runs, reference_impl, reference_overlap)],
                     ignore_index=True)
    ref = rows.iloc[0]
    table = pd.DataFrame({"tiler": rows["impl"], "overlap": rows["overlap"].astype(int),
                          "agreement (dB)": rows["agreement_psnr_db"], "median s": rows["median_s"],
                          "work multiplier": rows["work_multiplier"], "speedup": ref["median_s"] / rows["median_s"],
                          "work ratio": ref["work_multiplier"] / rows["work_multiplier"]})
    return table[columns].reset_index(drop=True)


#: Display formats of :func:`tradeoff_table`'s number columns.
TRADEOFF_FORMATS = {"agreement (dB)": "{:.1f}", "median s": "{:.2f}", "work multiplier": "{:.2f}",
                    "speedup": "{:.2f}×", "work ratio": "{:.2f}×"}


def best_tradeoff(sweeps: list[tuple[tuple, pd.DataFrame]], reference_impl: str = "deepinv",
                  reference_overlap: int = 32) -> dict:
    """Over the sweeps, the other tiler's setting with the largest speedup over the reference at equal or better
    agreement (a row of :func:`tradeoff_table`).

    :param list sweeps: :func:`overlap_sweeps`.
    :param str reference_impl: the tiler compared against.
    :param int reference_overlap: its overlap.
    :return: ``{"sweep", "tiler", "overlap", "agreement_db", "reference_agreement_db", "speedup", "work_ratio"}``;
        ``"none"``/``nan`` when no setting agrees at least as well as the reference.

    >>> rows = pd.DataFrame({"impl": ["deepinv", "distinv"], "overlap": [32, 16], "median_s": [2.0, 1.6],
    ...                      "agreement_psnr_db": [60.0, 62.0], "work_multiplier": [1.5625, 1.25]})
    >>> best_tradeoff([(("cpu", 2048, 2), rows)])  # doctest: +NORMALIZE_WHITESPACE
    {'sweep': 'cpu, 2048², 2 ranks', 'tiler': 'distinv', 'overlap': 16, 'agreement_db': 62.0,
     'reference_agreement_db': 60.0, 'speedup': 1.25, 'work_ratio': 1.25}
    """
    best = {"sweep": "none", "tiler": "none", "overlap": math.nan, "agreement_db": math.nan,
            "reference_agreement_db": math.nan, "speedup": math.nan, "work_ratio": math.nan}
    for (source, size, ranks), sweep in sweeps:
        table = tradeoff_table(sweep, reference_impl, reference_overlap)
        for _, row in table.iloc[1:].iterrows():
            if not row["speedup"] <= best["speedup"]:  # also true while best is nan
                best = {"sweep": f"{source}, {size}², {ranks} ranks", "tiler": row["tiler"],
                        "overlap": int(row["overlap"]), "agreement_db": float(row["agreement (dB)"]),
                        "reference_agreement_db": float(table.iloc[0]["agreement (dB)"]),
                        "speedup": float(row["speedup"]), "work_ratio": float(row["work ratio"])}
    return best


#: The pairs of tilers :func:`region_gains` compares: (what is compared, better, worse).
REGION_COMPARISONS = (("smooth blending vs crop-assign (same tiles)", "distinv", "distinv-crop"),
                      ("distinv's tiles vs deepinv's (same crop rule)", "distinv-crop", "deepinv"))


def region_gains(runs: pd.DataFrame, overlap: int = 32) -> pd.DataFrame:
    """What separates the tilers of one sweep at ``overlap``, region by region (border band, seams, elsewhere):
    the agreement of one tiler minus another's, for the pairs of :data:`REGION_COMPARISONS`: smooth blending
    against crop-assign on the same tiles, and distinv's tiles (cut at the signal border) against deepinv's
    (reflect-padded there) under the same crop rule.

    :param pandas.DataFrame runs: rows of one sweep (see :func:`overlap_sweeps`).
    :param int overlap: the overlap compared.
    :return: columns ``comparison``, ``border (dB)``, ``seams (dB)``, ``elsewhere (dB)`` (differences; empty where
        a region was exact); one row per pair whose two tilers ran at ``overlap``.

    >>> rows = pd.DataFrame({"impl": ["distinv", "distinv-crop"], "overlap": 32, "border_db": [73.5, 73.5],
    ...                      "seams_db": [66.3, 65.7], "elsewhere_db": [None, None]})
    >>> region_gains(rows).round(2).to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'comparison': 'smooth blending vs crop-assign (same tiles)', 'border (dB)': 0.0, 'seams (dB)': 0.6,
      'elsewhere (dB)': nan}]
    """
    columns = ["comparison"] + [f"{region} (dB)" for region in REGIONS]
    rows = _numeric_overlaps(runs)
    rows = rows[rows["overlap"] == overlap].drop_duplicates("impl").set_index("impl")
    rows = rows.assign(**{f"{region}_db": pd.to_numeric(rows[f"{region}_db"], errors="coerce") for region in REGIONS})
    records = []
    for comparison, better, worse in REGION_COMPARISONS:
        if {better, worse} <= set(rows.index):
            records.append({"comparison": comparison, **{
                f"{region} (dB)": float(rows.loc[better, f"{region}_db"] - rows.loc[worse, f"{region}_db"])
                for region in REGIONS}})
    return pd.DataFrame(records, columns=columns)


#: Display formats of :func:`region_gains`'s number columns.
REGION_FORMATS = {f"{region} (dB)": "{:+.1f}" for region in REGIONS}
