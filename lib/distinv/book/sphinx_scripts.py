"""Sphinx extension: the scripts each page loads, once each, and all from the site itself.

Offline pages. ``sphinx.ext.mathjax`` loads MathJax from a CDN and myst-nb loads RequireJS and the
Jupyter widgets manager from CDNs: an offline reader (a compute node, a downloaded build) would see raw
``\\(...\\)`` and no widgets. The book sets ``mathjax_path`` to the copy in ``_static`` (``_config.yml``);
this extension adds the folder that ``make site-js`` fills (config value ``distinv_offline_static``,
see :mod:`distinv.book.vendor`) to ``html_static_path``, points myst-nb's widget scripts at the local
copies, and fails the build when that folder lacks a script or a page script still has a remote URL.

Widgets and MathJax 3. The Jupyter widgets manager (``@jupyter-widgets/html-manager`` 1.0.x, also its
latest) typesets widget labels with MathJax 2's ``MathJax.Hub.Queue``, which MathJax 3 lacks: every
labelled widget raised ``Cannot read properties of undefined (reading 'Queue')``. On pages with both,
a small script gives MathJax 3 that one call (:data:`MATHJAX2_QUEUE_SHIM`). The manager also loads
its icon fonts from RequireJS's base URL (by default the page's folder): a script sets it to
``_static/vendor/`` (:data:`REQUIREJS_BASE`).

Duplicates. jupyter-book 1.0.4 triggers sphinx-thebe's ``env-before-read-docs`` hook twice, so every
page declares ``const THEBE_JS_URL`` twice, a JavaScript error (``Identifier 'THEBE_JS_URL' has already
been declared``) that the browser check catches. Keeping the first of identical entries fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.errors import ConfigError

from distinv.book.vendor import DEFAULT_FOLDER, REQUIREJS_PATH, WIDGETS_PATH, missing_files

__all__ = ["offline_scripts", "remote_scripts", "MATHJAX2_QUEUE_SHIM", "REQUIREJS_BASE", "setup"]


def offline_scripts(app, config) -> None:
    """``config-inited``: serve the vendored scripts from ``_static`` and refuse remote page scripts."""
    folder = (Path(app.confdir) / config.distinv_offline_static).resolve()
    missing = missing_files(folder)
    if missing:
        raise ConfigError(f"the offline site needs {', '.join(missing)} under {folder}: run `make site-js` "
                          f"(python -m distinv.book fetch-js --folder {folder})")
    config.html_static_path = [*config.html_static_path, str(folder)]
    config.nb_ipywidgets_js = {REQUIREJS_PATH: {}, WIDGETS_PATH: {}}
    remote = remote_scripts(config)
    if remote:
        raise ConfigError(f"pages would load scripts from the network: {remote}; serve them from _static")


def remote_scripts(config) -> list[str]:
    """The page scripts of a Sphinx configuration that are remote URLs.

    :param config: the Sphinx configuration (``mathjax_path``, ``html_js_files``, ``nb_ipywidgets_js``).

    >>> from types import SimpleNamespace
    >>> remote_scripts(SimpleNamespace(mathjax_path="https://cdn.example/tex.js", html_js_files=["a.js"],
    ...                                nb_ipywidgets_js={}))
    ['https://cdn.example/tex.js']
    """
    scripts = [getattr(config, "mathjax_path", "") or ""]
    scripts += [entry[0] if isinstance(entry, (tuple, list)) else entry for entry in config.html_js_files]
    scripts += list(getattr(config, "nb_ipywidgets_js", {}) or {})
    return [s for s in scripts if "://" in s or s.startswith("//")]


#: MathJax 2's ``Hub.Queue(["Typeset", MathJax.Hub, element])`` on MathJax 3: jobs queued before MathJax
#: 3 is ready are typeset once it is (``startup.ready``), later ones at once.
MATHJAX2_QUEUE_SHIM = """(function () {
  var pending = [];
  function typeset(job) {
    var element = Array.isArray(job) ? job[2] : null;
    if (!element) { return; }
    if (window.MathJax && window.MathJax.typesetPromise) {
      window.MathJax.typesetPromise([element]).catch(function (error) { console.error(error); });
    } else { pending.push(element); }
  }
  var hub = {Queue: function () { for (var i = 0; i < arguments.length; i++) { typeset(arguments[i]); } }};
  var config = window.MathJax = window.MathJax || {};
  config.Hub = hub;
  config.startup = config.startup || {};
  var ready = config.startup.ready;
  config.startup.ready = function () {
    if (ready) { ready(); } else { MathJax.startup.defaultReady(); }
    MathJax.Hub = hub;
    MathJax.startup.promise.then(function () {
      return pending.length ? MathJax.typesetPromise(pending.splice(0)) : null;
    });
  };
})();"""


#: RequireJS resolves module paths, so the widgets manager's fonts, from ``_static/vendor/``.
REQUIREJS_BASE = """(function () {
  var loader = document.querySelector('script[src*="vendor/requirejs/require.js"]');
  if (loader && window.requirejs) {
    requirejs.config({baseUrl: loader.src.replace(/requirejs\\/require\\.js.*$/, "")});
  }
})();"""


def _page_scripts(app, pagename, templatename, context: dict, doctree) -> None:
    """``html-page-context``: on pages with widgets, RequireJS's base and the MathJax 2 queue; no duplicates."""
    scripts = context.get("script_files")
    if not scripts:
        return
    names = [getattr(script, "filename", None) or "" for script in scripts]
    widgets = next((i for i, n in enumerate(names) if n.endswith(WIDGETS_PATH)), None)
    if widgets is not None:
        inline = [REQUIREJS_BASE]
        if any(n.endswith(str(app.config.mathjax_path)) for n in names):
            inline.append(MATHJAX2_QUEUE_SHIM)
        for body in inline:  # after the MathJax configuration (it replaces window.MathJax) and RequireJS,
            app.builder.add_js_file("", body=body)  # before the widgets manager
            scripts.insert(widgets, scripts.pop())
            widgets += 1
    _dedupe_scripts(app, pagename, templatename, context, doctree)


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
    app.add_config_value("distinv_offline_static", DEFAULT_FOLDER, "env")
    app.connect("config-inited", offline_scripts, priority=900)  # after the other extensions' defaults
    app.connect("html-page-context", _page_scripts, priority=900)  # after sphinx.ext.mathjax and myst-nb
    return {"parallel_read_safe": True, "parallel_write_safe": True}
