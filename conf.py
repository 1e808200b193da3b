"""Sphinx configuration for the guide; conf.py sits at the root, so build with `-c .` and docs/ as the source dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docutils import nodes
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

# -- Where the site lives ----------------------------------------------------
# The GitHub repository the pages' sources live in: "edit this page" links point into it, and its
# GitHub Pages address is the site's canonical root. GitHub Actions sets GITHUB_REPOSITORY, so a fork
# that publishes itself links to itself; elsewhere (a writer's machine) the default below applies.
REPOSITORY = os.environ.get("GITHUB_REPOSITORY") or "Monadical-SAS/reflector-authentik-docs"
_owner, _name = REPOSITORY.split("/")
# The canonical root URL (<link rel="canonical">, og:url, the 404 page's absolute links). First match:
# SITE_URL (a custom domain), Read the Docs' own READTHEDOCS_CANONICAL_URL, the repository's Pages URL.
SITE_URL = os.environ.get("SITE_URL") or os.environ.get("READTHEDOCS_CANONICAL_URL") or f"https://{_owner.lower()}.github.io/{_name}/"
SITE_URL = SITE_URL.rstrip("/") + "/"

# -- General -----------------------------------------------------------------

# scripts.sphinxext: the test report on the pages (verified marks, page scripts), the reader's values and the writers' generated tables.
extensions = ["myst_parser", "sphinx_copybutton", "sphinx_design", "sphinxcontrib.mermaid", "sphinxext.opengraph", "notfound.extension", "scripts.sphinxext"]
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
# Every page: sideways-scrolling code blocks and tables take keyboard focus (accessibility; see the file).
html_js_files = [("scroll-focus.js", {"defer": "defer"})]
# Without an icon every browser asks for /favicon.ico and logs a 404 on each page. The PNG beside it
# (180 px, for browsers and home screens without SVG icons) is made from the SVG once and committed:
# `python -m scripts.tools.favicon` remakes it, and tests/test_browser.py fails when the two differ.
html_favicon = "docs/_static/favicon.svg"
FAVICON_PNG = "favicon.png"  # in _static/
# The page sources carry `% test:` annotations; readers never see test scaffolding, so no _sources/.
html_copy_source = False
html_show_sourcelink = False
# Each page's <link rel="canonical">: search engines index the published copy, not a preview or a fork.
html_baseurl = SITE_URL
# The guide has no index entries, so genindex.html would be an empty page; search.html stays.
html_use_index = False
html_theme_options = {
    # furo's "edit this page" link, to the page's source on GitHub. No "view" link: it shows the same file.
    "source_repository": f"https://github.com/{REPOSITORY}/",
    "source_branch": "main",
    "source_directory": "docs/",
    "top_of_page_buttons": ["edit"],
}

# -- OpenGraph and meta description (sphinxext-opengraph) ----------------------
# og:title, og:url, og:description and <meta name="description"> on every page. The description is the
# page's front-matter `description:` when it has one, otherwise the whole sentences of its first
# paragraph that fit in DESCRIPTION_LENGTH characters (what search results show); see _description below.
DESCRIPTION_LENGTH = 160
ogp_site_url = SITE_URL
ogp_site_name = project
# Social cards would need matplotlib (and fonts) in the docs set; a plain link preview is enough.
ogp_social_cards = {"enable": False}

# -- 404 page (sphinx-notfound-page) -------------------------------------------
# 404.html is served for any missing URL at any depth, so its links are absolute: rooted at the path
# of the site's URL (GitHub Pages serves a project site under /<repository>/).
notfound_urls_prefix = urlsplit(SITE_URL).path
notfound_context = {
    "title": "Page not found",
    "body": (
        "<h1>Page not found</h1>\n"
        "<p>This address is not a page of the guide: it may have moved, or the link that brought you here has a typo.</p>\n"
        f'<p>Start from <a href="{notfound_urls_prefix}index.html">the guide\'s first page</a>, or search the guide with the box in the sidebar.</p>'
    ),
}

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

# -- Page scripts (scripts/sphinxext) ------------------------------------------
# Every page whose steps a reader runs top to bottom offers them as one script (docs/testing.md, "The page
# as a script"). These pages don't, with the reason: the reader runs only some of their blocks.
page_scripts_exclude = {"troubleshooting": "each entry is for one symptom: run only the commands for the one you see"}

# -- mermaid -----------------------------------------------------------------
# mermaid's ESM build comes from npm (package.json pins the version sphinxcontrib-mermaid defaults
# to) and _copy_mermaid below copies it into the build's _static/: the site loads nothing from a CDN.
# Its LICENSE goes beside it, with THIRD-PARTY-NOTICES.txt for the packages its build bundles.

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
    """The ESM entry point, the chunks it imports and mermaid's LICENSE, as (source, path relative to _static/mermaid/)."""
    chunks = sorted((MERMAID_DIST / "chunks" / "mermaid.esm.min").glob("*.mjs"))
    entry = MERMAID_DIST / "mermaid.esm.min.mjs"
    licence = MERMAID_DIST.parent / "LICENSE"
    return [(entry, Path(entry.name)), (licence, Path(licence.name))] + [(c, c.relative_to(MERMAID_DIST)) for c in chunks]


