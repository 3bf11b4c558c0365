"""Training of the unrolled network: one step equals on 1, 2 and 3 ranks (both layouts, with and without
checkpointing), a resumed run equals an uninterrupted one bit for bit, bad input is named, the GPU check's
dry run, the benchmark summaries."""

import os

import pytest
import torch

import distinv
from distinv.training.bench import gpu_training_check, memory_summary, predict_peak
from distinv.training.checkpoint import FORMAT, load_checkpoint
from distinv.training.config import UnrolledTrainingConfig
from distinv.training.equivalence import gradient_agreement, step_gradients_rank
from distinv.training.loop import train_rank
from distinv.training.quality import quality_summary

#: The equivalence case: 32² crops, 2 layers, a tiny random DRUNet, tiles 16 + 8, 3 frames, float64.
TINY = dict(images=["camera"], image_side=48, crop=32, n_layers=2, cg_iterations=3, init="random-tiny", patch=16,
            overlap=8, K=3, blur_sigma=[1.0, 0.5], dtype="float64", progress=False, channels_last=False, device="cpu")

CHECKPOINTED = {"checkpoint_layers": True, "checkpoint_tiles": True}
VARIANTS = [{"layout": "replicated"}, {"layout": "sharded"}, {"layout": "replicated", **CHECKPOINTED},
            {"layout": "sharded", **CHECKPOINTED}, {"layout": "replicated", "loss": "psnr"},
            {"layout": "sharded", "loss": "psnr"}]
#: each variant on 2 or on 3 ranks (1 rank runs them all): half the launches, every variant distributed once
ON_RANKS = {2: [0, 3, 5], 3: [1, 2, 4]}
_REFERENCE: dict = {}


def _reference():
    if "one" not in _REFERENCE:
        _REFERENCE["one"] = distinv.launch(step_gradients_rank, [dict(TINY, **v) for v in VARIANTS], 3, nprocs=1,
                                           timeout=300)
    return _REFERENCE["one"]


def _assert_same_step(got, want, rtol):
    assert got["grads"].keys() == want["grads"].keys()
    rows = gradient_agreement(want, got)
    assert all(row["max_abs_gradient"] > 0 for row in rows[1:])  # every parameter gets a gradient
    assert [row["parameter"] for row in rows if row["relative"] > rtol] == []


@pytest.mark.parametrize("nprocs", [2, 3])
def test_training_step_is_the_same_on_every_rank_count(nprocs):
    reference = _reference()
    variants = [dict(TINY, **VARIANTS[i]) for i in ON_RANKS[nprocs]]
    results = distinv.launch(step_gradients_rank, variants, 3, nprocs=nprocs, timeout=300)
    for index, got in zip(ON_RANKS[nprocs], results):
        _assert_same_step(got, reference[index], 1e-6)
        assert got["spread"] == 0.0, VARIANTS[index]  # every rank holds the same gradients after the all-reduce


def test_layouts_and_checkpointing_compute_the_same_step():
    replicated, sharded, replicated_checkpointed, sharded_checkpointed, replicated_psnr, sharded_psnr = _reference()
    _assert_same_step(sharded, replicated, 1e-9)  # the same maths through ShardedBlur and deepinv's BlurFFT
    _assert_same_step(sharded_psnr, replicated_psnr, 1e-9)
    _assert_same_step(replicated_checkpointed, replicated, 1e-12)
    _assert_same_step(sharded_checkpointed, sharded, 1e-12)


RESUME = dict(TINY, dtype="float32", steps=4, checkpoint_every=3, lr=1e-3, lr_scalars=1e-2)


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    whole = distinv.launch(train_rank, dict(RESUME, checkpoint=str(tmp_path / "a.ckpt")), nprocs=1, threads=1)
    first = distinv.launch(train_rank, dict(RESUME, checkpoint=str(tmp_path / "b.ckpt"), stop_after=2), nprocs=1,
                           threads=1)
    assert (first["steps_done"], first["finished"]) == (2, False)
    assert torch.load(tmp_path / "b.ckpt", weights_only=True)["step"] == 2
    resumed = distinv.launch(train_rank, dict(RESUME, checkpoint=str(tmp_path / "b.ckpt")), nprocs=1, threads=1)
    assert (resumed["steps_done"], resumed["finished"]) == (4, True)
    assert resumed["losses"] == whole["losses"]
    for name, value in whole["state"].items():
        assert torch.equal(resumed["state"][name], value), name
    assert not torch.equal(whole["state"]["log_sigma"], first["state"]["log_sigma"])  # the last steps did move it


