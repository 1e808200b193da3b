"""The test report on the site: each tested block marked with its verdict, a summary under each page's title, the page's steps as a script.

Reads `_build/snippets/report.json` (written by `make test` and by `python -m scripts.check`) and the
pages through scripts/snippets.py, the extraction the tests run. A verdict belongs to a block only
while the block's page, fence line and text (its sha256) are what the run saw, so a block edited
since the run shows no mark. Without a report the site builds as before. Nothing here starts a
world or imports the test toolchain: the site builds with the docs dependencies alone.
"""

from __future__ import annotations

import hashlib
import html
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # docutils ships no types
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from scripts import pagescript
from scripts import snippets as sn
from scripts.sphinxext import pages, values
from scripts.sphinxext.doctree import insert_after_title, outermost

logger = logging.getLogger(__name__)

STATUSES = ("passed", "failed", "skipped")
SCRIPTS_DIR = "_scripts"
# The section of the writers' page that says what a mark means.
EXPLAINED_AT = ("testing", "verified-marks")
STATIC = Path(__file__).resolve().parent / "static"
BOX_START = '<div class="page-tests" role="note">'


@dataclass(frozen=True, slots=True)
class Run:
    """What the report says about the test run as a whole."""

    date: str  # ISO 8601, UTC
    commit: str | None
    dirty: bool | None
    versions: tuple[tuple[str, str], ...]  # (product, version) the world models


@dataclass(frozen=True, slots=True)
class Result:
    """One step's verdict, for the block the run saw."""

    status: str
    reason: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Also:
    """What a reader ability (scripts/reader.py) found for one block or page, in the words a mark uses."""

    ability: str
    status: str  # passed or failed
    detail: str = ""  # the counter-world or starting state a case names


@dataclass(frozen=True, slots=True)
class Report:
    run: Run
    results: dict[tuple[str, int], Result]  # by (docs/page.md, fence line)
    also: dict[str, tuple[Also, ...]] = field(default_factory=dict)  # by step id (docs/page.md:LINE), or by page for page-wide cases

    def for_page(self, page: str) -> dict[int, Result]:
        return {line: r for (p, line), r in self.results.items() if p == page}


class ReportError(ValueError):
    """report.json exists but cannot be read as a test report; the message names the file and what is wrong."""


def read_report(path: Path) -> Report | None:
    """The report at `path`; None when there is none, or when it predates verified marks (no run record, no hashes)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not a readable test report ({e}); rerun the tests or delete it") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("snippets"), list):
        raise ReportError(f"{path}: not a test report (no list of snippets)")
    run = raw.get("run")
    if not isinstance(run, dict) or not all("sha256" in e for e in raw["snippets"]):
        return None
    try:
        results: dict[tuple[str, int], Result] = {}
        # A block's verdict is its own page's run; the same step reached from another page (`via`, returns-to) counts only without one.
        for entry in sorted(raw["snippets"], key=lambda entry: bool(entry.get("via"))):
            key = (str(entry["page"]), int(entry["line"]))
            results.setdefault(key, Result(str(entry["status"]), str(entry.get("reason") or ""), str(entry["sha256"])))
        parsed = Run(str(run["date"]), run.get("commit"), run.get("dirty"), tuple((str(k), str(v)) for k, v in dict(run.get("versions") or {}).items()))
        also = abilities_by_step(raw.get("abilities") or [])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReportError(f"{path}: a snippet, an ability or the run record lacks a field ({e})") from None
    unknown = sorted({r.status for r in results.values()} - set(STATUSES))
    if unknown:
        raise ReportError(f"{path}: unknown status {unknown[0]!r}")
    return Report(parsed, results, also)


def abilities_by_step(outcomes: list[dict[str, Any]]) -> dict[str, tuple[Also, ...]]:
    """The report's ability cases by the step they name (`docs/p.md:L`, `docs/p.md:L WORLD`, `docs/p.md:L from STATE`);
    a case that names a section (a new terminal) counts for its page."""
    found: dict[str, list[Also]] = {}
    for outcome in outcomes:
        for case in outcome["cases"]:
            if case["status"] not in ("passed", "failed"):
                continue
            at = str(case["at"])
            head, _, rest = at.partition(" ")
            key = head if re.fullmatch(r".+\.md:\d+", head) else str(outcome["page"])
            detail = rest.removeprefix("from ") if key == head else ""
            found.setdefault(key, []).append(Also(str(outcome["ability"]), str(case["status"]), detail))
    return {key: tuple(items) for key, items in found.items()}


def report_path(app: Sphinx) -> Path | None:
    """`verified_report` from the configuration, relative to conf.py's folder; None when set to ""."""
    value: str = app.config.verified_report
    return (Path(app.confdir) / value) if value else None


