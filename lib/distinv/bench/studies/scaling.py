r"""A strong-scaling model of the replicated tiled prior, built from measured parts.

On :math:`P` ranks an image of :math:`N \times N` pixels cut into :math:`T = \lceil N/p \rceil^2` tiles
of core :math:`p` and halo :math:`o` costs per iteration

.. math::

    T(P) = \underbrace{\lceil T / P \rceil \, (p + 2o)^2 \, c_{\text{pix}}}_{\text{tiles of the busiest rank}}
         + \underbrace{2(P-1)\,\alpha + \tfrac{2(P-1)}{P}\, n_{\text{bytes}}\, \gamma}_{\text{ring all-reduce of the image}}
         + N^2 c_{\text{other}},

where :math:`c_{\text{pix}}` is the measured prior time per processed pixel (one rank),
:math:`\alpha` and :math:`\gamma` the latency and inverse bandwidth fitted to measured all-reduces of
two ranks (:math:`t = 2\alpha + n_{\text{bytes}}\gamma` for :math:`P = 2`), and :math:`c_{\text{other}}`
the measured unsplit time per image pixel (copies, zero-filling the full-size output), which does not
shrink with :math:`P` in the replicated layout. The ring formula assumes every link is as fast as the
measured one: across nodes, pass the network's figures instead.

>>> cost = CollectiveCost(latency_s=1e-4, seconds_per_byte=1e-9)
>>> model = StrongScalingModel(seconds_per_pixel=1e-7, collective=cost)
>>> table = model.predict(size=1024, patch=256, overlap=32, nprocs=[1, 16])
>>> table["tiles_per_rank"].tolist(), bool(table["speedup"].iloc[1] < 16)
([16, 1], True)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["CollectiveCost", "StrongScalingModel", "load_published_scaling", "published_conditions", "POWERS_OF_TWO",
           "fit_models", "predict_all", "model_constants", "prediction_table", "PREDICTION_FORMATS"]

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class CollectiveCost:
    """Latency–bandwidth cost of a ring all-reduce.

    :param float latency_s: :math:`\\alpha`, seconds per message step.
    :param float seconds_per_byte: :math:`\\gamma`, inverse bandwidth.
    """

    latency_s: float
    seconds_per_byte: float

    def __post_init__(self):
        if self.latency_s < 0 or self.seconds_per_byte < 0:
            raise ValueError(f"latency_s and seconds_per_byte must be >= 0, got {self.latency_s}, "
                             f"{self.seconds_per_byte}")

    def allreduce(self, nbytes: float, nprocs: int) -> float:
        """Seconds to all-reduce ``nbytes`` over ``nprocs`` ranks (0 on one rank).

        :param float nbytes: message size.
        :param int nprocs: ranks.
        """
        if nprocs <= 1:
            return 0.0
        return 2 * (nprocs - 1) * self.latency_s + 2 * (nprocs - 1) / nprocs * nbytes * self.seconds_per_byte

    @classmethod
    def fit(cls, runs: pd.DataFrame) -> "CollectiveCost":
        """Least-squares fit of :math:`t = 2\\alpha + n\\gamma` to 2-rank all-reduce runs.

        :param pandas.DataFrame runs: per-run table of the ``allreduce`` use case (``t_comm``,
            ``comm_bytes``, ``nprocs``), at least two message sizes.
        """
        two = runs[(runs["use_case"] == "allreduce") & (runs["nprocs"] == 2)]
        if two["comm_bytes"].nunique() < 2:
            raise ValueError(f"fitting needs 2-rank allreduce runs of at least 2 sizes, got "
                             f"{two['comm_bytes'].nunique()}")
        slope, intercept = np.polyfit(two["comm_bytes"].astype(float), two["t_comm"].astype(float), 1)
        return cls(latency_s=max(intercept, 0.0) / 2, seconds_per_byte=max(slope, 0.0))


@dataclass(frozen=True)
class StrongScalingModel:
    """Predicted time per iteration of the replicated tiled prior on ``P`` ranks (see the module docstring).

    :param float seconds_per_pixel: :math:`c_{\\text{pix}}`, prior seconds per processed window pixel.
    :param CollectiveCost collective: all-reduce cost.
    :param float other_seconds_per_pixel: :math:`c_{\\text{other}}`, unsplit seconds per image pixel.
    """

    seconds_per_pixel: float
    collective: CollectiveCost
    other_seconds_per_pixel: float = 0.0

    @classmethod
    def from_runs(cls, runs: pd.DataFrame, variant: str = "deepinv") -> "StrongScalingModel":
        """Measure the model's constants from one source's per-run table.

        :param pandas.DataFrame runs: per-run table holding one-rank ``denoise`` runs of ``variant`` and
            2-rank ``allreduce`` runs; the largest image is used for the per-pixel rates.
        :param str variant: which tiled prior's rate to use.
        """
        one = runs[(runs["use_case"] == "denoise") & (runs["nprocs"] == 1) & (runs["variant"] == variant)]
        if one.empty:
            raise ValueError(f"no one-rank denoise run of variant {variant!r} to measure the tile rate")
        largest = one.sort_values("size").iloc[-1]
        pixels = float(largest["size"]) ** 2
        return cls(seconds_per_pixel=float(largest["t_prior"]) / (float(largest["tile_work_multiplier"]) * pixels),
                   collective=CollectiveCost.fit(runs),
                   other_seconds_per_pixel=float(largest["t_other"]) / pixels)

    def predict(self, size: int, patch: int, overlap: int, nprocs: Sequence[int] = POWERS_OF_TWO,
                channels: int = 1, bytes_per_value: int = 4) -> pd.DataFrame:
        """Predicted time per iteration and its parts for each number of ranks.

        :param int size: image side :math:`N`.
        :param int patch: tile core :math:`p`.
        :param int overlap: halo :math:`o`.
        :param list nprocs: numbers of ranks.
        :param int channels: image channels (the all-reduced bytes and the work scale with them).
        :param int bytes_per_value: 4 for float32.
        :return: columns ``nprocs, tiles_per_rank, t_compute, t_comm, t_other, t_total, speedup, efficiency``.
        """
        for name, value in (("size", size), ("patch", patch)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"overlap must be an integer >= 0, got {overlap!r}")
        tiles = math.ceil(size / patch) ** 2
        window = (patch + 2 * overlap) ** 2 * channels
        nbytes = size * size * channels * bytes_per_value
        t_other = size * size * channels * self.other_seconds_per_pixel

        def parts(ranks: int) -> dict:
            per_rank = math.ceil(tiles / ranks)
            t_compute = per_rank * window * self.seconds_per_pixel
            t_comm = self.collective.allreduce(nbytes, ranks)
            return {"nprocs": ranks, "tiles_per_rank": per_rank, "t_compute": t_compute, "t_comm": t_comm,
                    "t_other": t_other, "t_total": t_compute + t_comm + t_other}

        for ranks in nprocs:
            if not isinstance(ranks, int) or ranks < 1:
                raise ValueError(f"nprocs must hold integers >= 1, got {ranks!r}")
        table = pd.DataFrame([parts(ranks) for ranks in nprocs])
        table["speedup"] = parts(1)["t_total"] / table["t_total"]
        table["efficiency"] = table["speedup"] / table["nprocs"]
        return table


def fit_models(runs: pd.DataFrame) -> tuple[dict[str, StrongScalingModel], dict[str, str]]:
    """One :class:`StrongScalingModel` per ``source`` of the per-run table, where its runs allow one.

    :return: the models by source, and for every source without a model the reason.
    """
    models, reasons = {}, {}
    for source, part in runs.groupby("source"):
        try:
            models[source] = StrongScalingModel.from_runs(part)
        except ValueError as reason:
            reasons[source] = str(reason)
    return models, reasons


def predict_all(models: dict[str, StrongScalingModel], runs: pd.DataFrame, size: int, patch: int, overlap: int,
                channels: int = 1, link: CollectiveCost | None = None) -> dict[str, pd.DataFrame]:
    """Each model's prediction on :data:`POWERS_OF_TWO` ranks, plus, for a source measured on an NVIDIA GPU
    and a ``link`` given, the same compute with that interconnect (what-if: one GPU cannot measure it).

    :return: ``{label: table of StrongScalingModel.predict}``.
    """
    predictions = {}
    for source, model in models.items():
        predictions[f"model from {source}"] = model.predict(size, patch, overlap, POWERS_OF_TWO, channels=channels)
        on_gpu = runs[runs["source"] == source]["device_name"].astype(str).str.contains("NVIDIA").any()
        if link is not None and on_gpu:
            label = f"{source} compute, assumed {1e-9 / link.seconds_per_byte:g} GB/s link"
            predictions[label] = dataclasses.replace(model, collective=link).predict(
                size, patch, overlap, POWERS_OF_TWO, channels=channels)
    return predictions


def model_constants(models: dict[str, StrongScalingModel]) -> pd.DataFrame:
    """The fitted constants of every model, in readable units (ns per pixel, µs, GB/s).

    >>> model = StrongScalingModel(seconds_per_pixel=2e-9, collective=CollectiveCost(1e-5, 1e-10))
    >>> model_constants({"h100": model}).iloc[0].to_dict()
    {'source': 'h100', 'c_pix (ns/pixel)': 2.0, 'alpha (µs)': 10.0, 'bandwidth (GB/s)': 10.0, 'c_other (ns/pixel)': 0.0}
    """
    return pd.DataFrame([
        {"source": source, "c_pix (ns/pixel)": 1e9 * model.seconds_per_pixel,
         "alpha (µs)": 1e6 * model.collective.latency_s,
         "bandwidth (GB/s)": (1e-9 / model.collective.seconds_per_byte if model.collective.seconds_per_byte
                              else float("inf")),
         "c_other (ns/pixel)": 1e9 * model.other_seconds_per_pixel}
        for source, model in models.items()]).round(3)


def prediction_table(predictions: dict[str, pd.DataFrame], published: pd.DataFrame, size: int,
                     ranks: int = 64) -> pd.DataFrame:
    """Each prediction on ``ranks`` ranks, then the published figure at ``size`` (problem ``sr8``) where there is one.

    :param dict predictions: :func:`predict_all`.
    :param pandas.DataFrame published: :func:`load_published_scaling`.
    :param int size: image side of the predictions.
    :param int ranks: the rank count compared.
    :return: columns ``series``, ``ranks``, ``speedup``, ``efficiency`` (fractions), ``tiles on the busiest rank``
        and ``all-reduce share`` (of the iteration; empty for the published row).

    >>> model = StrongScalingModel(seconds_per_pixel=1e-8, collective=CollectiveCost(1e-5, 1e-10))
    >>> table = model.predict(4096, 448, 32, POWERS_OF_TWO)
    >>> published = pd.DataFrame({"problem": ["sr8"], "image": [4096], "gpus": [64], "speedup": [14.0],
    ...                           "efficiency": [0.22]})
    >>> prediction_table({"model": table}, published, 4096).to_dict("records")[1]  # doctest: +NORMALIZE_WHITESPACE
    {'series': 'published (V100, 4096²)', 'ranks': 64, 'speedup': 14.0, 'efficiency': 0.22,
     'tiles on the busiest rank': nan, 'all-reduce share': nan}
    """
    columns = ["series", "ranks", "speedup", "efficiency", "tiles on the busiest rank", "all-reduce share"]
    rows = []
    for label, table in predictions.items():
        at = table.set_index("nprocs").loc[ranks]
        rows.append({"series": label, "ranks": ranks, "speedup": float(at["speedup"]),
                     "efficiency": float(at["efficiency"]), "tiles on the busiest rank": int(at["tiles_per_rank"]),
                     "all-reduce share": float(at["t_comm"] / at["t_total"])})
    figures = published[(published["problem"] == "sr8") & (published["image"] == size)].set_index("gpus")
    if ranks in figures.index:
        rows.append({"series": f"published (V100, {size}²)", "ranks": ranks,
                     "speedup": float(figures.loc[ranks, "speedup"]),
                     "efficiency": float(figures.loc[ranks, "efficiency"])})
    return pd.DataFrame(rows, columns=columns)


#: Display formats of :func:`prediction_table`'s number columns.
PREDICTION_FORMATS = {"speedup": "{:.1f}×", "efficiency": "{:.0%}", "tiles on the busiest rank": "{:.0f}",
                      "all-reduce share": "{:.0%}"}


def load_published_scaling() -> pd.DataFrame:
    """Published V100 strong-scaling figures of another code (numpex/benchmark_invprob_largescale).

    The file's header comment states the conditions; these numbers come from another code on another
    machine: compare the shape of the curves, not the values.

    >>> load_published_scaling().query("problem == 'sr8' and image == 4096")["gpus"].tolist()
    [1, 2, 64]
    """
    text = resources.files("distinv.bench").joinpath("data/published_scaling.csv")
    with resources.as_file(text) as path:
        return pd.read_csv(path, comment="#")


def published_conditions() -> str:
    """The header comment of the published-figures file, as one paragraph."""
    text = resources.files("distinv.bench").joinpath("data/published_scaling.csv").read_text()
    return " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
