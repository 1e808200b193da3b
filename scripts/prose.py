"""Count a MyST page's prose words as a reader meets them: text outside code, annotations and targets; collapsed notes apart.

The walkthrough's length budget (and the benchmark's words-per-page figure) is about what a reader
reads in one pass. A `{dropdown}` is closed until the reader opens it, so its words are counted
separately from the page's visible prose. Tokens come from MyST's own parser (the one Sphinx uses),
never from regexes over lines: a `%` comment, a `(label)=` target or a fence is never prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_parser.parsers.directives import parse_directive_text
from myst_parser.parsers.mdit import create_md_parser
from sphinx.util.docutils import SphinxDirective

from scripts.snippets import CopyRules

WALKTHROUGH_BUDGET = 1600
"""Words of visible prose the walkthrough (docs/self-hosted-authentik.md) may have (issue 9)."""

COLLAPSED = frozenset({"dropdown"})
"""Directives whose body the reader sees only after opening it."""

_WORD = re.compile(r"[\w'\u2019.:/@~$+-]*\w[\w'\u2019.:/@~$+-]*")  # \u2019: the typographic apostrophe


@dataclass(frozen=True, slots=True)
class ProseCount:
    """A page's prose words: shown (read in one pass) and collapsed (in closed notes)."""

    page: str
    shown: int
    collapsed: int

    @property
    def total(self) -> int:
        return self.shown + self.collapsed


class _Note(SphinxDirective):
    """Reads any container directive's title and body (its options are read as YAML, unvalidated)."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {}


def words(text: str) -> int:
    """Words as a reader counts them: `set_env`, `~/authentik/.env` and `don't` are one word each."""
    return len(_WORD.findall(text))


def count_prose(path: Path, rules: CopyRules) -> ProseCount:
    """Words of prose on the page at `path`, split into shown and collapsed."""
    md = create_md_parser(rules.md_config(), RendererHTML)
    counts = {"shown": 0, "collapsed": 0}

    def walk(src: str, where: str) -> None:
        for tok in md.parse(src):
            if tok.type == "inline":
                counts[where] += words(_inline_text(tok))
            elif tok.type in {"fence", "colon_fence"}:
                name = tok.info.strip().split(maxsplit=1)
                head = name[0] if name else ""
                if head.startswith("{") and head.endswith("}") and head[1:-1] not in {"code-block", "code", "sourcecode", "mermaid"}:
                    directive = head[1:-1]
                    parsed = parse_directive_text(_Note, name[1] if len(name) > 1 else "", tok.content, validate_options=False)
                    inner = "collapsed" if directive in COLLAPSED or where == "collapsed" else where
                    if parsed.arguments:  # a dropdown's title is on the page, even when the note is closed
                        counts[where] += words(" ".join(parsed.arguments))
                    walk("\n".join(parsed.body) + "\n", inner)

    walk(path.read_text(encoding="utf-8"), "shown")
    return ProseCount(path.name, counts["shown"], counts["collapsed"])


def _inline_text(tok: Token) -> str:
    """The text of an inline token: literal text, inline code and roles ({doc}`x` counts as one word), without markup."""
    return " ".join(child.content for child in tok.children or () if child.type in {"text", "code_inline", "myst_role"})
