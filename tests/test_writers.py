"""The writers' page is made from the code: its tables list exactly the annotations and checks that work, and the recorded figures."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from scripts import snippets as sn
from scripts.check import REPO
from scripts.sphinxext import writers
from scripts.tools import figures
from scripts.world import checks

# A fence each annotation fits, so every row of the table can be tried on a page.
FENCES = {
    "sections-independent": "## A section\n\n```bash\ntrue\n```",
    "apply": "```env\nA=1\n```",
    "verify": "```env\nA=1\n```",
    "output": "```console\n$ echo a\na\n```",
    "values": "```bash\nAPP_URL=https://app.example.com\n```",
}
EXAMPLES = {
    "continues": "continues other.md",
    "exit": "exit=3",
    "before": "before ui-create-api-key name=k file=~/k",
    "timeout": "timeout=5",
    "skip": 'skip reason="needs a browser"',
    "shellcheck-disable": 'shellcheck-disable=SC2164 reason="why"',
    "output": "output=ignore",
    "check": "check file-mode file=~/x mode=600",
    "apply": "apply x.env mode=merge",
    "verify": "verify x.env",
    "values": "values",
    "new-terminal": "new-terminal",
    "again": 'again exit=1 says="already exists"',
    "counter": "counter sign-in-off",
    "starts-from": "starts-from fresh-install",
    "returns-to": "returns-to other.md from=there",
    "sections-independent": "sections-independent",
}


def page(tmp_path: Path, body: str) -> sn.Page:
    (tmp_path / "docs").mkdir(exist_ok=True)
    shutil.copy(REPO / "conf.py", tmp_path / "conf.py")
    (tmp_path / "docs" / "other.md").write_text("# Other\n")
    (tmp_path / "docs" / "p.md").write_text(textwrap.dedent(body))
    return sn.parse_page(tmp_path / "docs" / "p.md", tmp_path, sn.load_copy_rules(tmp_path / "conf.py"))


@pytest.mark.parametrize("annotation", sn.ANNOTATIONS, ids=lambda a: a.keyword)
def test_every_annotation_the_table_lists_is_accepted(tmp_path: Path, annotation: sn.Annotation) -> None:
    """The writers' page shows this table; each row must work on a page as written."""
    example = f"% test: {EXAMPLES[annotation.keyword]}\n"
    fence = FENCES.get(annotation.keyword, "```bash\ntrue\n```")
    body = f"{example}\n# P\n\n{fence}\n" if annotation.page_level else f"# P\n\n{example}{fence}\n"
    parsed = page(tmp_path, body)
    assert len(parsed.snippets) == 1
    assert EXAMPLES.keys() == sn.KEYWORDS


def test_a_keyword_missing_from_the_table_is_refused(tmp_path: Path) -> None:
    """The table is the parser's list: an annotation the page does not document cannot be used."""
    with pytest.raises(sn.SnippetError, match="unknown test annotation 'retries'"):
        page(tmp_path, "# P\n\n% test: retries=3\n```bash\ntrue\n```\n")


def test_the_checks_table_lists_exactly_the_registered_checks() -> None:
    """Read from the source with ast (the docs build must not import the world's code); it must agree with the registry."""
    documented = list(writers.registered_checks(writers.CHECKS_SOURCE.read_text()))
    assert [c.name for c in documented] == list(checks.CHECKS)
    assert {c.name: (c.annotation, c.usage) for c in documented} == checks.USAGE
    undocumented = [c.name for c in documented if not c.summary]
    assert not undocumented, f"checks without a docstring to show on the writers' page: {undocumented}"


def test_the_built_writers_page_shows_every_annotation_and_check(site_html: Path) -> None:
    soup = BeautifulSoup((site_html / "testing.html").read_text(), "html.parser")
    cells = {td.get_text(" ", strip=True) for td in soup.select("table td")}
    assert {f"% test: {a.syntax}" for a in sn.ANNOTATIONS} <= cells
    checks_table = next(t for t in soup.select("table") if "What it verifies" in t.get_text())
    listed = {td.get_text(" ", strip=True).split()[3] for td in checks_table.select("tr td:first-child")}
    assert listed == {name for name, (kind, _) in checks.USAGE.items() if kind != "verify"}


