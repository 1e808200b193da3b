"""The walkthrough reads in one sitting: its prose, every word of it counted as the benchmark counts it, stays within budget."""

from __future__ import annotations

import textwrap
from pathlib import Path

from markdown_it.renderer import RendererHTML
from myst_parser.parsers.mdit import create_md_parser

from scripts import prose
from scripts import snippets as sn
from scripts.check import DOCS, REPO, load_page

RULES = sn.load_copy_rules(REPO / "conf.py")


def count(tmp_path: Path, text: str) -> prose.ProseCount:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text).lstrip("\n"))
    return prose.count_prose(page, RULES)


def test_walkthrough_prose_is_within_budget() -> None:
    """At most 1,600 words of prose, all text outside code, annotations and targets (issue 9): a collapsed note is still on the page."""
    walkthrough = prose.count_prose(DOCS / "self-hosted-authentik.md", RULES)
    assert walkthrough.words <= prose.WALKTHROUGH_BUDGET, f"{walkthrough.words} words of prose ({walkthrough.collapsed} collapsed), budget {prose.WALKTHROUGH_BUDGET}"


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
    assert (c.words, c.collapsed) == (2 + 6, 0)


def test_a_links_target_is_not_prose_but_its_title_is(tmp_path: Path) -> None:
    """{ref}`Title <label>` shows the title: its words count, the label does not; a bare {ref}`label` counts as one word."""
    c = count(tmp_path, "See {ref}`why the file is private <why-env-file>`, then {ref}`restart`.\n")
    assert c.words == 1 + 5 + 1 + 1


def test_collapsed_notes_count_and_are_reported_apart(tmp_path: Path) -> None:
    """A dropdown's title and body are both on the page (closed or not): all count, and the body is reported as collapsed."""
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
    assert (c.words, c.collapsed) == (2 + 3 + 5, 5)


def test_the_benchmark_uses_the_same_count() -> None:
    """make bench reports what this test enforces: the walkthrough's metric has the budget and the same number."""
    from scripts.tools import bench

    metrics = {m.name: m for m in bench.bench_words()}
    m = metrics["words: self-hosted-authentik prose"]
    assert (m.budget, m.median) == (float(prose.WALKTHROUGH_BUDGET), float(prose.count_prose(DOCS / "self-hosted-authentik.md", RULES).words))


def ref_labels(path: Path) -> list[str]:
    """The labels of the {ref} roles on a page, as MyST's parser reads them."""
    md = create_md_parser(RULES.md_config(), RendererHTML)
    roles = [c for tok in md.parse(path.read_text()) if tok.type == "inline" for c in tok.children or () if c.type == "myst_role" and c.meta.get("name") == "ref"]
    return [c.content.rsplit("<", 1)[-1].rstrip(">").strip() for c in roles]


def test_each_reason_is_linked_once_from_the_walkthrough() -> None:
    """The reasons left the walkthrough for docs/why-each-step.md: each is still one click from its step, and none is orphaned."""
    reasons = [label for label, _ in load_page(DOCS / "why-each-step.md").targets]
    links = ref_labels(DOCS / "self-hosted-authentik.md")
    assert reasons, "docs/why-each-step.md has no (label)= targets"
    assert {label: links.count(label) for label in reasons} == dict.fromkeys(reasons, 1)
