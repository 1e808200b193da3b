"""The guide's pages as the tests read them (scripts/snippets.py), for the extension's other modules: parsed once, and the reader's values.

A page that does not parse is warned about once, naming its line, and gets nothing from the extension:
the tests cannot read it either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from scripts import snippets as sn

logger = logging.getLogger(__name__)

# By (path, sha256 of the text): the parse, or None when it failed (already warned about).
_PARSED: dict[tuple[Path, str], sn.Page | None] = {}


@cache
def copy_rules(conf_py: Path) -> sn.CopyRules:
    """conf.py's copy rules, read once per process (reading runs conf.py)."""
    return sn.load_copy_rules(conf_py)


def parse(path: Path, root: Path, docname: str | None = None) -> sn.Page | None:
    """The page at `path` as scripts/snippets.py reads it; None (with one warning) when it does not parse."""
    text = path.read_bytes()
    key = (path, hashlib.sha256(text).hexdigest())
    if key not in _PARSED:
        try:
            _PARSED[key] = sn.parse_page(path, root, copy_rules(root / "conf.py"))
        except sn.SnippetError as e:
            where = (docname, e.line) if docname is not None else None
            logger.warning(f"{e.message} (the tests cannot read this page either)", location=where, type="verified", subtype="page")
            _PARSED[key] = None
    return _PARSED[key]


def parser_digest(root: Path) -> str:
    """What a parse depends on besides the page: the parser's code and conf.py's copy rules."""
    return hashlib.sha256(Path(sn.__file__).read_bytes() + (root / "conf.py").read_bytes()).hexdigest()


def restore_parses(app: Sphinx) -> None:
    """The parses the last build kept in the environment Sphinx pickled (keep_parses), while the parser and conf.py are the same.

    Parsing the guide's pages costs about 0.5 s a build, which a one-page rebuild would otherwise pay in full."""
    kept = getattr(app.env, "verified_parses", None)
    if isinstance(kept, tuple) and kept[0] == parser_digest(Path(app.confdir)):
        for key, page in kept[1].items():
            _PARSED.setdefault(key, page)


def keep_parses(app: Sphinx, env: BuildEnvironment) -> None:
    """Each page's current parse goes into the environment, which Sphinx pickles after reading."""
    root = Path(app.confdir)
    current = {}
    for path in sn.discover_pages(root):
        key = (path, hashlib.sha256(path.read_bytes()).hexdigest())
        if key in _PARSED:
            current[key] = _PARSED[key]
    env.verified_parses = (parser_digest(root), current)  # type: ignore[attr-defined]  # pickled with the environment


def page_of(app: Sphinx, docname: str) -> sn.Page | None:
    """The page behind `docname`, or None when it does not parse or lies outside the confdir (nothing the tests run)."""
    source = Path(app.env.doc2path(docname))
    root = Path(app.confdir)
    if not source.is_relative_to(root / "docs"):
        return None
    return parse(source, root, docname)


@dataclass(frozen=True, slots=True)
class Values:
    """The reader's values across the guide (scripts/snippets.py declared_values), and the page whose `values` block sets them."""

    values: tuple[sn.PageValue, ...]
    docname: str | None  # the page with the `values` block; None when no page has one


def reader_values(app: Sphinx) -> Values:
    """What the guide's `values` block declares; none when no page has one or the declarations disagree (warned)."""
    root = Path(app.confdir)
    pages = [(path, parse(path, root)) for path in sn.discover_pages(root)]
    parsed = [page for _, page in pages if page is not None]
    try:
        values = sn.declared_values(parsed)
    except sn.SnippetError as e:
        logger.warning(str(e), type="verified", subtype="values")
        return Values((), None)
    home = next((path for path, page in pages if page is not None and any(s.sets_values for s in page.snippets)), None)
    docname = home.relative_to(root / "docs").with_suffix("").as_posix() if home is not None else None
    return Values(values, docname)
