"""Sphinx configuration for the guide; conf.py sits at the root, so build with `-c .` and docs/ as the source dir."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ConfigError
from sphinxcontrib.mermaid import mermaid

ROOT = Path(__file__).resolve().parent
# Our own extension (scripts/sphinxext) is imported from the repository; sphinx-build does not put conf.py's folder on the path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# -- Project -----------------------------------------------------------------

project = "Reflector behind Authentik"
author = "Reflector contributors"
copyright = f"%Y, {author}"  # noqa: A001 - the name Sphinx reads; %Y is the build year

# -- General -----------------------------------------------------------------

# scripts.sphinxext: the test report on the pages (verified marks, page scripts) and the writers' generated tables.
extensions = ["myst_parser", "sphinx_copybutton", "sphinxcontrib.mermaid", "scripts.sphinxext"]
# MyST pages only: the snippet tests read docs/**/*.md, so a page in another format would go untested.
source_suffix = {".md": "markdown"}
# Every cross-reference must resolve (the Makefile passes --nitpicky too; this covers other front ends).
nitpicky = True

# -- MyST --------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist"]
# Plain ```mermaid fences become the mermaid directive, so the same page renders on GitHub and here.
myst_fence_as_directive = ["mermaid"]
# Links like [x](#some-heading) to h1-h3 resolve (and a wrong slug is a nitpicky error).
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------

html_theme = "furo"
# Sphinx's default title appends "<release> documentation", which furo's sidebar then shows.
html_title = project
# Relative to this file (the confdir), not to docs/.
html_static_path = ["docs/_static"]
# Without an icon every browser asks for /favicon.ico and logs a 404 on each page.
html_favicon = "docs/_static/favicon.svg"
# The page sources carry `% test:` annotations; readers never see test scaffolding, so no _sources/.
html_copy_source = False
html_show_sourcelink = False

# -- copybutton --------------------------------------------------------------
# These settings are the contract scripts/snippets.py implements: a snippet runs exactly what the
# button copies. A block with `$ ` prompts copies only the prompt lines (and their continuations and
# here-documents); a block without prompts copies whole. copybutton_exclude stays at its default
# (".linenos"), which snippets.py models.

copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_remove_prompts = True
copybutton_copy_empty_lines = True
copybutton_line_continuation_character = "\\"
copybutton_here_doc_delimiter = "EOF"
# The default selector ("div.highlight pre") on purpose: readers paste env, YAML and Caddyfile
# blocks into files too, and those have no `$ ` lines, so the button copies them verbatim.

# -- mermaid -----------------------------------------------------------------
# mermaid's ESM build comes from npm (package.json pins the version sphinxcontrib-mermaid defaults
# to) and _copy_mermaid below copies it into the build's _static/: the site loads nothing from a CDN.

MERMAID_DIST = ROOT / "node_modules" / "mermaid" / "dist"
mermaid_use_local = "mermaid/mermaid.esm.min.mjs"  # relative to _static/
# The default glyph (U+26F6) is missing from common fonts and shows as a box; the button gets a
# drawn icon from docs/_static/mermaid-fullscreen.css instead, whatever fonts the reader has.
mermaid_fullscreen_button = ""
# The default (500px) shrinks wide sequence diagrams to unreadable text and pads short ones;
# "auto" keeps each diagram's aspect ratio at the column's width.
mermaid_height = "auto"

# -- linkcheck ---------------------------------------------------------------

linkcheck_ignore = [
    # The guide's placeholder hosts (RFC 2606 example.com): the reader's own domains, not ours.
    r"https?://([a-z0-9-]+\.)*example\.com(/.*)?",
    # Addresses on the reader's server, valid only there.
    r"https?://(localhost|127\.0\.0\.1)(:\d+)?(/.*)?",
]
# GitHub renders README and blob anchors with JavaScript, so linkcheck never finds them in the HTML.
linkcheck_anchors_ignore_for_url = [r"https://github\.com/.+"]
linkcheck_timeout = 30


# -- build hooks -------------------------------------------------------------


def _mermaid_files() -> list[tuple[Path, Path]]:
    """The ESM entry point and the chunks it imports, as (source, path relative to _static/mermaid/)."""
    chunks = sorted((MERMAID_DIST / "chunks" / "mermaid.esm.min").glob("*.mjs"))
    entry = MERMAID_DIST / "mermaid.esm.min.mjs"
    return [(entry, Path(entry.name))] + [(c, c.relative_to(MERMAID_DIST)) for c in chunks]


def _check_mermaid(app: Sphinx) -> None:
    """Fail early, saying how to fix it, when node_modules/ lacks the pinned mermaid."""
    if app.builder.format != "html":
        return
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]["mermaid"]
    installed = MERMAID_DIST.parent / "package.json"
    if not installed.is_file():
        raise ConfigError(
            f"mermaid is not installed in {MERMAID_DIST.parent.parent}: run `make node_modules` (npm ci --ignore-scripts; without npm: apt-get install npm)"
        )
    version = json.loads(installed.read_text(encoding="utf-8"))["version"]
    if version != pinned:
        raise ConfigError(f"node_modules has mermaid {version}, package.json pins {pinned}: run `make node_modules`")


def _copy_mermaid(app: Sphinx, exception: Exception | None) -> None:
    """Copy mermaid into _static/mermaid/, skipping files already there (keeps rebuilds fast)."""
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mermaid"
    for src, rel in _mermaid_files():
        target = dest / rel
        stat = src.stat()
        if target.is_file() and target.stat().st_size == stat.st_size and target.stat().st_mtime == stat.st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _mermaid_only_with_diagrams(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Diagram pages get the fullscreen icon's CSS; every other page loses mermaid's script.

    sphinxcontrib-mermaid 2.1.1 skips pages whose doctree has no diagram, but installs mermaid on
    pages without a doctree (genindex, search); this runs after it (priority 900) and takes it out.
    """
    if doctree is not None and doctree.next_node(mermaid) is not None:
        app.add_css_file("mermaid-fullscreen.css")
        return
    entry = Path(mermaid_use_local).name
    context["script_files"][:] = [js for js in context["script_files"] if entry not in js.attributes.get("body", "")]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _check_mermaid)
    app.connect("html-page-context", _mermaid_only_with_diagrams, priority=900)
    app.connect("build-finished", _copy_mermaid)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
