"""The radio benchmarks' parts and the radio prior's data: the scaling model's formula, the GPU check's dry run,
the metrics, the sky grid, the wavelet baseline on the images problem, and the training skies' scaling."""

import math

import numpy as np
import pytest
import torch

from data_scripts_loader import load_data_script
from distinv.bench.studies.radio import collective_from_study, data_term_model, gpu_operator_check
from distinv.radio.metrics import band_limited, log_snr, rlog, snr
from distinv.radio.sky import (
    SKY_PRIOR_TRAIN_SEEDS, SKY_PRIOR_VALIDATION_SEEDS, SKY_TRAINING_SEEDS, check_sky_seed, point_source_sky, sky_on_grid,
    training_sky,
)


def _study(c0=0.05, c_vis=2e-8, latency=1e-4, per_byte=1e-9, npix=64):
    rows = [{"backend": "finufft", "nprocs": 1, "n_visibilities": k, "t_compute": c0 + c_vis * k, "allreduce": {}}
            for k in (10**5, 10**6, 10**7)]
    sizes = (4096, 65536, 1 << 20)
    rows.append({"backend": "finufft", "nprocs": 2, "n_visibilities": 10**7, "t_compute": 0.0,
                 "allreduce": {str(n): 2 * latency + n * per_byte for n in sizes}})
    return {"config": {"npix": npix}, "rows": rows}


def test_scaling_model_is_the_stated_formula():
    table, constants = data_term_model(_study(), nprocs=(1, 2, 64))
    assert constants["seconds_per_visibility"] == pytest.approx(2e-8) and constants["fixed_seconds"] == pytest.approx(0.05)
    cost = collective_from_study(_study())
    assert cost.latency_s == pytest.approx(1e-4, rel=1e-6) and cost.seconds_per_byte == pytest.approx(1e-9, rel=1e-6)
    nbytes = 4 * 64 ** 2
    for p in (1, 2, 64):
        expected = 0.05 + 2e-8 * 1e7 / p + (0 if p == 1 else 2 * (p - 1) * 1e-4 + 2 * (p - 1) / p * nbytes * 1e-9)
        assert float(table.loc[table["nprocs"] == p, "t_total"].iloc[0]) == pytest.approx(expected)
    assert float(table["speedup"].iloc[0]) == 1.0
    with pytest.raises(ValueError, match="no 2-rank all-reduce timings"):
        collective_from_study({"rows": [r for r in _study()["rows"] if r["nprocs"] == 1]})


def test_gpu_check_dry_run_on_cpu():
    out = gpu_operator_check(dry_run=True)
    assert out["device"] == "cpu" and out["backend"] == "finufft" and out["n_visibilities"] == 10**4
    timing = out["attempts"]["finufft"]
    assert timing["A_seconds"] > 0 and timing["A_adjoint_seconds"] > 0


def test_snr_and_logsnr():
    x = torch.rand(16, 16, generator=torch.Generator().manual_seed(0))
    error = torch.randn(16, 16, generator=torch.Generator().manual_seed(1))
    error *= 0.1 * x.norm() / error.norm()  # an error of a tenth of the signal: 20 dB
    assert snr(x, x + error) == pytest.approx(20.0, abs=1e-6)
    assert snr(x, torch.zeros_like(x)) == pytest.approx(0.0) and snr(x, x) == math.inf
    # rlog uses each image's own peak: scaling both images leaves the logSNR unchanged
    assert log_snr(x, x + error, 1e3) == pytest.approx(log_snr(7 * x, 7 * (x + error), 1e3), abs=1e-4)
    assert float(rlog(x, 1e3).max()) == pytest.approx(float(x.max()) * math.log10(1001) / 3)
    with pytest.raises(ValueError, match="a .* must be a number > 1, got 1"):
        rlog(x, 1)


def test_band_limit_keeps_the_low_frequencies_only():
    n, cell = 32, 1e-3
    j = torch.arange(n, dtype=torch.float64)
    low = torch.cos(2 * math.pi * 2 * j / n)[None, :].expand(n, n)  # 2 cycles per field: u = 2 / (n cell)
    high = torch.cos(2 * math.pi * 12 * j / n)[None, :].expand(n, n)
    out = band_limited(low + high, cell, 5 / (n * cell))
    assert torch.allclose(out, low, atol=1e-10)


