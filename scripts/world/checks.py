"""Effect checks named by page annotations (`% test: check NAME k=v`), run inside the world by the executor.

Each check looks at what a step left behind (files, keys, the stand-ins' world state, the fakes) and
returns (ok, detail). They use the real parsers: python-dotenv, PyYAML, cryptography, python-jose,
the real caddy binary, and Authlib for the end-to-end sign-in.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import pydantic
import yaml
from dotenv.parser import parse_stream

from scripts.world import caddy, compose
from scripts.world.images import reflector
from scripts.world.state import CADDY_CONTAINER, Container, read_engine, read_state

Result = tuple[bool, str]
Check = Callable[[dict[str, str], Path, Path], Result]
CHECKS: dict[str, Check] = {}
# How a page names each check: its arguments, and whether it runs after a step (`check`) or before it
# (`before`: what the reader does outside the terminal). The writers' page renders this registry
# (the docstrings and these usages) with scripts/sphinxext/writers.py, so the two cannot drift.
USAGE: dict[str, tuple[str, str]] = {}


# What a check imports on its first use (its function-local imports, each with its reason): a world
# that waits for the state it starts from loads them meanwhile (`prepare`), not when its step is due.
LOADS: dict[str, tuple[str, ...]] = {}


def check(name: str, usage: str, *, annotation: str = "check", loads: tuple[str, ...] = ()) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        USAGE[name] = (annotation, usage)
        LOADS[name] = loads
        return fn

    return register


def prepare(names: Sequence[str]) -> list[str]:
    """Import what the named checks load on first use; the modules it imported (unknown names are left to run_check to report)."""
    loaded = []
    for module in dict.fromkeys(m for name in names for m in LOADS.get(name, ())):
        if module not in sys.modules:
            importlib.import_module(module)
            loaded.append(module)
    return loaded


def run_check(name: str, args: dict[str, str], home: Path, world: Path) -> Result:
    """Run the named check; an unknown name or a missing argument is a failure that says so."""
    fn = CHECKS.get(name)
    if fn is None:
        return False, f"unknown check {name!r}; known: {', '.join(sorted(CHECKS))}"
    try:
        return fn(args, home, world)
    except KeyError as e:
        return False, f"check {name} needs the argument {e.args[0]}"
    except Exception as e:  # noqa: BLE001 - a check that crashes reports why, as a failure
        return False, f"{type(e).__name__}: {e}"


def expand(path: str, home: Path) -> Path:
    """`~/x` and relative paths are the deployer's: relative to HOME."""
    if path.startswith("~/"):
        return home / path[2:]
    p = Path(path)
    return p if p.is_absolute() else home / p


# ---------------------------------------------------------------------------------------------
# .env files
# ---------------------------------------------------------------------------------------------


def env_lines(path: Path) -> list[tuple[str, str]]:
    """KEY=VALUE pairs in file order, parsed by python-dotenv (no interpolation: compose does its own)."""
    with path.open() as f:
        return [(b.key, b.value or "") for b in parse_stream(f) if b.key is not None and not b.error]


def compose_env(path: Path) -> dict[str, str]:
    """The values Docker Compose reads from this .env (its own parser, run on the file)."""
    return compose.env_file(path)


ALPHABETS = [(re.compile(r"^[0-9a-f]+$"), 16), (re.compile(r"^[0-9A-Za-z+/]+=*$"), 64), (re.compile(r"^[0-9A-Za-z_-]+$"), 64)]


def entropy_bits(value: str) -> float:
    """Bits in a random secret, from its length and the smallest alphabet that explains it."""
    for pattern, size in ALPHABETS:
        if pattern.match(value):
            body = value.rstrip("=")
            return len(body) * math.log2(size)
    return len(value) * math.log2(94)


