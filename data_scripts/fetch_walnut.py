"""Fetch one orbit of a CWI walnut CBCT scan and write it ready for ASTRA's ``cone_vec``.

Data: Der Sarkissian et al. (2019), "A cone-beam X-ray computed tomography data collection
designed for machine learning", Scientific Data 6, 215; Zenodo, CC BY 4.0 (cite it when you use
it). Everything happens in :mod:`distinv.tomography.walnut`; this is its command line::

    python data_scripts/fetch_walnut.py --walnut 1 --tube 2 --out data/walnut --bin 2 --every 2
    python data_scripts/fetch_walnut.py --walnut 1 --tube 2 --out data/walnut --from-dir ~/Walnuts

The first form downloads ``Walnut1.zip`` (about 6 GB; an interrupted download resumes), extracts
``Walnut1/Projections/tubeV2/`` and writes ``data/walnut/walnut1_tube2_bin2_every2.npz``
(projections float32 ``(rows, views, cols)``, ``cone_vec`` vectors in mm, metadata). The second
reads an archive you extracted yourself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distinv.tomography.walnut import prepare_walnut


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walnut", type=int, required=True, help="walnut number, 1..42")
    parser.add_argument("--tube", type=int, default=2, choices=(1, 2, 3),
                        help="source orbit: 1 high, 2 middle (default), 3 low")
    parser.add_argument("--out", type=Path, required=True, help="output folder (zip, extraction, .npz)")
    parser.add_argument("--from-dir", type=Path, default=None,
                        help="an extracted archive (holding WalnutN/): no download")
    parser.add_argument("--url", default=None, help="URL of WalnutN.zip (built in for walnuts 1-8); file:// works")
    parser.add_argument("--bin", type=int, default=1, help="detector binning b (b x b means)")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th view")
    parser.add_argument("--size", type=int, default=None, help="expected zip size in bytes")
    parser.add_argument("--sha256", default=None, help="expected zip sha256")
    parser.add_argument("--md5", default=None, help="expected zip md5 (as listed on Zenodo)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing .npz")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    path = prepare_walnut(args.walnut, args.tube, args.out, from_dir=args.from_dir, url=args.url,
                          binning=args.bin, every=args.every, size=args.size, sha256=args.sha256,
                          md5=args.md5, force=args.force)
    print(path)
    return path


if __name__ == "__main__":
    main()
    sys.exit(0)
