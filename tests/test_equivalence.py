"""Chapter 00's check: deepinv's distributed stacked physics and tiled denoiser equal single-process."""

import pytest

from distinv import launch
from distinv.equivalence import BasicsConfig, run_basics


@pytest.mark.parametrize("nprocs", [2, 3])
def test_distributed_equals_single_process(nprocs):
    config = BasicsConfig(size=64, n_operators=3, patch_size=32, overlap=8, repeats=1)
    out = launch(run_basics, config, nprocs=nprocs, timeout=300)
    rows = {row["quantity"]: row for row in out["rows"]}
    assert out["world_size"] == nprocs
    assert rows["forward A x"]["max_abs_diff"] < 1e-6
    assert rows["adjoint Aᵀ y"]["max_abs_diff"] < 1e-5
    assert rows["tiled denoiser vs same tiling on 1 rank"]["max_abs_diff"] < 1e-5
    assert rows["tiled denoiser vs untiled"]["max_abs_diff"] > 1e-4  # tiling is not exact


@pytest.mark.parametrize("field, value, match", [
    ("size", 16, r"size must be an integer >= 32, got 16"),
    ("n_operators", 0, r"n_operators must be an integer >= 1, got 0"),
    ("overlap", 32, r"overlap must be in \[0, patch_size=32\), got 32"),
])
def test_bad_config(field, value, match):
    settings = dict(size=64, patch_size=32, overlap=8)
    settings[field] = value
    with pytest.raises(ValueError, match=match):
        BasicsConfig(**settings)