def file_digest(path: Path | None) -> str:
    """What changes when the report changes ("" without one): pages are read again when it does."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else ""
    except OSError:
        return ""


def load(app: Sphinx) -> Report | None:
    """The report for this build, read once per process (workers of a parallel write inherit it)."""
    path = report_path(app)
    cached: tuple[str, Report | None] | None = getattr(app, "_verified_report", None)
    digest = file_digest(path)
    if cached is not None and cached[0] == digest:
        return cached[1]
    report = None
    if path is not None:
        try:
            report = read_report(path)
        except ReportError as e:
            logger.warning(str(e), type="verified", subtype="report")
    app._verified_report = (digest, report)  # type: ignore[attr-defined]  # a per-build cache on the app object
    return report


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


def reread_when_the_report_changes(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """A new report changes every tested page's marks, though no page source changed."""
    digest = file_digest(report_path(app))
    if getattr(env, "verified_report_digest", None) == digest:
        return []
    env.verified_report_digest = digest  # type: ignore[attr-defined]  # pickled with the environment
    return sorted(env.found_docs - added - changed - removed)


def annotate(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Mark the page's tested blocks, add its summary under the title, and write its script."""
    if app.builder.format != "html" or doctree.next_node(nodes.literal_block) is None:
        return  # no code block: nothing to mark, no script (and the page need not be parsed again)
    page = pages.page_of(app, docname)
    if page is None:
        return
    report = load(app)
    marked = mark_blocks(doctree, page, report) if report is not None else {}
    script = write_script(app, doctree, docname, page)
    paragraphs = []
    if report is not None and report.for_page(page.path):
        paragraphs.append(summary(app, docname, page, report, marked))
    if script is not None:
        paragraphs.append(script)
    if paragraphs:
        insert_after_title(doctree, nodes.raw("", BOX_START + "".join(paragraphs) + "</div>\n", format="html"))


def add_css(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: nodes.document | None) -> None:
    """The marks' stylesheet, on the pages that show the report (the others load nothing more)."""
    if doctree is not None and any(BOX_START in n.astext() for n in doctree.findall(nodes.raw)):
        app.add_css_file("verified.css")


def add_static_path(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))


# ---------------------------------------------------------------------------------------------
# Marks
# ---------------------------------------------------------------------------------------------


def blocks(doctree: nodes.document) -> Iterator[nodes.literal_block]:
    yield from doctree.findall(nodes.literal_block)


def mark_blocks(doctree: nodes.document, page: sn.Page, report: Report) -> dict[int, Result]:
    """Put a mark after each block whose verdict is in the report for its current text; returns them by line."""
    current = {s.line: s for s in page.snippets}
    results = report.for_page(page.path)
    marked: dict[int, Result] = {}
    for block in list(blocks(doctree)):
        snippet = current.get(block.line or 0)
        result = results.get(block.line or 0)
        if snippet is None or result is None or result.sha256 != snippet.digest:
            continue
        marked[snippet.line] = result
        anchor = outermost(block)
        also = report.also.get(snippet.id, ()) if result.status == "passed" else ()
        anchor.parent.insert(anchor.parent.index(anchor) + 1, nodes.raw("", mark_html(result, report.run, also), format="html"))
    return marked


