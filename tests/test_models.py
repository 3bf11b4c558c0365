"""distinv.models: shipped weights load, denoise held-out images, and refuse bad input."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from deepinv.models import DRUNet, TVDenoiser

from distinv import models
from distinv.models import WeightsHashError, load_denoiser
from data_scripts_loader import load_data_script

SHIPPED = ("drunet-small-gray", "drunet-small-color")
HELD_OUT = {"drunet-small-gray": "camera", "drunet-small-color": "chelsea"}


def _psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / torch.mean((x_hat.clamp(0, 1) - x) ** 2).item())


def _held_out_crop(name: str, size: int = 128) -> torch.Tensor:
    image = torch.from_numpy(getattr(skimage.data, HELD_OUT[name])()).float() / 255
    x = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
    top, left = (x.shape[1] - size) // 2, (x.shape[2] - size) // 2
    return x[None, :, top : top + size, left : left + size].contiguous()


def _record(name: str) -> dict:
    return json.loads((models.WEIGHTS_DIR / f"{name}.json").read_text())


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_record_is_consistent(name):
    record = _record(name)
    weights = models.WEIGHTS_DIR / record["file"]
    assert models.sha256_of(weights) == record["sha256"]
    assert weights.stat().st_size <= 10_000_000
    state = torch.load(weights, weights_only=True)
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert HELD_OUT[name] in record["data"]["validation"]
    assert HELD_OUT[name] not in record["data"]["train"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_denoiser_beats_noisy_input_and_tv_on_held_out_image(name):
    torch.manual_seed(0)
    sigma = 0.1
    x = _held_out_crop(name)
    y = x + sigma * torch.randn_like(x)
    denoiser = load_denoiser(name)
    assert not denoiser.training
    with torch.no_grad():
        psnr_model = _psnr(denoiser(y, sigma), x)
    tv = TVDenoiser(tau=0.05, n_it_max=100)
    psnr_tv = max(_psnr(tv(y, ths=f * sigma), x) for f in (0.5, 0.75, 1.0))
    psnr_noisy = _psnr(y, x)
    assert psnr_model > psnr_noisy + 6.0, (psnr_model, psnr_noisy)
    assert psnr_model >= psnr_tv, (psnr_model, psnr_tv)


def test_available_denoisers_lists_shipped_and_official():
    names = set(models.available_denoisers())
    assert set(SHIPPED) | {"drunet-gray", "drunet-color"} <= names
    assert names <= set(models.SHIPPED_TRAINING) | set(models.OFFICIAL)  # no stray record


def test_registered_name_without_weights_says_how_to_train_it(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)  # no weights at all
    message = r"'drunet-small-ct' has no weights in .* yet: train them with `python " \
              r"data_scripts/train_denoiser.py --dataset ct-phantoms --channels 1`"
    with pytest.raises(FileNotFoundError, match=message):
        load_denoiser("drunet-small-ct")


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match=r"unknown denoiser name 'drunet-huge'; available: \["):
        load_denoiser("drunet-huge")


def test_name_of_wrong_type_is_refused():
    with pytest.raises(TypeError, match="name must be a str, got int"):
        load_denoiser(3)


def test_unknown_source_is_refused():
    message = r"unknown source 'hub': expected one of \['shipped', 'download'\] or a path"
    with pytest.raises(ValueError, match=message):
        load_denoiser("drunet-small-gray", source="hub")


def test_source_that_the_name_lacks_is_refused():
    with pytest.raises(ValueError, match="'drunet-small-gray' ships with distinv and has no"):
        load_denoiser("drunet-small-gray", source="download")
    with pytest.raises(ValueError, match="'drunet-color' is deepinv's official DRUNet, not"):
        load_denoiser("drunet-color")


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        load_denoiser("drunet-small-gray", source=tmp_path / "absent.pt")


def test_path_source_loads_the_same_network(tmp_path):
    copy = tmp_path / "mine.pt"
    shutil.copy(models.WEIGHTS_DIR / "drunet-small-gray.pt", copy)
    y = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        from_path = load_denoiser("drunet-small-gray", source=str(copy))(y, 0.05)
        shipped = load_denoiser("drunet-small-gray")(y, 0.05)
    torch.testing.assert_close(from_path, shipped, rtol=0, atol=0)


def test_path_source_with_tampered_file_fails_its_sidecar_hash(tmp_path):
    for suffix in (".pt", ".json"):
        shutil.copy(models.WEIGHTS_DIR / f"drunet-small-gray{suffix}", tmp_path)
    _flip_one_byte(tmp_path / "drunet-small-gray.pt")
    message = r"sha256 of .*drunet-small-gray\.pt is [0-9a-f]{64}, expected [0-9a-f]{64}"
    with pytest.raises(WeightsHashError, match=message):
        load_denoiser("drunet-small-gray", source=tmp_path / "drunet-small-gray.pt")


def test_shipped_source_with_tampered_file_is_refused(tmp_path, monkeypatch):
    for suffix in (".pt", ".json"):
        shutil.copy(models.WEIGHTS_DIR / f"drunet-small-gray{suffix}", tmp_path)
    _flip_one_byte(tmp_path / "drunet-small-gray.pt")
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsHashError, match="the file is corrupt or was replaced"):
        load_denoiser("drunet-small-gray")


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture
def cached_official_gray(tmp_path):
    """A stand-in for deepinv's official gray DRUNet file in a cache directory (random weights)."""
    torch.manual_seed(1)
    network = DRUNet(1, 1, pretrained=None)
    path = tmp_path / models.OFFICIAL["drunet-gray"].file_name
    torch.save({k: v.half() for k, v in network.state_dict().items()}, path)
    return path


