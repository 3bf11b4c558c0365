"""Fetch real high-resolution photographs (DIV2K validation set, 2K PNGs) for chapter 01's large sizes.

scikit-image's images are at most 512-1411 pixels wide, so the 4096-8192 pixel problems upsample
them (smooth). Online users can use DIV2K (Agustsson & Timofte, NTIRE 2017) instead::

    python data_scripts/fetch_images.py --images 0801 0803 --dest data/images
    # then in the notebook / config: image="data/images/0801.png"

The archive (about 428 MB) is downloaded once into ``--cache`` and reused. Its sha256 is checked
against ``--sha256`` when given; otherwise the digest of the first download is recorded in
``<cache>/DIV2K_valid_HR.zip.sha256`` and every later use is checked against it (trust on first
use: we could not pin the digest from this offline workplace). Extracted images get a
``<name>.png.sha256`` file beside them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

from distinv.files import write_atomically
from distinv.models import sha256_of

URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip"
ARCHIVE = "DIV2K_valid_HR.zip"
VALID_IDS = [f"{i:04d}" for i in range(801, 901)]



def download(url: str, target: Path) -> None:
    print(f"downloading {url} -> {target}", file=sys.stderr)

    def write(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)

    write_atomically(target, write)


def cached_archive(cache: Path, expected_sha256: str | None) -> Path:
    """The archive in ``cache``, downloaded if missing, its digest checked."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / ARCHIVE
    if not archive.is_file():
        download(URL, archive)
    digest = sha256_of(archive)
    record = cache / (ARCHIVE + ".sha256")
    expected = expected_sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if expected is not None and digest != expected:
        raise ValueError(f"{archive} has sha256 {digest}, expected {expected}; delete it and fetch again")
    if not record.is_file():
        write_atomically(record, lambda tmp: tmp.write_text(f"{digest}  {ARCHIVE}\n"))
    return archive


def _copy_member(bundle: zipfile.ZipFile, member: str, target: Path) -> None:
    with bundle.open(member) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)


def extract(archive: Path, ids: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(archive) as bundle:
        for image_id in ids:
            member = f"DIV2K_valid_HR/{image_id}.png"
            target = dest / f"{image_id}.png"
            if not target.is_file():  # written whole or not at all: a file that is there is complete
                write_atomically(target, lambda tmp: _copy_member(bundle, member, tmp))
            digest = f"{sha256_of(target)}  {target.name}\n"
            write_atomically(dest / f"{image_id}.png.sha256", lambda tmp: tmp.write_text(digest))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["0801"], help=f"DIV2K validation ids, {VALID_IDS[0]}..{VALID_IDS[-1]}")
    parser.add_argument("--dest", type=Path, default=Path("data/images"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "distinv")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the archive")
    args = parser.parse_args(argv)
    unknown = [i for i in args.images if i not in VALID_IDS]
    if unknown:
        parser.error(f"unknown image ids {unknown}; DIV2K validation ids are {VALID_IDS[0]}..{VALID_IDS[-1]}")
    paths = extract(cached_archive(args.cache, args.sha256), args.images, args.dest)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
