"""Benchmark grid configurations: a YAML file names the grid, its fixed values and where results go.

A configuration is a cartesian product of parameter lists (``grid``) plus scalar parameters shared by
every point (``fixed``). Each point of the product is one run: a plain ``dict`` handed to the use case's
rank entry point (see :mod:`distinv.bench.registry`). Example file::

    name: cpu-denoise
    results_dir: results/local/cpu
    timeout_s: 300
    fixed: {use_case: denoise, iterations: 4, seed: 0, device: cpu}
    grid:
      implementation: [deepinv, distinv]
      nprocs: [1, 2]
      size: [256, 512]
      patch: [128]
      overlap: [16]
    exclude:
      - {implementation: deepinv, blend: linear}

>>> cfg = BenchConfig.from_dict({"name": "demo", "fixed": {"use_case": "denoise"},
...                              "grid": {"nprocs": [1, 2], "size": [64]}})
>>> [p["nprocs"] for p in cfg.points()]
[1, 2]
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from distinv.bench.registry import COMMON_PARAMS, get_use_case, use_case_names

__all__ = ["BenchConfig", "load_config", "point_id", "stable_hash", "CONFIG_KEYS"]

#: Top-level keys a configuration file may hold.
CONFIG_KEYS = ("name", "description", "results_dir", "timeout_s", "grid", "fixed", "exclude")


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hex digest of a JSON-serialisable object, independent of key order.

    :param obj: the object (dicts, lists, numbers, strings).
    :param int length: number of hex digits kept.

    >>> stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    True
    """
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def point_id(params: Mapping[str, Any]) -> str:
    """The identity of a run: a hash of its parameters (``use_case`` included).

    Two configurations that share a point share its results, so a rerun or a bigger grid skips it.

    :param dict params: the point's parameters.

    >>> point_id({"use_case": "denoise", "size": 64}) == point_id({"size": 64, "use_case": "denoise"})
    True
    """
    return stable_hash(dict(params))


@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark grid.

    :param str name: name of the configuration (recorded with every run).
    :param dict grid: ``{parameter: [values]}``; the runs are the cartesian product.
    :param dict fixed: ``{parameter: value}`` shared by every run.
    :param list exclude: partial points; a run matching every key of one of them is left out.
    :param str results_dir: folder of the results store, relative to the working directory.
    :param float timeout_s: seconds after which a run's ranks are stopped and the run recorded as failed.
    :param str description: free text.
    """

    name: str
    grid: dict[str, list] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    exclude: list[dict] = field(default_factory=list)
    results_dir: str = "results/local"
    timeout_s: float | None = 600.0
    description: str = ""

    def __post_init__(self):
        _validate(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchConfig":
        """Build from a mapping (a parsed YAML file); unknown top-level keys raise ``ValueError``.

        :param dict data: the configuration.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a benchmark configuration must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown configuration key(s) {unknown}; allowed keys are {list(CONFIG_KEYS)}")
        if "name" not in data:
            raise ValueError("configuration key 'name' is missing")
        grid = {key: list(values) if isinstance(values, (list, tuple)) else [values]
                for key, values in (data.get("grid") or {}).items()}
        return cls(name=str(data["name"]), grid=grid, fixed=dict(data.get("fixed") or {}),
                   exclude=list(data.get("exclude") or []), results_dir=str(data.get("results_dir", "results/local")),
                   timeout_s=data.get("timeout_s", 600.0), description=str(data.get("description", "")))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (what :meth:`from_dict` reads back)."""
        return {"name": self.name, "description": self.description, "results_dir": self.results_dir,
                "timeout_s": self.timeout_s, "grid": self.grid, "fixed": self.fixed, "exclude": self.exclude}

    @property
    def config_hash(self) -> str:
        """Hash of the whole configuration, recorded with every run."""
        return stable_hash(self.to_dict())

    def points(self) -> list[dict[str, Any]]:
        """Every run of the grid, in grid order, as parameter dicts (defaults of the use case filled in)."""
        keys = list(self.grid)
        runs = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            params = {**self.fixed, **dict(zip(keys, values))}
            if any(all(params.get(k) == v for k, v in rule.items()) for rule in self.exclude):
                continue
            use_case = get_use_case(params["use_case"])
            runs.append({**COMMON_PARAMS, **use_case.parameters(), **params})
        return runs


def load_config(path: str | Path) -> BenchConfig:
    """Read and validate a YAML configuration file.

    :param str path: path of the ``.yaml`` file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark configuration {str(path)!r} does not exist")
    with path.open() as handle:
        data = yaml.safe_load(handle)
    return BenchConfig.from_dict(data if data is not None else {})


def _validate(cfg: BenchConfig) -> None:
    if not cfg.name:
        raise ValueError("configuration name must be a non-empty string")
    if not isinstance(cfg.grid, dict) or not isinstance(cfg.fixed, dict):
        raise TypeError("configuration 'grid' and 'fixed' must be mappings of parameter -> value(s)")
    empty = [key for key, values in cfg.grid.items() if len(values) == 0]
    if empty:
        raise ValueError(f"grid parameter(s) {empty} have an empty list of values: the grid would have no run")
    both = sorted(set(cfg.grid) & set(cfg.fixed))
    if both:
        raise ValueError(f"parameter(s) {both} appear in both 'grid' and 'fixed'; give each in one place")
    if cfg.timeout_s is not None and not (isinstance(cfg.timeout_s, (int, float)) and cfg.timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds or null, got {cfg.timeout_s!r}")
    for rule in cfg.exclude:
        if not isinstance(rule, dict) or not rule:
            raise ValueError(f"each 'exclude' entry must be a non-empty mapping parameter -> value, got {rule!r}")

    values = {**{k: [v] for k, v in cfg.fixed.items()}, **cfg.grid}
    if "use_case" not in values:
        raise ValueError("parameter 'use_case' is missing: give it in 'fixed' or 'grid' "
                         f"(registered use cases: {use_case_names()})")
    use_cases = [get_use_case(name) for name in values["use_case"]]
    allowed = set(COMMON_PARAMS).union(*(u.parameters() for u in use_cases))
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for use case(s) {[u.name for u in use_cases]}; "
                         f"allowed parameters are {sorted(allowed)}")
    for nprocs in values.get("nprocs", [COMMON_PARAMS["nprocs"]]):
        if not isinstance(nprocs, int) or isinstance(nprocs, bool) or nprocs < 1:
            raise ValueError(f"nprocs must be an integer >= 1, got {nprocs!r}")
    for iterations in values.get("iterations", [COMMON_PARAMS["iterations"]]):
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not cfg.points():
        raise ValueError("the grid has no run left after 'exclude'")
