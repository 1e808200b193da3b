"""Run a page as readers really use it: a new terminal at each section, every block twice, worlds where its results must not hold, other values, other starts.

The plain run (scripts/check.py, tests/test_docs.py) proves that a page works for a reader who runs
every block once, in one terminal, with the guide's example values, from the fixture's state. Each
ability here drops one of those assumptions, and is available to every page through its annotations
(docs/testing.md lists them):

- new terminal (`% test: new-terminal` on the block a new terminal runs first): for each section,
  the rest of the page runs after a new terminal is opened there (the shell forgets everything, the
  server keeps everything), and must pass and end with the same settings and secrets as the plain run;
- run twice (every shell block; `% test: again exit=N says=TEXT` for a block that refuses a second
  run on purpose): each block run twice in a row passes again (or fails as the page says), and the
  second run changes no secret or key that is already in use;
- counter-worlds (`% test: counter WORLD`): a step that shows the reader that something works is run
  again in a world where it does not (COUNTER_WORLDS), and what the reader would see must differ;
- other values: the page runs with OTHER_VALUES set in its values block (every other command copied as it
  stands), in a world that serves those names and has none for the examples;
- starts-from (`% test: starts-from STATE`, scripts/check.py START_STATES): the page runs from each
  state its reader may be in, and each of its effect checks must fail before its step and pass after.

Snapshots (scripts/replay.py) carry a world from one point of a run to a fresh world, so no ability
replays a page's beginning more than once.

New terminal: why a rest-of-page run may stop at a later break
---------------------------------------------------------------
For the break before section k, run R_k restores the plain run's world there, drops the shell, runs
the page's new-terminal block, then every step to the end of the page. It passes when every step
passes and compare_worlds(plain end, plain world at the break, R_k's end) finds nothing: settings
identical, secrets that existed at the break identical, values drawn after it of the same shape.

Running every R_k to the end costs a number of sections that grows with their square. So the breaks
run from the last to the first, and R_k stops at a later break j as soon as its state there matches
S_j, the state that R_j has after its new-terminal block (scripts/equivalence.py match()): there is
a one-to-one renaming p of drawn values (secrets, keys, IDs, clock readings), the identity on every
value that the plain world held at break k, that turns R_k's state into S_j, where the state is

1. the world: every path a snapshot carries, with its kind, mode and content (records that nothing
   reads left out; a bind mount's inode number replaced by the path it numbers), and
2. the part of the shell that the remaining steps can read (equivalence.relevance()): the carried
   options (unless the next step sets them first), umask, the cwd (unless the next step first cds to
   an absolute directory that exists), every exported variable and function, the variables bash
   reads by itself, and every variable and function whose name the remaining steps spell, or the
   files they source, or the bodies and values so named, to a fixed point (all of them when a step
   can read names it doesn't spell: eval, ${!...}, a bare `set`, a file sourced by a computed path).

Then the rest of R_k is the rest of R_j with p undone, because
(a) a step starts from exactly the shell state that was read (the executor restores it from its
    saved session, scripts/world/executor.py) and from exactly the world its snapshot carries (the
    premise of scripts/replay.py), and it can read no other part of the shell than (2) says;
(b) the same steps run from there (R_k and R_j both go on with the steps after break j); and
(c) programs use drawn values as opaque tokens (they copy them, compare them, derive from them by
    the same functions), so renaming every drawn value renames the whole run, and a value R_k would
    draw later is as good as the one R_j drew.
R_k therefore fails where R_j fails, and otherwise ends with R_j's end under p undone; the ability
computes that end (equivalence.rename) and judges it by R_k's own rule above. As p keeps every value
the world held at break k, a run that replaced a secret in use at the break never matches: it goes
on to the end and compare_worlds names the secret. R_j is judged in its own right.

What (2) assumes: no program but bash reads OLDPWD from its environment (it counts only where `cd -`
or `~-` can read it), and a step's aliases, traps and other options are not carried by the executor,
so no run sees them. REFLECTOR_NEW_TERMINAL_MEMO=0 runs every R_k to the end, to compare or to rule
the stopping out.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from io import StringIO
from pathlib import Path, PurePosixPath
from typing import Any

from dotenv.parser import parse_stream

from scripts import equivalence as eq
from scripts import replay
from scripts import snippets as sn
from scripts.check import DEFAULT_TIMEOUT, REPO, START_STATES, PageRun, Status, match_output, pages_dir, tail
from scripts.sandbox import HOME, WORLD, World

ABILITIES = ("new-terminal", "run-twice", "counter-worlds", "other-values", "starts-from")

OTHER_VALUES: dict[str, str] = {
    "AUTHENTIK_URL": "https://sso.acme-meetings.test",
    "APP_URL": "https://meet.acme-meetings.test",
    "API_URL": "https://meet-api.acme-meetings.test",
    "ADMIN_EMAIL": "it-team@acme-meetings.test",
}
"""Another reader's values: other hostnames under another domain (RFC 2606 `.test`), another email."""