# How a mark names what an ability did with its block: passed, then failed.
ALSO_PASSED = {"run-twice": "run twice", "other-values": "with other hostnames", "counter-worlds": "fails where it must", "starts-from": "from {n} starting states"}
ALSO_FAILED = {"run-twice": "run twice", "other-values": "other hostnames", "counter-worlds": "a world where it must fail", "starts-from": "a starting state"}


def also_text(also: tuple[Also, ...]) -> tuple[str, str]:
    """What the block's abilities add to its mark: (what else passed, what else failed), each "" when nothing."""
    passed, failed = [], []
    for ability, words in ALSO_PASSED.items():
        cases = [a for a in also if a.ability == ability]
        if any(a.status == "failed" for a in cases):
            failed.append(ALSO_FAILED[ability])
        elif cases:
            passed.append(words.format(n=len(cases)) if ability != "starts-from" or len(cases) > 1 else f"from {cases[0].detail}")
    return ", ".join(passed), ", ".join(failed)


def mark_html(result: Result, run: Run, also: tuple[Also, ...] = ()) -> str:
    """The mark under a block: its verdict in words (the icon only repeats it), with the run's date and what it modelled,
    and, smaller, what the reader abilities did with it."""
    icon = {"passed": "\u2713", "failed": "\u2717", "skipped": "\u2013"}[result.status]
    date = run.date[:10]
    extra = ""
    if result.status == "passed":
        modelled = ", ".join(f"{product} {version}" for product, version in run.versions)
        text = f"Tested {date} against simulated {modelled}" if modelled else f"Tested {date}"
        passed, failed = also_text(also)
        if passed:
            extra += f'<span class="verified-also">; also {html.escape(passed)}</span>'
        if failed:
            extra += f'<span class="verified-also verified-also-failed">; but failed: {html.escape(failed)}</span>'
    elif result.status == "failed":
        text = f"Failed in the test run of {date}"
    else:
        text = f"Not run by the tests: {result.reason}"
    return f'<p class="verified-mark verified-{result.status}"><span class="verified-icon" aria-hidden="true">{icon}</span> {html.escape(text)}{extra}</p>\n'


# ---------------------------------------------------------------------------------------------
# The page's summary and script
# ---------------------------------------------------------------------------------------------


def relative(docname: str, target: str) -> str:
    """`target` (a path in the output folder) as a link from the page `docname`."""
    return posixpath.relpath(target, posixpath.dirname(docname) or ".")


def versions_text(run: Run) -> str:
    names = [f"{product} {version}" for product, version in run.versions]
    if len(names) > 1:
        return ", ".join(names[:-1]) + " and " + names[-1]
    return names[0] if names else ""


def summary(app: Sphinx, docname: str, page: sn.Page, report: Report, marked: dict[int, Result]) -> str:
    """One line: when the page was tested, at which commit, what passed, and what the run modelled."""
    run = report.run
    day = run.date[:10]
    counts = {status: sum(r.status == status for r in marked.values()) for status in STATUSES}
    steps = [s for s in page.snippets if s.is_step]
    changed = len(steps) - len(marked)
    if counts["passed"] == len(steps) and steps:
        verdict = f"all {len(steps)} steps passed"
    else:
        parts = [f"{counts['passed']} of {len(steps)} steps passed"]
        parts += [f"{counts['failed']} failed"] if counts["failed"] else []
        parts += [f"{counts['skipped']} not run"] if counts["skipped"] else []
        parts += [f"{changed} changed since and not marked"] if changed > 0 else []
        verdict = ", ".join(parts)
    commit = f" at commit <code>{html.escape(run.commit[:12])}</code>" if run.commit else ""
    if run.commit and run.dirty:
        commit += " with local changes"
    modelled = versions_text(run)
    what = f" The commands ran against simulated services that model {html.escape(modelled)}" if modelled else " The commands ran against simulated services"
    doc, anchor = EXPLAINED_AT
    link = ""
    if doc in app.env.all_docs and doc != docname:
        link = f' (<a href="{html.escape(app.builder.get_relative_uri(docname, doc))}#{anchor}">what this means</a>)'
    elif doc == docname:
        link = f' (<a href="#{anchor}">what this means</a>)'
    terminal = [a.status for a in report.also.get(page.path, ()) if a.ability == "new-terminal"]
    if terminal and all(t == "passed" for t in terminal):
        verdict += f", and again in a new terminal at each of {len(terminal)} places"
    elif "failed" in terminal:
        verdict += f", but {terminal.count('failed')} of {len(terminal)} runs in a new terminal failed"
    return f'<p class="page-tests-summary">Tested on {html.escape(day)}{commit}: {html.escape(verdict)}.{what}{link}.</p>'


