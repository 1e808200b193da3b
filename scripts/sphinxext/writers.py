"""Tables on the writers' page made from the code and the measurements, so the page cannot drift from them.

- `{test-annotations}`: the annotations scripts/snippets.py accepts (its ANNOTATIONS table, which the parser enforces).
- `{test-checks}`: the checks scripts/world/checks.py registers, with their usage and docstrings. The module runs
  inside the world, so it is read with `ast`, not imported: the site builds with the docs dependencies alone.
- `{test-figures}`: the figures `make bench`, `make mutate` and the stability run recorded in docs/_data/figures.json.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # docutils ships no types
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from scripts import snippets as sn

CHECKS_SOURCE = Path(__file__).resolve().parents[1] / "world" / "checks.py"
# Relative to the source folder (docs/), so a copy of the site shows its own figures.
FIGURES = Path("_data") / "figures.json"


def cell(text: str) -> str:
    """Text for a Markdown table cell: a `|` would end the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class CheckDoc:
    """One registered check as the page documents it."""

    name: str
    usage: str
    annotation: str  # "check", "before" or "verify"
    summary: str  # the docstring's first paragraph, on one line


def registered_checks(source: str) -> Iterator[CheckDoc]:
    """The functions decorated `@check(NAME, USAGE[, annotation=...])` in checks.py, in file order."""
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "check"):
                continue
            name, usage = (ast.literal_eval(a) for a in deco.args)
            annotation = next((ast.literal_eval(k.value) for k in deco.keywords if k.arg == "annotation"), "check")
            doc = inspect.cleandoc(ast.get_docstring(node) or "")
            yield CheckDoc(name, usage, annotation, " ".join(doc.split("\n\n")[0].split()))


class GeneratedTable(SphinxDirective):
    """A directive whose body is a Markdown table made at build time."""

    has_content = False

    def markdown(self) -> str:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        return self.parse_text_to_nodes(self.markdown())


class AnnotationsTable(GeneratedTable):
    def markdown(self) -> str:
        self.env.note_dependency(sn.__file__)
        return table(("Annotation", "Meaning"), [(f"`% test: {a.syntax}`", a.meaning) for a in sn.ANNOTATIONS])


class ChecksTable(GeneratedTable):
    def markdown(self) -> str:
        self.env.note_dependency(str(CHECKS_SOURCE))
        checks = registered_checks(CHECKS_SOURCE.read_text(encoding="utf-8"))
        rows = [(f"`% test: {c.annotation} {c.name}{' ' + c.usage if c.usage else ''}`", c.summary) for c in checks]
        return table(("Annotation", "What it verifies"), [r for r in rows if not r[0].startswith("`% test: verify")])


def number(value: float) -> str:
    """Three significant digits, as the benchmark prints them: its repeats vary more than that."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def figure(metric: dict[str, Any]) -> str:
    value = f"{number(metric['median'])} {metric['unit']}"
    if metric.get("repeats", 1) > 1 and metric["min"] != metric["max"]:
        value += f" ({number(metric['min'])} to {number(metric['max'])})"
    return value


def measured(metric: dict[str, Any], bench: dict[str, Any]) -> str:
    """When a metric was measured and the machine's load then (a partial run keeps older metrics with their own)."""
    date = metric.get("date") or bench["date"]
    load = metric.get("load_before", bench.get("load_before", {}).get("1min"))
    return f"{date}, load {load:.1f}" if isinstance(load, (int, float)) else str(date)


def stability_line(run: dict[str, Any], what: str) -> str:
    walls = run["wall_seconds"]
    tests = f", {run['tests_per_run']} tests a run" if "tests_per_run" in run else ""
    orders = f", {run['distinct_page_orders']} page orders" if "distinct_page_orders" in run else ""
    load = f", load average {run['machine']['load_average'][0]:.1f} at the end" if "machine" in run else ""
    note = f" ({run['note']})" if run.get("note") else ""
    return (
        f"{what} on {run['date']} ({run['workers']} workers{tests}): {run['green_runs']} of {run['runs']} runs green, "
        f"{len(run['flaky'])} flaky tests{orders}; wall median {number(walls['median'])} s "
        f"({number(walls['min'])} to {number(walls['max'])} s){load}.{note}\n"
    )


def figures_markdown(data: dict[str, Any]) -> str:
    """The recorded figures (docs/_data/figures.json) as the page shows them: a table of the benchmark, a line each for mutations and stability."""
    parts = []
    bench = data.get("bench")
    if bench:
        parts.append(
            f"`make bench` on {bench['machine']['cpus']} CPUs: the median of each figure's repeats after a warm-up, with the range, "
            "and when it was measured, with the machine's load average (1 minute) as the run began:\n"
        )
        rows = [
            (m["name"], figure(m), "" if m["budget"] is None else f"{number(m['budget'])} {m['unit']} ({m['verdict']})", measured(m, bench)) for m in bench["metrics"]
        ]
        parts.append(table(("What", "Figure", "Budget", "Measured"), rows))
    mutate = data.get("mutate")
    if mutate:
        equivalents = f" The {mutate['equivalents']} correct rewrites that must pass gave {mutate['false_alarms']} false alarms." if "equivalents" in mutate else ""
        parts.append(
            f"`make mutate` on {mutate['date']}: {mutate['killed']} of {mutate['killed'] + mutate['survived']} mutations caught; "
            f"{mutate['accepted_survivors']} survivors accepted as harmless (each with its reason in the catalogue); "
            f"kill rate without them {mutate['kill_rate']:.1%} (required {mutate['required_kill_rate']:.0%}), "
            f"{number(mutate['wall_seconds'])} s with {mutate['jobs']} jobs.{equivalents}\n"
        )
    stability = data.get("stability")
    if stability:
        parts.append(stability_line(stability, "Stability run, half of the runs in a shuffled page order,"))
    hog = data.get("stability-hog")
    if hog:
        what = f"Stability under load (`--hog`: a busy loop on each of {hog.get('cpu_hog', '?')} cores; the doc tests with the executor's and the fault tests)"
        parts.append(stability_line(hog, what))
    return "\n".join(parts) or "No figures are recorded yet.\n"


class FiguresTable(GeneratedTable):
    def markdown(self) -> str:
        path = Path(self.env.srcdir) / FIGURES
        self.env.note_dependency(str(path))
        if not path.exists():
            return f"No figures are recorded yet: run `make bench` (it writes `docs/{FIGURES}`).\n"
        return figures_markdown(json.loads(path.read_text(encoding="utf-8")))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("test-annotations", AnnotationsTable)
    app.add_directive("test-checks", ChecksTable)
    app.add_directive("test-figures", FiguresTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
