"""CI output a person can act on: test shards, GitHub annotations at docs/page.md:LINE, the job summary table, shards' reports joined.

As a pytest plugin (tests/conftest.py loads it):
- `--shard K/N` keeps the K-th of N parts of the suite. The parts are whole xdist groups (every page's
  steps form one; the browser tests another) and whole test files, dealt out by size, the same way in
  every shard, so N jobs with K = 1..N run each test exactly once. A page that continues another
  replays that page in its own world, so it needs nothing from another shard.
- On GitHub Actions (GITHUB_ACTIONS=true) each failed doc step becomes an `::error` line at its page
  and line, each other failed test one at its test file; the snippet report goes to the job summary
  ($GITHUB_STEP_SUMMARY) as tables.

As a command (`python -m scripts.tools.ci --help`): `merge` joins the shards' report.json files into
one, `summary` writes a report's tables, `annotations` prints a report's error lines.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPORT_KEY = pytest.StashKey[dict[str, Any]]()  # set by tests/conftest.py once it has joined this run's report
DOC_STEPS = "tests/test_docs.py::test_snippet["  # their failures are annotated from the report, at page:line
MAX_REASON = 4000  # GitHub shows an annotation's first lines; the rest is in the log and the report


# ---------------------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shard:
    """The index-th (1-based) of count parts."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`K/N` with 1 <= K <= N; anything else is an error that says the form."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N (this shard's number and the number of shards), e.g. 2/3; got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return Shard(index, count)


def unit_of(item: pytest.Item) -> str:
    """What must stay on one shard: a doc step's page (all pages share one xdist group, to run side by side),
    else the item's xdist group (the browser tests), else its test file."""
    callspec = getattr(item, "callspec", None)
    path = getattr(callspec.params.get("page") if callspec is not None else None, "path", None)
    if isinstance(path, str):
        return f"page:{path}"
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return f"group:{marker.args[0] if marker.args else marker.kwargs['name']}"
    return f"file:{item.nodeid.split('::', 1)[0]}"


def deal(units: dict[str, int], count: int) -> list[list[str]]:
    """Deal units (name -> size) into `count` shards: largest first, each to the lightest shard so far (ties: the lower one)."""
    shards: list[list[str]] = [[] for _ in range(count)]
    load = [0] * count
    for name, size in sorted(units.items(), key=lambda kv: (-kv[1], kv[0])):
        lightest = min(range(count), key=lambda i: (load[i], i))
        shards[lightest].append(name)
        load[lightest] += size
    return shards


def select(items: Sequence[pytest.Item], shard: Shard) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept, deselected) for this shard."""
    sizes: dict[str, int] = {}
    for item in items:
        sizes[unit_of(item)] = sizes.get(unit_of(item), 0) + 1
    mine = set(deal(sizes, shard.count)[shard.index - 1])
    kept = [i for i in items if unit_of(i) in mine]
    return kept, [i for i in items if unit_of(i) not in mine]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ci").addoption(
        "--shard", type=parse_shard, default=None, metavar="K/N", help="run the K-th of N parts of the suite (whole pages, whole files); see scripts/tools/ci.py"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After -k and -m have deselected theirs, so every shard deals out the same selection."""
    shard: Shard | None = config.getoption("shard")
    if shard is None:
        return
    kept, dropped = select(items, shard)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


# ---------------------------------------------------------------------------------------------
# GitHub Actions: annotations and the job summary
# ---------------------------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message, as GitHub's toolkit escapes it (a newline would end the command)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (file, title): also `:` and `,`, which separate properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(file: str, line: int, title: str, message: str) -> str:
    """One `::error` line; GitHub shows it on that line of the file in the pull request and the run."""
    if len(message) > MAX_REASON:
        message = message[:MAX_REASON] + "\n[cut; the full reason is in the log and _build/snippets/report.json]"
    return f"::error file={escape_property(file)},line={line},title={escape_property(title)}::{escape_data(message)}"


def report_annotations(report: dict[str, Any]) -> list[str]:
    """An error line for each failed step in the report, at its page and line, with the reason."""
    lines = []
    for e in report["snippets"]:
        if e["status"] == "failed":
            reason = e["reason"].strip() or "failed"
            output = e.get("output_tail", "").rstrip()
            message = reason + (f"\n\noutput (tail):\n{output}" if output else "")
            lines.append(annotation(e["page"], int(e["line"]), f"{e['page']}:{e['line']}: {reason.splitlines()[0]}"[:200], message))
    return lines


def cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, line breaks as <br>."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def output_cell(text: str) -> str:
    """Command output in a table cell: monospaced, its line breaks kept."""
    if not text.strip():
        return ""
    return "<pre>" + html.escape(text.rstrip("\n")).replace("|", "&#124;").replace("\n", "<br>") + "</pre>"


def source_link(page: str, line: int) -> str:
    """`page:line`, linked to that line of the commit when the GitHub Actions environment names it."""
    label = f"{page}:{line}"
    server, repo, sha = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA"))
    if server and repo and sha:
        return f"[`{label}`]({server}/{repo}/blob/{sha}/{page}#L{line})"
    return f"`{label}`"


