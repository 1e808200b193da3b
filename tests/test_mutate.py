"""The mutation engine applies exactly the mistake it names, judges it with the real runner, and the catalogue covers the guide."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from scripts import catalogue as catalogue_rule
from scripts import snippets as sn
from scripts.check import REPO, load_page
from scripts.tools import mutate, shuffle_pages, stability
from scripts.tools.mutate import Mutation, MutationError

PAGE = """# P

Set a value:

```bash
X=1
```

% test: exit=3
```bash
(exit 3)
```

Show it:

```console
$ echo "$X"
1
```
"""


def site(tmp_path: Path, pages: dict[str, str]) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    shutil.copy(REPO / "conf.py", tmp_path / "conf.py")
    for name, text in pages.items():
        (tmp_path / "docs" / name).write_text(text)
    return tmp_path


def steps(root: Path, name: str) -> list[str]:
    return [s.source for s in load_page(root / "docs" / name, root).snippets]


# ---------------------------------------------------------------------------------------------
# Applying a mutation
# ---------------------------------------------------------------------------------------------


def test_replace_changes_the_one_occurrence() -> None:
    assert Mutation("m", "p.md", "wrong-value", "X=1", "X=2").apply(PAGE) == PAGE.replace("X=1", "X=2")


@pytest.mark.parametrize("find", ["X=9", "```bash\n"])
def test_replace_refuses_text_that_is_missing_or_ambiguous(find: str) -> None:
    """A mutation whose text is gone (or occurs twice) is an error, never a silent no-op that 'survives'."""
    with pytest.raises(MutationError, match=r"occurs [02] times"):
        Mutation("m", "p.md", "wrong-value", find, "x").apply(PAGE)


def test_delete_removes_the_step_with_its_annotations(tmp_path: Path) -> None:
    """Deleting a step takes its `% test:` lines along, so the page still parses, with one step fewer."""
    text = Mutation("m", "p.md", "delete", "(exit 3)").apply(PAGE)
    assert "% test: exit=3" not in text
    root = site(tmp_path, {"p.md": text})
    assert steps(root, "p.md") == ["X=1\n", '$ echo "$X"\n1\n']


def test_swap_exchanges_two_steps_with_their_annotations(tmp_path: Path) -> None:
    text = Mutation("m", "p.md", "swap", "X=1", "$ echo").apply(PAGE)
    root = site(tmp_path, {"p.md": text})
    assert steps(root, "p.md") == ['$ echo "$X"\n1\n', "(exit 3)\n", "X=1\n"]
    assert text.index("% test: exit=3") < text.index("(exit 3)\n")


@pytest.mark.parametrize(("kind", "replace"), [("delete", ""), ("swap", "X=1")])
def test_step_kinds_need_exactly_one_matching_step(kind: str, replace: str) -> None:
    with pytest.raises(MutationError, match="fences start with"):
        Mutation("m", "p.md", kind, "nothing like this", replace).apply(PAGE)


def test_first_changed_line_of_a_change_inside_a_fence_is_the_fence_line() -> None:
    """That is the step's line, which `continues ... upto=LINE` compares with."""
    assert Mutation("m", "p.md", "wrong-value", "(exit 3)", "(exit 4)").first_changed_line(PAGE) == 10
    assert Mutation("m", "p.md", "prose", "Show it", "Print it").first_changed_line(PAGE) == 14
    assert Mutation("m", "p.md", "delete", "(exit 3)").first_changed_line(PAGE) == 9  # the annotation goes too


def test_dependants_skip_a_page_that_stops_before_the_change(tmp_path: Path) -> None:
    root = site(tmp_path, {"a.md": PAGE, "b.md": "% test: continues a.md upto=10\n\n# B\n", "c.md": "% test: continues a.md\n\n# C\n"})
    assert [p.name for p in mutate.dependants("a.md", root / "docs", 5)] == ["a.md", "b.md", "c.md"]
    assert [p.name for p in mutate.dependants("a.md", root / "docs", 10)] == ["a.md", "c.md"]


# ---------------------------------------------------------------------------------------------
# Judging, with the real runner
# ---------------------------------------------------------------------------------------------


def test_a_mutation_that_breaks_a_step_is_killed_naming_the_step(tmp_path: Path) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    r = mutate.judge(Mutation("m", "p.md", "wrong-value", "X=1", "X=2"), source=root)
    assert r["status"] == "killed"
    assert r["detail"].startswith("docs/p.md:16: output differs from what the page shows")