def bench_report(*metrics: dict[str, Any], load: float = 0.5) -> dict[str, Any]:
    """A make bench report as scripts/tools/bench.py writes it, with these metrics."""
    return {"machine": {"load_before": {"1min": load}}, "metrics": list(metrics), "errors": {}}


def metric(name: str, median: float, budget: float | None = None) -> dict[str, Any]:
    verdict = "" if budget is None else ("meets" if median <= budget else "over")
    return {"name": name, "unit": "s", "median": median, "min": median - 0.1, "max": median + 0.2, "repeats": 3, "budget": budget, "verdict": verdict, "note": ""}


def test_recorded_figures_are_what_the_page_shows(tmp_path: Path) -> None:
    """Each tool records its own section; the page renders medians, ranges, budgets and when each was measured."""
    path = tmp_path / "figures.json"
    figures.record("bench", figures.bench_section(bench_report(metric("build: cold make html", 1.4, 2.0)), path=path), path)
    mutate = {"killed": 76, "survived": 3, "accepted_survivors": 3, "kill_rate": 1.0, "required_kill_rate": 0.95, "wall_seconds": 79.0, "jobs": 2}
    figures.record("mutate", mutate | {"equivalents": 12, "false_alarms": 0}, path)
    text = writers.figures_markdown(json.loads(path.read_text()))
    today = figures.today()
    assert f"| build: cold make html | 1.4 s (1.3 to 1.6) | 2 s (meets) | {today}, load 0.5 |" in text
    assert "76 of 79 mutations caught; 3 survivors accepted as harmless" in text
    assert "The 12 correct rewrites that must pass gave 0 false alarms." in text
    with pytest.raises(ValueError, match="unknown figures section"):
        figures.record("guesses", {}, path)


def test_a_partial_bench_run_replaces_only_the_figures_it_measured(tmp_path: Path) -> None:
    """`bench --only install --record` must not drop the build and test figures an earlier full run recorded."""
    path = tmp_path / "figures.json"
    figures.record("bench", figures.bench_section(bench_report(metric("build: cold", 1.4), metric("install: docs set", 40.0)), path=path), path)
    figures.record("bench", figures.bench_section(bench_report(metric("install: docs set", 30.0), load=2.0), partial=True, path=path), path)
    recorded = json.loads(path.read_text())["bench"]["metrics"]
    assert [(m["name"], m["median"], m["load_before"]) for m in recorded] == [("build: cold", 1.4, 0.5), ("install: docs set", 30.0, 2.0)]


def test_a_partial_bench_run_drops_the_old_rows_of_the_groups_it_measured(tmp_path: Path) -> None:
    """A metric renamed in a group (`suites`) leaves no stale row behind when that group is measured again."""
    path = tmp_path / "figures.json"
    old = [metric("tests: snippet suite (-n 2)", 19.8, 15.0) | {"group": "suites"}, metric("build: cold", 1.4) | {"group": "build"}]
    figures.record("bench", figures.bench_section(bench_report(*old), path=path), path)
    new = metric("tests: snippet suite", 12.7, 15.0) | {"group": "suites"}
    figures.record("bench", figures.bench_section(bench_report(new), partial=True, path=path), path)
    recorded = json.loads(path.read_text())["bench"]["metrics"]
    assert [m["name"] for m in recorded] == ["build: cold", "tests: snippet suite"]


def test_the_stability_runs_under_load_have_their_own_line(tmp_path: Path) -> None:
    """A `--hog` run records beside the plain one: each is a different claim."""
    path = tmp_path / "figures.json"
    run = {"runs": 20, "workers": 2, "green_runs": 20, "flaky": {}, "distinct_page_orders": 11, "wall_seconds": {"min": 68.0, "median": 124.0, "max": 185.0}}
    per_run = [{"passed": 100, "failed": 0, "skipped": 9, "errors": 0}]
    figures.record("stability", figures.stability_section(run | {"per_run": per_run}), path)
    figures.record("stability-hog", figures.stability_section(run | {"cpu_hog": 2, "per_run": per_run}), path)
    lines = writers.figures_markdown(json.loads(path.read_text())).splitlines()
    hog = next(line for line in lines if line.startswith("Stability under load"))
    assert "a busy loop on each of 2 cores" in hog
    assert "(2 workers, 109 tests a run): 20 of 20 runs green, 0 flaky tests" in hog
    assert any(line.startswith("Stability run, half of the runs in a shuffled page order,") for line in lines)