@check("env-secrets", "file=PATH keys=A,B [min_bits=256]")
def env_secrets(args: dict[str, str], home: Path, world: Path) -> Result:
    """Each key is set in the `.env` file, holds generated random text (not a literal `$(…)`), and has at least `min_bits` bits (default 256)."""
    path = expand(args["file"], home)
    if not path.exists():
        return False, f"{args['file']} does not exist"
    min_bits = int(args.get("min_bits", "256"))
    values = compose_env(path)
    for key in args["keys"].split(","):
        value = values.get(key)
        if not value:
            return False, f"{key} is missing or empty in {args['file']}"
        if "$(" in value or "`" in value:
            return False, f"{key} in {args['file']} holds the literal text {value!r}: the command was not run (a quoted heredoc?)"
        bits = entropy_bits(value)
        if bits < min_bits:
            return False, f"{key} in {args['file']} has about {bits:.0f} bits, fewer than {min_bits}"
    return True, f"{args['keys']} set with >= {min_bits} bits each"


@check("env-unique", "file=PATH")
def env_unique(args: dict[str, str], home: Path, world: Path) -> Result:
    """No key appears twice in the `.env` file (Compose keeps the last, so a duplicate hides which value is live)."""
    path = expand(args["file"], home)
    seen: dict[str, int] = {}
    for key, _ in env_lines(path):
        seen[key] = seen.get(key, 0) + 1
    dupes = sorted(k for k, n in seen.items() if n > 1)
    return (not dupes, f"{args['file']} has duplicated keys: " + ", ".join(dupes) if dupes else f"every key once in {args['file']}")


# Settings that the program reads as a boolean, so any spelling it reads the same way is the same setting:
# Reflector's backend parses them with pydantic (server/reflector/settings.py, `PUBLIC_MODE: bool`,
# `CORS_ALLOW_CREDENTIALS: bool`), its frontend takes only the exact string "true" as true
# (www/app/lib/clientEnv.ts parseBooleanString, for every FEATURE_* flag). Both at Reflector 0.34.0.
PYDANTIC_BOOLS = frozenset({"PUBLIC_MODE", "CORS_ALLOW_CREDENTIALS"})


def read_as_program(key: str, value: str | None) -> object:
    """The value as the program that reads `key` understands it; an unparsable bool stays its text."""
    if value is None:
        return None
    if key.startswith("FEATURE_"):
        return value == "true"
    if key in PYDANTIC_BOOLS:
        try:
            return pydantic.TypeAdapter(bool).validate_python(value)
        except pydantic.ValidationError:
            return value
    return value


@check("env-has", "file=PATH KEY=VALUE …")
def env_has(args: dict[str, str], home: Path, world: Path) -> Result:
    """The keys have these effective values in the `.env` file (the last one of each, as Compose reads it), compared as the
    program reads them: `FEATURE_REQUIRE_LOGIN=no` is the frontend's false, `PUBLIC_MODE=1` the backend's true."""
    name = args.pop("file")
    values = compose_env(expand(name, home))
    for key, want in args.items():
        got = values.get(key)
        if read_as_program(key, got) != read_as_program(key, want):
            return False, f"{key} is {got!r} in {name}, which the program does not read as {want!r}"
    return True, f"values match in {name}"


@check("file-mode", "file=PATH mode=600")
def file_mode(args: dict[str, str], home: Path, world: Path) -> Result:
    """The file has exactly this mode (octal)."""
    path = expand(args["file"], home)
    want = int(args["mode"], 8)
    if not path.exists():
        return False, f"{args['file']} does not exist"
    mode = stat.S_IMODE(path.stat().st_mode)
    return (mode == want, f"{args['file']} has mode {mode:o}, expected {want:o}")


@check("file-exists", "file=PATH")
def file_exists(args: dict[str, str], home: Path, world: Path) -> Result:
    """The file exists and is not empty."""
    path = expand(args["file"], home)
    if not path.is_file() or path.stat().st_size == 0:
        return False, f"{args['file']} is missing or empty"
    return True, f"{args['file']} has {path.stat().st_size} bytes"


# ---------------------------------------------------------------------------------------------
# Compose, Caddy, networks (the stand-ins' world state)
# ---------------------------------------------------------------------------------------------


