"""Pages side by side (scripts/lanes.py): runs overlap, a page waits for the run it continues to claim its states,
a crash fails steps instead of hanging them, and a sections-independent page is one run per section."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts import replay
from scripts import snippets as sn
from scripts.check import PageRun, Verdict, load_page
from scripts.lanes import WAITING_NICE, Lanes, combined, units_of
from scripts.sandbox import World

ROOT = Path(__file__).resolve().parent.parent
PATIENCE = 10.0  # seconds a test waits for another thread before calling it a hang


def site(tmp_path: Path, pages: dict[str, str]) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "conf.py").write_text((ROOT / "conf.py").read_text(encoding="utf-8"), encoding="utf-8")
    for name, text in pages.items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    return tmp_path


def parsed(root: Path, name: str) -> sn.Page:
    return load_page(root / "docs" / name, root)


@dataclass
class FakeRun:
    """A PageRun's surface as Lanes uses it, with hooks in place of a world."""

    page: sn.Page
    section: int | None = None
    publish: bool = False
    nice: int = 0
    startup_error: str | None = None
    on_start: Any = None
    on_step: Any = None
    started_with: dict[str, Any] = field(default_factory=dict)
    closed: bool = False

    @property
    def label(self) -> str:
        return self.page.path if self.section is None else f"{self.page.path}#{self.section}"

    def steps(self) -> list[sn.Snippet]:
        own = [s for s in self.page.snippets if s.is_step]
        return own if self.section is None else [s for s in own if self.page.section_of(s.line) in (None, self.section)]

    def start(self, *, expect_snapshot: bool = False, one_at_a_time: Any = None) -> None:
        self.started_with = {"expect_snapshot": expect_snapshot, "nice": self.nice}
        if self.on_start:
            self.on_start(self)

    def step(self, s: sn.Snippet) -> Verdict:
        if self.on_step:
            self.on_step(self, s)
        return Verdict(s, "passed")

    def close(self) -> None:
        self.closed = True


TWO_PAGES = {
    "a.md": "# A\n\n```bash\ntrue\n```\n\n```bash\ntrue\n```\n",
    "b.md": "# B\n\n```bash\ntrue\n```\n",
}


def lanes_for(root: Path, names: list[str], make: Any) -> Lanes:
    return Lanes([parsed(root, n) for n in names], lambda page, s: True, make=make, report=None)


def test_pages_run_at_the_same_time(tmp_path: Path) -> None:
    """Two independent pages' steps meet at a barrier that one page at a time could never pass (it would break)."""
    root = site(tmp_path, TWO_PAGES)
    meet = threading.Barrier(2, timeout=PATIENCE)

    def make(page: sn.Page, **kw: Any) -> FakeRun:
        return FakeRun(page, **kw, on_step=lambda run, s: meet.wait() if s.line == 3 else None)

    lanes = lanes_for(root, ["a.md", "b.md"], make)
    lanes.start()
    verdicts = [lanes.verdict(page, s) for page in (parsed(root, "a.md"), parsed(root, "b.md")) for s in page.snippets]
    lanes.close()
    assert [v.status for v in verdicts] == ["passed"] * 3, [v.reason for v in verdicts]


def test_a_page_waits_for_the_run_it_continues_to_claim_its_states(tmp_path: Path) -> None:
    """The continuing page starts only once the plain run has started (and so claimed the states it publishes),
    expects a snapshot, and runs its world at a lower priority while it waits."""
    root = site(tmp_path, {**TWO_PAGES, "b.md": "% test: continues a.md\n\n# B\n\n```bash\ntrue\n```\n"})
    release = threading.Event()
    order: list[str] = []

    def on_start(run: FakeRun) -> None:
        if run.page.path == "docs/a.md":
            release.wait(PATIENCE)  # a slow start: b must not overtake it
        order.append(run.page.path)

    runs: dict[str, FakeRun] = {}

    def make(page: sn.Page, **kw: Any) -> FakeRun:
        runs[page.path] = FakeRun(page, **kw, on_start=on_start)
        return runs[page.path]

    lanes = lanes_for(root, ["b.md", "a.md"], make)  # the continuing page comes first
    lanes.start(order=["docs/b.md", "docs/a.md"])
    threading.Timer(0.2, release.set).start()
    b = parsed(root, "b.md")
    assert lanes.verdict(b, b.snippets[0]).status == "passed"
    lanes.close()
    assert order == ["docs/a.md", "docs/b.md"]
    assert runs["docs/a.md"].publish  # the whole plain run: it stores the states b continues from
    assert runs["docs/b.md"].started_with == {"expect_snapshot": True, "nice": WAITING_NICE}
    assert runs["docs/a.md"].started_with == {"expect_snapshot": False, "nice": 0}