@dataclass(frozen=True, slots=True)
class CounterWorld:
    """A world where something a page shows does not hold, made from the world just before that step."""

    description: str
    script: str = ""  # run in the world's terminal, in a subshell (the reader's shell state stays)
    fault: str | None = None  # a fault of the fakes (scripts/world/fakes/server.py FAULTS)
    checks: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # reader's browser steps (scripts/world/checks.py)


_RECREATE_BACKEND = "docker compose -f docker-compose.prod.yml up -d --wait --force-recreate server worker beat"

COUNTER_WORLDS: dict[str, CounterWorld] = {
    "reflector-down": CounterWorld(
        "Reflector's stack is stopped",
        script="cd ~/reflector && docker compose -f docker-compose.prod.yml --profile caddy stop",
    ),
    "authentik-down": CounterWorld("Authentik's server does not answer (Caddy gets no connection)", fault="authentik-down"),
    "authentik-off-network": CounterWorld(
        "authentik-server-1 is not attached to reflector_default (it was recreated)",
        script="docker network disconnect reflector_default authentik-server-1",
    ),
    "sign-in-off": CounterWorld(
        "the backend has sign-in off (AUTH_BACKEND=none)",
        script=f"cd ~/reflector && sed -i 's/^AUTH_BACKEND=.*/AUTH_BACKEND=none/' server/.env && {_RECREATE_BACKEND}",
    ),
    "sign-in-on": CounterWorld(
        "the backend has sign-in on (AUTH_BACKEND=jwt, with the key the checkout ships)",
        script=(
            f"cd ~/reflector && sed -i -e '/^AUTH_BACKEND=/d' -e '/^AUTH_JWT_PUBLIC_KEY=/d' server/.env && echo AUTH_BACKEND=jwt >> server/.env && {_RECREATE_BACKEND}"
        ),
    ),
    "public-mode-off": CounterWorld(
        "the backend refuses anonymous lists (PUBLIC_MODE=false)",
        script=f"cd ~/reflector && sed -i 's/^PUBLIC_MODE=.*/PUBLIC_MODE=false/' server/.env && {_RECREATE_BACKEND}",
    ),
    "fresh-api-key": CounterWorld(
        "the header file holds a key that was not revoked",
        checks=(("ui-create-api-key", (("name", "Counter key"), ("file", "~/.config/reflector/api-key"))),),
        script="umask 077 && printf 'X-API-Key: %s\\n' \"$(tr -d '[:space:]' < ~/.config/reflector/api-key)\" > ~/.config/reflector/api-key.header",
    ),
}


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One judged case of an ability: where (a step or a section), its status, and why."""

    at: str
    status: Status
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "status": self.status, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one ability found on one page."""

    ability: str
    page: str
    cases: tuple[Case, ...]
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        if any(c.status == "failed" for c in self.cases):
            return "failed"
        return "passed" if any(c.status == "passed" for c in self.cases) else "skipped"

    def failures(self) -> str:
        return "\n".join(f"{c.at}: {c.reason}" for c in self.cases if c.status == "failed")

    def as_json(self) -> dict[str, Any]:
        return {
            "ability": self.ability,
            "page": self.page,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "cases": [c.as_json() for c in self.cases],
        }


def write_outcome(outcome: Outcome, directory: Path | None = None) -> Path:
    """One JSON file per (page, ability), beside the page's plain verdicts; check.merge_report joins them."""
    out = (directory or pages_dir()) / "abilities" / f"{outcome.page.replace('/', '__')}__{outcome.ability}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome.as_json(), indent=1))
    return out


