"""The walkthrough reads in one sitting: its prose, counted as the benchmark counts it, stays within budget."""

from __future__ import annotations

import textwrap
from pathlib import Path

from scripts import prose
from scripts import snippets as sn
from scripts.check import DOCS, REPO

RULES = sn.load_copy_rules(REPO / "conf.py")


def count(tmp_path: Path, text: str) -> prose.ProseCount:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text).lstrip("\n"))
    return prose.count_prose(page, RULES)


def test_walkthrough_prose_is_within_budget() -> None:
    """At most 1,600 words of prose outside code, annotations and targets (issue 9); collapsed notes are read on demand."""
    walkthrough = prose.count_prose(DOCS / "self-hosted-authentik.md", RULES)
    assert walkthrough.shown <= prose.WALKTHROUGH_BUDGET, f"{walkthrough.shown} words of prose, budget {prose.WALKTHROUGH_BUDGET}"


def test_code_annotations_and_targets_are_not_prose(tmp_path: Path) -> None:
    """Only what a reader reads counts: a fence, a `% test:` line or a `(label)=` target adds nothing."""
    c = count(
        tmp_path,
        """
        (label)=
        # Two words

        % test: check env-has file=x A=1
        ```bash
        echo these are not prose words
        ```

        Run `set_env` on ~/authentik/.env, then {doc}`index`.
        """,
    )
    assert (c.shown, c.collapsed) == (2 + 6, 0)


def test_collapsed_notes_are_counted_apart_but_their_titles_are_shown(tmp_path: Path) -> None:
    """A dropdown's title is on the page; its body only once opened."""
    c = count(
        tmp_path,
        """
        One two.

        :::{dropdown} Why this way
        Three four five.

        - six seven
        :::
        """,
    )
    assert (c.shown, c.collapsed, c.total) == (2 + 3, 5, 10)


def test_the_benchmark_uses_the_same_count() -> None:
    """make bench reports what this test enforces: the walkthrough's metric has the budget and the same number."""
    from scripts.tools import bench

    metrics = {m.name: m for m in bench.bench_words()}
    m = metrics["words: self-hosted-authentik prose"]
    assert (m.budget, m.median) == (float(prose.WALKTHROUGH_BUDGET), float(prose.count_prose(DOCS / "self-hosted-authentik.md", RULES).shown))