def mermaid_notices() -> str:
    """The licences of the npm packages mermaid depends on (its ESM build bundles their code), from package-lock.json.

    Every package the lock installs for production, except our own root and mermaid (whose LICENSE
    ships beside it); dev-only packages (axe-core, for the tests) never reach the site.
    """
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    parts = [
        "Third-party licences of the code bundled in mermaid's ESM build (mermaid's own: LICENSE, beside this file).",
        "Generated at build time from package-lock.json and each package's licence file in node_modules/.",
    ]
    for path, info in sorted(lock.items()):
        if not path or info.get("dev") or path == "node_modules/mermaid":
            continue
        name = path.rsplit("node_modules/", 1)[1]
        parts.append(f"\n{'=' * 78}\n{name} {info.get('version', '?')} ({info.get('license') or 'no licence field'})\n{'=' * 78}")
        texts = sorted(p for p in (ROOT / path).glob("*") if p.is_file() and p.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")))
        parts.extend(t.read_text(encoding="utf-8", errors="replace").strip() for t in texts)
    return "\n".join(parts) + "\n"


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
    (dest / "THIRD-PARTY-NOTICES.txt").write_text(mermaid_notices(), encoding="utf-8")


def _mermaid_only_with_diagrams(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Diagram pages get the fullscreen icon's CSS; every other page loses mermaid's script.

    sphinxcontrib-mermaid 2.1.1 skips pages whose doctree has no diagram, but installs mermaid on
    pages without a doctree (genindex, search); this runs after it (priority 900) and takes it out.
    """
    if doctree is not None and doctree.next_node(mermaid) is not None:
        app.add_css_file("mermaid-fullscreen.css")
        app.add_css_file("mermaid-contrast.css")
        return
    entry = Path(mermaid_use_local).name
    context["script_files"][:] = [js for js in context["script_files"] if entry not in js.attributes.get("body", "")]


def summary(doctree: nodes.document, limit: int = DESCRIPTION_LENGTH) -> str:
    """The page's first paragraph, up to the last whole sentence that fits `limit` (and always its first sentence)."""
    first = doctree.next_node(nodes.paragraph)
    if first is None:
        return ""
    text = " ".join(first.astext().split())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + 1 + len(sentence) > limit:
            break
        kept = f"{kept} {sentence}"
    return kept


def _description(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Each page's meta description and og:description: its front-matter `description:`, else summary().

    Runs before sphinxext-opengraph (priority 500), which then keeps the meta tag it finds and lets the
    page's `og:` fields override the description it would cut from the text at any character.
    """
    meta = context.get("meta")
    if doctree is None or meta is None:
        return  # search.html and 404.html: nothing to describe
    description = meta.get("description") or summary(doctree)
    if not description:
        return
    meta["og:description"] = description
    context["metatags"] += f'<meta name="description" content="{escape(description)}" />\n'


def _png_favicon(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Link the PNG icon beside the SVG one: for browsers without SVG icons, and as the home-screen icon."""
    href = escape(context["pathto"](f"_static/{FAVICON_PNG}", 1))
    links = f'<link rel="icon" type="image/png" sizes="180x180" href="{href}" />\n<link rel="apple-touch-icon" href="{href}" />\n'
    context["metatags"] = context.get("metatags", "") + links


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _check_mermaid)
    app.connect("html-page-context", _description, priority=400)
    app.connect("html-page-context", _png_favicon)
    app.connect("html-page-context", _mermaid_only_with_diagrams, priority=900)
    app.connect("build-finished", _copy_mermaid)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
