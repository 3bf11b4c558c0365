"""Train the unrolled PnP-HQS network that distinv ships, through the distributed physics and the tiled prior.

The network (:class:`distinv.solvers.unrolled.UnrolledHQS`: ``--layers`` HQS iterations with learned
per-layer noise levels and penalty weights and one shared small DRUNet, initialised from the shipped
``drunet-small-gray`` / ``-color`` weights, i.e. starting as PnP-HQS) learns multi-frame deblurring at the
CPU profile's settings (``K = 4`` blurs of widths (3, 0.7), noise 0.01) on random crops of the same
scikit-image training photos as the denoisers (``data_scripts/train_denoiser.py``; its validation photos are
held out), on 1..N ranks through :func:`distinv.launch` (or in place under torchrun), with tqdm on rank 0.

A killed run continues from its last checkpoint (``--checkpoint``, rewritten every ``--checkpoint-every``
steps): run the same command again. At the end it writes, atomically, into ``--out-dir``:

- ``<name>.pt``: the network, the denoiser fp16 and the per-layer scalars float32 (read with
  ``torch.load(weights_only=True)`` by :func:`distinv.solvers.unrolled.load_unrolled`);
- ``<name>.json``: sha256, architecture, data, training settings, the validation table (the shipped weights
  against PnP-HQS with as many iterations as layers, on the held-out photos at ``--validation-size``²);

and appends (or replaces) the network's section of ``lib/distinv/weights/MODEL_CARD.md``.

Examples::

    python data_scripts/train_unrolled.py --force     # the shipped network (its model card records the time)
    python data_scripts/train_unrolled.py --nprocs 2 --layout sharded --force
    python data_scripts/train_unrolled.py --device cuda --channels 3 --crop 256 --steps 2000 --checkpointing
    python data_scripts/train_unrolled.py --card-only        # rewrite the model card section from the record
    python data_scripts/train_unrolled.py --validate-only    # recompute the validation table of the weights
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_denoiser import TRAIN_IMAGES, VALIDATION_IMAGES, _skimage_image, device_name, git_commit  # noqa: E402

import distinv  # noqa: E402
from distinv.files import write_atomically  # noqa: E402
from distinv.solvers.unrolled import UNROLLED_DIR, UnrolledHQS, save_unrolled  # noqa: E402
from distinv.training.config import UnrolledTrainingConfig  # noqa: E402
from distinv.training.loop import train_rank  # noqa: E402
from distinv.training.quality import quality_rank, write_photo_files  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CARD = REPO_ROOT / "lib" / "distinv" / "weights" / "MODEL_CARD.md"
DEFAULT_CHECKPOINTS = REPO_ROOT / "results" / "local" / "train_unrolled"


def training_photos(channels: int) -> list[str]:
    """The denoisers' training photos usable at ``channels`` (colour training keeps the colour ones only)."""
    if channels == 1:
        return list(TRAIN_IMAGES)
    return [name for name in TRAIN_IMAGES if _skimage_image(name).ndim == 3]


def validate(weights: Path, channels: int, size: int, layers: int, nprocs: int, device: str) -> list[dict]:
    """The shipped weights against PnP-HQS with ``layers`` iterations on the held-out photos (mean last)."""
    with tempfile.TemporaryDirectory() as folder:
        photos = write_photo_files(VALIDATION_IMAGES, folder)
        cfg = {"photos": photos, "size": size, "K": 4, "sigma_n": 0.01, "blur_sigma": [3.0, 0.7],
               "channels": channels, "weights": str(weights), "hqs_iterations": [layers], "patch": 256,
               "overlap": 32, "device": device}
        rows = distinv.launch(quality_rank, cfg, nprocs=nprocs)
    table = [{"image": r["image"], "psnr_init": round(r["psnr_init"], 2),
              "psnr_hqs": round(r["hqs"][0]["psnr"], 2), "psnr_unrolled": round(r["unrolled"]["psnr"], 2),
              "seconds_hqs": round(r["hqs"][0]["seconds"], 2), "seconds_unrolled": round(r["unrolled"]["seconds"], 2),
              **({"psnr_hqs_same_cg": round(r["hqs_same_cg"]["psnr"], 2)} if "hqs_same_cg" in r else {})}
             for r in rows]
    mean = {key: round(sum(row[key] for row in table) / len(table), 2) for key in table[0] if key != "image"}
    return table + [{"image": "mean", **mean}]