def state(world: Path) -> dict[str, Any]:
    """The state file as JSON (the fakes' sections)."""
    return read_state(world)


def running(world: Path, name: str) -> Container | None:
    """The container named `name`, whatever its state."""
    return read_engine(world).container_named(name)


@check("compose-file", "file=PATH [services=server,worker,postgresql]")
def compose_file(args: dict[str, str], home: Path, world: Path) -> Result:
    """The file is a Compose file with these services (Authentik's, by default), not an HTML page or the text of a redirect."""
    path = expand(args["file"], home)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        return False, f"{args['file']} is not YAML: {e}"
    services = set((doc or {}).get("services", {}) if isinstance(doc, dict) else ())
    want = set(args.get("services", "server,worker,postgresql").split(","))
    if not want <= services:
        return False, f"{args['file']} has services {sorted(services)}, expected {sorted(want)}"
    return True, f"services {sorted(services)}"


@check("network-attached", "container=NAME network=NAME")
def network_attached(args: dict[str, str], home: Path, world: Path) -> Result:
    """The container is attached to the network."""
    c = running(world, args["container"])
    if c is None:
        return False, f"no container {args['container']}"
    nets = sorted(c.endpoints)
    attached = args["network"] in nets
    return (attached, f"{args['container']} is on {nets}" + ("" if attached else f", not on {args['network']}"))


@check("container-status", "container=NAME [status=running]")
def container_status(args: dict[str, str], home: Path, world: Path) -> Result:
    """The container is in that state (running, exited or restarting)."""
    c = running(world, args["container"])
    got = c.run.status if c else "absent"
    want = args.get("status", "running")
    return (got == want, f"{args['container']} is {got}" + ("" if got == want else f", expected {want}"))


@check("containers-current", "[dir=~/reflector] [file=docker-compose.prod.yml]")
def containers_current(args: dict[str, str], home: Path, world: Path) -> Result:
    """Every running container of the Compose project has the configuration that its compose file and `.env` files give now (none was left on old settings).

    A container keeps the environment it was created with: a step that edits an .env file and
    recreates only some services leaves the others on stale settings (beat, typically). What the
    files give is compose's own resolution (`docker compose config`); what runs is the engine's record."""
    directory = expand(args.get("dir", "~/reflector"), home)
    model = compose.project(directory, args.get("file", "docker-compose.prod.yml"), ["caddy"])
    engine = read_engine(world)
    stale = []
    for c in sorted(engine.containers.values(), key=lambda c: c.name):
        service = model["services"].get(c.service)
        if c.project != model["name"] or service is None or c.run.status not in {"running", "restarting"}:
            continue
        image = engine.images.get(c.image_id)
        expected = dict(e.split("=", 1) for e in (image.config.get("Env") or []) if "=" in e) if image else {}
        expected |= {k: v for k, v in (service.get("environment") or {}).items() if v is not None}
        if c.env != expected or service.get("image") not in (None, c.image):
            stale.append(c.name)
    if stale:
        return False, f"{', '.join(stale)} still run(s) an older configuration than the compose and .env files give: recreate them"
    return True, f"every container of {model['name']} is current"


