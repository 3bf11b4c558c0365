"""The JSON output of the benchmark commands of :mod:`distinv.bench.studies` (``prior``, ``schedule``, ``ct``, ...).

A command prints its document on stdout and, with ``--out FILE``, also writes it there atomically; an
existing ``FILE`` is refused before any work unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os

from distinv.files import write_atomically

__all__ = ["write_json_atomically", "add_output_arguments", "refuse_existing_output", "emit_document"]


def write_json_atomically(document: dict, path: str | os.PathLike, force: bool = False) -> None:
    """Write ``document`` to ``path`` as indented JSON, whole or not at all; refuse to overwrite unless ``force``.

    :param dict document: JSON-serialisable (other values are written with ``str``).
    :param path: destination.
    :param bool force: overwrite an existing file.
    :raises FileExistsError: ``path`` exists and ``force`` is false.
    """
    text = json.dumps(document, indent=2, default=str) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text), overwrite=force,
                     refusal_hint="pass --force to overwrite it")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out FILE`` (also write the JSON document there, atomically) and ``--force`` (overwrite it)."""
    parser.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def refuse_existing_output(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error before any work when ``--out`` exists and ``--force`` was not given."""
    if args.out and os.path.exists(args.out) and not args.force:
        parser.error(f"--out {args.out} exists: pass --force to overwrite it")


def emit_document(document: dict, args: argparse.Namespace) -> None:
    """Print ``document`` as JSON on stdout and, with ``--out``, write it there atomically."""
    print(json.dumps(document, indent=2, default=str))
    if args.out:
        write_json_atomically(document, args.out, force=args.force)