def test_only_the_run_others_wait_for_has_full_priority(tmp_path: Path) -> None:
    """An independent page needs the CPU no sooner than the pages waiting for a: it yields to a as they do."""
    root = site(tmp_path, {**TWO_PAGES, "b.md": "% test: continues a.md\n\n# B\n\n```bash\ntrue\n```\n", "c.md": "# C\n\n```bash\ntrue\n```\n"})
    runs: dict[str, FakeRun] = {}

    def make(page: sn.Page, **kw: Any) -> FakeRun:
        runs[page.path] = FakeRun(page, **kw)
        return runs[page.path]

    lanes = lanes_for(root, ["a.md", "b.md", "c.md"], make)
    lanes.start()
    for name in ("a.md", "b.md", "c.md"):
        page = parsed(root, name)
        assert lanes.verdict(page, page.snippets[0]).status == "passed"
    lanes.close()
    assert {path: run.started_with["nice"] for path, run in runs.items()} == {"docs/a.md": 0, "docs/b.md": WAITING_NICE, "docs/c.md": WAITING_NICE}


def test_a_crashed_run_fails_its_remaining_steps_instead_of_hanging_their_tests(tmp_path: Path) -> None:
    """A harness error is a failure naming the run, for the step it hit and every step after it; the world is closed."""
    root = site(tmp_path, TWO_PAGES)
    runs: list[FakeRun] = []

    def boom(run: FakeRun, s: sn.Snippet) -> None:
        raise RuntimeError("the executor went away")

    def make(page: sn.Page, **kw: Any) -> FakeRun:
        runs.append(FakeRun(page, **kw, on_step=boom))
        return runs[-1]

    lanes = lanes_for(root, ["a.md"], make)
    lanes.start()
    a = parsed(root, "a.md")
    verdicts = [lanes.verdict(a, s) for s in a.snippets]
    lanes.close()
    assert [v.status for v in verdicts] == ["failed", "failed"]
    assert all("the run of docs/a.md crashed" in v.reason and "the executor went away" in v.reason for v in verdicts)
    assert runs[0].closed


def test_only_a_whole_plain_run_publishes(tmp_path: Path) -> None:
    """A -k or shard selection that leaves out one of a page's steps is no plain run: it must not store the page's end."""
    root = site(tmp_path, TWO_PAGES)
    made: list[FakeRun] = []

    def make(page: sn.Page, **kw: Any) -> FakeRun:
        made.append(FakeRun(page, **kw))
        return made[-1]

    Lanes([parsed(root, "a.md"), parsed(root, "b.md")], lambda page, s: s.id != "docs/a.md:7", make=make, report=None)
    assert {r.page.path: r.publish for r in made} == {"docs/a.md": False, "docs/b.md": True}


SECTIONS = (
    "% test: sections-independent\n\n# Problems\n\n"
    "```bash\nmkdir -p ~/work\n```\n\n"
    "## One\n\n```bash\necho one > ~/one.txt\n```\n\n"
    "## Two\n\n```bash\ntest ! -e ~/one.txt\n```\n\n```bash\ntrue\n```\n\n"
    "## Notes\n\nNo commands here.\n"
)


def test_a_sections_independent_page_is_one_run_per_section_with_the_shared_steps(tmp_path: Path) -> None:
    """Each section with a step is a run of its own: the steps above the first section, then the section's; a section without steps is no run."""
    root = site(tmp_path, {"p.md": SECTIONS})
    page = parsed(root, "p.md")
    runs = units_of(page)
    assert [(r.section, [s.line for s in r.steps()]) for r in runs] == [(9, [5, 11]), (15, [5, 17, 21])]
    assert [r.label for r in runs] == ["docs/p.md, section 'One' (line 9)", "docs/p.md, section 'Two' (line 15)"]
    whole = units_of(parsed(site(tmp_path / "plain", {"p.md": SECTIONS.replace("% test: sections-independent\n", "")}), "p.md"))
    assert [r.section for r in whole] == [None]


