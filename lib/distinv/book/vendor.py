"""The book's third-party scripts, served by the site itself so that every page reads offline.

MathJax 3 (what ``sphinx.ext.mathjax`` of Sphinx 7.4 loads), RequireJS and the Jupyter widgets HTML
manager (what myst-nb loads on a page with saved widget state) would come from CDNs. Instead,
``python -m distinv.book fetch-js`` (``make site-js``) takes them from the npm registry with ``npm pack``
(a tarball, no install scripts), at pinned versions checked against pinned digests, and unpacks the
files the pages need into ``<folder>/vendor/<name>/`` (npm's own layout, which the widgets manager expects
when it loads its fonts); the Sphinx extension
:mod:`distinv.book.sphinx_scripts` adds ``<folder>`` to the site's static files and points the pages
at ``_static/vendor/...``.

>>> [p.name for p in PACKAGES]
['mathjax', 'requirejs', '@jupyter-widgets/html-manager']
>>> wanted(PACKAGES[0], "package/es5/tex-mml-chtml.js"), wanted(PACKAGES[0], "package/es5/tex-svg.js")
(True, False)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VendorPackage", "PACKAGES", "DEFAULT_FOLDER", "MATHJAX_PATH", "REQUIREJS_PATH", "WIDGETS_PATH",
           "wanted", "missing_files", "fetch"]

#: Where ``fetch-js`` unpacks the packages, relative to the book's root (ignored by git, as ``book/_build``).
DEFAULT_FOLDER = "book/_build/offline-static"


@dataclass(frozen=True)
class VendorPackage:
    """One npm package of scripts the pages load.

    :param str name: its npm name, also its folder under ``vendor/``.
    :param str spec: the npm package and exact version.
    :param str integrity: npm's ``sha512-…`` digest of the tarball.
    :param tuple keep: paths inside the package (prefixes) that the site serves.
    :param tuple drop: paths among them left out (other outputs, bundles for other loaders, source maps).
    """

    name: str
    spec: str
    integrity: str
    keep: tuple[str, ...]
    drop: tuple[str, ...] = ()


PACKAGES = (
    VendorPackage("mathjax", "mathjax@3.2.2",
                  "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                  keep=("LICENSE", "es5/tex-mml-chtml.js", "es5/input/", "es5/output/chtml", "es5/a11y/",
                        "es5/ui/", "es5/sre/", "es5/adaptors/")),
    VendorPackage("requirejs", "requirejs@2.3.4",
                  "sha512-qPD5gRrj6kGQ0ZySAJgqbArkaDqPMbQIT0zSZDkIv1mfA17w/tR2Faq5l2qqRf2CdQx6FWln9nUrgd2UDzb19A==",
                  keep=("require.js",)),
    VendorPackage("@jupyter-widgets/html-manager", "@jupyter-widgets/html-manager@1.0.6",
                  "sha512-+Mn+Ra8wyIHrYaUpfmf9A3dsLkt/NuwzPQN8sthdxBD35VV5cOJbpmgMhNR27n/rmP3mKyEe0PWCJrtZrXTXDQ==",
                  keep=("LICENSE", "dist/"), drop=("dist/embed.js", "dist/libembed-amd.js")),
)

#: The pages' script paths, relative to ``_static``.
MATHJAX_PATH = "vendor/mathjax/es5/tex-mml-chtml.js"
REQUIREJS_PATH = "vendor/requirejs/require.js"
WIDGETS_PATH = "vendor/@jupyter-widgets/html-manager/dist/embed-amd.js"
_STAMP = ".integrity"


def wanted(package: VendorPackage, member: str) -> bool:
    """Whether a tarball member (``package/<path>``) is served by the site.

    :param VendorPackage package: the package.
    :param str member: the member's name in the npm tarball.
    """
    path = member.removeprefix("package/")
    if path == member or path.startswith("/") or ".." in path.split("/"):  # only inside the package
        return False
    return (any(path.startswith(k) for k in package.keep) and not any(path.startswith(d) for d in package.drop)
            and not path.endswith(".map"))


def missing_files(folder: str | os.PathLike) -> list[str]:
    """The scripts the pages load that ``folder`` lacks (empty when ``fetch`` has run).

    :param str folder: the folder given to :func:`fetch`.
    """
    folder = Path(folder)
    return [path for path in (MATHJAX_PATH, REQUIREJS_PATH, WIDGETS_PATH) if not (folder / path).is_file()]


def fetch(folder: str | os.PathLike = DEFAULT_FOLDER, npm: str = "npm") -> list[str]:
    """Download and unpack every package into ``folder/vendor/`` (a package already there is kept).

    :param str folder: the target folder.
    :param str npm: the npm command.
    :return: the names of the packages unpacked now.
    :raises ValueError: a tarball whose digest is not the pinned one.
    """
    if shutil.which(npm) is None:
        raise FileNotFoundError(f"{npm!r} not found: the site's scripts come from the npm registry through npm "
                                "(Debian: apt-get install npm)")
    vendor = Path(folder) / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    fetched = []
    for package in PACKAGES:
        target = vendor / package.name
        stamp = target / _STAMP
        if stamp.is_file() and stamp.read_text() == package.integrity:
            continue
        with tempfile.TemporaryDirectory(dir=vendor) as tmp:
            done = subprocess.run([npm, "pack", package.spec, "--json", "--pack-destination", tmp],
                                  capture_output=True, text=True, check=True)
            info = json.loads(done.stdout)[0]
            if info["integrity"] != package.integrity:
                raise ValueError(f"{package.spec}: the registry's tarball has digest {info['integrity']}, "
                                 f"expected {package.integrity}")
            staged = Path(tmp) / package.name
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and wanted(package, m.name)]
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
                tar.extractall(staged, members=members, **safe)
            staged = staged / "package"
            (staged / _STAMP).write_text(package.integrity)
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)  # a scoped name: vendor/@scope/name
            os.replace(staged, target)
        fetched.append(package.name)
    return fetched
