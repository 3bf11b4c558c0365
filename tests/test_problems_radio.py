"""The radio problem through the one runner: 1, 2, 3 ranks equal, each rank reads its own rows, the dirty start,
the AIRI scale, the wavelet baseline and clear errors for bad inputs (a tiny MS, npix 32, 2 iterations)."""

import math

import numpy as np
import pytest
import torch

import distinv
from distinv.problems.radio import RadioConfig, heuristic_noise, image_scale
from distinv.solvers.run import default_config, split_config
from radio_cases import point_source_ms, sky_ms
from rank_functions_radio import radio_runs

NPIX = 32
PNP = dict(problem="radio", npix=NPIX, iterations=2, weights="random", positivity=False, patch=16, overlap=8,
           progress=False, pinv_iterations=0, cg_iterations=3, sigma_start=0.05, sigma_end=0.01)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("radio")
    ms, cell = sky_ms(folder / "sky.ms")
    flagged = point_source_ms(folder / "flagged.ms", n_rows=4, flag_rows=range(4))
    two_rows = point_source_ms(folder / "two.ms", n_rows=2)
    base = {**PNP, "ms": str(ms), "cell_arcsec": cell}
    runs = [
        base,  # PnP-HQS, one block per rank
        {**base, "solver": "wavelet", "iterations": 3, "tv_inner_iterations": 3, "blocks": 3},
        {**base, "cell_arcsec": 1.2 * cell / 0.8},  # beyond Nyquist: aliasing
        {**PNP, "ms": str(flagged), "cell_arcsec": 2.0},
        {**PNP, "ms": str(two_rows), "cell_arcsec": 2.0},
    ]
    return {"ms": ms, "cell": cell, "runs": runs}


_RESULTS: dict = {}


def _results(cases, nprocs: int) -> list:
    if nprocs not in _RESULTS:
        _RESULTS[nprocs] = distinv.launch(radio_runs, cases["runs"], nprocs=nprocs, timeout=300)
    return _RESULTS[nprocs]


