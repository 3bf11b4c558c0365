"""Sphinx extension: drop duplicate script entries from each page.

jupyter-book 1.0.4 triggers sphinx-thebe's ``env-before-read-docs`` hook twice, so every page
declares ``const THEBE_JS_URL`` twice, a JavaScript error (``Identifier 'THEBE_JS_URL' has already
been declared``) that the browser check catches. Keeping the first of identical entries fixes it.
"""

from __future__ import annotations

from typing import Any


def _dedupe_scripts(app, pagename, templatename, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the same inline script may come once with filename None and once with ""
        key = (getattr(script, "filename", None) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