@check("public-data-retention", "days=N [container=reflector-beat-1]")
def public_data_retention(args: dict[str, str], home: Path, world: Path) -> Result:
    """Public mode is on in the running beat, and its nightly clean-up uses the retention the step means, set explicitly.

    Reflector 0.34.0's worker/app.py adds `cleanup_old_public_data` at 03:00 UTC when PUBLIC_MODE is
    true; it deletes every transcript without an owner (without sign-in: all of them) older than
    PUBLIC_DATA_RETENTION_DAYS, 7 by default (settings.py). A step that turns public mode on must
    choose that number, not inherit it. `days=N` is the retention the page means. With public mode
    off nothing is scheduled, which is not what such a step does: the check fails there too, so it
    shows the step's effect (scripts/reader.py starts-from runs it before the step)."""
    beat = read_engine(world).container_named(args.get("container", "reflector-beat-1"))
    if beat is None or not beat.running:
        return False, f"{args.get('container', 'reflector-beat-1')} is not running, so nothing tells what it schedules"
    settings = reflector.Settings.of(beat.env)
    if not settings.PUBLIC_MODE:
        return False, f"public mode is off in {beat.name}: it schedules no clean-up of public data, so the {args['days']} days are not in force"
    explicit = any(k.lower() == "public_data_retention_days" for k in beat.env)
    days = settings.PUBLIC_DATA_RETENTION_DAYS
    if not explicit:
        return False, (
            f"PUBLIC_MODE is on in {beat.name}: every night at {reflector.CLEANUP_HOUR_UTC:02d}:00 UTC it deletes each transcript without an owner "
            f"older than {days} days, the default, which the page never chose; set PUBLIC_DATA_RETENTION_DAYS={args['days']}"
        )
    if days != int(args["days"]):
        return False, f"{beat.name} deletes ownerless transcripts after {days} days, not the {args['days']} the page means"
    return True, f"{beat.name} deletes ownerless transcripts older than {days} days, nightly at {reflector.CLEANUP_HOUR_UTC:02d}:00 UTC"


@check("caddy-route", "host=HOST upstream=NAME:PORT")
def caddy_route(args: dict[str, str], home: Path, world: Path) -> Result:
    """The configuration Caddy has loaded (on its last start or reload) sends the host to the upstream."""
    c = running(world, CADDY_CONTAINER)
    routes = dict(c.routes) if c is not None and c.running else {}
    got = routes.get(args["host"])
    return (got == args["upstream"], f"Caddy routes {args['host']} to {got!r} (all: {routes})")


# ---------------------------------------------------------------------------------------------
# Keys and tokens
# ---------------------------------------------------------------------------------------------


@check("public-key", "file=PATH [fresh=yes]", loads=("cryptography.hazmat.primitives.serialization", "jose.jwt", "scripts.world.fakes.tls"))
def public_key(args: dict[str, str], home: Path, world: Path) -> Result:
    """The step wrote the PEM file (unless `fresh=no`), and it is a public key that verifies a token signed by the fake Authentik, as Reflector's backend would."""
    # Only this check needs them; at module level they would add about 0.3 s to every world's first check.
    from cryptography.hazmat.primitives import serialization
    from jose import jwt

    from scripts.world.fakes import tls

    path = expand(args["file"], home)
    pem = path.read_bytes() if path.exists() else b""
    if not pem.strip():
        return False, f"{args['file']} is missing or empty"
    try:
        serialization.load_pem_public_key(pem)
    except ValueError as e:
        return False, f"{args['file']} is not a PEM public key: {e}"
    if args.get("fresh", "yes") == "yes" and not written_by_last_step(path, world):
        return False, f"{args['file']} was not written by this step (a key left by an earlier step proves nothing about this one)"
    token = jwt.encode({"sub": "check", "aud": "check"}, tls.signing_key(world).private_key, algorithm="RS256")
    try:
        jwt.decode(token, pem.decode(), algorithms=["RS256"], audience="check")
    except Exception as e:  # noqa: BLE001 - python-jose raises several kinds; the message is the point
        return False, f"the key in {args['file']} does not verify Authentik's tokens: {e}"
    return True, "verifies a token signed by Authentik's signing key"


def provider_of(st: dict[str, Any], slug: str) -> dict[str, Any]:
    """The provider record behind an application slug in the fake Authentik's state."""
    ak = st.get("authentik", {})
    app = ak.get("applications", {}).get(slug) or {}
    provider: dict[str, Any] = ak.get("providers", {}).get(str(app.get("provider")), {})
    return provider


def written_by_last_step(path: Path, world: Path) -> bool:
    """The file changed during the step just run: the executor writes each step's script file just before running it."""
    scripts = list((world / "snippets").glob("*.sh"))
    if not scripts:
        return False  # no step has run: nothing can have been written by one (pass fresh=no by hand)
    started = max(p.stat().st_mtime_ns for p in scripts)
    return path.stat().st_mtime_ns >= started