@pytest.mark.parametrize("nprocs", [2, 3])
def test_ranks_give_the_same_reconstruction_and_read_only_their_rows(cases, nprocs):
    one, many = _results(cases, 1), _results(cases, nprocs)
    for index in (0, 1):  # PnP-HQS with one block per rank; wavelet with 3 blocks whatever the ranks
        a, b = one[index]["final"], many[index]["final"]
        for key in ("snr", "logsnr", "psnr", "snr_dirty"):
            assert b[key] == pytest.approx(a[key], abs=1e-3), key  # the target: 0.01 dB
        for row_a, row_b in zip(one[index]["history"], many[index]["history"]):
            assert row_b["snr"] == pytest.approx(row_a["snr"], abs=1e-3)
        assert torch.allclose(many[index]["images"]["reconstruction"], one[index]["images"]["reconstruction"],
                              atol=1e-4 * float(one[index]["images"]["truth"].max()))
    n_rows = one[0]["radio"]["n_rows"]
    rows = [block for rank in many[0]["per_rank"] for block in rank["ms_rows"]]
    assert sorted(map(tuple, rows)) == [(r * n_rows // nprocs, (r + 1) * n_rows // nprocs) for r in range(nprocs)]
    assert sum(rank["visibilities"] for rank in many[0]["per_rank"]) == one[0]["radio"]["n_visibilities"]
    # three blocks dealt round-robin: every rank reads its own blocks only
    assert sorted(b for rank in many[1]["per_rank"] for b in rank["blocks"]) == [0, 1, 2]
    assert len(many[1]["per_rank"][0]["blocks"]) == 3 - (nprocs - 1) * (3 // nprocs)
    # the gradient is one all-reduce of an image per operator application: a few images per iteration
    assert 0 < many[0]["final"]["comm_bytes_per_iteration"] < 50 * nprocs * NPIX ** 2 * 4


def test_same_errors_on_every_rank(cases):
    for nprocs in (1, 3):
        results = _results(cases, nprocs)
        aliasing, flagged = (results[k]["errors"] for k in (2, 3))
        assert len(set(aliasing)) == 1 and "is too large for the longest baseline" in aliasing[0]
        assert "arcsec" in aliasing[0] and "wavelengths" in aliasing[0]
        assert len(set(flagged)) == 1 and "are flagged" in flagged[0]
    assert "has only n_rows=2 rows" in _results(cases, 3)[4]["errors"][0]
    assert _results(cases, 1)[4]["final"]["nprocs"] == 1  # two rows are enough for one rank


def test_dirty_start_scale_and_baselines(cases):
    result = _results(cases, 1)[0]
    radio, final = result["radio"], result["final"]
    # the AIRI rule: alpha = sigma_h / sigma_d, sigma_h = 1 / sqrt(2 L); L >= sum(w) (the PSF's peak)
    assert radio["sigma_heuristic"] == pytest.approx(heuristic_noise(radio["raw_sqnorm"]))
    assert radio["alpha"] == pytest.approx(radio["sigma_heuristic"] / RadioConfig().denoiser_sigma)
    assert radio["raw_sqnorm"] >= radio["sum_weights"] * (1 - 1e-6)
    assert final["sqnorm"] == pytest.approx(1.0)
    assert radio["sky_grid"].startswith("the grid of the sky file")
    # the start point is the dirty image; the wavelet baseline beats it in SNR and logSNR
    assert result["history"][0]["iteration"] == 1 and math.isfinite(final["snr_dirty"])
    wavelet = _results(cases, 1)[1]["final"]
    assert wavelet["snr"] > wavelet["snr_dirty"] + 3 and wavelet["logsnr"] > wavelet["logsnr_dirty"]
    # uv coverage for the chapter: every rank's subsample, at most 20,000 points in all
    uv = result["uv_by_rank"]
    assert len(uv) == 1 and 0 < uv[0].shape[0] <= 20_000 and uv[0].shape[1] == 2


def test_dirty_image_of_a_point_source_through_the_problem(tmp_path):
    ms = point_source_ms(tmp_path / "point.ms", offset_pixels=(5, -7), cell_arcsec=2.0, flux=1.5, n_rows=60)
    result = distinv.launch(radio_runs, [{**PNP, "ms": str(ms), "cell_arcsec": 2.0, "iterations": 1}], nprocs=1)[0]
    dirty = result["images"]["dirty"]
    assert np.unravel_index(int(dirty.argmax()), dirty.shape) == (NPIX // 2 + 5, NPIX // 2 - 7)
    assert float(dirty.max()) == pytest.approx(1.5, rel=1e-4)
    assert result["images"]["truth"] is None and math.isnan(result["final"]["snr"])  # no sky file: no truth


def test_alias_of_the_dirty_command(tmp_path, capsys):
    from distinv.problems.radio import main

    ms = point_source_ms(tmp_path / "point.ms", offset_pixels=(2, 3), cell_arcsec=2.0, flux=2.0, n_rows=40)
    out = tmp_path / "dirty.npy"
    assert main(["dirty", str(ms), "--npix", "16", "--cell", "2", "--out", str(out)]) == 0
    image = np.load(out)
    assert np.unravel_index(image.argmax(), image.shape) == (10, 11) and image.max() == pytest.approx(2.0, rel=1e-4)
    assert main(["image", str(ms)]) == 2 and "usage: python -m distinv.problems.radio dirty" in capsys.readouterr().err


def test_defaults_and_split():
    cfg = default_config("radio")
    assert cfg["problem"] == "radio" and cfg["ms"] is None and cfg["sigma_end"] == 16 * RadioConfig().denoiser_sigma
    problem, solver, prior, options = split_config({"problem": "radio", "npix": 64, "solver": "wavelet"})
    assert isinstance(problem, RadioConfig) and problem.npix == 64 and solver.solver == "wavelet"
    assert image_scale(8.0, 0.25) == pytest.approx(1.0)


def test_bad_inputs_are_refused_with_the_parameter_named(tmp_path, cases):
    not_ms = tmp_path / "folder.ms"
    not_ms.mkdir()
    with pytest.raises(ValueError, match=r"is not a Measurement Set: not a casacore table folder"):
        RadioConfig(ms=str(not_ms))
    with pytest.raises(ValueError, match=r"column='CORRECTED_DATA' is not in .*: the data columns are DATA"):
        RadioConfig(ms=str(cases["ms"]), column="CORRECTED_DATA")
    for kwargs, message in [
        ({"npix": 8}, r"npix must be an integer in \[16, 8192\], got 8"),
        ({"cell_arcsec": 0.0}, r"cell_arcsec must be a number > 0, got 0.0"),
        ({"backend": "nfft"}, r"backend must be one of \('finufft', 'deepinv', 'cufinufft'\), got 'nfft'"),
        ({"blocks": 0}, r"blocks must be None \(one per rank\) or an integer >= 1, got 0"),
        ({"sky": str(tmp_path / "none.npz")}, r"sky must be None or the path of a sky .npz file"),
        ({"denoiser_sigma": -1.0}, r"denoiser_sigma must be a number > 0, got -1.0"),
        ({"log_dynamic_range": 1.0}, r"log_dynamic_range must be a number > 1, got 1.0"),
        ({"weight_column": "SIGMA"}, r"weight_column must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            RadioConfig(**kwargs)
    with pytest.raises(ValueError, match=r"blocks must be >= the number of ranks \(3\), got 2"):
        RadioConfig(ms=str(cases["ms"]), blocks=2).check_world(3, 100)
    with pytest.raises(ValueError, match=r"ms must be the path of a Measurement Set, got None"):
        RadioConfig().info()
