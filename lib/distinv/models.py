"""Denoisers by name and source: small DRUNets shipped with distinv, or deepinv's official one.

A denoiser :math:`D(y, \\sigma) \\approx x` for :math:`y = x + \\sigma n`, :math:`n \\sim
\\mathcal{N}(0, I)`, images in :math:`[0, 1]`, is chosen by *name* (its architecture) and
*source* (where its weights come from):

======================  =======================================  ================================
name                    network                                  sources
======================  =======================================  ================================
``drunet-small-gray``   DRUNet 1 channel, nc (32..256), nb 2     ``"shipped"`` (default), a path
``drunet-small-color``  DRUNet 3 channels, nc (32..256), nb 2    ``"shipped"`` (default), a path
``drunet-small-ct``     DRUNet 1 channel, nc (32..256), nb 2,    ``"shipped"`` once trained, a path
                        trained on slices of distinv's CT
                        phantoms (the CT chapter's prior)
``drunet-small-radio``  DRUNet 1 channel, nc (32..256), nb 2,    ``"shipped"`` once trained, a path
                        trained on generated radio skies scaled
                        as the radio problem scales its image
                        (the radio chapter's prior)
``drunet-gray``         deepinv's official DRUNet, 1 channel     ``"download"``, a path
``drunet-color``        deepinv's official DRUNet, 3 channels    ``"download"``, a path
======================  =======================================  ================================

``"shipped"`` reads ``distinv/weights/<name>.pt`` (fp16, written by
``data_scripts/train_denoiser.py``, see :data:`SHIPPED_TRAINING`) after checking its sha256
against ``<name>.json``: it works offline. ``"download"`` is deepinv's own path (the same URL and
file name as ``DRUNet(pretrained="download")``) through ``torch.hub``'s cache: a file already in
the cache directory (``data_scripts/fetch_weights.py`` puts it there for offline compute nodes)
is used without network. A path loads that file; a ``<stem>.json`` beside it (as the training script
writes) gives its architecture and sha256, which is checked. Every load uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from distinv.files import write_atomically

__all__ = [
    "SHIPPED_TRAINING",
    "SOURCES",
    "WeightsHashError",
    "available_denoisers",
    "shipped_record",
    "default_cache_dir",
    "fetch_official_weights",
    "load_denoiser",
    "official_weights_url",
    "sha256_of",
]

SOURCES = ("shipped", "download")
#: distinv's own denoisers and the ``data_scripts/train_denoiser.py`` options that train each;
#: a name ships once its ``weights/<name>.json`` and ``.pt`` are there.
SHIPPED_TRAINING = {
    "drunet-small-gray": "--channels 1",
    "drunet-small-color": "--channels 3",
    "drunet-small-ct": "--dataset ct-phantoms --channels 1",
    "drunet-small-radio": "--dataset radio-skies --channels 1",
}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CACHE_ENV = "DISTINV_WEIGHTS_CACHE"


class WeightsHashError(ValueError):
    """A weights file whose sha256 differs from the one recorded for it."""


@dataclass(frozen=True)
class OfficialDRUNet:
    """deepinv's pretrained DRUNet: default architecture, weights on deepinv's hub.

    :param int channels: 1 (gray) or 3 (color).
    :param str file_name: the file name deepinv 0.5's ``DRUNet(pretrained="download")`` uses.
    """

    channels: int
    file_name: str


OFFICIAL = {
    "drunet-gray": OfficialDRUNet(1, "drunet_deepinv_gray_finetune_26k.pth"),
    "drunet-color": OfficialDRUNet(3, "drunet_deepinv_color_finetune_22k.pth"),
}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes.

    :param str path: the file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"; p.write_bytes(b"")
    0
    >>> sha256_of(p)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsHashError(
            f"sha256 of {path} is {actual}, expected {expected}: the file is corrupt or was "
            "replaced; re-fetch it (or retrain with data_scripts/train_denoiser.py)"
        )


def _shipped_records() -> dict[str, dict]:
    return {
        r["name"]: r
        for r in (json.loads(p.read_text()) for p in sorted(WEIGHTS_DIR.glob("*.json")))
    }


def shipped_record(name: str) -> dict:
    """The training record of a shipped denoiser (architecture, data, training, validation table).

    :param str name: a shipped denoiser, e.g. ``"drunet-small-ct"``.

    >>> [row["sigma"] for row in shipped_record("drunet-small-gray")["validation"]][:2]
    [0.025, 0.05]
    """
    records = _shipped_records()
    if name not in records:
        raise ValueError(f"name must be a shipped denoiser, one of {sorted(records)}, got {name!r}")
    return records[name]


def available_denoisers() -> dict[str, str]:
    """Names that :func:`load_denoiser` accepts, each with a one-line description.

    >>> {'drunet-color', 'drunet-gray', 'drunet-small-color', 'drunet-small-gray'} <= set(available_denoisers())
    True
    """
    names = {
        name: f"distinv DRUNet, {r['architecture']['in_channels']} channel(s), "
        f"{r['architecture']['parameters']:,} parameters, sources 'shipped' or a path"
        for name, r in _shipped_records().items()
    }
    for name, spec in OFFICIAL.items():
        names[name] = (
            f"deepinv's official DRUNet, {spec.channels} channel(s), sources 'download' or a path"
        )
    return names


def default_cache_dir() -> Path:
    """Cache of official weights: ``$DISTINV_WEIGHTS_CACHE``, else torch.hub's ``checkpoints``.

    The default is the directory deepinv's ``DRUNet(pretrained="download")`` reads too.

    >>> isinstance(default_cache_dir(), Path)
    True
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints"


