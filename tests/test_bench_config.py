"""Benchmark configurations: grid expansion, identities and clear validation errors."""

import pytest

from distinv.bench.config import BenchConfig, load_config, point_id
from distinv.bench.registry import UseCase, get_use_case, register_use_case

BASE = {"name": "t", "fixed": {"use_case": "denoise", "size": 64}}


def test_grid_is_the_cartesian_product_with_defaults_filled():
    cfg = BenchConfig.from_dict({**BASE, "grid": {"nprocs": [1, 2], "patch": [16, 32]}})
    points = cfg.points()
    assert [(p["nprocs"], p["patch"]) for p in points] == [(1, 16), (1, 32), (2, 16), (2, 32)]
    assert all(p["overlap"] == get_use_case("denoise").parameters()["overlap"] for p in points)
    assert len({point_id(p) for p in points}) == 4


def test_exclude_drops_matching_points():
    cfg = BenchConfig.from_dict({**BASE, "grid": {"nprocs": [1, 2], "patch": [16, 32]},
                                 "exclude": [{"nprocs": 2, "patch": 16}]})
    assert [(p["nprocs"], p["patch"]) for p in cfg.points()] == [(1, 16), (1, 32), (2, 32)]


def test_point_identity_ignores_the_config_it_came_from():
    a = BenchConfig.from_dict({**BASE, "name": "a", "grid": {"nprocs": [1, 2]}}).points()
    b = BenchConfig.from_dict({**BASE, "name": "b", "grid": {"nprocs": [2]}}).points()
    assert point_id(a[1]) == point_id(b[0])
    assert point_id(a[0]) != point_id(a[1])


def test_config_hash_changes_with_the_grid():
    one = BenchConfig.from_dict({**BASE, "grid": {"nprocs": [1]}})
    two = BenchConfig.from_dict({**BASE, "grid": {"nprocs": [1, 2]}})
    assert one.config_hash != two.config_hash
    assert one.config_hash == BenchConfig.from_dict(one.to_dict()).config_hash


@pytest.mark.parametrize("data, match", [
    ({**BASE, "grids": {}}, r"unknown configuration key\(s\) \['grids'\]"),
    ({**BASE, "grid": {"nprocs": []}}, r"grid parameter\(s\) \['nprocs'\] have an empty list"),
    ({**BASE, "grid": {"nprocs": [0]}}, r"nprocs must be an integer >= 1, got 0"),
    ({**BASE, "grid": {"nprocs": [-2]}}, r"nprocs must be an integer >= 1, got -2"),
    ({**BASE, "grid": {"iterations": [0]}}, r"iterations must be an integer >= 1, got 0"),
    ({**BASE, "grid": {"patchsize": [8]}}, r"unknown parameter\(s\) \['patchsize'\] for use case\(s\) \['denoise'\]"),
    ({"name": "t", "grid": {"nprocs": [1]}}, r"parameter 'use_case' is missing"),
    ({"name": "t", "fixed": {"use_case": "nope"}}, r"unknown use case 'nope'; registered use cases are"),
    ({**BASE, "grid": {"size": [64]}}, r"parameter\(s\) \['size'\] appear in both 'grid' and 'fixed'"),
    ({**BASE, "grid": {"nprocs": [1]}, "exclude": [{"nprocs": 1}]}, r"no run left after 'exclude'"),
    ({**BASE, "timeout_s": -1}, r"timeout_s must be a positive number of seconds or null, got -1"),
    ({"fixed": {"use_case": "denoise"}}, r"configuration key 'name' is missing"),
])
def test_invalid_configurations_raise_clear_errors(data, match):
    with pytest.raises(ValueError, match=match):
        BenchConfig.from_dict(data)


def test_load_config_reads_yaml_and_reports_a_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\nfixed: {use_case: allreduce}\ngrid:\n  nprocs: [1, 2]\n  size: 32\n")
    cfg = load_config(path)
    assert [p["size"] for p in cfg.points()] == [32, 32]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_shipped_configurations_are_valid():
    from distinv.bench.__main__ import CONFIGS_DIR

    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    assert "cpu" in names and "tiny" in names
    for path in CONFIGS_DIR.glob("*.yaml"):
        assert load_config(path).points()


def test_registry_rejects_duplicates_and_bad_entries():
    with pytest.raises(ValueError, match="already registered"):
        register_use_case(UseCase("denoise", "distinv.bench.use_cases.denoise:run_denoise"))
    with pytest.raises(ValueError, match="entry must be 'module:function'"):
        register_use_case(UseCase("x_bad_entry", "distinv.bench.use_cases.denoise.run_denoise"))
    with pytest.raises(ValueError, match=r"redefines common parameter\(s\) \['nprocs'\]"):
        register_use_case(UseCase("x_clash", "m:f", {"nprocs": 3}))
