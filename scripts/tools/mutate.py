"""Mutation testing of the docs: apply realistic mistakes to copies of the pages and see the doc tests catch them.

Each mutation in `scripts/tools/mutations.yaml` names a page, the exact text to change and its
replacement (kind `delete`: a step to remove; kind `swap`: two steps to exchange), and optionally
the reader abilities (`judged_by`: new-terminal, run-twice, counter-worlds...) that run on the
mutated page when its plain steps all pass. For each one, a
copy of docs/ is mutated and the pages it affects (the page and every page that continues it) are
run by the same runner as `make test`; a `mermaid` mutation is judged by mermaid's own parser
(scripts/diagrams.py) and a `sphinx` mutation by a strict Sphinx build of the copy. A mutation is
*killed* when some step fails (or the page no longer parses), and *survives* otherwise. A survivor
whose entry says `why` it is harmless (an equivalent mutant) is accepted and left out of the kill
rate; every other survivor points at a missing check. An entry with `expect: survive` is the opposite:
a correct rewrite of a step (an equivalent), which must pass; if the tests fail it, that is a *false
alarm*, and the world (a check, a fake) is wrong.
`python -m scripts.tools.mutate` writes `_build/mutate/report.json` and exits non-zero below the
required kill rate, on any false alarm, or when a mutation no longer applies to the pages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from scripts import reader
from scripts import snippets as sn
from scripts.catalogue import CATALOGUE, Mutation, MutationError, load_catalogue
from scripts.check import REPO, PageRun, Verdict, load_page
from scripts.diagrams import diagram_errors
from scripts.tools import figures

OUT = REPO / "_build" / "mutate"
REQUIRED_KILL_RATE = 0.95
JUDGED_BY_MERMAID = frozenset({"mermaid"})
JUDGED_BY_SPHINX = frozenset({"sphinx"})


def dependants(page: str, docs: Path, changed_line: int = 1) -> list[Path]:
    """The page and every page whose `continues` chain reaches it, in run order.

    A page that continues the mutated one only `upto` a line at or before the first changed line
    never runs the changed text, so it is left out.
    """
    rules = sn.load_copy_rules(REPO / "conf.py")
    out = []
    target = f"docs/{page}"
    for p in sn.discover_pages(docs.parent):
        parsed = sn.parse_page(p, docs.parent, rules)
        chain, cur, reaches = [parsed.path], parsed, parsed.path == target
        while cur.continues and not reaches:
            upto = cur.continues_upto
            cur = sn.parse_page(docs / cur.continues, docs.parent, rules)
            if cur.path in chain:
                break  # a cycle: PageRun reports it when the page runs
            chain.append(cur.path)
            reaches = cur.path == target and (upto is None or changed_line < upto)
        if reaches:
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(docs).as_posix() != page)  # the mutated page first


def run_pages(paths: Sequence[Path], root: Path) -> list[Verdict]:
    """Run pages with the runner of `make test` until one step fails."""
    verdicts: list[Verdict] = []
    for path in paths:
        run = PageRun(load_page(path, root), root=root)
        try:
            run.start()
            for s in run.steps():
                verdicts.append(run.step(s))
                if verdicts[-1].status == "failed":
                    break
        finally:
            run.close()
        if any(v.status == "failed" for v in verdicts):
            break  # one failure kills the mutation; no need to run the rest
    return verdicts


def sphinx_errors(root: Path) -> str:
    """Warnings of a strict Sphinx build of the copy (dummy builder: references are still resolved)."""
    (root / "node_modules").symlink_to(REPO / "node_modules")  # conf.py finds mermaid's build next to itself
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "dummy", str(root / "docs"), str(root / "_build"), "-c", str(root), "--nitpicky", "--fail-on-warning", "-q", "-E"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    text = "" if proc.returncode == 0 else (proc.stderr.strip() or proc.stdout.strip() or f"sphinx exit status {proc.returncode}")
    return text.replace(f"{root}/", "")  # name pages as docs/page.md, not by the temp copy's path


def copy_site(source: Path, dest: Path) -> Path:
    """docs/ and conf.py of `source` under `dest`: what a mutation changes, and all the runner reads besides the repo's code."""
    shutil.copytree(source / "docs", dest / "docs", ignore=shutil.ignore_patterns("_build"))
    shutil.copy(source / "conf.py", dest / "conf.py")
    return dest