def test_a_harmless_mutation_survives(tmp_path: Path) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    r = mutate.judge(Mutation("m", "p.md", "prose", "Show it:", "Print it:"), source=root)
    assert r["status"] == "survived"
    assert r["detail"] == "all 3 steps passed"


def test_a_mutation_that_no_longer_applies_is_an_error(tmp_path: Path) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    assert mutate.judge(Mutation("m", "p.md", "wrong-value", "Y=1", "Y=2"), source=root)["status"] == "error"


def test_baseline_reports_docs_that_already_fail(tmp_path: Path) -> None:
    """Broken unmutated docs would 'kill' every mutation; the engine refuses to judge instead."""
    root = site(tmp_path, {"p.md": PAGE.replace("\n1\n```", "\n2\n```")})
    problems = mutate.baseline(root, 1, sphinx=False)
    assert len(problems) == 1
    assert problems[0].startswith("docs/p.md:16: output differs")
    assert mutate.baseline(site(tmp_path / "ok", {"p.md": PAGE}), 1, sphinx=False) == []


def run_catalogue(tmp_path: Path, catalogue: str, *runs: tuple[str, ...]) -> list[int]:
    """mutate.main's exit status for each run (extra argv) over a one-page site and this catalogue."""
    root = site(tmp_path, {"p.md": PAGE})
    cat = tmp_path / "m.yaml"
    cat.write_text("mutations:\n" + catalogue)
    mp = pytest.MonkeyPatch()
    mp.setattr(mutate, "REPO", root)
    try:
        return [mutate.main(["--catalogue", str(cat), "--out", str(tmp_path / "out"), "-j", "1", *argv]) for argv in runs]
    finally:
        mp.undo()


def test_exit_status_is_nonzero_below_the_required_kill_rate(tmp_path: Path) -> None:
    catalogue = (
        "  - {id: kill, page: p.md, kind: wrong-value, find: 'X=1', replace: 'X=2'}\n  - {id: live, page: p.md, kind: prose, find: 'Show it:', replace: 'Print it:'}\n"
    )
    assert run_catalogue(tmp_path, catalogue, (), ("-k", "kill")) == [1, 0]
    report = (tmp_path / "out" / "report.json").read_text()
    assert '"kill_rate": 1.0' in report


def test_a_survivor_with_a_reason_is_accepted_and_leaves_the_kill_rate() -> None:
    """Equivalent mutants (justified survivors) don't count against the rate; unexplained survivors do."""
    results = [
        {"status": "killed", "why": ""},
        {"status": "survived", "why": "equivalent: the flag changes nothing here"},
        {"status": "survived", "why": ""},
        {"status": "error", "why": ""},
    ]
    s = mutate.summarise(results, 1.0, 2)
    assert (s["killed"], s["survived"], s["accepted_survivors"], s["errors"]) == (1, 2, 1, 1)
    assert s["kill_rate"] == 0.5
    assert s["raw_kill_rate"] == round(1 / 3, 4)


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------


def test_every_catalogue_mutation_applies_to_the_current_pages() -> None:
    """Each `find` still names exactly one place (or step): an edit to the guide must update the catalogue with it."""
    problems = []
    for m in mutate.load_catalogue():
        try:
            m.apply((REPO / "docs" / m.page).read_text())
        except (MutationError, OSError) as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


def test_catalogue_covers_every_tested_page_and_every_kind_of_mistake() -> None:
    catalogue = mutate.load_catalogue()
    assert len(catalogue) >= 45
    # The rule `python -m scripts.check` tells a writer about before this test fails.
    assert catalogue_rule.uncovered([load_page(p) for p in sn.discover_pages(REPO)], catalogue) == []
    kinds = {m.kind for m in catalogue}
    wanted = {"wrong-path", "env-key-typo", "env-value", "wrong-service", "wrong-container", "wrong-network", "jq-filter", "quoted-heredoc"}
    wanted |= {"missing-flag", "wrong-port", "wrong-url", "wrong-audience", "wrong-redirect-uri", "yaml-indent", "caddyfile-typo"}
    wanted |= {"delete", "swap", "mermaid"}
    assert wanted - kinds == set()


# ---------------------------------------------------------------------------------------------
# Stability: page shuffling and flakiness
# ---------------------------------------------------------------------------------------------


def fake_item(page: str | None, name: str) -> Any:
    callspec = SimpleNamespace(params={"page": SimpleNamespace(path=page)}) if page else None
    return SimpleNamespace(callspec=callspec, nodeid=name)