def test_download_source_uses_the_cache_without_network(cached_official_gray, offline, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(cached_official_gray.parent))
    fetched = models.fetch_official_weights("drunet-gray")
    assert fetched == cached_official_gray
    recorded = (fetched.parent / (fetched.name + ".sha256")).read_text().strip()
    assert recorded == models.sha256_of(fetched)
    denoiser = load_denoiser("drunet-gray", source="download")
    expected = torch.load(cached_official_gray, weights_only=True)["m_head.weight"].float()
    torch.testing.assert_close(denoiser.m_head.weight, expected, rtol=0, atol=0)


def test_download_source_checks_the_recorded_hash(cached_official_gray, offline):
    cache = cached_official_gray.parent
    models.fetch_official_weights("drunet-gray", cache_dir=cache)
    _flip_one_byte(cached_official_gray)
    with pytest.raises(WeightsHashError, match="drunet_deepinv_gray_finetune_26k.pth"):
        load_denoiser("drunet-gray", source="download", cache_dir=cache)


def test_official_url_is_deepinvs():
    from deepinv.models.utils import get_weights_url

    assert models.official_weights_url("drunet-color") == get_weights_url(
        "drunet", "drunet_deepinv_color_finetune_22k.pth"
    )
    with pytest.raises(ValueError, match=r"name must be one of \['drunet-color', 'drunet-gray'\]"):
        models.official_weights_url("drunet-small-gray")


def _training_script():
    return load_data_script("train_denoiser")


def test_training_script_writes_loadable_weights_and_refuses_to_overwrite(tmp_path):
    script = _training_script()
    images = script.collect_images(None)
    npz = tmp_path / "images.npz"
    assert script.main(["--export-data", str(npz)]) == 0
    archive = np.load(npz)
    np.testing.assert_array_equal(archive["val__camera"], images["val"]["camera"])

    args = ["--channels", "1", "--steps", "2", "--patch", "32", "--batch", "2",
            "--validation-crop", "32", "--data-npz", str(npz), "--out-dir", str(tmp_path)]
    assert script.main(args) == 0
    record = json.loads((tmp_path / "drunet-small-gray.json").read_text())
    assert record["sha256"] == models.sha256_of(tmp_path / "drunet-small-gray.pt")
    assert record["training"]["steps"] == 2
    assert [row["sigma"] for row in record["validation"]] == list(script.VALIDATION_SIGMAS)
    assert "| 0.1 |" in (tmp_path / "MODEL_CARD.md").read_text()
    load_denoiser("drunet-small-gray", source=tmp_path / "drunet-small-gray.pt")

    with pytest.raises(FileExistsError, match="pass --force to overwrite it"):
        script.main(args)


@pytest.mark.parametrize("channels", (1, 3))
def test_identity_initialisation_returns_the_input(channels):
    script = _training_script()
    network = DRUNet(channels, channels, nc=(8, 16, 32, 64), nb=1, pretrained=None)
    y = torch.rand(2, channels, 32, 32)
    with torch.no_grad():
        assert (network(y, 0.1) - y).abs().max() > 0.01
        script.initialise_as_identity(network)
        torch.testing.assert_close(network(y, 0.1), y, rtol=0, atol=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"channels": 2}, "channels must be 1 or 3, got 2"),
        ({"minutes": None, "steps": None}, "give --minutes or --steps"),
        ({"patch": 60}, "patch must be a multiple of 8 and >= 32, got 60"),
        ({"init": "zeros"}, r"init must be one of \('identity', 'random', 'drunet-small-gray', 'drunet-small-color', "
                            r"'drunet-small-ct'\), got 'zeros'"),
        ({"loss": "huber"}, "loss must be 'l1' or 'l2', got 'huber'"),
    ],
)
def test_training_config_refuses_bad_settings(change, message):
    script = _training_script()
    settings = dict(channels=1, device="cpu", minutes=1.0, steps=None, patch=64, batch=8,
                    lr=5e-4, loss="l1", init="identity", sigma_max=0.2, seed=0)
    with pytest.raises(ValueError, match=message):
        script.TrainingConfig(**{**settings, **change})