def sections_of(block: nodes.Element) -> tuple[str, ...]:
    """The titles of the sections holding `block`, outermost first, without the page's own title."""
    titles: list[str] = []
    node: nodes.Node | None = block.parent
    while node is not None:
        if isinstance(node, nodes.section) and node.children and isinstance(node[0], nodes.title):
            titles.append(node[0].astext())
        node = node.parent
    return tuple(reversed(titles))[1:]


def page_url(app: Sphinx, docname: str) -> str:
    """The page's published address (html_baseurl), or "" when the site has none."""
    base = getattr(app.config, "html_baseurl", "") or ""
    return posixpath.join(base, app.builder.get_target_uri(docname)) if base else ""


def goes_on(app: Sphinx, page: sn.Page) -> str:
    """Where the page's reader goes on after it (`returns-to`), as the script's last comment."""
    if page.returns_to is None:
        return ""
    target, label = page.returns_to
    docname = target.removesuffix(".md")
    where = page_url(app, docname) or f"docs/{target}"
    return f"The page goes on in {where}#{nodes.make_id(label)} (docs/{target}, from its target ({label})=): continue there."


def write_script(app: Sphinx, doctree: nodes.document, docname: str, page: sn.Page) -> str | None:
    """Write the page's script into the output folder; the paragraph that offers it, or None when the page gets none."""
    if docname in app.config.page_scripts_exclude or pagescript.unscriptable(page) is not None:
        return None
    where = {block.line: sections_of(block) for block in blocks(doctree) if block.line}
    steps = [pagescript.Step(s, where.get(s.line, ())) for s in page.snippets if s.kind == "shell" or s.apply is not None]
    title = next((t.astext() for t in doctree.findall(nodes.title)), docname)
    resume = pagescript.resume_block(page) if page.continues else None
    name = f"{SCRIPTS_DIR}/{docname}.sh"
    target = Path(app.outdir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    script = pagescript.page_script(title, page.path, steps, page_url(app, docname), resume=resume, goes_on=goes_on(app, page))
    target.write_text(script, encoding="utf-8")
    count = sum(1 for s in steps if not s.snippet.skip_reason)
    # Where the script holds the reader's values, for your-values.js to put theirs into the download (scripts/sphinxext/values.py).
    found = values.spans(script, pages.reader_values(app).values)
    spans_attr = f" data-your-values='{html.escape(json.dumps(found, separators=(',', ':')))}'" if found else ""
    return (
        f'<p class="page-tests-script"><a class="reference download" href="{html.escape(relative(docname, name))}" download{spans_attr}>'
        f"Download this page's commands as one script</a> ({count} steps, bash), to read and run on your server.</p>"
    )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("verified_report", "_build/snippets/report.json", "env", types=[str])
    app.add_config_value("page_scripts_exclude", {}, "env", types=[dict])
    app.connect("builder-inited", add_static_path)
    app.connect("env-get-outdated", reread_when_the_report_changes)
    app.connect("doctree-resolved", annotate)
    app.connect("html-page-context", add_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
