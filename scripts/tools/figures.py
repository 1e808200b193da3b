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
SECTIONS = ("bench", "mutate", "stability")


def machine() -> dict[str, Any]:
    """The CPU count and the load average now: figures depend on what else the machine was doing."""
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average": [round(one, 2), round(five, 2), round(fifteen, 2)]}


def record(section: str, data: dict[str, Any], path: Path = FIGURES) -> Path:
    """Replace `section` of the figures file with `data`, stamped with today's date (UTC) and the machine."""
    if section not in SECTIONS:
        raise ValueError(f"unknown figures section {section!r}; known: {', '.join(SECTIONS)}")
    figures: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    figures[section] = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"), "machine": machine(), **data}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def bench_section(report: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a bench run: each metric's median, range and budget, and the run's load."""
    keep = ("name", "unit", "median", "min", "max", "repeats", "budget", "verdict", "note")
    return {"load_before": report["machine"]["load_before"], "metrics": [{k: m[k] for k in keep} for m in report["metrics"]], "errors": report["errors"]}


def mutate_section(summary: dict[str, Any]) -> dict[str, Any]:
    return dict(summary)


def stability_section(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("runs", "workers", "green_runs", "flaky", "distinct_page_orders", "wall_seconds")
    return {k: summary[k] for k in keep if k in summary}