def test_a_step_several_sections_run_reports_the_first_failure_named_after_its_section(tmp_path: Path) -> None:
    """The shared steps' test fails if any section's run failed there, and says which."""
    root = site(tmp_path, {"p.md": SECTIONS})
    one, two = units_of(parsed(root, "p.md"))
    shared = one.steps()[0]
    ok, bad = Verdict(shared, "passed"), Verdict(shared, "failed", "exit status 1")
    assert combined([(one, ok), (two, ok)]) is ok
    assert combined([(one, ok), (two, bad)]).reason == "in the run of docs/p.md, section 'Two' (line 15): exit status 1"
    assert combined([(one, bad)]) is bad


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("% test: sections-independent now\n\n# P\n\n## S\n\n```bash\ntrue\n```\n", 1, "sections-independent takes no arguments"),
        ("% test: sections-independent\n% test: sections-independent\n\n# P\n\n## S\n\n```bash\ntrue\n```\n", 2, "sections-independent given twice"),
        ("% test: sections-independent\n\n# P\n\n```bash\ntrue\n```\n\n## S\n\nText.\n", 1, "no `##` section of the page has a step"),
        ("% test: sections-independent\n% test: returns-to q.md from=x\n\n# P\n\n## S\n\n```bash\ntrue\n```\n", 1, "also has returns-to"),
    ],
)
def test_a_misused_sections_independent_is_an_error_at_its_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    root = site(tmp_path, {"p.md": text, "q.md": "# Q\n\n(x)=\n## X\n"})
    with pytest.raises(sn.SnippetError, match=message) as e:
        parsed(root, "p.md")
    assert e.value.line == line


def test_no_page_may_continue_a_sections_independent_page(tmp_path: Path) -> None:
    """Its sections end in different states: there is no one end state to continue from."""
    root = site(tmp_path, {"p.md": SECTIONS, "q.md": "% test: continues p.md\n\n# Q\n\n```bash\ntrue\n```\n"})
    with pytest.raises(sn.SnippetError, match="whose sections run independently"):
        PageRun(parsed(root, "q.md"), root=root).prerequisites()


def test_a_section_that_needs_an_earlier_sections_effect_fails_in_the_doc_tests(tmp_path: Path) -> None:
    """The point of running sections apart: a reader who jumps to section Two never ran One, so a step of Two that
    relies on One's file must fail (it passes when the page runs top to bottom), and the shared step still passes."""
    from tests.test_ci import copy_of_the_harness, run_docs

    root = copy_of_the_harness(tmp_path)
    for page in (root / "docs").iterdir():
        page.unlink()
    (root / "docs" / "p.md").write_text(SECTIONS.replace("test ! -e ~/one.txt", "test -e ~/one.txt"), encoding="utf-8")
    report = run_docs(root)
    assert {e["id"]: e["status"] for e in report["snippets"]} == {
        "docs/p.md:5": "passed",
        "docs/p.md:11": "passed",
        "docs/p.md:17": "failed",
        "docs/p.md:21": "skipped",
    }


@dataclass
class Prepared:
    """A world as PageRun.start uses it while it waits: what it was asked to load, and whether it was closed."""

    asked: list[list[str]] = field(default_factory=list)
    closed: bool = False

    def prepare(self, checks: list[str]) -> None:
        self.asked.append(list(checks))

    def close(self) -> None:
        self.closed = True


def test_runs_that_wait_for_one_state_restore_it_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sections of a sections-independent page all wait for the same state: each restores it once the state's
    lock is let go, so the restores meet at a barrier that restores made under the lock, one at a time, would break.
    Their worlds, started early, take turns."""
    root = site(tmp_path, {**TWO_PAGES, "b.md": "% test: continues a.md\n\n# B\n\n% test: check sign-in\n```bash\ntrue\n```\n"})
    cache = replay.Cache(tmp_path / "cache")
    cache.directory.mkdir()
    cache.store("the-state", replay.Snapshot(cwd="/home/deployer", archive=""))
    monkeypatch.setattr(replay, "CACHE", cache)
    monkeypatch.setattr(replay, "key", lambda parts: "the-state")
    worlds: list[Prepared] = []
    turns = threading.Lock()

    def start_world(*args: Any, **kw: Any) -> Prepared:
        assert turns.locked(), "a waiting run started its world without its turn"
        worlds.append(Prepared())
        return worlds[-1]

    monkeypatch.setattr(World, "start", start_world)
    meet = threading.Barrier(2, timeout=PATIENCE)
    monkeypatch.setattr(replay, "restore", lambda world, snap: meet.wait())
    runs = [PageRun(parsed(root, "b.md"), root=root) for _ in range(2)]
    threads = [threading.Thread(target=run.start, kwargs={"expect_snapshot": True, "one_at_a_time": turns}) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not meet.broken, "the restores ran one after another"
    assert all(run.world is not None for run in runs)
    # While they waited, their worlds loaded what the page's checks import on first use.
    assert [w.asked for w in worlds] == [[["sign-in"]], [["sign-in"]]]
