"""The honesty test: every step of every page runs in its world and passes, one test per `docs/page.md:LINE`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts import snippets as sn
from scripts.check import REPO, PageRun, Verdict, load_page, tail, write_page_report

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


STEPS = [pytest.param(page, s, id=step_id(page, s), marks=pytest.mark.xdist_group(page.path)) for page in PAGES for s in PageRun(page).steps()]


def test_pages_parse() -> None:
    """A malformed page or an unknown annotation is an error naming page:line, not a silently dropped snippet."""
    assert not PARSE_ERRORS, "\n".join(PARSE_ERRORS)


def test_steps_are_collected() -> None:
    """Each page yields at least its floor of steps (guards against a parser that drops fences)."""
    found = {page.path: len(PageRun(page).steps()) for page in PAGES}
    short = {path: (found.get(path, 0), floor) for path, floor in MIN_STEPS.items() if found.get(path, 0) < floor}
    assert not short, f"steps found vs floor: {short}"


class Runs:
    """The running pages of this process; a page's world lives from its first step to its last.

    `selected` are the ids of the steps this session runs: a page all of whose steps run is the plain run
    that pages continuing it may restore (PageRun.publish); a partial selection (-k) is not."""

    def __init__(self, selected: frozenset[str] = frozenset()) -> None:
        self.runs: dict[str, PageRun] = {}
        self.verdicts: dict[str, list[Verdict]] = {}
        self.selected = selected

    def get(self, page: sn.Page) -> PageRun:
        if page.path not in self.runs:
            whole = all(step_id(page, s) in self.selected for s in PageRun(page).steps())
            run = PageRun(page, publish=whole)
            self.runs[page.path] = run
            self.verdicts[page.path] = []
            try:
                run.start()
            except Exception as e:  # noqa: BLE001 - any start failure becomes every step's failure reason
                run.startup_error = f"the world could not start: {e}"
        return self.runs[page.path]

    def record(self, page: sn.Page, v: Verdict) -> None:
        self.verdicts[page.path].append(v)
        run = self.runs[page.path]
        if v.snippet == run.steps()[-1]:
            self.finish(page.path)

    def finish(self, path: str) -> None:
        write_page_report(path, self.verdicts[path])
        self.runs[path].close()

    def close(self) -> None:
        for path, run in self.runs.items():
            if run.world is not None:
                self.finish(path)


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    r = Runs(frozenset(item.callspec.id for item in request.session.items if isinstance(item, pytest.Function) and item.originalname == "test_snippet"))
    yield r
    r.close()


@pytest.mark.parametrize(("page", "snippet"), STEPS)
def test_snippet(page: sn.Page, snippet: sn.Snippet, runs: Runs) -> None:
    """The step runs in the page's world with the status, output and effects the page implies."""
    run = runs.get(page)
    v = run.step(snippet)
    runs.record(page, v)
    if v.status == "skipped":
        pytest.skip(v.reason)
    if v.status == "failed":
        body = "\n".join(f"    {line}" for line in snippet.source.rstrip("\n").split("\n"))
        out = tail(v.output) or "(no output)"
        pytest.fail(f"{snippet.id}: {v.reason}\n\n  snippet:\n{body}\n\n  output (tail):\n{out}", pytrace=False)
