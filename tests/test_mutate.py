"""The mutation engine applies exactly the mistake it names, judges it with the real runner, and the catalogue covers the guide."""

from __future__ import annotations

import shutil
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


def test_exit_status_is_nonzero_below_the_required_kill_rate(tmp_path: Path) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    cat = tmp_path / "m.yaml"
    cat.write_text(
        "mutations:\n"
        "  - {id: kill, page: p.md, kind: wrong-value, find: 'X=1', replace: 'X=2'}\n"
        "  - {id: live, page: p.md, kind: prose, find: 'Show it:', replace: 'Print it:'}\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setattr(mutate, "REPO", root)
    try:
        assert mutate.main(["--catalogue", str(cat), "--out", str(tmp_path / "out"), "-j", "1"]) == 1
        assert mutate.main(["--catalogue", str(cat), "--out", str(tmp_path / "out"), "-j", "1", "-k", "kill"]) == 0
    finally:
        mp.undo()
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
