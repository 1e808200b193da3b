"""Pages side by side: the doc tests run every page, and every section of a sections-independent page,
in a thread of its own, so that one page's waiting is another page's running.

Why: most of a page run is waiting, not work. Real Compose polls health on its own 500 ms ticker
(`up --wait`, and each `depends_on: service_healthy`, sleeps a tick before its first look), and a page
that continues another waits until that page's run reaches the state it starts from. Run one page at a
time per pytest worker, the snippet suite left the CPUs 40 % idle (`make bench` has the figures).

A unit is one PageRun (scripts/check.py): its own world, its own terminal session, its steps in page
order. Units share nothing but the replay cache (scripts/replay.py), exactly as pages on two xdist
workers do. What keeps them honest and free of deadlock:

- A unit that continues a page whose plain run is another unit here waits until that run has started,
  so the run has claimed the states it publishes (replay.Cache.claim) before anyone looks for them.
  It then starts its fresh world and waits on the state's lock, which the run releases when its steps
  reach the state. A run that fails releases its claims: its dependants replay it themselves, fail
  where it failed, and say so.
- A unit waits only for units it continues; `continues` chains have no cycle (PageRun.prerequisites).
- Only a unit that others wait for runs at full CPU priority; every other unit's world runs at a lower one
  (`nice`), so the run everyone waits for keeps a CPU. The waiting units start their worlds one at a time
  (`early_starts`): eleven worlds importing at once outweighed the one run they wait for, however niced.
- The pytest test of a step waits for that step's verdict (verdict()); its failure names
  `docs/page.md:LINE` as before. A step that several units run (the shared top of a sections-independent
  page) has one verdict: the first failure among them, named after its section, else the first result.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from scripts import snippets as sn
from scripts.check import PageRun, Verdict, write_page_report

WAITING_NICE = 10
"""The niceness of a world whose run waits for another unit: CFS then gives the runs it waits for about ten times its share of a busy CPU."""
JOIN_TIMEOUT = 120.0


@dataclass
class Unit:
    """One run: a page (or one section of it) with the steps this session selected."""

    run: PageRun
    steps: list[sn.Snippet]
    waits_for: Unit | None = None  # the unit whose plain run publishes the state this one starts from
    started: threading.Event = field(default_factory=threading.Event)
    results: dict[str, Verdict] = field(default_factory=dict)  # by step id
    ready: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ready = {s.id: threading.Event() for s in self.steps}

    def give(self, s: sn.Snippet, v: Verdict) -> None:
        self.results[s.id] = v
        self.ready[s.id].set()


def units_of(page: sn.Page, make: Callable[..., PageRun] = PageRun) -> list[PageRun]:
    """The runs a page is tested as: one per section with a step when its sections are independent, else one."""
    if not page.sections_independent:
        return [make(page)]
    runs = [make(page, section=line) for _, line in page.sections]
    return [r for r in runs if any(page.section_of(s.line) is not None for s in r.steps())]


class Lanes:
    """Runs the units of a session concurrently; verdict() hands each step's verdict to its test.

    `selected(page, snippet)` says which steps this session runs (a -k or shard selection): a unit runs only
    those, and a page whose steps all run is its plain run, which publishes the states others continue from."""

    def __init__(
        self,
        pages: Sequence[sn.Page],
        selected: Callable[[sn.Page, sn.Snippet], bool],
        *,
        make: Callable[..., PageRun] = PageRun,
        report: Callable[[str, Sequence[Verdict]], object] | None = write_page_report,
    ) -> None:
        self.report = report  # where close() writes each page's verdicts (None: nowhere)
        self.units: dict[str, list[Unit]] = {}
        self.reported: dict[str, list[Verdict]] = {}
        self.cancelled = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.early_starts = threading.Lock()  # held by a waiting unit while it starts its world (see above)
        plain: dict[str, Unit] = {}
        for page in pages:
            for run in units_of(page, make):
                every = run.steps()
                chosen = [s for s in every if selected(page, s)]
                if not chosen:
                    continue
                run.publish = run.section is None and len(chosen) == len(every)
                unit = Unit(run, chosen)
                self.units.setdefault(page.path, []).append(unit)
                if run.publish:
                    plain[page.path] = unit
        for units in self.units.values():
            for unit in units:
                page = unit.run.page
                unit.waits_for = plain.get(f"docs/{page.continues}") if page.continues else None

    def start(self, order: Iterable[str] = ()) -> None:
        """Start every unit: first those of the pages in `order` (the session's order of its tests), then the rest."""
        paths = list(dict.fromkeys([*[p for p in order if p in self.units], *self.units]))
        for path in paths:
            for unit in self.units[path]:
                t = threading.Thread(target=self.work, args=(unit,), name=f"lane {unit.run.label}", daemon=True)
                self.threads.append(t)
                t.start()

    def work(self, unit: Unit) -> None:
        run = unit.run
        try:
            waiting = unit.waits_for is not None
            if waiting:
                assert unit.waits_for is not None
                unit.waits_for.started.wait()
            try:
                run.nice = 0 if self.waited_for(unit) else WAITING_NICE
                run.start(expect_snapshot=waiting, one_at_a_time=self.early_starts)
            except Exception as e:  # noqa: BLE001 - any start failure becomes the unit's first step's failure reason
                run.startup_error = f"the world could not start: {e}"
            finally:
                unit.started.set()
            for s in unit.steps:
                if self.cancelled.is_set():
                    unit.give(s, Verdict(s, "skipped", "the test session ended before this step ran"))
                    continue
                unit.give(s, run.step(s))
        except BaseException:  # noqa: BLE001 - a crash in the harness fails the unit's remaining steps, loudly, instead of hanging their tests
            why = traceback.format_exc()
            for s in unit.steps:
                if s.id not in unit.results:
                    unit.give(s, Verdict(s, "failed", f"the run of {run.label} crashed:\n{why}"))
        finally:
            unit.started.set()
            run.close()

    def waited_for(self, unit: Unit) -> bool:
        return any(u.waits_for is unit for units in self.units.values() for u in units)

    def verdict(self, page: sn.Page, s: sn.Snippet) -> Verdict:
        """The step's verdict, once every unit that runs it has one; recorded for the page's report."""
        holders = [u for u in self.units.get(page.path, []) if s.id in u.ready]
        if not holders:
            raise KeyError(f"{s.id} is not a selected step of {page.path}")
        for u in holders:
            u.ready[s.id].wait()
        v = combined([(u.run, u.results[s.id]) for u in holders])
        with self.lock:
            self.reported.setdefault(page.path, []).append(v)
        return v

    def close(self) -> None:
        """Stop the units (each finishes the step it is in), wait for them, and write each page's report of what its tests reported."""
        self.cancelled.set()
        for t in self.threads:
            t.join(JOIN_TIMEOUT)
        if self.report is not None:
            for path, verdicts in self.reported.items():
                self.report(path, verdicts)


def combined(results: Sequence[tuple[PageRun, Verdict]]) -> Verdict:
    """One verdict for a step several units ran: the first failure (named after its section's run), else the first result."""
    for run, v in results:
        if v.status == "failed":
            return v if len(results) == 1 else replace(v, reason=f"in the run of {run.label}: {v.reason}")
    return results[0][1]
