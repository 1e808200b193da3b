"""The measured figures the writers' page shows, kept in docs/_data/figures.json (committed) so the page never states them by hand.

`make bench`, `make mutate` and a stability run given `--record` each replace their own section of
the file with what they just measured, the date and the machine's load; docs/testing.md renders the
file with the `{test-figures}` directive (scripts/sphinxext/writers.py). Pure file handling.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "docs" / "_data" / "figures.json"
SECTIONS = ("bench", "mutate", "stability", "stability-hog")


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def machine() -> dict[str, Any]:
    """The CPU count and the load average now: figures depend on what else the machine was doing."""
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average": [round(one, 2), round(five, 2), round(fifteen, 2)]}


def read(path: Path = FIGURES) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return figures


def record(section: str, data: dict[str, Any], path: Path = FIGURES) -> Path:
    """Replace `section` of the figures file with `data`, stamped with today's date (UTC) and the machine."""
    if section not in SECTIONS:
        raise ValueError(f"unknown figures section {section!r}; known: {', '.join(SECTIONS)}")
    figures = read(path)
    figures[section] = {"date": today(), "machine": machine(), **data}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def bench_section(report: dict[str, Any], *, partial: bool = False, path: Path = FIGURES) -> dict[str, Any]:
    """What the page shows of a bench run: each metric's median, range and budget, with the date and load it was measured at.

    A run of some groups only (`--only`) replaces the metrics of the groups it measured (those of a renamed
    metric too) and keeps the others as they were recorded, each with its own date; a full run replaces them all.
    """
    keep = ("name", "unit", "median", "min", "max", "repeats", "budget", "verdict", "note", "group")
    stamp = {"date": today(), "load_before": report["machine"]["load_before"].get("1min")}
    metrics = [{**{k: m.get(k, "") if k == "group" else m[k] for k in keep}, **stamp} for m in report["metrics"]]
    if partial:
        before = read(path).get("bench", {})
        measured = {m["name"] for m in metrics}
        groups = {m["group"] for m in metrics if m["group"]}
        older = [{"date": before.get("date"), **m} for m in before.get("metrics", []) if m["name"] not in measured and m.get("group") not in groups]
        metrics = older + metrics
    return {"load_before": report["machine"]["load_before"], "metrics": metrics, "errors": report["errors"]}


def mutate_section(summary: dict[str, Any]) -> dict[str, Any]:
    return dict(summary)


def stability_section(summary: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a stability run: runs, green runs, flaky tests, page orders, wall times, and what ran."""
    keep = ("runs", "workers", "green_runs", "flaky", "distinct_page_orders", "wall_seconds", "cpu_hog", "tests")
    per_run = [r.get("passed", 0) + r.get("failed", 0) + r.get("skipped", 0) + r.get("errors", 0) for r in summary.get("per_run", [])]
    return {k: summary[k] for k in keep if k in summary} | ({"tests_per_run": max(per_run)} if per_run else {})