def baseline(snapshot: Path, jobs: int, *, sphinx: bool) -> list[str]:
    """Why the unmutated snapshot fails (empty when every page parses and passes, and every diagram parses).

    Without this, a page that is already broken, or a parser change in progress, would "kill" every
    mutation that touches it, and the kill rate would mean nothing.
    """
    pages = sn.discover_pages(snapshot)
    try:
        for p in pages:
            load_page(p, snapshot)
        problems = diagram_errors(snapshot)
    except sn.SnippetError as e:
        return [f"does not parse: {e}"]
    if sphinx:
        with tempfile.TemporaryDirectory(prefix="mutate-baseline-") as tmp:
            text = sphinx_errors(copy_site(snapshot, Path(tmp)))
        problems += [f"the strict Sphinx build fails: {text.splitlines()[0]}"] if text else []

    def failures(page: Path) -> list[str]:
        return [f"{v.snippet.id}: {v.reason.splitlines()[0]}" for v in run_pages([page], snapshot) if v.status == "failed"]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for found in pool.map(failures, pages):
            problems += found
    return problems


def judge(m: Mutation, source: Path = REPO) -> dict[str, Any]:
    """Apply one mutation to a copy of `source`'s docs/ and run what it affects; killed or survived, with the evidence."""
    started = time.perf_counter()
    result: dict[str, Any] = {"id": m.id, "page": m.page, "kind": m.kind, "find": m.find, "replace": m.replace, "why": m.why, "expect": m.expect}
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        root = copy_site(source, Path(tmp))
        target = root / "docs" / m.page
        try:
            original = target.read_text()
            mutated = m.apply(original)
            changed_line = m.first_changed_line(original)
        except (MutationError, OSError) as e:
            return {**result, "status": "error", "detail": str(e), "seconds": round(time.perf_counter() - started, 2)}
        target.write_text(mutated)
        result["line"] = changed_line
        try:
            if m.kind in JUDGED_BY_MERMAID:
                errors = diagram_errors(root, m.page)
                killed, detail = bool(errors), "; ".join(errors) or "every diagram parses"
            elif m.kind in JUDGED_BY_SPHINX:
                errors_text = sphinx_errors(root)
                killed, detail = bool(errors_text), errors_text.splitlines()[0] if errors_text else "the site builds without warnings"
            else:
                verdicts = run_pages(dependants(m.page, root / "docs", changed_line), root)
                failed = [v for v in verdicts if v.status == "failed"]
                killed = bool(failed)
                detail = f"{failed[0].snippet.id}: {failed[0].reason.splitlines()[0]}" if failed else f"all {len(verdicts)} steps passed"
                # A mistake that only shows in a new terminal, a second run or a counter-world: the ability that looks for it.
                for ability in [a for a in m.judged_by.split(",") if a] if not killed else []:
                    outcome = reader.run_ability(ability, load_page(target, root), root)
                    if outcome.status == "failed":
                        killed, detail = True, f"{ability}: {outcome.failures().splitlines()[0]}"
                        break
                    detail += f"; {ability} passed"
        except sn.SnippetError as e:
            killed, detail = True, f"page no longer parses: {e}"
    return {**result, "status": "killed" if killed else "survived", "detail": detail, "seconds": round(time.perf_counter() - started, 2)}


def show(text: str, width: int = 70) -> str:
    one = text.replace("\n", "\u23ce")
    return one if len(one) <= width else one[: width - 1] + "\u2026"


