"""Cache deepinv's official DRUNet weights for compute nodes without network.

Run it on a machine with network, then copy the cache directory to the offline node (or share
it) and point ``DISTINV_WEIGHTS_CACHE`` (or torch.hub's ``TORCH_HOME``) at it there:
``distinv.models.load_denoiser("drunet-color", source="download")`` and deepinv's own
``DRUNet(pretrained="download")`` then find the files without network. A ``<file>.sha256`` is
written beside each file and checked on load.

Examples::

    python data_scripts/fetch_weights.py                        # both, into the default cache
    python data_scripts/fetch_weights.py --names drunet-color --cache-dir /shared/weights
"""

from __future__ import annotations

import argparse
import json
import sys

from distinv.models import OFFICIAL, default_cache_dir, fetch_official_weights, sha256_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", choices=sorted(OFFICIAL), default=sorted(OFFICIAL))
    parser.add_argument("--cache-dir", default=None,
                        help=f"default: $DISTINV_WEIGHTS_CACHE or {default_cache_dir()}")
    args = parser.parse_args(argv)
    for name in args.names:
        path = fetch_official_weights(name, args.cache_dir)
        print(json.dumps({"name": name, "path": str(path), "sha256": sha256_of(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