@check("provider-scopes", "slug=SLUG scopes=a,b [signing_key=yes]", loads=("scripts.world.fakes.authentik",))
def provider_scopes(args: dict[str, str], home: Path, world: Path) -> Result:
    """The application's provider is confidential, matches redirect URIs strictly, has these scope mappings and a signing key (so tokens are RS256)."""
    from scripts.world.fakes import authentik  # only this check reads Authentik's model: 0.15 s to import

    summary = authentik.provider_summary(state(world), args["slug"])
    if summary is None:
        return False, f"no application with slug {args['slug']}"
    provider = provider_of(state(world), args["slug"])
    if provider.get("client_type") != "confidential":
        return False, f"the provider's client type is {provider.get('client_type')!r}: Reflector's frontend authenticates with a secret (confidential)"
    modes = {u.get("matching_mode") for u in provider.get("redirect_uris", [])}
    if modes != {"strict"}:
        return False, f"redirect URIs should match strictly, found matching modes {sorted(map(str, modes))}"
    missing = sorted(set(args["scopes"].split(",")) - set(summary["scopes"]))
    if missing:
        return False, f"provider lacks scope mappings {missing} (has {summary['scopes']})"
    if args.get("signing_key", "yes") == "yes" and not summary["signing_key"]:
        return False, "provider has no signing key: tokens would be HS256 and JWKS empty"
    return True, f"scopes {summary['scopes']}"


# ---------------------------------------------------------------------------------------------
# Config fences: apply and verify
# ---------------------------------------------------------------------------------------------


