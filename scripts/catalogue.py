"""The mutation catalogue (scripts/tools/mutations.yaml): its entries, how each applies to a page, and which tested pages it leaves out.

Pure: it reads the catalogue and page texts, and runs nothing. The engine that judges mutations is
scripts/tools/mutate.py; the page runner (scripts/check.py) uses this module to tell a writer what
the catalogue lacks before the test suite does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from markdown_it.renderer import RendererHTML
from myst_parser.parsers.mdit import create_md_parser

from scripts import snippets as sn

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "scripts" / "tools" / "mutations.yaml"
# Kinds with their own engine; every other kind (wrong-path, env-typo, ...) is a labelled text replacement.
STEP_KINDS = frozenset({"delete", "swap"})


class MutationError(ValueError):
    """A mutation that no longer applies to the pages (its text is gone or ambiguous): fix the catalogue."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A code fence of a page as lines [start, end) of its text, with the `% test:` lines just above it."""

    start: int  # first line: the first annotation above the fence, or the fence line itself
    end: int  # one past the closing fence line
    content: str


def fences(text: str) -> list[Fence]:
    """Every top-level code fence of a MyST page, tokenized by MyST's own parser (as scripts/snippets.py does)."""
    rules = sn.load_copy_rules(REPO / "conf.py")
    md = create_md_parser(rules.md_config(), RendererHTML)
    lines = text.split("\n")
    out = []
    for tok in md.parse(text):
        if tok.type != "fence" or tok.map is None:
            continue
        start, end = tok.map
        while start > 0 and lines[start - 1].startswith("% test:"):
            start -= 1  # a step's annotations belong to it: deleting or moving the step takes them along
        out.append(Fence(start, end, tok.content))
    return out


def the_fence(text: str, prefix: str, mutation: str) -> Fence:
    """The one fence whose content starts with `prefix` (a step named by its first line or lines)."""
    found = [f for f in fences(text) if f.content.startswith(prefix)]
    if len(found) != 1:
        raise MutationError(f"mutation {mutation}: {len(found)} fences start with {prefix!r} (must be exactly one)")
    return found[0]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One realistic mistake: `find` -> `replace` in docs/`page`; for delete, `find` names the step; for swap, `find` and `replace` name the two steps."""

    id: str
    page: str  # relative to docs/
    kind: str
    find: str
    replace: str = ""
    why: str = ""  # for a survivor we accept: why it is harmless
    # "kill": a mistake the tests must catch; "survive": a correct rewrite (long flags, $HOME for ~, another
    # spelling the program reads the same way) that must pass. A killed "survive" is a false alarm: the world is wrong.
    expect: str = "kill"
    judged_by: str = ""  # reader abilities (scripts/reader.py) that run too when every plain step passes, comma-separated

    def __post_init__(self) -> None:
        if self.expect not in ("kill", "survive"):
            raise MutationError(f"mutation {self.id}: expect must be kill or survive, not {self.expect!r}")

    def apply(self, text: str) -> str:
        if self.kind == "delete":
            f = the_fence(text, self.find, self.id)
            lines = text.split("\n")
            return "\n".join(lines[: f.start] + lines[f.end :])
        if self.kind == "swap":
            a, b = sorted((the_fence(text, self.find, self.id), the_fence(text, self.replace, self.id)), key=lambda f: f.start)
            if a == b:
                raise MutationError(f"mutation {self.id}: both texts name the same step")
            lines = text.split("\n")
            return "\n".join(lines[: a.start] + lines[b.start : b.end] + lines[a.end : b.start] + lines[a.start : a.end] + lines[b.end :])
        count = text.count(self.find)
        if count != 1:
            raise MutationError(f"mutation {self.id}: the text to change occurs {count} times in docs/{self.page} (must be exactly once)")
        return text.replace(self.find, self.replace)

    def first_changed_line(self, text: str) -> int:
        """1-based line of `text` where the mutation starts changing it."""
        if self.kind in STEP_KINDS:
            starts = [the_fence(text, self.find, self.id).start]
            if self.kind == "swap":
                starts.append(the_fence(text, self.replace, self.id).start)
            return min(starts) + 1
        line = text[: text.index(self.find)].count("\n") + 1
        # A change inside a fence counts from the fence's line: that is the step's line (`upto` compares with it).
        inside = [f for f in fences(text) if f.start < line <= f.end]
        return min([line] + [f.end - f.content.count("\n") - 1 for f in inside])


def load_catalogue(path: Path = CATALOGUE) -> list[Mutation]:
    raw = yaml.safe_load(path.read_text())
    mutations = [Mutation(**m) for m in raw["mutations"]]
    ids = [m.id for m in mutations]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise MutationError(f"duplicate mutation ids in {path.name}: {', '.join(dupes)}")
    return mutations


def uncovered(pages: Iterable[sn.Page], catalogue: Sequence[Mutation]) -> list[str]:
    """The pages (docs/x.md) that have blocks but no mutation in the catalogue: `make test` requires at least one each."""
    named = {f"docs/{m.page}" for m in catalogue}
    return sorted(p.path for p in pages if p.snippets and p.path not in named)


def stale(page: sn.Page, text: str, catalogue: Sequence[Mutation]) -> list[str]:
    """Why each of the page's mutations no longer applies to its text (an edit must update the catalogue with it)."""
    problems = []
    for m in catalogue:
        if f"docs/{m.page}" == page.path:
            try:
                m.apply(text)
            except MutationError as e:
                problems.append(str(e))
    return problems