def summarise(results: Sequence[dict[str, Any]], wall: float, jobs: int) -> dict[str, Any]:
    """Counts and the kill rate; a survivor with a `why` is an accepted equivalent mutant and leaves the denominator.

    The `expect: survive` rewrites are counted apart: each one killed is a false alarm."""
    equivalents = [r for r in results if r.get("expect") == "survive" and r["status"] != "error"]
    judged = [r for r in results if r["status"] != "error" and r.get("expect", "kill") == "kill"]
    killed = sum(r["status"] == "killed" for r in judged)
    accepted = sum(r["status"] == "survived" and bool(r["why"]) for r in judged)
    scored = len(judged) - accepted
    return {
        "total": len(results),
        "killed": killed,
        "survived": len(judged) - killed,
        "accepted_survivors": accepted,
        "equivalents": len(equivalents),
        "false_alarms": sum(r["status"] == "killed" for r in equivalents),
        "errors": sum(r["status"] == "error" for r in results),
        "kill_rate": round(killed / scored, 4) if scored else 0.0,
        "raw_kill_rate": round(killed / len(judged), 4) if judged else 0.0,
        "required_kill_rate": REQUIRED_KILL_RATE,
        "wall_seconds": round(wall, 1),
        "jobs": jobs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tools.mutate", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="mutations judged at once (default 2)")
    parser.add_argument("-k", help="only mutations whose id contains this")
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE, help="the mutations file (default scripts/tools/mutations.yaml)")
    parser.add_argument("--no-baseline", action="store_true", help="skip checking that the unmutated docs pass first")
    parser.add_argument("--out", type=Path, default=OUT, help="where report.json goes (default _build/mutate)")
    parser.add_argument("--record", action="store_true", help="also record the summary in docs/_data/figures.json, which the writers' page shows")
    ns = parser.parse_args(argv)
    catalogue = [m for m in load_catalogue(ns.catalogue) if not ns.k or ns.k in m.id]
    if not catalogue:
        print("no mutations selected", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mutate-snapshot-") as tmp:
        # One snapshot of docs/ for the whole run, so edits made meanwhile cannot mix into the results.
        snapshot = copy_site(REPO, Path(tmp))
        if not ns.no_baseline:
            problems = baseline(snapshot, ns.jobs, sphinx=any(m.kind in JUDGED_BY_SPHINX for m in catalogue))
            if problems:
                print("the unmutated docs already fail, so no mutation can be judged:\n  " + "\n  ".join(problems), file=sys.stderr)
                return 2
            print(f"baseline: the unmutated docs pass ({time.perf_counter() - started:.1f} s)", flush=True)
        with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
            for r in pool.map(partial(judge, source=snapshot), catalogue):
                results.append(r)
                status = r["status"] if r["expect"] == "kill" else {"killed": "FALSE", "survived": "equiv ok"}.get(r["status"], r["status"])
                print(f"{status:>8}  {r['id']:<34} {r['seconds']:5.1f} s  {show(r['find'], 40)} -> {show(r['replace'], 40)}", flush=True)
                print(f"{'':>10}{show(r['detail'], 130)}", flush=True)
    summary = summarise(results, time.perf_counter() - started, ns.jobs)
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "report.json").write_text(json.dumps({"summary": summary, "mutations": results}, indent=1))
    if ns.record and not ns.k:  # a partial run's rate is not the catalogue's
        figures.record("mutate", figures.mutate_section(summary))
    for r in results:
        if r.get("expect") == "survive":
            if r["status"] == "killed":
                print(f"FALSE ALARM {r['id']} (docs/{r['page']}:{r.get('line', '?')}): a correct rewrite failed: {r['detail']}")
        elif r["status"] == "survived":
            print(f"SURVIVED {r['id']} (docs/{r['page']}:{r.get('line', '?')}): {show(r['find'])} -> {show(r['replace'])}")
            print(f"         why: {r['why'] or 'NO REASON GIVEN: add a check or justify it'}")
        elif r["status"] == "error":
            print(f"ERROR    {r['id']}: {r['detail']}")
    print(
        f"{summary['killed']}/{summary['killed'] + summary['survived']} killed ({summary['raw_kill_rate']:.1%}); "
        f"{summary['survived']} survived, {summary['accepted_survivors']} of them accepted as harmless; "
        f"kill rate without those {summary['kill_rate']:.1%} (required {REQUIRED_KILL_RATE:.0%}); "
        f"{summary['false_alarms']} false alarms on {summary['equivalents']} equivalent rewrites; {summary['errors']} errors; "
        f"wall {summary['wall_seconds']} s with -j {ns.jobs}; report: {ns.out / 'report.json'}"
    )
    scored = summary["killed"] + summary["survived"] - summary["accepted_survivors"]
    low = scored > 0 and summary["kill_rate"] < REQUIRED_KILL_RATE  # a run of equivalents alone has no kill rate
    return 1 if summary["errors"] or summary["false_alarms"] or low else 0


if __name__ == "__main__":
    sys.exit(main())
