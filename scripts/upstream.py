"""Upstream mode: the world's `~/reflector` made from a real Reflector checkout instead of the fixture (host side).

`python -m scripts.check --reflector PATH` sets REFLECTOR_UPSTREAM=PATH; every world this process (and the
processes it starts) makes then boots from the files of that checkout. stage() takes what the world needs:
the files issue 11 names (the compose file, the setup script, the Caddyfile and .env examples) and whatever
the compose file makes `docker compose up` read (env files, bind-mounted folders, build contexts'
Dockerfiles); anything else of the checkout (a big repository) stays out. The deployer's working copies
(`server/.env`, `www/.env`, `Caddyfile`) are made from the examples as Reflector's own deployment guide
says (docs/docs/installation/overview.md at v0.34.0, "Configure Environment" and "Reverse proxy"): copied,
then the guide's required settings put in, with authentication off (`AUTH_BACKEND=none`,
`FEATURE_REQUIRE_LOGIN=false`), which is where the guide's pages start.

The staged folder is bound read-only into the sandbox (scripts/sandbox.py) and its digest is part of the
boot snapshot's key (scripts/replay.py boot_key), so a fixture run and an upstream run never share a boot.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

UPSTREAM_ENV = "REFLECTOR_UPSTREAM"
"""The host's environment: the path of the real checkout (set by `python -m scripts.check --reflector PATH`)."""

COMPOSE_FILE = "docker-compose.prod.yml"
NAMED = (COMPOSE_FILE, "Caddyfile.example", "scripts/setup-authentik-oauth.sh", "server/.env.example", "www/.env.example")
"""The files of the checkout that the guide's pages use (issue 11): a checkout without one of them is refused."""

# The deployer's working copies, made from the examples (Reflector's overview.md at v0.34.0: `cp server/.env.example
# server/.env`, `cp www/.env.example www/.env`, `cp Caddyfile.example Caddyfile`), with the settings it then asks for.
# "<generated>" stands for a value the guide says to make with `openssl rand -hex 32`.
GENERATED = "<generated>"
DEPLOYER_SETTINGS: Mapping[str, Mapping[str, str]] = {
    "server/.env": {
        "DATABASE_URL": "postgresql+asyncpg://reflector:reflector@postgres:5432/reflector",
        "REDIS_HOST": "redis",
        "CELERY_BROKER_URL": "redis://redis:6379/1",
        "CELERY_RESULT_BACKEND": "redis://redis:6379/1",
        "BASE_URL": "https://api.example.com",
        "CORS_ORIGIN": "https://app.example.com",
        "CORS_ALLOW_CREDENTIALS": "true",
        "SECRET_KEY": GENERATED,
        # "Auth - disable for initial setup (see a dedicated step for authentication)"
        "AUTH_BACKEND": "none",
    },
    "www/.env": {
        "SITE_URL": "https://app.example.com",
        "API_URL": "https://api.example.com",
        "WEBSOCKET_URL": "wss://api.example.com",
        "SERVER_API_URL": "http://server:1250",
        "NEXTAUTH_URL": "https://app.example.com",
        "NEXTAUTH_SECRET": GENERATED,
        # "Disable login requirement for initial setup"
        "FEATURE_REQUIRE_LOGIN": "false",
    },
    "Caddyfile": {},  # copied unchanged: the example's defaults are the guide's hostnames
}
EXAMPLES = {"server/.env": "server/.env.example", "www/.env": "www/.env.example", "Caddyfile": "Caddyfile.example"}

CHANGELOG_VERSION = re.compile(r"^## \[?v?(\d+\.\d+\.\d+)\]?", re.MULTILINE)


class NotACheckout(ValueError):
    """The path is not a Reflector checkout the world can be made from; the message names what is missing."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A real checkout staged for the world: where it came from, its version, the staged files and their digest."""

    source: Path
    version: str
    staged: Path
    digest: str

    def record(self) -> dict[str, str]:
        """What a report says about it (scripts/check.py run_record)."""
        return {"mode": "upstream", "source": str(self.source), "version": self.version, "digest": self.digest}