def card_section(record: dict) -> str:
    """The model card section of one unrolled network's record (markdown)."""
    t, a, d = record["training"], record["architecture"], record["data"]
    lines = [
        f"## {record['name']}",
        "",
        f"- file: `unrolled/{record['file']}` ({record['size_bytes'] / 1e6:.2f} MB; {record['dtype']}), "
        f"sha256 `{record['sha256']}`",
        f"- architecture: unrolled PnP-HQS (`distinv.solvers.unrolled.UnrolledHQS`), {a['n_layers']} layers, "
        f"{a['cg_iterations']} CG steps per layer, one shared DRUNet (channels {a['denoiser']['in_channels']}, nc "
        f"{a['denoiser']['nc']}, nb {a['denoiser']['nb']}) initialised from `{t['denoiser_init']}`; learned "
        f"σ_t = {', '.join(f'{s:.4f}' for s in record['sigmas'])}, w_t = "
        f"{', '.join(f'{w:.3f}' for w in record['weights'])}",
        f"- problem: K = {t['K']} blurs of widths {t['blur_sigma']}, circular, σ_n = {t['sigma_n']}; loss: "
        f"{'mean over crops of 10 log10(MSE)' if t['loss'] == 'psnr' else 'MSE'}",
        f"- training photos: {', '.join(d['train'])} (central square resized to {t['image_side']}², random "
        f"{t['crop']}² crops, flips, quarter turns)",
        f"- validation photos (held out): {', '.join(d['validation'])}, at {d['validation_size']}²",
        f"- training: {t['steps_done']} steps in {t['minutes']:.1f} min on {t['device']} ({t['device_name']}, "
        f"{t['nprocs']} rank(s), {t['layout']} layout), batch {t['batch']}, Adam lr {t['lr']} (denoiser) / "
        f"{t['lr_scalars']} (per-layer scalars) cosine, seed {t['seed']}",
        f"- software: torch {t['torch']}, deepinv {t['deepinv']}, commit {t['commit']}, {t['date']}",
        "",
    ]
    same_cg = any("psnr_hqs_same_cg" in v for v in record["validation"])
    extra = " PnP-HQS PSNR (same iterations and CG steps) |" if same_cg else ""
    lines += [f"| photo | start PSNR | PnP-HQS PSNR (same iterations) |{extra} unrolled PSNR (shipped) | PnP-HQS s "
              f"| unrolled s |", "|---" * (7 if same_cg else 6) + "|"]
    for v in record["validation"]:
        cell = f" {v['psnr_hqs_same_cg']:.2f} |" if same_cg else ""
        lines.append(f"| {v['image']} | {v['psnr_init']:.2f} | {v['psnr_hqs']:.2f} |{cell} {v['psnr_unrolled']:.2f} "
                     f"| {v['seconds_hqs']:.2f} | {v['seconds_unrolled']:.2f} |")
    note = "; the fourth column with the network's CG steps" if same_cg else ""
    lines += ["", f"PnP-HQS: `distinv.solvers` defaults (σ from 0.1 to 0.02, w = 0.25, 5 CG steps{note}), the shipped "
              "small DRUNet, tiles 256 + 32. Same measurements, start point and tiles for all. Times: one rank, wall "
              "seconds of the iterations on a shared CPU.", ""]
    return "\n".join(lines)