def test_training_lowers_the_loss(tmp_path):
    # one photo cropped whole: every step sees the same picture (flipped or turned), so the loss must fall
    cfg = dict(TINY, dtype="float32", image_side=32, steps=8, lr=3e-3, lr_scalars=3e-2, checkpoint=str(tmp_path / "c"))
    losses = distinv.launch(train_rank, cfg, nprocs=1, threads=1)["losses"]
    assert sum(losses[-2:]) < 0.75 * sum(losses[:2])


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    distinv.launch(train_rank, dict(RESUME, steps=1, checkpoint=str(path)), nprocs=1, threads=1)
    state = torch.load(path, weights_only=True)
    assert state["format"] == FORMAT
    config = UnrolledTrainingConfig(**dict(RESUME, n_layers=3))
    other = dict(state["architecture"], n_layers=3)
    with pytest.raises(ValueError, match=r"from another architecture \(n_layers: expected 3, found 2\)"):
        load_checkpoint(path, config.to_dict(), other)
    with pytest.raises(ValueError, match=r"other training options \(lr: this run 0.5, checkpoint 0.001\)"):
        load_checkpoint(path, UnrolledTrainingConfig(**dict(RESUME, lr=0.5)).to_dict(), state["architecture"])
    torch.save({"model": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"is not a training checkpoint .*format None"):
        load_checkpoint(tmp_path / "plain.pt", config.to_dict(), other)
    with pytest.raises(ValueError, match=r"another architecture"):
        distinv.launch(train_rank, dict(RESUME, n_layers=3, checkpoint=str(path)), nprocs=1, threads=1)


@pytest.mark.parametrize("options, error, message", [
    ({"n_layers": 0}, ValueError, r"n_layers must be >= 1, got 0"),
    ({"n_layers": 1.5}, TypeError, r"n_layers must be an integer, got 1.5"),
    ({"lr": 0}, ValueError, r"lr must be > 0, got 0"),
    ({"lr": -1e-3}, ValueError, r"lr must be > 0, got -0.001"),
    ({"lr_scalars": 0.0}, ValueError, r"lr_scalars must be > 0, got 0.0"),
    ({"crop": 600}, ValueError, r"crop must be <= image_side \(the photos are 512² before cropping\), got crop=600"),
    ({"crop": 80, "image_side": 64}, ValueError, r"crop must be <= image_side \(the photos are 64² before cropping\)"),
    ({"crop": 8}, ValueError, r"crop must be >= 16, got 8"),
    ({"layout": "slabs"}, ValueError, r"layout must be one of \('replicated', 'sharded'\), got 'slabs'"),
    ({"init": "pretrained"}, ValueError, r"init must be one of \('shipped', 'random-tiny'\), got 'pretrained'"),
    ({"loss": "l1"}, ValueError, r"loss must be one of \('mse', 'psnr'\), got 'l1'"),
    ({"images": []}, ValueError, r"images must be a non-empty list of photo names, got \[\]"),
    ({"checkpoint_layers": "yes"}, TypeError, r"checkpoint_layers must be a bool, got 'yes'"),
])
def test_bad_training_options_are_named(options, error, message):
    with pytest.raises(error, match=message):
        UnrolledTrainingConfig(**options)


def test_unknown_option_and_missing_checkpoint_are_named():
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['layers'\]"):
        UnrolledTrainingConfig.from_dict({"layers": 4})
    with pytest.raises(ValueError, match=r"cfg must name the resumable checkpoint file under 'checkpoint'"):
        train_rank(dict(TINY))


def test_gpu_training_check_dry_run(tmp_path):
    document = gpu_training_check(tmp_path, dry_run=True)
    assert os.listdir(tmp_path) == ["training.json"]
    big, off, on = document["big"], document["small_off"], document["small_on"]
    assert (big["size"], big["checkpointing"], off["checkpointing"], on["checkpointing"]) == (32, True, False, True)
    assert all(row["measured"] and row["peak_bytes"] >= row["baseline_bytes"] > 0 for row in (big, off, on))
    # checkpointing recomputes, it does not change the step: the same loss with and without
    assert on["per_rank"][0]["loss"] == pytest.approx(off["per_rank"][0]["loss"], rel=1e-6)


def test_memory_summary_and_prediction():
    rows = [{"size": 8, "ranks": r, "checkpointing": c, "measured": True, "peak_bytes": p, "step_bytes": s}
            for r, c, p, s in [(1, False, 90, 60), (1, True, 40, 10), (2, False, 60, 30), (2, True, 34, 4)]]
    summary = memory_summary(rows)
    assert summary["checkpointing_on_over_off_1_ranks"] == {"ratio": 40 / 90, "measured": True}
    assert summary["two_over_one_rank_checkpointing_off"]["ratio"] == pytest.approx(60 / 90)
    assert summary["two_over_one_rank_step_bytes_checkpointing_on"]["ratio"] == pytest.approx(0.4)
    assert predict_peak([(10, 5, 100)], 20) == 405  # the step's memory scales with the pixels
    assert predict_peak([], 20) is None


def test_quality_summary_finds_the_targets():
    def hqs(n, psnr):
        return {"iterations": n, "psnr": psnr, "seconds": float(n), "seconds_per_iteration": [1.0] * n}

    rows = [{"image": name, "psnr_init": 20.0,
             "unrolled": {"layers": 2, "psnr_per_layer": [29.0 + bump, 31.0 + bump], "psnr": 31.0 + bump,
                          "seconds_per_layer": [1.0, 1.0], "seconds": 2.0},
             "hqs": [hqs(1, 25.0 + bump), hqs(2, 29.0 + bump), hqs(8, 30.5 + bump)]}
            for name, bump in (("a", 0.0), ("b", 1.0))]
    summary = quality_summary(rows)
    assert summary["gain_db"] == pytest.approx(2.0)  # 31.5 against PnP-HQS's 29.5 at 2 iterations
    assert summary["hqs_best"] == {"iterations": 8, "psnr": 31.0, "seconds": 8.0}
    assert summary["unrolled_to_hqs_best_s"] == 2.0 and summary["speedup_to_hqs_best"] == 4.0
    assert summary["layer_over_iteration_time"] == 1.0


def test_training_script_keeps_one_card_section_per_network(tmp_path):
    from data_scripts_loader import load_data_script

    script = load_data_script("train_unrolled")
    assert script.training_photos(1) == list(script.TRAIN_IMAGES)
    assert "brick" not in script.training_photos(3) and "astronaut" in script.training_photos(3)  # colour only
    record = {"name": "unrolled-test", "file": "unrolled-test.pt", "size_bytes": 8.5e6, "dtype": "fp16", "sha256": "ab",
              "sigmas": [0.1, 0.02], "weights": [0.25, 0.3],
              "architecture": {"n_layers": 2, "cg_iterations": 5, "denoiser": {"in_channels": 1, "nc": [8], "nb": 1}},
              "data": {"train": ["brick"], "validation": ["camera"], "validation_size": 64},
              "training": {"denoiser_init": "drunet-small-gray", "K": 4, "blur_sigma": [3.0, 0.7], "sigma_n": 0.01,
                           "loss": "psnr", "image_side": 512, "crop": 96, "steps_done": 3, "minutes": 0.1,
                           "device": "cpu", "device_name": "x", "nprocs": 1, "layout": "replicated", "batch": 1,
                           "lr": 1e-4, "lr_scalars": 1e-2, "seed": 0, "torch": "t", "deepinv": "d", "commit": "c",
                           "date": "now"},
              "validation": [{"image": "camera", "psnr_init": 20.0, "psnr_hqs": 30.0, "psnr_unrolled": 31.0,
                              "seconds_hqs": 1.0, "seconds_unrolled": 1.0}]}
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# cards\n\n## drunet-small-gray\n\nkept\n")
    script.write_card_section(record, card)
    script.write_card_section(dict(record, validation=[dict(record["validation"][0], psnr_unrolled=32.5)]), card)
    text = card.read_text()
    assert text.count("## unrolled-test") == 1 and "| camera | 20.00 | 30.00 | 32.50 |" in text
    assert text.startswith("# cards\n\n## drunet-small-gray\n\nkept\n")
