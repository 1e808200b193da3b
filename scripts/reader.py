"""Run a page as readers really use it: a new terminal at each section, every block twice, worlds where its results must not hold, other values, other starts.

The plain run (scripts/check.py, tests/test_docs.py) proves that a page works for a reader who runs
every block once, in one terminal, with the guide's example values, from the fixture's state. Each
ability here drops one of those assumptions, and is available to every page through its annotations
(docs/testing.md lists them):

- new terminal (`% test: new-terminal` on the block a new terminal runs first): for each section,
  the rest of the page runs after a new terminal is opened there (the shell forgets everything, the
  server keeps everything), and must end with the same settings and secrets as the plain run;
- run twice (every shell block; `% test: again exit=N says=TEXT` for a block that refuses a second
  run on purpose): each block run twice in a row passes again (or fails as the page says), and the
  second run changes no secret or key that is already in use;
- counter-worlds (`% test: counter WORLD`): a step that shows the reader that something works is run
  again in a world where it does not (COUNTER_WORLDS), and what the reader would see must differ;
- other values: the page runs with OTHER_VALUES instead of the examples, in a world that serves them;
- starts-from (`% test: starts-from STATE`, scripts/check.py START_STATES): the page runs from each
  state its reader may be in, and each of its effect checks must fail before its step and pass after.

Snapshots (scripts/replay.py) carry a world from one point of a run to a fresh world, so no ability
replays a page's beginning more than once.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scripts import replay
from scripts import snippets as sn
from scripts.check import DEFAULT_TIMEOUT, REPO, START_STATES, PageRun, Status, match_output, pages_dir, tail
from scripts.sandbox import World

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
            "cd ~/reflector && sed -i -e '/^AUTH_BACKEND=/d' -e '/^AUTH_JWT_PUBLIC_KEY=/d' server/.env"
            f" && echo AUTH_BACKEND=jwt >> server/.env && {_RECREATE_BACKEND}"
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

# Every file a step of the guide writes, read in one subshell (cwd and variables stay as they are).
_FINGERPRINT = r"""(
cd ~ || exit 1
find . -type f \( -name .env -o -name '*.pem' -o -name Caddyfile -o -name '*.yml' -o -name '*.sh' -o -name 'api-key*' \) \
  -not -path './.cache/*' | LC_ALL=C sort | while IFS= read -r f; do printf '\036%s\n' "$f"; cat "$f"; done
printf '\036authentik:providers\n'
jq -cS '.authentik.providers // {}' "$WORLD/state.json"
)
"""
# Settings that hold something generated during setup: secrets, keys, and the client ID (random when the
# provider is made with curl) with the audience that must equal it.
_SECRET_KEY = re.compile(r"SECRET|PASS|TOKEN|_KEY$|CLIENT_ID$|AUDIENCE$")


def fingerprint(world: World) -> dict[str, str]:
    """Flat entries for what the world holds: `FILE:KEY` for .env settings, `FILE` (sha256) for other files,
    `authentik:provider:NAME:FIELD` for Authentik's providers."""
    r = world.run("reader:fingerprint", _FINGERPRINT, DEFAULT_TIMEOUT)
    if r.rc != 0:
        raise RuntimeError(f"reading the world's files failed (exit {r.rc}):\n{tail(r.output)}")
    entries: dict[str, str] = {}
    for chunk in r.output.split("\x1e")[1:]:
        name, _, body = chunk.partition("\n")
        if name == "authentik:providers":
            for provider in (json.loads(body or "{}") or {}).values():
                for key, value in provider.items():
                    entries[f"authentik:provider:{provider.get('name')}:{key}"] = json.dumps(value, sort_keys=True)
        elif name.endswith(".env"):
            for key, value in _env_pairs(body):
                entries[f"{name}:{key}"] = value
        else:
            entries[name] = hashlib.sha256(body.encode()).hexdigest()
    return entries


def _env_pairs(text: str) -> list[tuple[str, str]]:
    from io import StringIO

    from dotenv.parser import parse_stream

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
        run.world = World.start(REPO, rename=renames)
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


def new_terminal(page: sn.Page, root: Path = REPO) -> list[Case]:
    """For each break: after a new terminal opened there, the section's steps pass and leave the world as the plain run does.

    Only that section runs after its break: a step that needs shell state from an earlier section
    fails at the break just before its own section, and what a section writes is compared at its end,
    so running the rest of the page after every break would find nothing more, at many times the cost.
    """
    probe = PageRun(page, root=root)
    steps = probe.steps()
    resume = next(s for s in steps if s.new_terminal)
    points = breaks(page, steps)
    at = {i: label for label, i in points}
    ends = [*[i for _, i in points][1:], len(steps)]
    seen: dict[int, tuple[replay.Snapshot | None, dict[str, str]]] = {}
    with running(page, root=root) as run:
        if run.startup_error:
            return [Case(page.path, "skipped", run.startup_error)]
        assert run.world is not None
        for i, s in enumerate(steps):
            if i in at or i in ends:
                seen[i] = (replay.snapshot(run.world) if i in at else None, fingerprint(run.world))
            v = run.step(s)
            if v.status == "failed":
                return [plain_failure(run, v)]
        seen[len(steps)] = (None, fingerprint(run.world))
    cases = []
    for (label, i), end in zip(points, ends, strict=True):
        snap, at_break = seen[i]
        assert snap is not None
        with restored(page, snap, root=root) as run:
            assert run.world is not None
            replay.fresh_shell(run.world)
            first = run.execute(resume)
            if first.status == "failed":
                cases.append(Case(label, "failed", f"the new terminal's first block {resume.id} failed: {first.reason}"))
                continue
            failed = next((v for v in (run.step(s) for s in steps[i:end]) if v.status == "failed"), None)
            if failed is not None:
                cases.append(Case(label, "failed", f"in a new terminal opened at {label}, {failed.snippet.id} failed: {failed.reason}"))
                continue
            problems = compare_worlds(seen[end][1], at_break, fingerprint(run.world))
        if problems:
            cases.append(Case(label, "failed", f"a new terminal at {label} leaves other settings than the plain run: " + "; ".join(problems)))
        else:
            cases.append(Case(label, "passed"))
    return cases


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
