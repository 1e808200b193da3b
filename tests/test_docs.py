"""The honesty test: every step of every page runs in its world and passes, one test per `docs/page.md:LINE`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts import snippets as sn
from scripts.check import REPO, PageRun, load_page, tail
from scripts.lanes import Lanes

# A floor per page on what collection finds, so a parser (or a page edit) that silently drops
# fences cannot pass vacuously. Raise a floor when its page grows; lower one only with the page.
MIN_STEPS = {
    "docs/self-hosted-authentik.md": 25,
    "docs/troubleshooting.md": 14,
    "docs/manual-provider.md": 8,
    "docs/api-keys.md": 7,
    "docs/without-authentication.md": 4,
    "docs/rotate-client-secret.md": 3,
}


def collect() -> tuple[list[sn.Page], list[str]]:
    pages, errors = [], []
    for path in sn.discover_pages(REPO):
        try:
            pages.append(load_page(path))
        except sn.SnippetError as e:
            errors.append(str(e))
    return pages, errors


PAGES, PARSE_ERRORS = collect()


def step_id(page: sn.Page, s: sn.Snippet) -> str:
    """`docs/page.md:LINE`; a step of the page it returns to is named after both (`docs/a.md>docs/b.md:LINE`)."""
    return s.id if s.page == page.path else f"{page.path}>{s.id}"


# One xdist group: the pages run side by side in one process (scripts/lanes.py), and a page that continues
# another restores its state there instead of replaying it. Shards still deal out whole pages (scripts/tools/ci.py).
DOC_STEPS_GROUP = "doc-steps"
STEPS = [pytest.param(page, s, id=step_id(page, s), marks=pytest.mark.xdist_group(DOC_STEPS_GROUP)) for page in PAGES for s in PageRun(page, section=None).steps()]


def test_pages_parse() -> None:
    """A malformed page or an unknown annotation is an error naming page:line, not a silently dropped snippet."""
    assert not PARSE_ERRORS, "\n".join(PARSE_ERRORS)


def test_steps_are_collected() -> None:
    """Each page yields at least its floor of steps (guards against a parser that drops fences)."""
    found = {page.path: len(PageRun(page).steps()) for page in PAGES}
    short = {path: (found.get(path, 0), floor) for path, floor in MIN_STEPS.items() if found.get(path, 0) < floor}
    assert not short, f"steps found vs floor: {short}"


@pytest.fixture(scope="session")
def lanes(request: pytest.FixtureRequest) -> Iterator[Lanes]:
    """Every selected page (and section) running side by side from the session's first step (scripts/lanes.py)."""
    items = [i for i in request.session.items if isinstance(i, pytest.Function) and i.originalname == "test_snippet"]
    selected = frozenset(i.callspec.id for i in items)
    lanes = Lanes(PAGES, lambda page, s: step_id(page, s) in selected)
    lanes.start(order=[i.callspec.params["page"].path for i in items])
    yield lanes
    lanes.close()


@pytest.mark.parametrize(("page", "snippet"), STEPS)
def test_snippet(page: sn.Page, snippet: sn.Snippet, lanes: Lanes) -> None:
    """The step runs in the page's world with the status, output and effects the page implies."""
    v = lanes.verdict(page, snippet)
    if v.status == "skipped":
        pytest.skip(v.reason)
    if v.status == "failed":
        body = "\n".join(f"    {line}" for line in snippet.source.rstrip("\n").split("\n"))
        out = tail(v.output) or "(no output)"
        pytest.fail(f"{snippet.id}: {v.reason}\n\n  snippet:\n{body}\n\n  output (tail):\n{out}", pytrace=False)