def test_shuffle_moves_whole_pages_and_keeps_each_pages_steps_in_order() -> None:
    items = [fake_item(None, "parse")] + [fake_item(f"docs/{p}.md", f"{p}:{i}") for p in "abcdef" for i in range(3)]
    orders = set()
    for seed in range(8):
        out = [i.nodeid for i in shuffle_pages.shuffled(cast(Any, items), seed)]
        assert sorted(out) == sorted(i.nodeid for i in items)
        pages = [n.split(":")[0] for n in out if n != "parse"]
        runs = [p for k, p in enumerate(pages) if k == 0 or pages[k - 1] != p]
        assert len(runs) == 6, f"a page was split: {out}"
        for p in "abcdef":
            assert [n for n in out if n.startswith(f"{p}:")] == [f"{p}:0", f"{p}:1", f"{p}:2"]
        orders.add(tuple(runs))
        assert [i.nodeid for i in shuffle_pages.shuffled(cast(Any, items), seed)] == out  # same seed, same order (xdist needs it)
    assert len(orders) > 1


def test_flaky_finds_tests_whose_outcome_differs_between_runs() -> None:
    def rec(i: int, outcomes: dict[str, str]) -> stability.RunRecord:
        return stability.RunRecord(i, None, 0, 1.0, 0, 0, 0, 0, outcomes)

    records = [rec(0, {"a": "passed", "b": "passed"}), rec(1, {"a": "passed", "b": "failed"}), rec(2, {"a": "passed"})]
    assert stability.flaky(records) == {"b": {"passed": 1, "failed": 1, "missing": 1}}


def test_outcomes_read_from_junit_xml(tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure/></testcase>'
        '<testcase classname="t" name="skip"><skipped/></testcase></testsuite></testsuites>'
    )
    assert stability.outcomes(junit) == {"t::ok": "passed", "t::bad": "failed", "t::skip": "skipped"}


def test_outcomes_drop_the_xdist_group_suffix(tmp_path: Path) -> None:
    """With --dist loadgroup, xdist names a test `id@group`; the stable id is the part before."""
    junit = tmp_path / "j.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="t" name="s[docs/a.md:3]@docs/a.md"/></testsuite></testsuites>')
    assert stability.outcomes(junit) == {"t::s[docs/a.md:3]": "passed"}


def test_an_equivalent_rewrite_that_fails_is_a_false_alarm_and_fails_the_run(tmp_path: Path) -> None:
    """A correct rewrite (expect: survive) must pass; when the tests fail it, the world is wrong, and the run says so."""
    catalogue = (
        "  - {id: kill, page: p.md, kind: wrong-value, find: 'X=1', replace: 'X=2'}\n"
        "  - {id: same, page: p.md, kind: equivalent, expect: survive, find: 'Show it:', replace: 'Print it:'}\n"
        "  - {id: alarm, page: p.md, kind: equivalent, expect: survive, find: 'X=1', replace: 'X=01'}\n"
    )
    assert run_catalogue(tmp_path, catalogue, ("-k", "same"), ("-k", "alarm")) == [0, 1]
    summary = json.loads((tmp_path / "out" / "report.json").read_text())["summary"]
    assert (summary["equivalents"], summary["false_alarms"], summary["killed"], summary["kill_rate"]) == (1, 1, 0, 0.0)


def test_equivalent_rewrites_leave_the_kill_rate_alone() -> None:
    """Survivors that were meant to survive are not counted as misses; killed ones are counted as false alarms."""
    results = [
        {"status": "killed", "why": "", "expect": "kill"},
        {"status": "survived", "why": "", "expect": "survive"},
        {"status": "killed", "why": "", "expect": "survive"},
    ]
    s = mutate.summarise(results, 1.0, 2)
    assert (s["killed"], s["survived"], s["kill_rate"], s["equivalents"], s["false_alarms"]) == (1, 0, 1.0, 2, 1)


def test_the_catalogue_has_at_least_eight_equivalent_rewrites() -> None:
    """No false alarms is only a claim if correct rewrites are tried: long flags, $HOME for ~, other spellings."""
    assert len([m for m in mutate.load_catalogue() if m.expect == "survive"]) >= 8


def test_cpu_hog_keeps_every_core_busy_and_stops_with_its_block() -> None:
    """--hog's load is real (each busy loop burns CPU time) and nothing of it outlives the stability run."""
    with stability.cpu_hog(2) as pids:
        assert len(pids) == 2
        started = [cpu_ticks(pid) for pid in pids]
        deadline = time.monotonic() + 30
        while any(cpu_ticks(pid) - t < 10 for pid, t in zip(pids, started, strict=True)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(cpu_ticks(pid) - t >= 10 for pid, t in zip(pids, started, strict=True))
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def cpu_ticks(pid: int) -> int:
    """utime + stime of pid, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