def applies(ability: str, page: sn.Page, root: Path = REPO) -> bool:
    """Whether the page gives the ability anything to run."""
    steps = PageRun(page, root=root).steps() if page.snippets else []
    shell = [s for s in steps if s.kind == "shell"]
    if ability == "new-terminal":
        return any(s.new_terminal for s in shell)
    if ability == "counter-worlds":
        return any(s.counters for s in shell)
    if ability == "starts-from":
        return bool(page.starts_from)
    return bool(shell)


def run_ability(ability: str, page: sn.Page, root: Path = REPO) -> Outcome:
    """Run one ability on one page (whose sources are under `root`)."""
    started = time.perf_counter()
    fn: dict[str, Callable[[sn.Page, Path], list[Case]]] = {
        "new-terminal": new_terminal,
        "run-twice": run_twice,
        "counter-worlds": counter_worlds,
        "other-values": other_values,
        "starts-from": starts_from,
    }
    cases = fn[ability](page, root)
    return Outcome(ability, page.path, tuple(cases), time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# What a world holds: settings, secrets, keys
# ---------------------------------------------------------------------------------------------

# The files a step of the guide writes (their names under HOME), and Authentik's providers.
_FINGERPRINTED = (".env", "*.pem", "Caddyfile", "*.yml", "*.sh", "api-key*")
# Settings that hold something generated during setup: secrets, keys, and the client ID (random when the
# provider is made with curl) with the audience that must equal it.
_SECRET_KEY = re.compile(r"SECRET|PASS|TOKEN|_KEY$|CLIENT_ID$|AUDIENCE$")


def fingerprint(world: World) -> dict[str, str]:
    """What the world holds now (fingerprint_of its capture)."""
    return fingerprint_of(eq.capture(world))


def fingerprint_of(cap: eq.Capture) -> dict[str, str]:
    """Flat entries for what a world holds: `FILE:KEY` for .env settings, `FILE` (sha256) for other files,
    `authentik:provider:NAME:FIELD` for Authentik's providers."""
    entries: dict[str, str] = {}
    home = HOME + "/"
    for path, node in sorted(cap.nodes.items()):
        name = f"./{path[len(home) :]}"
        if node.kind != "file" or not path.startswith(home) or name.startswith("./.cache/"):
            continue
        if not any(fnmatch.fnmatchcase(PurePosixPath(path).name, pattern) for pattern in _FINGERPRINTED):
            continue
        if name.endswith(".env"):
            for key, value in _env_pairs(node.text):
                entries[f"{name}:{key}"] = value
        else:
            entries[name] = hashlib.sha256(node.text.encode("utf-8", "surrogateescape")).hexdigest()
    state = cap.nodes.get(f"{WORLD}/state.json")
    providers = json.loads(state.text).get("authentik", {}).get("providers") or {} if state is not None else {}
    for provider in providers.values():
        for key, value in provider.items():
            entries[f"authentik:provider:{provider.get('name')}:{key}"] = json.dumps(value, sort_keys=True)
    return entries


def _env_pairs(text: str) -> list[tuple[str, str]]:
    return [(b.key, b.value or "") for b in parse_stream(StringIO(text)) if b.key is not None and not b.error]


def is_secret(entry: str) -> bool:
    """Something generated during setup: a secret, key or client ID in a .env file, a key file, a provider's client secret or signing key."""
    if entry.startswith("authentik:provider:"):
        return entry.endswith((":client_secret", ":signing_key"))
    if entry.endswith(".pem") or "api-key" in entry:
        return True
    return ".env:" in entry and bool(_SECRET_KEY.search(entry.rsplit(":", 1)[1]))


_ALPHABETS = (("hex", re.compile(r"[0-9a-f]+")), ("base64", re.compile(r"[0-9A-Za-z+/]+=*")), ("urlsafe", re.compile(r"[0-9A-Za-z_-]+")))


def _shape(value: str) -> tuple[int, str]:
    """A random value's length and the smallest alphabet that explains it (as checks.entropy_bits reads secrets)."""
    return len(value), next((name for name, pattern in _ALPHABETS if pattern.fullmatch(value)), "other")


def compare_worlds(plain_end: Mapping[str, str], at_break: Mapping[str, str], other_end: Mapping[str, str]) -> list[str]:
    """How a run interrupted at a break ended differently from the plain run; empty when they agree.

    A value the plain run had already at the break must be identical (the same secret, the same
    setting). What was generated after the break is random in both runs (a secret in a .env file, a
    key file, Authentik's object IDs and signing key, so the provider's fields and the saved public
    key): it must be there, with the same length and alphabet. Settings and other files must be identical.
    """
    problems = []
    for entry in sorted(set(plain_end) | set(other_end)):
        mine, theirs = plain_end.get(entry), other_end.get(entry)
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            problems.append(f"{entry}: {'only in the interrupted run' if mine is None else 'missing in the interrupted run'}")
            continue
        generated_later = at_break.get(entry) != mine
        random_value = entry.startswith("authentik:provider:") or is_secret(entry)
        if generated_later and random_value and _shape(mine) == _shape(theirs):
            continue
        shown = "(differs)" if is_secret(entry) else f"{mine!r} in the plain run, {theirs!r} here"
        problems.append(f"{entry}: {shown}")
    return problems


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@contextmanager
def running(page: sn.Page, **options: Any) -> Iterator[PageRun]:
    run = PageRun(page, **options)
    try:
        run.start()
        yield run
    finally:
        run.close()


@contextmanager
def restored(page: sn.Page, snap: replay.Snapshot, **options: Any) -> Iterator[PageRun]:
    """A PageRun whose fresh world is the snapshot's world (no replay of the page's beginning)."""
    run = PageRun(page, **options)
    try:
        renames = sn.value_renames(run.values(), run.mine) if run.mine else None
        run.world = World.start(REPO, rename=renames, boot=False)
        replay.restore(run.world, snap)
        yield run
    finally:
        run.close()


def plain_failure(run: PageRun, v: Any) -> Case:
    return Case(v.snippet.id, "skipped", f"the plain run fails here ({tail(v.reason, 3)}); tests/test_docs.py reports it")


# ---------------------------------------------------------------------------------------------
# New terminal
# ---------------------------------------------------------------------------------------------


def breaks(page: sn.Page, steps: list[sn.Snippet]) -> list[tuple[str, int]]:
    """Where a reader may open a new terminal: (label, index of the next step), at the page's start
    (when it continues another page) and at each section after the first new-terminal block."""
    own = [i for i, s in enumerate(steps) if s.page == page.path]
    resume = next(s for s in steps if s.new_terminal)
    found: list[tuple[str, int]] = []
    if page.continues and own:
        found.append(("the start of the page", own[0]))
    for title, line in page.sections:
        if line <= resume.line:
            continue
        nxt = next((i for i in own if steps[i].line > line), None)
        if nxt is not None and all(i != nxt for _, i in found):
            found.append((f"section {title!r} (line {line})", nxt))
    return found


@dataclass(frozen=True, slots=True)
class RestOfPage:
    """The rest of a page, run after a new terminal opened at one break."""

    start: eq.State | None  # after the new terminal's first block; None when that block failed
    end: eq.Capture | None  # the world it ends with (renamed from a later break's run when it stopped there); None when it failed
    failure: str = ""
    via: str = ""  # the later break it stopped at, its rest being that break's run


def new_terminal(page: sn.Page, root: Path = REPO) -> list[Case]:
    """For each break: after a new terminal opened there, the rest of the page passes and ends with the plain run's settings and secrets.

    The breaks run from the last to the first, so that a run can stop at a later break where it is that
    break's run up to drawn values (the module's docstring gives the argument), and be judged by that run's end.
    """
    probe = PageRun(page, root=root)
    steps = probe.steps()
    resume = next(s for s in steps if s.new_terminal)
    points = breaks(page, steps)
    labels = {i: label for label, i in points}
    snaps: dict[int, replay.Snapshot] = {}
    with running(page, root=root) as run:
        if run.startup_error:
            return [Case(page.path, "skipped", run.startup_error)]
        assert run.world is not None
        for i, s in enumerate(steps):
            if i in labels:
                snaps[i] = replay.snapshot(run.world)
            v = run.step(s)
            if v.status == "failed":
                return [plain_failure(run, v)]
        plain_end = fingerprint(run.world)
    runs: dict[int, RestOfPage] = {}
    for _, i in reversed(points):
        runs[i] = rest_of_page(page, root, steps, resume, i, snaps[i], runs, labels)
    cases = []
    for label, i in points:
        r = runs[i]
        via = f" (from {r.via} on, it is the new terminal opened there)" if r.via else ""
        if r.end is None:
            cases.append(Case(label, "failed", f"in a new terminal opened at {label}{via}, {r.failure}"))
            continue
        problems = compare_worlds(plain_end, fingerprint_of(eq.from_snapshot(snaps[i])), fingerprint_of(r.end))
        if problems:
            cases.append(Case(label, "failed", f"a new terminal at {label}{via} leaves other settings than the plain run: " + "; ".join(problems)))
        else:
            cases.append(Case(label, "passed", f"stopped at {r.via}: from there on, it is the new terminal opened there" if r.via else ""))
    return cases


def memo_enabled() -> bool:
    return os.environ.get("REFLECTOR_NEW_TERMINAL_MEMO", "1") != "0"


def rest_of_page(
    page: sn.Page, root: Path, steps: list[sn.Snippet], resume: sn.Snippet, i: int, snap: replay.Snapshot, later: Mapping[int, RestOfPage], labels: Mapping[int, str]
) -> RestOfPage:
    """The steps from `i` on, in the plain run's world at that break, after a new terminal's first block; it stops
    at a later break whose run starts from the same state up to drawn values (eq.match), and takes that run's end."""
    kept = eq.drawn(eq.from_snapshot(snap))  # drawn before the break: the same values in every run that starts here
    with restored(page, snap, root=root) as run:
        assert run.world is not None
        replay.fresh_shell(run.world)
        first = run.execute(resume)
        if first.status == "failed":
            return RestOfPage(None, None, f"the new terminal's first block {resume.id} failed: {first.reason}")
        start = eq.read_state(run.world)
        for n in range(i, len(steps)):
            there = later.get(n) if n > i and memo_enabled() else None
            if there is not None and there.start is not None:
                rest = [s.text for s in steps[n:] if s.kind == "shell"]
                renaming = eq.match(eq.read_state(run.world), there.start, rest, kept)
                if renaming is not None:
                    back = {theirs: mine for mine, theirs in renaming.items()}
                    end = eq.rename(there.end, back) if there.end is not None else None
                    return RestOfPage(start, end, there.failure, via=labels[n])
            v = run.step(steps[n])
            if v.status == "failed":
                return RestOfPage(start, None, f"{v.snippet.id} failed: {v.reason}")
        return RestOfPage(start, eq.capture(run.world))


# ---------------------------------------------------------------------------------------------
# Run twice
# ---------------------------------------------------------------------------------------------


def run_twice(page: sn.Page, root: Path = REPO) -> list[Case]:
    """Each shell block, run again right after it passed, passes again (or fails as the page says) and keeps every secret."""
    cases: list[Case] = []
    with running(page, root=root) as run:
        if run.startup_error:
            return [Case(page.path, "skipped", run.startup_error)]
        assert run.world is not None
        for s in run.steps():
            v = run.step(s)
            if v.status == "failed":
                return [*cases, plain_failure(run, v)]
            if s.kind != "shell" or s.skip_reason:
                continue
            before = fingerprint(run.world)
            if s.again is not None:
                r = run.world.run(s.id, s.text, s.timeout or DEFAULT_TIMEOUT)
                ok = r.rc == s.again.exit and s.again.says in r.output
                why = "" if ok else f"the second run gave exit {r.rc}, the page says exit {s.again.exit} with {s.again.says!r}:\n{tail(r.output, 5)}"
            else:
                second = run.execute(replace(s, before=()))
                ok, why = second.status == "passed", f"the second run failed: {second.reason}"
            after = fingerprint(run.world)
            changed = sorted(e for e in before if is_secret(e) and after.get(e) != before[e])
            if ok and changed:
                ok, why = False, f"the second run changed secrets or keys already in use: {', '.join(changed)}"
            cases.append(Case(s.id, "passed" if ok else "failed", "" if ok else why))
            if not ok:
                break  # the world is no longer the one the page's next steps expect
    return cases


# ---------------------------------------------------------------------------------------------
# Counter-worlds
# ---------------------------------------------------------------------------------------------


def reader_sees_success(s: sn.Snippet, rc: int | None, output: str) -> bool:
    """What the page tells the reader to expect: the exit status, and the output the page shows."""
    return rc == s.exit and (s.expected_output is None or match_output(s.expected_output, output))


def counter_worlds(page: sn.Page, root: Path = REPO) -> list[Case]:
    """Each `counter` step, in each world where what it shows does not hold, must not show it."""
    pending: list[tuple[sn.Snippet, replay.Snapshot]] = []
    with running(page, root=root) as run:
        if run.startup_error:
            return [Case(page.path, "skipped", run.startup_error)]
        assert run.world is not None
        for s in run.steps():
            if s.counters:
                pending.append((s, replay.snapshot(run.world)))
            v = run.step(s)
            if v.status == "failed":
                return [plain_failure(run, v)]
    cases = []
    for s, snap in pending:
        for c in s.counters:
            world = COUNTER_WORLDS.get(c.name)
            if world is None:
                cases.append(Case(f"{s.id} {c.name}", "failed", f"no counter-world {c.name!r}; known: {', '.join(sorted(COUNTER_WORLDS))}"))
                continue
            with restored(page, snap, root=root) as run:
                assert run.world is not None
                made = make_counter_world(run.world, world)
                if made:
                    cases.append(Case(f"{s.id} {c.name}", "failed", f"could not make the world where {world.description}: {made}"))
                    continue
                r = run.world.run(s.id, s.text, s.timeout or DEFAULT_TIMEOUT)
            if reader_sees_success(s, r.rc, r.output):
                why = f"shows the same result when {world.description}, so it does not tell the reader what the page says"
                cases.append(Case(f"{s.id} {c.name}", "failed", f"{why}:\n{tail(r.output, 5)}"))
            else:
                cases.append(Case(f"{s.id} {c.name}", "passed"))
    return cases


def make_counter_world(world: World, counter: CounterWorld) -> str:
    """Turn the world into the counter-world; an empty string when it worked, else why not."""
    for name, args in counter.checks:
        res = world.check(name, dict(args))
        if not res.ok:
            return f"{name}: {res.detail}"
    if counter.fault is not None:
        res = world.fault(counter.fault, {})
        if not res.ok:
            return f"fault {counter.fault}: {res.detail}"
    if counter.script:
        r = world.run("reader:counter-world", f"(\n{counter.script}\n)\n", DEFAULT_TIMEOUT * 3)
        if r.rc != 0:
            return f"exit {r.rc}: {tail(r.output, 5)}"
    return ""


# ---------------------------------------------------------------------------------------------
# Other values, other starting states
# ---------------------------------------------------------------------------------------------


def other_values(page: sn.Page, root: Path = REPO, mine: Mapping[str, str] = OTHER_VALUES) -> list[Case]:
    """The page, as a reader with other hostnames and email copies it, passes in a world that serves those."""
    with running(page, root=root, mine=dict(mine)) as run:
        if run.startup_error:
            return [Case(page.path, "failed", f"with other values: {run.startup_error}")]
        cases: list[Case] = []
        for s in run.steps():
            v = run.step(s)
            if v.status == "failed":
                return [*cases, Case(s.id, "failed", f"with other values ({', '.join(mine.values())}): {v.reason}")]
            cases.append(Case(s.id, v.status, v.reason if v.status != "passed" else ""))
        return cases


def starts_from(page: sn.Page, root: Path = REPO) -> list[Case]:
    """From each state the page's reader may be in: every step passes, and each of its effect checks
    fails before the step (it is not true yet) and passes after it."""
    cases: list[Case] = []
    for state in page.starts_from:
        begin = START_STATES.get(state)
        if begin is None:
            cases.append(Case(f"{page.path} from {state}", "failed", f"no starting state {state!r}; known: {', '.join(sorted(START_STATES))}"))
            continue
        with running(page, root=root, begin=begin) as run:
            if run.startup_error:
                cases.append(Case(f"{page.path} from {state}", "failed", run.startup_error))
                continue
            assert run.world is not None
            for s in run.steps():
                early = [c.name for c in s.checks if run.world.check(c.name, dict(c.args)).ok] if s.kind == "shell" else []
                v = run.step(s)
                if v.status == "failed":
                    cases.append(Case(f"{s.id} from {state}", "failed", v.reason))
                    break
                if early:
                    cases.append(Case(f"{s.id} from {state}", "failed", f"check(s) {', '.join(early)} already pass before the step: they don't show its effect"))
                    break
                cases.append(Case(f"{s.id} from {state}", "passed"))
    return cases