def test_sky_on_another_grid_keeps_the_flux_in_the_field():
    sky = point_source_sky(16, [(8, 8, 1.0), (8, 12, 0.5), (0, 0, 0.25)])
    out, note = sky_on_grid(sky, 1.0, 4, 2.0)  # 4 cells of 2": the field spans [-4, 4) arcsec
    assert out[2, 2] == 1.0 and out.sum() == pytest.approx(1.0)  # (8, 12) at l = 4" and (0, 0) fall outside
    assert note.startswith("resampled") and "0.75 Jy outside the field dropped" in note


def test_wavelet_baseline_on_the_images_problem():
    import distinv
    from distinv.solvers.run import run_reconstruction

    cfg = dict(size=32, K=2, blur_sigma=[1.0, 0.5], iterations=4, progress=False, pinv_iterations=0,
               solver="wavelet", tv_inner_iterations=3)
    result = distinv.launch(run_reconstruction, cfg, nprocs=1)
    assert result["final"]["psnr"] > result["final"]["psnr_init"] + 1.0
    assert all(row["sigma"] is None for row in result["history"])


def test_training_skies_are_scaled_as_the_problem_scales_them():
    train = load_data_script("train_denoiser")
    sampler = train.RadioSkySampler(patch=32, generator=torch.Generator().manual_seed(0), seed=0, sigma_d=0.01,
                                    dynamic_range=(100.0, 1000.0), pool=2, npix=64)
    patches = sampler.sample(16)
    assert patches.shape == (16, 1, 32, 32) and float(patches.min()) >= 0
    assert float(patches.amax(dim=(1, 2, 3)).max()) <= 0.01 * 1000.0 + 1e-6  # peak at most sigma_d * R_max
    sigma = sampler.noise_levels(1000, torch.Generator().manual_seed(1), sigma_max=0.2)
    assert float(sigma.min()) >= 0.005 and float(sigma.max()) <= 0.2
    assert all(seed in SKY_PRIOR_TRAIN_SEEDS for seed in sampler.used)
    # training and validation seeds are disjoint, both reserved: no chapter or test sky can use them
    assert set(SKY_PRIOR_TRAIN_SEEDS).isdisjoint(SKY_PRIOR_VALIDATION_SEEDS)
    assert SKY_PRIOR_VALIDATION_SEEDS.start >= SKY_TRAINING_SEEDS.start
    assert SKY_PRIOR_VALIDATION_SEEDS.stop <= SKY_TRAINING_SEEDS.stop
    with pytest.raises(ValueError, match="reserved for training skies"):
        check_sky_seed(SKY_PRIOR_VALIDATION_SEEDS.start)
    validation = train.radio_validation_images()
    first = validation[f"sky-{SKY_PRIOR_VALIDATION_SEEDS.start}"]
    assert first.shape == (1, train.RADIO_NPIX, train.RADIO_NPIX) and float(first.max()) == pytest.approx(1.0)
    sky = training_sky(SKY_PRIOR_VALIDATION_SEEDS.start, train.RADIO_NPIX)
    assert np.allclose(first[0].numpy(), sky / sky.max(), atol=1e-6)


def test_radio_training_config_names_the_prior_and_refuses_bad_settings():
    script = load_data_script("train_denoiser")
    settings = dict(channels=1, device="cpu", minutes=1.0, steps=None, patch=64, batch=8, lr=5e-4, loss="l1",
                    init="identity", sigma_max=0.2, seed=0, dataset="radio-skies")
    assert script.TrainingConfig(**settings).name == "drunet-small-radio"
    for change, message in [
        ({"channels": 3}, "dataset 'radio-skies' is one Stokes-I image: channels must be 1, got 3"),
        ({"radio_sigma": 0.5}, r"need 0 < radio_sigma / 2 < sigma_max, got radio_sigma=0.5, sigma_max=0.2"),
        ({"radio_range": (100.0, 10.0)}, r"radio_range must be \(low, high\) with 1 <= low <= high"),
        ({"patch": 512}, r"radio_pool must be >= 1 and patch <= 256"),
    ]:
        with pytest.raises(ValueError, match=message):
            script.TrainingConfig(**{**settings, **change})