def write_card_section(record: dict, card: Path = MODEL_CARD) -> None:
    """Append the record's section to the model card, or replace the section of the same name."""
    text = card.read_text() if card.exists() else ""
    heading = f"## {record['name']}\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        following = rest.find("\n## ")
        after = "" if following < 0 else rest[following + 1:]
        text = before + after
    text = text.rstrip("\n") + "\n\n" + card_section(record)
    write_atomically(card, lambda tmp: tmp.write_text(text))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--cg-iterations", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1400, help="optimisation steps (the schedule's length)")
    parser.add_argument("--minutes", type=float, default=None, help="stop this session after this wall time")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--loss", choices=("mse", "psnr"), default="psnr")
    parser.add_argument("--lr", type=float, default=2e-4, help="peak learning rate of the denoiser")
    parser.add_argument("--lr-scalars", type=float, default=3e-2, help="peak learning rate of log sigma_t, log w_t")
    parser.add_argument("--nprocs", type=int, default=1)
    parser.add_argument("--layout", choices=("replicated", "sharded"), default="replicated")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--checkpointing", action="store_true", help="checkpoint activations per layer and tile batch")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"resumable checkpoint (default {DEFAULT_CHECKPOINTS}/<name>.ckpt)")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--name", default=None, help="default unrolled-hqs-gray / unrolled-hqs-color")
    parser.add_argument("--out-dir", type=Path, default=UNROLLED_DIR)
    parser.add_argument("--validation-size", type=int, default=512)
    parser.add_argument("--force", action="store_true", help="overwrite existing weights")
    parser.add_argument("--card-only", action="store_true", help="only rewrite the model card section")
    parser.add_argument("--validate-only", action="store_true",
                        help="only recompute the validation table of the existing weights (record and card)")
    parser.add_argument("--model-card", type=Path, default=MODEL_CARD, help="the model card to update")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = args.name or ("unrolled-hqs-gray" if args.channels == 1 else "unrolled-hqs-color")
    weights = args.out_dir / f"{name}.pt"
    if args.card_only:
        write_card_section(json.loads(weights.with_suffix(".json").read_text()), args.model_card)
        return 0
    if args.validate_only:
        record = json.loads(weights.with_suffix(".json").read_text())
        record["validation"] = validate(weights, args.channels, args.validation_size,
                                        record["architecture"]["n_layers"], args.nprocs, args.device)
        text = json.dumps(record, indent=2) + "\n"
        write_atomically(weights.with_suffix(".json"), lambda tmp: tmp.write_text(text))
        write_card_section(record, args.model_card)
        print(json.dumps({"name": name, "validation": record["validation"]}, indent=1))
        return 0
    if weights.exists() and not args.force:
        raise SystemExit(f"{weights} exists; pass --force to overwrite it")
    config = UnrolledTrainingConfig(
        images=tuple(training_photos(args.channels)), channels=args.channels, n_layers=args.layers,
        cg_iterations=args.cg_iterations, loss=args.loss, steps=args.steps, lr=args.lr, lr_scalars=args.lr_scalars,
        crop=args.crop, batch=args.batch, layout=args.layout, patch=args.patch, overlap=args.overlap,
        checkpoint_layers=args.checkpointing, checkpoint_tiles=args.checkpointing, seed=args.seed,
        checkpoint_every=args.checkpoint_every, minutes=args.minutes, device=args.device,
    )
    checkpoint = args.checkpoint or DEFAULT_CHECKPOINTS / f"{name}.ckpt"
    result = distinv.launch(train_rank, {**config.to_dict(), "checkpoint": str(checkpoint)}, nprocs=args.nprocs)
    if not result["finished"]:
        print(json.dumps({"steps_done": result["steps_done"], "checkpoint": str(checkpoint),
                          "resume": "run the same command again"}))
        return 0
    model = UnrolledHQS.from_architecture(result["architecture"])
    model.load_state_dict(result["state"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import deepinv

    losses = result["losses"]
    tail = losses[-min(20, len(losses)):]
    record = {
        "sigmas": [float(s) for s in model.sigmas().detach()], "weights": [float(w) for w in model.weights().detach()],
        "data": {"source": "skimage.data (images in the wheel)", "train": list(config.images),
                 "validation": list(VALIDATION_IMAGES), "validation_size": args.validation_size},
        "training": {
            **{k: v for k, v in config.to_dict().items() if k not in ("images", "progress")},
            "denoiser_init": "drunet-small-gray" if args.channels == 1 else "drunet-small-color",
            "steps_done": result["steps_done"], "minutes": round(result["minutes"], 2),
            "nprocs": result["nprocs"], "threads_per_rank": result["threads"], "device_name": device_name(
                "cuda" if args.device == "cuda" else "cpu"),
            "loss_first_20_mean": sum(losses[:20]) / min(20, len(losses)), "loss_last_20_mean": sum(tail) / len(tail),
            "torch": torch.__version__, "deepinv": deepinv.__version__, "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "losses": [round(v, 7) for v in losses],
    }
    record = save_unrolled(model, weights, record, overwrite=True)
    record["validation"] = validate(weights, args.channels, args.validation_size, model.n_layers, args.nprocs,
                                    args.device)
    text = json.dumps(record, indent=2) + "\n"
    write_atomically(weights.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    write_card_section(record, args.model_card)
    print(json.dumps({"name": name, "steps": result["steps_done"], "validation": record["validation"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