def summary_markdown(report: dict[str, Any], title: str = "Doc tests") -> str:
    """The report as Markdown: the totals, a table per page, the failures with their reasons, every step (folded)."""
    s = report["summary"]
    wall = f" in {s['wall_seconds']} s" if s.get("wall_seconds") is not None else ""
    out = [f"## {title}", "", f"**{s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped** of {s['total']} steps{wall}.", ""]
    pages: dict[str, dict[str, float]] = {}
    for e in report["snippets"]:
        row = pages.setdefault(e["page"], {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0})
        row[e["status"]] += 1
        row["seconds"] += e["seconds"]
    out += ["| page | passed | failed | skipped | seconds |", "|---|---:|---:|---:|---:|"]
    out += [f"| `{p}` | {r['passed']:.0f} | {r['failed']:.0f} | {r['skipped']:.0f} | {r['seconds']:.2f} |" for p, r in pages.items()]
    failed = [e for e in report["snippets"] if e["status"] == "failed"]
    if failed:
        out += ["", "### Failed steps", "", "| step | reason | output (tail) |", "|---|---|---|"]
        out += [f"| {source_link(e['page'], e['line'])} | {cell(e['reason'])} | {output_cell(e.get('output_tail', ''))} |" for e in failed]
    out += ["", "<details><summary>Every step</summary>", "", "| step | status | seconds | stand-ins | checks | reason |", "|---|---|---:|---|---|---|"]
    out += [
        f"| `{e['id']}` | {e['status']} | {e['seconds']:.2f} | {cell(', '.join(e['standins']))} | {cell(', '.join(e['checks']))} | {cell(e['reason'])} |"
        for e in report["snippets"]
    ]
    out += ["", "</details>", ""]
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed test outside the doc steps: where its test is, and what pytest said."""

    file: str
    line: int
    nodeid: str
    message: str


def on_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def pytest_configure(config: pytest.Config) -> None:
    if on_github() and not hasattr(config, "workerinput"):
        config.pluginmanager.register(GitHubOutput(config), "github-output")


class GitHubOutput:
    """On the controller (under xdist the workers' reports arrive here too): error lines and the job summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.failures: list[Failure] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember failed tests for their error lines; the doc steps' come from the report, at page:line."""
        if not report.failed or report.nodeid.startswith(DOC_STEPS):
            return
        file, line0, _ = report.location
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        self.failures.append(Failure(file, (line0 or 0) + 1, report.nodeid, message))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The error lines go to stdout, where the runner reads workflow commands; the tables to the job summary."""
        for f in self.failures:
            terminalreporter.write_line(annotation(f.file, f.line, f"{f.nodeid} failed"[:200], f.message))
        report = self.config.stash.get(REPORT_KEY, None)
        if report is None:
            return
        for line in report_annotations(report):
            terminalreporter.write_line(line)
        shard: Shard | None = self.config.getoption("shard")
        write_summary(summary_markdown(report, "Doc tests" + (f" (shard {shard})" if shard else "")))


def write_summary(markdown: str) -> None:
    """Append to the job summary file when there is one (GitHub Actions), else print."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")
    else:
        print(markdown)


# ---------------------------------------------------------------------------------------------
# Shards' reports
# ---------------------------------------------------------------------------------------------


def merge(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One report from the shards' reports: every step once, in page and line order; wall time the longest shard's."""
    parts = list(reports)
    if not parts:
        raise ValueError("no reports to merge")
    entries = [e for r in parts for e in r["snippets"]]
    # A step is once per run that reached it: its own page's, and another page's that returns to it (`via`).
    seen: dict[str, int] = {}
    for e in entries:
        key = f"{e['via']}>{e['id']}" if e.get("via") else e["id"]
        seen[key] = seen.get(key, 0) + 1
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        raise ValueError(f"steps reported by more than one shard (were the shards given the same K/N?): {', '.join(twice[:5])}")
    walls = [r["summary"].get("wall_seconds") for r in parts]
    wall = max((w for w in walls if w is not None), default=None)
    abilities = [o for r in parts for o in r.get("abilities", [])]
    # Imported here: every pytest run loads this plugin on its controller, and scripts.check (markdown-it,
    # jose, cryptography: 0.45 s) would delay xdist's workers, which cannot start before the controller is up.
    from scripts.check import build_report

    merged = build_report(entries, abilities, sandbox=parts[0]["summary"].get("sandbox", ""), wall_seconds=wall)
    merged["summary"]["shards"] = len(parts)
    return merged


def load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read a snippet report: {e}") from None
    if "snippets" not in data or "summary" not in data:
        raise SystemExit(f"{path}: not a snippet report (no 'snippets' and 'summary')")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tools.ci", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="join shards' report.json files into one")
    m.add_argument("reports", nargs="+", type=Path)
    m.add_argument("--out", type=Path, required=True, help="where the joined report goes")
    s = sub.add_parser("summary", help="a report's tables, appended to $GITHUB_STEP_SUMMARY (printed when it is unset)")
    s.add_argument("report", type=Path)
    s.add_argument("--title", default="Doc tests")
    a = sub.add_parser("annotations", help="print a report's ::error lines")
    a.add_argument("report", type=Path)
    ns = parser.parse_args(argv)
    if ns.command == "merge":
        try:
            merged = merge(load(p) for p in ns.reports)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(merged, indent=1), encoding="utf-8")
        t = merged["summary"]
        print(f"{len(ns.reports)} shards: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped -> {ns.out}")
        return 1 if t["failed"] else 0
    report = load(ns.report)
    if ns.command == "summary":
        write_summary(summary_markdown(report, ns.title))
    else:
        for line in report_annotations(report):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