def subset(shown: Any, actual: Any) -> str | None:
    """None if `shown` is contained in `actual` (dicts by key, lists by item), else where it differs."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return f"expected a mapping, found {actual!r}"
        for k, v in shown.items():
            if k not in actual:
                return f"missing key {k!r}"
            why = subset(v, actual[k])
            if why:
                return f"{k}: {why}"
        return None
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return f"expected a list, found {actual!r}"
        for item in shown:
            if not any(subset(item, a) is None for a in actual):
                return f"{item!r} not found in {actual!r}"
        return None
    return None if shown == actual else f"{shown!r} != {actual!r}"


@check("config-contains", "file=PATH content=TEXT format=env|yaml|caddyfile", annotation="verify")
def config_contains(args: dict[str, str], home: Path, world: Path) -> Result:
    """Every key, item or site the block shows is in the file (what `% test: verify PATH` runs)."""
    path = expand(args["file"], home)
    if args["format"] == "yaml":
        shown = yaml.safe_load(args["content"])
        actual = yaml.safe_load(path.read_text())
        if isinstance(actual, dict) and "services" in actual and isinstance(shown, dict) and "services" not in shown:
            actual = actual["services"]
        why = subset(shown, actual)
        return (why is None, f"{args['file']}: {why}" if why else f"every key shown is in {args['file']}")
    if args["format"] == "env":
        shown_env = {b.key: b.value for b in parse_stream(StringIO(args["content"])) if b.key}
        actual_env = dict(env_lines(path))
        diff = [k for k, v in shown_env.items() if actual_env.get(k) != v]
        return (not diff, f"{args['file']} differs for {diff}" if diff else f"every key shown is in {args['file']}")
    if args["format"] == "caddyfile":
        shown_routes = caddy_routes(args["content"])
        if not shown_routes:
            return False, "the fence shows no site that proxies anywhere: nothing to verify"
        file_routes = caddy_routes(path.read_text())
        missing = sorted(shown_routes - file_routes)
        return (not missing, f"{args['file']} lacks {missing} (has {sorted(file_routes)})" if missing else f"every site shown is in {args['file']}")
    return False, f"cannot verify format {args['format']}"


def caddy_routes(text: str) -> set[tuple[str, str]]:
    """(host, upstream) pairs of a Caddyfile, as the real `caddy adapt` reads it in the caddy container (no env)."""
    routes, error = caddy.adapt(text)
    if error is not None:
        raise ValueError(f"caddy adapt rejects it: {error}")
    return set(routes.items())


def validate(path: Path, fmt: str) -> str | None:
    """Validate a config file with the real parser for its format; None when valid."""
    text = path.read_text()
    if fmt == "env":
        bad = [b.original.line for b in parse_stream(StringIO(text)) if b.error]
        return f"python-dotenv cannot parse line(s) {bad}" if bad else None
    if fmt == "yaml":
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as e:
            return f"PyYAML: {e}"
        return None
    if fmt == "caddyfile":
        return caddy.adapt(text)[1]
    return f"unknown format {fmt}"


def apply_config(path: str, content: str, fmt: str, mode: str, home: Path, world: Path) -> Result:
    """Apply a config fence to the world file (in place, keeping its inode), then validate it."""
    target = expand(path, home)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.read_text() if target.exists() else ""
    if mode == "replace":
        new = content
    elif mode == "append":
        new = old + ("" if old.endswith("\n") or not old else "\n") + content
    elif mode == "merge" and fmt == "env":
        updates = {b.key: b.original.string.rstrip("\n") for b in parse_stream(StringIO(content)) if b.key}
        lines, done = [], set()
        for b in parse_stream(StringIO(old)):
            if b.key in updates:
                if b.key not in done:
                    lines.append(updates[b.key])
                    done.add(b.key)
                continue
            lines.append(b.original.string.rstrip("\n"))
        lines += [v for k, v in updates.items() if k not in done]
        new = "\n".join(lines) + "\n"
    else:
        return False, f"mode {mode} is not supported for {fmt}"
    with target.open("r+" if target.exists() else "w") as f:  # rewrite in place: bind mounts keep seeing it
        f.seek(0)
        f.write(new)
        f.truncate()
    why = validate(target, fmt)
    return (why is None, why or f"applied to {path} ({mode}) and valid {fmt}")


# ---------------------------------------------------------------------------------------------
# End to end: sign in with the configuration the pages produced
# ---------------------------------------------------------------------------------------------


@check("sign-in", "", loads=("scripts.world.e2e",))
def sign_in(args: dict[str, str], home: Path, world: Path) -> Result:
    """End to end: an OIDC client signs in with the settings of the running `web` container,
    the API accepts the app's cross-origin preflight (CORS), `/v1/me` answers with the token,
    the token refreshes, and an API key works."""
    from scripts.world import e2e  # requests and authlib: 0.6 s to import, for the two checks that sign in

    return e2e.sign_in(home, world)


@check("ui-create-api-key", "name=NAME file=PATH", annotation="before", loads=("scripts.world.e2e",))
def ui_create_api_key(args: dict[str, str], home: Path, world: Path) -> Result:
    """The reader's browser step: sign in to Reflector, Settings > Create API Key, and save the key shown into the file (with an editor's default mode)."""
    from scripts.world import e2e  # requests and authlib: 0.6 s to import, for the two checks that sign in

    try:
        key = e2e.create_api_key(e2e.log_in(world), args["name"])
    except e2e.SignInError as e:
        return False, str(e)
    target = expand(args["file"], home)
    if not target.parent.is_dir():  # an editor cannot save into a folder that does not exist
        return False, f"[ Directory '{target.parent}' does not exist ] (nano cannot save {args['file']})"
    target.write_text(key + "\n")  # an editor's save: default umask, as the page then fixes
    return True, f"created key {args['name']!r} and saved it to {args['file']}"


def main() -> None:
    """`python -m scripts.world.checks NAME k=v ...` inside a kept world, for a writer debugging a check."""
    name, *rest = sys.argv[1:]
    args = dict(a.split("=", 1) for a in rest)
    ok, detail = run_check(name, args, Path(os.environ["HOME"]), Path(os.environ.get("WORLD", "/run/world")))
    print(json.dumps({"ok": ok, "detail": detail}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