def official_weights_url(name: str) -> str:
    """URL of an official DRUNet's weights (deepinv's own ``get_weights_url``).

    :param str name: ``"drunet-gray"`` or ``"drunet-color"``.

    >>> official_weights_url("drunet-color").startswith("https://huggingface.co/deepinv/drunet/")
    True
    """
    from deepinv.models.utils import get_weights_url

    spec = _official_spec(name)
    return get_weights_url(model_name="drunet", file_name=spec.file_name)


def _official_spec(name: str) -> OfficialDRUNet:
    if name not in OFFICIAL:
        raise ValueError(f"name must be one of {sorted(OFFICIAL)} (official DRUNet), got {name!r}")
    return OFFICIAL[name]


def fetch_official_weights(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download an official DRUNet's weights into the cache (no-op if there) and record its sha256.

    Writes ``<file>.sha256`` beside the weights; ``load_denoiser(name, source="download")`` then
    checks it, e.g. after the cache was copied to an offline node.

    :param str name: ``"drunet-gray"`` or ``"drunet-color"``.
    :param str cache_dir: target directory, default :func:`default_cache_dir`.
    :return: the path of the cached weights.
    """
    spec = _official_spec(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / spec.file_name
    if not path.exists():
        torch.hub.download_url_to_file(official_weights_url(name), str(path), progress=True)
    torch.load(path, map_location="cpu", weights_only=True)  # refuse a file that is not weights
    digest = sha256_of(path) + "\n"
    write_atomically(path.with_name(path.name + ".sha256"), lambda tmp: tmp.write_text(digest))
    return path


def _load_official(name: str, cache_dir: Path | None) -> dict:
    spec = _official_spec(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    recorded = cache / (spec.file_name + ".sha256")
    cached = cache / spec.file_name
    if cached.exists() and recorded.exists():
        _check_hash(cached, recorded.read_text().strip())
    return torch.hub.load_state_dict_from_url(
        official_weights_url(name),
        model_dir=str(cache),
        map_location="cpu",
        file_name=spec.file_name,
        weights_only=True,
    )


def _sidecar_record(path: Path) -> dict | None:
    """The ``<stem>.json`` record that the training script writes beside weights, if any."""
    sidecar = path.with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None


def _load_path(path: Path, record: dict | None) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"source {str(path)!r}: no such weights file")
    if record and record.get("sha256"):
        _check_hash(path, record["sha256"])
    return torch.load(path, map_location="cpu", weights_only=True)


def _as_path(source: str | os.PathLike) -> Path | None:
    """The source as a path, or None when it is a source keyword (or an unknown word)."""
    if isinstance(source, os.PathLike):
        return Path(source)
    looks_like_path = os.sep in source or source.endswith((".pt", ".pth")) or Path(source).exists()
    return Path(source) if source not in SOURCES and looks_like_path else None


def load_denoiser(
    name: str = "drunet-small-gray",
    source: str | os.PathLike = "shipped",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
) -> torch.nn.Module:
    """A deepinv DRUNet with trained weights, in eval mode, float32, on ``device``.

    It computes :math:`D(y, \\sigma)` as ``denoiser(y, sigma)`` for ``y`` of shape
    ``(B, C, H, W)`` in :math:`[0, 1]` and a float or ``(B,)`` tensor ``sigma``.

    :param str name: one of :func:`available_denoisers` (see the module docstring).
    :param str source: ``"shipped"`` (package weights, offline), ``"download"`` (deepinv's
        official weights through the cache) or a path to a state-dict file.
    :param str device: where the network lives.
    :param str cache_dir: cache for ``"download"``, default :func:`default_cache_dir`.
    :raises ValueError: unknown name, source or device, or a source that this name does not have.
    :raises WeightsHashError: the file's sha256 differs from the recorded one.
    :raises FileNotFoundError: a path source that does not exist, or a name of
        :data:`SHIPPED_TRAINING` whose weights were not trained yet.

    >>> import torch
    >>> denoiser = load_denoiser("drunet-small-gray")
    >>> with torch.no_grad():
    ...     denoiser(torch.rand(1, 1, 32, 32), 0.1).shape
    torch.Size([1, 1, 32, 32])
    """
    from deepinv.models import DRUNet

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a str or a path, got {type(source).__name__}")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be a torch device or its name ('cpu', 'cuda', 'cuda:1', ...), "
                         f"got {device!r}") from error
    path = _as_path(source)
    if path is None and source not in SOURCES:
        raise ValueError(
            f"unknown source {source!r}: expected one of {list(SOURCES)} "
            "or a path to a weights file"
        )
    record = _sidecar_record(path) if path is not None else None
    shipped = _shipped_records()
    known = set(shipped) | set(OFFICIAL) | ({record.get("name")} if record else set())
    if name not in known | set(SHIPPED_TRAINING):
        raise ValueError(f"unknown denoiser name {name!r}; available: {sorted(known - {None})}")
    if source == "shipped" and name not in shipped and name in SHIPPED_TRAINING:
        raise FileNotFoundError(
            f"{name!r} has no weights in {WEIGHTS_DIR} yet: train them with `python "
            f"data_scripts/train_denoiser.py {SHIPPED_TRAINING[name]}` (or pass a path as source)"
        )

    if source == "shipped" and name in OFFICIAL:
        raise ValueError(
            f"{name!r} is deepinv's official DRUNet, not shipped with distinv: use "
            "source='download' (cached by data_scripts/fetch_weights.py) or a path"
        )
    if source == "download" and name not in OFFICIAL:
        raise ValueError(
            f"{name!r} ships with distinv and has no download: use source='shipped' or a path"
        )

    if record and record.get("name") == name and "architecture" in record:
        arch = record["architecture"]  # a path written by the training script
    elif name in OFFICIAL:
        arch = {"in_channels": OFFICIAL[name].channels, "nc": (64, 128, 256, 512), "nb": 4}
    elif name in shipped:
        arch = shipped[name]["architecture"]
    else:
        raise ValueError(f"{name!r} has no architecture record: put the <stem>.json that the training "
                         f"script wrote beside {path}")
    channels, nc, nb = arch["in_channels"], tuple(arch["nc"]), arch["nb"]

    if path is not None:
        state = _load_path(path, record)
    elif source == "download":
        state = _load_official(name, cache_dir)
    else:
        weights = WEIGHTS_DIR / shipped[name]["file"]
        if not weights.is_file():
            raise FileNotFoundError(
                f"shipped weights {weights} are missing; reinstall distinv or run "
                "data_scripts/train_denoiser.py"
            )
        _check_hash(weights, shipped[name]["sha256"])
        state = torch.load(weights, map_location="cpu", weights_only=True)

    model = DRUNet(channels, channels, nc=nc, nb=nb, pretrained=None)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval().to(device)
