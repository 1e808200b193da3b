"""Run the doc tests many times, alternating collected and shuffled page order, and report flaky steps and wall times.

`python -m scripts.tools.stability` runs `pytest tests/test_docs.py -n 2 --dist loadgroup` N times (20 by
default); every other run shuffles whole pages (scripts/tools/shuffle_pages.py) with a seed recorded in
the results. A test is *flaky* when its outcome differs between runs. The per-run counts, wall
times and the flaky tests go to `_build/stability.json`; the exit status is non-zero when any
test is flaky or any run fails.

`--hog` runs a busy loop on every core for the whole time, as on a loaded CI machine, and adds the
tests of the executor's process handling (timeouts, leftovers), which load once made flaky.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scripts.tools import figures

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "_build" / "stability.json"
DOC_TESTS = ("tests/test_docs.py",)
# Under --hog: the tests whose verdicts depend on how fast processes die and exec (both once flaky under load).
PROCESS_TESTS = ("tests/test_executor.py", "tests/test_faults.py")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One pytest run: its order, its counts, its wall time, and every test's outcome."""

    run: int
    seed: int | None  # None: collected order
    exit_status: int
    wall_seconds: float
    passed: int
    failed: int
    skipped: int
    errors: int
    outcomes: dict[str, str]  # test id -> passed/failed/skipped/error, in the order results came in
    page_order: tuple[str, ...] = ()  # pages in the order their first step reported: shows the shuffle took effect


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> outcome, from pytest's JUnit XML."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        # xdist's loadgroup appends "@group" to the name; the id without it is the same in every run.
        name = re.sub(r"\]@[^\]]*$", "]", f"{case.get('classname', '')}::{case.get('name', '')}")
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                break
        found[name] = status
    return found


@contextlib.contextmanager
def cpu_hog(cores: int) -> Iterator[list[int]]:
    """A busy loop per core while the block runs: every test competes for every CPU. Yields the hogs' pids."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL) for _ in range(cores)]
    try:
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def run_once(index: int, seed: int | None, workers: int, extra: Sequence[str], scratch: Path, tests: Sequence[str] = DOC_TESTS) -> RunRecord:
    junit = scratch / f"run-{index}.xml"
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-n", str(workers), "--dist", "loadgroup", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if seed is not None:
        # xdist's loadgroup would otherwise sort the pages by their number of steps, undoing the shuffle.
        cmd += ["-p", "scripts.tools.shuffle_pages", "--shuffle-pages", str(seed), "--no-loadscope-reorder"]
    started = time.perf_counter()
    proc = subprocess.run([*cmd, *extra], cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    found = outcomes(junit) if junit.exists() else {}
    if not found:
        raise RuntimeError(f"run {index} produced no results (exit status {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    count = {k: sum(v == k for v in found.values()) for k in ("passed", "failed", "skipped", "error")}
    pages = tuple(dict.fromkeys(m.group(1) for t in found if (m := re.search(r"\[(docs/[^:\]]+):\d+\]$", t))))
    return RunRecord(index, seed, proc.returncode, round(wall, 2), count["passed"], count["failed"], count["skipped"], count["error"], found, pages)


def flaky(records: Sequence[RunRecord]) -> dict[str, dict[str, int]]:
    """Tests whose outcome is not the same in every run, with how often each outcome happened."""
    ids = sorted({t for r in records for t in r.outcomes})
    out: dict[str, dict[str, int]] = {}
    for t in ids:
        seen: dict[str, int] = {}
        for r in records:
            o = r.outcomes.get(t, "missing")
            seen[o] = seen.get(o, 0) + 1
        if len(seen) > 1:
            out[t] = seen
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tools.stability", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-r", "--runs", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers per run (default 2)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="base seed of the shuffled runs (default: the time)")
    parser.add_argument("--out", type=Path, default=OUT, help="results file (default _build/stability.json)")
    parser.add_argument("--record", action="store_true", help="also record the summary in docs/_data/figures.json, which the writers' page shows")
    parser.add_argument("--hog", action="store_true", help="a busy loop on every core throughout; adds the executor's process tests")
    parser.add_argument("--tests", nargs="+", default=None, help=f"test files (default {' '.join(DOC_TESTS)}; with --hog also {' '.join(PROCESS_TESTS)})")
    ns, extra = parser.parse_known_args(argv)
    ns.tests = ns.tests or (DOC_TESTS + PROCESS_TESTS if ns.hog else DOC_TESTS)
    ns.cpu_hog = (os.cpu_count() or 1) if ns.hog else 0
    records: list[RunRecord] = []
    with tempfile.TemporaryDirectory(prefix="stability-") as tmp, cpu_hog(ns.cpu_hog):
        for i in range(ns.runs):
            seed = None if i % 2 == 0 else ns.seed + i
            r = run_once(i, seed, ns.workers, extra, Path(tmp), ns.tests)
            records.append(r)
            order = "collected order" if seed is None else f"shuffled (seed {seed})"
            print(
                f"run {i + 1:>2}/{ns.runs}: {r.passed} passed, {r.failed} failed, {r.skipped} skipped, {r.errors} errors in {r.wall_seconds:.1f} s, {order}", flush=True
            )
            write(ns.out, records, ns)  # what is known so far: a long run can be watched, and survives an interruption
    summary = write(ns.out, records, ns)
    if ns.record:
        figures.record("stability-hog" if ns.hog else "stability", figures.stability_section(summary))
    walls = summary["wall_seconds"]
    print(
        f"{summary['runs']} runs, {summary['green_runs']} all green; {len(summary['flaky'])} flaky tests; "
        f"wall min {walls['min']} s, median {walls['median']} s, max {walls['max']} s -> {ns.out}"
    )
    for t, seen in summary["flaky"].items():
        print(f"FLAKY {t}: {seen}")
    return 0 if not summary["flaky"] and summary["green_runs"] == summary["runs"] else 1


def summarise(records: Sequence[RunRecord], ns: argparse.Namespace) -> dict[str, Any]:
    walls = [r.wall_seconds for r in records]
    return {
        "runs": len(records),
        "workers": ns.workers,
        "tests": list(ns.tests),
        "cpu_hog": ns.cpu_hog,  # busy loops running throughout (one per core), 0 without --hog
        "load_average": dict(zip(("1min", "5min", "15min"), os.getloadavg(), strict=True)),
        "base_seed": ns.seed,
        "green_runs": sum(r.exit_status == 0 and r.failed == 0 and r.errors == 0 for r in records),
        "flaky": flaky(records),
        "distinct_page_orders": len({r.page_order for r in records}),
        "wall_seconds": {"min": min(walls), "median": round(statistics.median(walls), 2), "max": max(walls)} if walls else {},
        "per_run": [{k: v for k, v in asdict(r).items() if k != "outcomes"} for r in records],
        "failed_tests": {str(r.run): sorted(t for t, o in r.outcomes.items() if o in ("failed", "error")) for r in records},
    }


def write(out: Path, records: Sequence[RunRecord], ns: argparse.Namespace) -> dict[str, Any]:
    summary = summarise(records, ns)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    sys.exit(main())