def read_version(source: Path) -> str:
    """The checkout's version: its git tag (`git describe --tags --dirty`), else the newest release in CHANGELOG.md."""
    try:
        done = subprocess.run(["git", "-C", str(source), "describe", "--tags", "--dirty"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    changelog = source / "CHANGELOG.md"
    found = CHANGELOG_VERSION.search(changelog.read_text(errors="replace")) if changelog.is_file() else None
    return f"{found.group(1)} (CHANGELOG.md)" if found else "unknown (no git tag, no release in CHANGELOG.md)"


def relative(path: str, where: str) -> str | None:
    """A compose path relative to the project folder, normalised ("./www/.env" -> "www/.env"); None for an absolute one."""
    if path.startswith("/") or path.startswith("~"):
        return None
    norm = os.path.normpath(path)
    if norm.startswith(".."):
        raise NotACheckout(f"{COMPOSE_FILE}: {where} points outside the checkout ({path})")
    return norm


def compose_needs(compose: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """What `docker compose up` reads from the project folder: (kind, path, where) with kind env_file, bind or build."""
    services = compose.get("services") or {}
    for name, service in services.items():
        if not isinstance(service, Mapping):
            continue
        env_files = service.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, (str, Mapping)) else env_files:
            path = entry.get("path") if isinstance(entry, Mapping) else entry
            if isinstance(path, str) and (rel := relative(path, f"service {name}'s env_file")):
                yield "env_file", rel, f"service {name}'s env_file {path}"
        for volume in service.get("volumes") or []:
            if isinstance(volume, Mapping):
                source = volume.get("source") if volume.get("type") == "bind" else None
            else:
                first = str(volume).split(":", 1)[0]
                source = first if first.startswith((".", "/", "~")) else None  # otherwise a named volume
            if isinstance(source, str) and (rel := relative(source, f"service {name}'s volume")):
                yield "bind", rel, f"service {name}'s volume {source}"
        build = service.get("build")
        context = build if isinstance(build, str) else build.get("context", ".") if isinstance(build, Mapping) else None
        if isinstance(context, str) and (rel := relative(context, f"service {name}'s build context")):
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, Mapping) else "Dockerfile"
            yield "build", os.path.normpath(os.path.join(rel, dockerfile)), f"service {name}'s build context {context}"


def set_setting(text: str, key: str, value: str) -> str:
    """A deployer's edit with an editor: the first `KEY=` line gets the value; else the first commented one is
    uncommented with it (`#KEY=`, `# KEY=`); else the line is added at the end."""
    for pattern in (rf"(?m)^{re.escape(key)}=.*$", rf"(?m)^#\s*{re.escape(key)}=.*$"):
        new, n = re.subn(pattern, lambda _m: f"{key}={value}", text, count=1)
        if n:
            return new
    return text + ("" if text.endswith("\n") or not text else "\n") + f"{key}={value}\n"


def working_copy(example: str, settings: Mapping[str, str], seed: str, name: str) -> str:
    """The deployer's file made from its example; generated secrets are derived from `seed` (the checkout's digest),
    so every process of a run stages the same files and shares the boot snapshot."""
    text = example
    for key, value in settings.items():
        if value == GENERATED:
            value = hashlib.sha256(f"{seed}:{name}:{key}".encode()).hexdigest()
        text = set_setting(text, key, value)
    return text


def stage(source: Path, into: Path) -> Checkout:
    """Copy what the world needs from the checkout at `source` into `into` (a fresh folder); refuse a path that is
    not a Reflector checkout, or that lacks a file the compose file needs, naming each missing file."""
    source = source.expanduser().resolve()
    if not source.is_dir():
        raise NotACheckout(f"{source} is not a folder (give the path of a Reflector checkout, for example a clone of Monadical-SAS/reflector)")
    missing = [name for name in NAMED if not (source / name).is_file()]
    if missing:
        raise NotACheckout(f"{source} is not a Reflector checkout: it has no {', '.join(missing)}")
    try:
        compose = yaml.safe_load((source / COMPOSE_FILE).read_text())
    except yaml.YAMLError as e:
        raise NotACheckout(f"{source / COMPOSE_FILE} is not YAML: {e}") from None
    if not isinstance(compose, Mapping) or not isinstance(compose.get("services"), Mapping):
        raise NotACheckout(f"{source / COMPOSE_FILE} has no services")
    files: set[str] = set(NAMED)
    for kind, rel, where in compose_needs(compose):
        if rel in EXAMPLES:
            continue  # made below from its example
        path = source / rel
        if kind == "bind":
            if path.is_dir():
                files.update(str(p.relative_to(source)) for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                files.add(rel)
            # else Docker creates the missing folder at the first start, as it does on a server
        elif path.is_file():
            files.add(rel)
        else:
            raise NotACheckout(f"{source} lacks {rel}, which {COMPOSE_FILE} needs ({where})")
    for rel in sorted(files):
        dest = into / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((source / rel).read_bytes())
        os.chmod(dest, 0o755 if os.stat(source / rel).st_mode & stat.S_IXUSR else 0o644)
    seed = tree_digest(into, sorted(files))  # the copied files only: the generated secrets are the same in every process
    for made, example in EXAMPLES.items():
        text = working_copy((source / example).read_text(), DEPLOYER_SETTINGS[made], seed, made)
        (into / made).write_text(text)
        os.chmod(into / made, 0o644)
    return Checkout(source, read_version(source), into, tree_digest(into, sorted([*files, *EXAMPLES])))


def tree_digest(folder: Path, names: list[str]) -> str:
    """A digest of these files under `folder`: each one's path, whether it is executable, and its bytes."""
    digest = hashlib.sha256()
    for name in names:
        path = folder / name
        digest.update(f"{name}\0{os.access(path, os.X_OK)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


@cache
def current() -> Checkout | None:
    """This process's upstream checkout (REFLECTOR_UPSTREAM), staged once into a temp folder removed at exit; None in fixture mode."""
    path = os.environ.get(UPSTREAM_ENV)
    if not path:
        return None
    into = Path(tempfile.mkdtemp(prefix="reflector-upstream-"))
    atexit.register(shutil.rmtree, into, ignore_errors=True)
    try:
        return stage(Path(path), into)
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise


def record() -> dict[str, str]:
    """Which checkout the worlds of this run boot from, for the report."""
    checkout = current()
    return checkout.record() if checkout is not None else {"mode": "fixture", "source": "scripts/world/fixtures/reflector"}
