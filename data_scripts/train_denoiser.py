"""Train the small DRUNet denoisers that distinv ships, on scikit-image's own images.

The network is deepinv's :class:`~deepinv.models.DRUNet` (``nc=(32, 64, 128, 256)``, ``nb=2``,
about 4.25 M parameters), trained to minimise

.. math::

    \\mathbb{E}_{x, \\sigma, n} \\; \\ell\\big(D_\\theta(x + \\sigma n, \\sigma), x\\big),
    \\qquad \\sigma \\sim \\mathcal{U}[0, \\sigma_{\\max}], \\; n \\sim \\mathcal{N}(0, I),

on random flipped / rotated patches of the natural images that scikit-image ships in its wheel
(no download). A few images are held out for validation; the run ends with a validation table
(PSNR per sigma of the noisy input, of deepinv's ``TVDenoiser`` at its best lambda from a grid,
and of the network with the fp16 weights that ship) and writes, atomically, into ``--out-dir``:

- ``<name>.pt``: fp16 state dict (loaded with ``torch.load(weights_only=True)``),
- ``<name>.json``: sha256 of the ``.pt``, architecture, data, training settings, validation,
- ``MODEL_CARD.md``: a human summary of every ``*.json`` in ``--out-dir``.

Examples::

    OMP_NUM_THREADS=1 python data_scripts/train_denoiser.py --channels 1 --minutes 15
    python data_scripts/train_denoiser.py --channels 3 --device cuda --minutes 1.5 --force
    python data_scripts/train_denoiser.py --export-data images.npz      # for a node without data
    python data_scripts/train_denoiser.py --channels 3 --data-npz images.npz --device cuda ...
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from distinv.files import write_atomically
from distinv.models import sha256_of

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "lib" / "distinv" / "weights"

#: Natural images of ``skimage.data`` that live in the wheel (no pooch download).
#: ``cat`` is left out: it is the same picture as ``chelsea``.
TRAIN_IMAGES = (
    "astronaut", "coffee", "rocket", "retina", "immunohistochemistry", "hubble_deep_field",
    "brick", "grass", "gravel", "moon", "clock", "page", "text",
)
#: Held out: never seen in training, used for the validation table and the tests.
VALIDATION_IMAGES = ("camera", "coins", "chelsea", "motorcycle")
VALIDATION_SIGMAS = (0.025, 0.05, 0.1, 0.15, 0.2)
TV_LAMBDA_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5)  # lambda = factor * sigma
TV_ITERATIONS = 100
VALIDATION_CROP = 256


@dataclass
class TrainingConfig:
    """Settings of one training run (recorded in the model card).

    :param int channels: 1 (gray) or 3 (color).
    :param str device: torch device string.
    :param float minutes: wall-time budget of the optimisation loop, or None.
    :param int steps: number of optimisation steps, or None (at least one of the two is set).
    :param int patch: patch side in pixels (a multiple of 8).
    :param int batch: patches per step.
    :param float lr: peak Adam learning rate (cosine decay to ``lr / 100``).
    :param str loss: ``"l1"`` or ``"l2"``.
    :param str init: ``"identity"`` (see :func:`initialise_as_identity`) or ``"random"``.
    :param float sigma_max: noise levels are drawn uniformly in ``[0, sigma_max]``.
    :param int seed: seed of every random draw.
    :param tuple nc: DRUNet channels per scale.
    :param int nb: DRUNet residual blocks per scale.
    """

    channels: int
    device: str
    minutes: float | None
    steps: int | None
    patch: int
    batch: int
    lr: float
    loss: str
    init: str
    sigma_max: float
    seed: int
    nc: tuple[int, int, int, int] = (32, 64, 128, 256)
    nb: int = 2
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.minutes is None and self.steps is None:
            raise ValueError("give --minutes or --steps (or both), got neither")
        if self.patch % 8 or self.patch < 32:
            raise ValueError(f"patch must be a multiple of 8 and >= 32, got {self.patch}")
        if self.init not in ("identity", "random"):
            raise ValueError(f"init must be 'identity' or 'random', got {self.init!r}")
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        self.name = "drunet-small-" + ("gray" if self.channels == 1 else "color")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _skimage_image(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def collect_images(data_npz: Path | None) -> dict[str, dict[str, np.ndarray]]:
    """Uint8 images by split: ``{"train": {name: array}, "val": {name: array}}``.

    :param pathlib.Path data_npz: an archive written by ``--export-data``, or None for skimage.
    """
    if data_npz is not None:
        archive = np.load(data_npz)
        images: dict[str, dict[str, np.ndarray]] = {"train": {}, "val": {}}
        for key in archive.files:
            split, name = key.split("__", 1)
            images[split][name] = archive[key]
        return images
    return {
        "train": {n: _skimage_image(n) for n in TRAIN_IMAGES},
        "val": {n: _skimage_image(n) for n in VALIDATION_IMAGES},
    }


def to_tensor(image: np.ndarray, channels: int) -> torch.Tensor | None:
    """A (C, H, W) float tensor in [0, 1] with ``channels`` channels, or None if not convertible.

    Color images become gray for ``channels=1`` (ITU-R 709 luma); gray images are skipped for
    ``channels=3``.
    """
    x = torch.from_numpy(np.ascontiguousarray(image)).float() / 255.0
    if x.ndim == 2:
        return x[None] if channels == 1 else None
    x = x[..., :3].permute(2, 0, 1)
    if channels == 1:
        weights = torch.tensor([0.2125, 0.7154, 0.0721]).view(3, 1, 1)
        return (x * weights).sum(0, keepdim=True)
    return x


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


class PatchSampler:
    """Random patches, flips and quarter turns; each image is drawn with the same probability.

    Not in proportion to area: retina and hubble_deep_field, mostly dark background, hold 57 % of
    the pixels and made a first model (drawn by area) worse than the noisy input at low sigma.
    """

    def __init__(self, images: list[torch.Tensor], patch: int, generator: torch.Generator):
        self.images = [im for im in images if min(im.shape[-2:]) >= patch]
        self.weights = torch.ones(len(self.images)) / len(self.images)
        self.patch = patch
        self.generator = generator

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch: int) -> torch.Tensor:
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=self.generator)
        patches = []
        for index in picks.tolist():
            image = self.images[index]
            h, w = image.shape[-2:]
            top, left = self._randint(h - self.patch + 1), self._randint(w - self.patch + 1)
            p = image[:, top : top + self.patch, left : left + self.patch]
            if self._randint(2):
                p = p.flip(-1)
            p = torch.rot90(p, self._randint(4), dims=(-2, -1))
            patches.append(p)
        return torch.stack(patches)


@torch.no_grad()
def initialise_as_identity(model) -> None:
    """Make a fresh DRUNet output its input image exactly: :math:`D(y, \\sigma) = y`.

    The first ``C`` channels of ``m_head`` copy the image (centre tap 1), ``m_tail`` reads them
    back, and the decoder's last up-sampling (``m_up1[0]``) starts at zero, so the bias-free U-Net
    branch adds nothing (as zero-initialised residual branches in Fixup / ReZero). Training then
    starts from the noisy input's PSNR instead of a random output; a plain DRUNet learns the
    near-identity that low sigma needs only slowly.
    """
    channels = model.m_tail.out_channels
    model.m_head.weight[:channels].zero_()
    model.m_tail.weight.zero_()
    model.m_up1[0].weight.zero_()
    centre = model.m_head.kernel_size[0] // 2
    for c in range(channels):
        model.m_head.weight[c, c, centre, centre] = 1.0
        model.m_tail.weight[c, c, centre, centre] = 1.0


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    mse = torch.mean((x_hat.clamp(0, 1) - x) ** 2).item()
    return 10 * math.log10(1.0 / mse)


@torch.no_grad()
def validate(models: dict, images: dict[str, torch.Tensor], device: str, seed: int) -> list[dict]:
    """Mean PSNR over the validation images, per sigma: noisy, TV (best lambda), each model.

    ``models`` maps a column name (``"model"``, ``"model_fp32"``) to a network.

    TV gets the lambda of ``TV_LAMBDA_FACTORS * sigma`` that is best on these very images (an
    oracle choice, in TV's favour), ``TV_ITERATIONS`` iterations of deepinv's ``TVDenoiser``.
    """
    from deepinv.models import TVDenoiser

    tv = TVDenoiser(tau=0.05, n_it_max=TV_ITERATIONS, crit=1e-6)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in VALIDATION_SIGMAS:
        scores = {"noisy": [], **{column: [] for column in models}}
        tv_scores = {f: [] for f in TV_LAMBDA_FACTORS}
        for x in images.values():
            x = x[None].to(device)
            y = x + sigma * torch.randn(x.shape, generator=generator).to(device)
            scores["noisy"].append(psnr(y, x))
            for column, model in models.items():
                scores[column].append(psnr(model(y, sigma), x))
            for factor in TV_LAMBDA_FACTORS:
                tv.restart = True
                tv_scores[factor].append(psnr(tv(y, ths=factor * sigma), x))
        best = max(TV_LAMBDA_FACTORS, key=lambda f: float(np.mean(tv_scores[f])))
        rows.append(
            {
                "sigma": sigma,
                "psnr_noisy": round(float(np.mean(scores["noisy"])), 2),
                "psnr_tv": round(float(np.mean(tv_scores[best])), 2),
                "tv_lambda": round(best * sigma, 5),
                **{f"psnr_{c}": round(float(np.mean(scores[c])), 2) for c in models},
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------

def git_commit() -> str | None:
    """Short commit of the checkout, else ``$DISTINV_COMMIT`` (a copy without ``.git``)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        commit = out.stdout.strip()
    except OSError:
        commit = ""
    return commit or os.environ.get("DISTINV_COMMIT")


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def write_model_card(out_dir: Path) -> None:
    """Rewrite ``MODEL_CARD.md`` from every ``*.json`` record in ``out_dir``."""
    lines = [
        "# distinv shipped denoisers",
        "",
        "Small DRUNet denoisers (deepinv `DRUNet`) trained by `data_scripts/train_denoiser.py` on",
        "the natural images that scikit-image ships (no download), for Gaussian noise",
        "σ ∈ [0, σ_max] on images in [0, 1]. Weights are fp16 state dicts; load them with",
        "`distinv.models.load_denoiser(name)`, which checks the sha256 below and uses",
        "`torch.load(weights_only=True)`. These are small, quickly trained priors for tutorials",
        "and benchmarks, not state-of-the-art denoisers: for quality use the official DRUNet",
        "(`load_denoiser('drunet-color', source='download')`).",
        "",
    ]
    for record_path in sorted(out_dir.glob("*.json")):
        r = json.loads(record_path.read_text())
        t, a, d = r["training"], r["architecture"], r["data"]
        lines += [
            f"## {r['name']}",
            "",
            f"- file: `{r['file']}` ({r['size_bytes'] / 1e6:.2f} MB, fp16), "
            f"sha256 `{r['sha256']}`",
            f"- architecture: DRUNet in/out channels {a['in_channels']}, nc {a['nc']}, "
            f"nb {a['nb']}, {a['parameters']:,} parameters",
            f"- noise: σ ~ U[0, {t['sigma_max']}], loss {t['loss']}, "
            f"init {t.get('init', 'random')}",
            f"- training images: {', '.join(d['train'])} "
            f"({'converted to gray' if a['in_channels'] == 1 else 'color ones only'})",
            f"- validation images (held out): {', '.join(d['validation'])}, "
            f"center {d['validation_crop']}² crops",
            f"- training: {t['steps']} steps in {t['minutes']:.1f} min on {t['device']} "
            f"({t['device_name']}), patch {t['patch']}, batch {t['batch']}, Adam lr {t['lr']} "
            f"cosine, seed {t['seed']}, bf16 autocast {t['bf16_autocast']}",
            f"- software: torch {t['torch']}, deepinv {t['deepinv']}, commit {t['commit']}, "
            f"{t['date']}",
            "",
            "| σ | noisy PSNR | TV PSNR (λ) | model PSNR (shipped fp16) | model PSNR (fp32) |",
            "|---|---|---|---|---|",
        ]
        for v in r["validation"]:
            lines.append(
                f"| {v['sigma']} | {v['psnr_noisy']:.2f} | {v['psnr_tv']:.2f} ({v['tv_lambda']}) "
                f"| {v['psnr_model']:.2f} | {v.get('psnr_model_fp32', float('nan')):.2f} |"
            )
        lines += [
            "",
            f"TV: deepinv `TVDenoiser`, {TV_ITERATIONS} iterations, λ = best of "
            f"{list(TV_LAMBDA_FACTORS)} × σ on the validation images themselves (oracle, in "
            "TV's favour). Same noise draws for every column.",
            "",
        ]
    write_atomically(out_dir / "MODEL_CARD.md", lambda p: p.write_text("\n".join(lines)))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def train(config: TrainingConfig, images, out_dir: Path, force: bool,
          validation_crop: int = VALIDATION_CROP) -> dict:
    from deepinv.models import DRUNet
    from tqdm import tqdm

    weights_path = out_dir / f"{config.name}.pt"
    if weights_path.exists() and not force:
        raise FileExistsError(f"{weights_path} exists; pass --force to overwrite it")
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    device = config.device
    generator = torch.Generator().manual_seed(config.seed)  # patch positions (CPU)
    noise_generator = torch.Generator(device).manual_seed(config.seed)  # sigma and noise
    train_images = [to_tensor(im, config.channels) for im in images["train"].values()]
    train_names = [n for n, t in zip(images["train"], train_images) if t is not None]
    sampler = PatchSampler([t.to(device) for t in train_images if t is not None], config.patch,
                           generator)
    val_images = {
        n: center_crop(t, validation_crop)
        for n, im in images["val"].items()
        if (t := to_tensor(im, config.channels)) is not None
    }

    model = DRUNet(config.channels, config.channels, nc=config.nc, nb=config.nb,
                   pretrained=None, device=device)
    if config.init == "identity":
        initialise_as_identity(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    use_bf16 = device.startswith("cuda")
    torch.backends.cudnn.benchmark = use_bf16  # fixed shapes: let cuDNN pick its kernels
    loss_fn = torch.nn.functional.l1_loss if config.loss == "l1" else torch.nn.functional.mse_loss

    budget_s = None if config.minutes is None else 60.0 * config.minutes
    interval = 5 if sys.stderr.isatty() else 30
    progress = tqdm(total=config.steps, desc=config.name, mininterval=interval, file=sys.stderr)
    model.train()
    step, start, running = 0, time.perf_counter(), None
    while True:
        elapsed = time.perf_counter() - start
        fraction = max(step / config.steps if config.steps else 0.0,
                       elapsed / budget_s if budget_s else 0.0)
        if fraction >= 1.0:
            break
        lr = config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * fraction)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = sampler.sample(config.batch)
        sigma = config.sigma_max * torch.rand(config.batch, generator=noise_generator,
                                              device=device)
        noise = torch.randn(x.shape, generator=noise_generator, device=device)
        y = x + sigma.view(-1, 1, 1, 1) * noise
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            loss = loss_fn(model(y, sigma).float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}", refresh=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    minutes = (time.perf_counter() - start) / 60
    progress.close()

    # What ships is fp16: validate the fp16-rounded weights, computed in fp32.
    model.eval()
    model_fp32 = copy.deepcopy(model)
    state_fp16 = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state_fp16.items()})
    validation = validate({"model": model, "model_fp32": model_fp32}, val_images, device,
                          seed=config.seed + 1)

    write_atomically(weights_path, lambda p: torch.save(state_fp16, p))
    import deepinv

    record = {
        "name": config.name,
        "file": weights_path.name,
        "sha256": sha256_of(weights_path),
        "size_bytes": weights_path.stat().st_size,
        "dtype": "float16",
        "architecture": {
            "class": "deepinv.models.DRUNet",
            "in_channels": config.channels,
            "out_channels": config.channels,
            "nc": list(config.nc),
            "nb": config.nb,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "data": {
            "source": "skimage.data (images in the wheel)",
            "train": train_names,
            "validation": list(val_images),
            "validation_crop": validation_crop,
        },
        "training": {
            **{k: v for k, v in asdict(config).items() if k not in ("nc", "nb", "name")},
            "minutes_budget": config.minutes,
            "steps_budget": config.steps,
            "steps": step,
            "minutes": round(minutes, 2),
            "device_name": device_name(device),
            "bf16_autocast": use_bf16,
            "final_loss": round(running, 5),
            "torch": torch.__version__,
            "deepinv": deepinv.__version__,
            "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "validation": validation,
    }
    write_atomically(out_dir / f"{config.name}.json",
                     lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))
    write_model_card(out_dir)
    return record


def export_data(path: Path) -> None:
    """Write the training and validation images to an ``.npz`` (keys ``train__name``)."""
    images = collect_images(None)
    arrays = {
        f"{split}__{name}": im for split, group in images.items() for name, im in group.items()
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    write_atomically(path, write)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the loop")
    parser.add_argument("--steps", type=int, default=None, help="number of steps")
    parser.add_argument("--patch", type=int, default=None, help="default 64 on CPU, 128 on CUDA")
    parser.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 32 on CUDA")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1")
    parser.add_argument("--init", choices=("identity", "random"), default="identity")
    parser.add_argument("--sigma-max", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--data-npz", type=Path, default=None,
                        help="read images from this archive instead of skimage.data")
    parser.add_argument("--export-data", type=Path, default=None,
                        help="write the images to this .npz and exit")
    parser.add_argument("--validation-crop", type=int, default=VALIDATION_CROP,
                        help="side of the center crops of the validation images")
    parser.add_argument("--force", action="store_true", help="overwrite existing weights")
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite MODEL_CARD.md from the json records")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export_data is not None:
        export_data(args.export_data)
        print(f"wrote {args.export_data}")
        return 0
    if args.card_only:
        write_model_card(args.out_dir)
        return 0
    if args.minutes is None and args.steps is None:
        args.minutes = 15.0
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    config = TrainingConfig(
        channels=args.channels, device=args.device, minutes=args.minutes, steps=args.steps,
        patch=args.patch or (128 if on_cuda else 64), batch=args.batch or (32 if on_cuda else 8),
        lr=args.lr, loss=args.loss, init=args.init, sigma_max=args.sigma_max, seed=args.seed,
    )
    record = train(config, collect_images(args.data_npz), args.out_dir, args.force,
                   args.validation_crop)
    print(json.dumps({"name": record["name"], "steps": record["training"]["steps"],
                      "minutes": record["training"]["minutes"],
                      "validation": record["validation"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