def test_fine_tuning_the_shipped_ct_prior_records_where_it_started(tmp_path):
    script = _training_script()
    args = ["--dataset", "ct-phantoms", "--steps", "1", "--patch", "32", "--batch", "2", "--init", "drunet-small-ct",
            "--validation-crop", "32", "--ct-sizes", "32", "--ct-pool", "2", "--out-dir", str(tmp_path)]
    assert script.main(args) == 0
    training = json.loads((tmp_path / "drunet-small-ct.json").read_text())["training"]
    shipped = models.shipped_record("drunet-small-ct")
    assert training["init"] == "drunet-small-ct" and training["init_sha256"] == shipped["sha256"]
    assert training["init_training"] == shipped["training"]  # the whole chain, run after run
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert f"- started from `drunet-small-ct` sha256 `{shipped['sha256']}`: {shipped['training']['steps']} steps" in card


def test_training_script_ct_phantoms_writes_a_loadable_ct_prior(tmp_path):
    from distinv.tomography.phantoms import PRIOR_VALIDATION_SEEDS

    script = _training_script()
    args = ["--dataset", "ct-phantoms", "--steps", "2", "--patch", "32", "--batch", "2",
            "--validation-crop", "32", "--ct-sizes", "32", "48", "--ct-pool", "3",
            "--out-dir", str(tmp_path)]
    assert script.main(args) == 0
    record = json.loads((tmp_path / "drunet-small-ct.json").read_text())
    assert record["name"] == "drunet-small-ct" and record["architecture"]["in_channels"] == 1
    assert record["sha256"] == models.sha256_of(tmp_path / "drunet-small-ct.pt")
    data = record["data"]
    assert data["dataset"] == "ct-phantoms" and data["slices_used"] == 3 + 2  # pool + 1 per step
    seeds = [int(name.split("-")[1]) for name in data["validation"]]
    assert len(seeds) == script.CT_VALIDATION_COUNT and all(s in PRIOR_VALIDATION_SEEDS for s in seeds)
    assert "dataset" not in record["training"] and not any(k.startswith("ct_") for k in record["training"])
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## drunet-small-ct" in card and "- training data: slices of textured phantoms" in card
    network = load_denoiser("drunet-small-ct", source=tmp_path / "drunet-small-ct.pt")
    with torch.no_grad():
        assert network(torch.rand(1, 1, 32, 32), 0.1).shape == (1, 1, 32, 32)
    with pytest.raises(SystemExit, match="--dataset ct-phantoms generates its data"):
        script.main(args + ["--data-npz", str(tmp_path / "images.npz")])


def test_phantom_slice_sampler_draws_training_seeds_only_and_repeats_itself():
    from distinv.tomography.phantoms import PRIOR_TRAINING_SEEDS

    script = _training_script()

    def run():
        sampler = script.PhantomSliceSampler(32, torch.Generator().manual_seed(0), seed=5, sizes=(32, 40),
                                             pool=4, refresh=1.5, shepp_logan=0.5)
        try:
            batches = [sampler.sample(3) for _ in range(4)]
        finally:
            sampler.close()
        return batches, sampler.used

    batches, used = run()
    assert [tuple(b.shape) for b in batches] == [(3, 1, 32, 32)] * 4
    assert len(used) == 4 + 6  # the pool, then 1.5 slices per call
    assert {u["kind"] for u in used} == {"textured", "shepp-logan"}
    assert all(u["seed"] in PRIOR_TRAINING_SEEDS for u in used if u["kind"] == "textured")
    assert {u["axis"] for u in used} == {0, 1, 2}
    again, used_again = run()  # the background thread does not change what is drawn
    assert used_again == used
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_training_config_refuses_bad_ct_settings():
    script = _training_script()
    settings = dict(channels=1, device="cpu", minutes=1.0, steps=None, patch=64, batch=8,
                    lr=5e-4, loss="l1", init="identity", sigma_max=0.2, seed=0, dataset="ct-phantoms")
    assert script.TrainingConfig(**settings).name == "drunet-small-ct"
    for change, message in [
        ({"channels": 3}, "dataset 'ct-phantoms' is gray: channels must be 1, got 3"),
        ({"ct_sizes": (48, 128)}, r"ct_sizes must be cube sides >= patch=64, got \(48, 128\)"),
        ({"ct_refresh": 300}, r"ct_refresh in \(0, ct_pool\], got ct_pool=256, ct_refresh=300"),
        ({"ct_refresh": 0}, r"ct_refresh in \(0, ct_pool\], got ct_pool=256, ct_refresh=0"),
        ({"ct_shepp_logan": 1.5}, r"ct_shepp_logan must be in \[0, 1\], got 1.5"),
        ({"dataset": "mri"}, r"dataset must be one of \('skimage', 'ct-phantoms', 'radio-skies'\), got 'mri'"),
    ]:
        with pytest.raises(ValueError, match=message):
            script.TrainingConfig(**{**settings, **change})
