"""``python -m distinv.book {execute,fetch-js,build,check-site}``: the book pipeline behind ``make book``."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"-p expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distinv.book", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="execute notebooks with papermill into book/executed/")
    ex.add_argument("--profile", default="cpu", help="profile name (notebooks/profiles/NAME.yaml) or path")
    ex.add_argument("--only", nargs="*", help="notebook stems to execute (default: all)")
    ex.add_argument("-p", "--parameter", action="append", default=[], help="NAME=VALUE override (YAML value)")
    ex.add_argument("--notebooks", default="notebooks")
    ex.add_argument("--output", default="book/executed")
    fj = sub.add_parser("fetch-js", help="fetch the scripts the site serves itself (MathJax, widgets) with npm")
    fj.add_argument("--folder", default=None, help="default: the book's offline-static folder")
    bu = sub.add_parser("build", help="build the site with jupyter-book (warnings are errors)")
    bu.add_argument("--root", default=".")
    ch = sub.add_parser("check-site", help="open the built site in headless Chromium")
    ch.add_argument("--html", default="book/_build/html")
    ch.add_argument("--screenshots", default="book/_build/screenshots")
    ch.add_argument("--min-figures", type=int, default=1)
    args = parser.parse_args(argv)

    if args.command == "execute":
        from distinv.book.execute import execute_all

        profile = Path(args.profile)
        if not profile.suffix:
            profile = Path(args.notebooks) / "profiles" / f"{args.profile}.yaml"
        try:
            execute_all(args.notebooks, args.output, profile, only=args.only,
                        overrides=_parse_overrides(args.parameter))
        except Exception as exc:  # papermill's error carries the failing cell's traceback
            print(f"\nnotebook execution failed:\n{exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "fetch-js":
        from distinv.book.vendor import DEFAULT_FOLDER, PACKAGES, fetch

        folder = args.folder or DEFAULT_FOLDER
        fetched = fetch(folder)
        kept = [p.spec for p in PACKAGES if p.name not in fetched]
        print(f"fetch-js: {folder}/vendor: fetched {fetched or 'nothing'}; already there: {kept or 'nothing'}")
        return 0
    if args.command == "build":
        from distinv.book import plotly_js_path

        root = Path(args.root)
        static = root / "book" / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plotly_js_path(), static / "plotly.min.js")
        command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--path-output", str(root / "book"),
                   "-W", "--keep-going"]
        return subprocess.call(command)
    from distinv.book.check_site import main as check_main

    return check_main(args.html, args.screenshots, args.min_figures)


if __name__ == "__main__":
    sys.exit(main())
