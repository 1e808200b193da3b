"""The world's shared state (state.json under flock), its paths, and who answers a hostname."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORLD = Path(os.environ.get("WORLD", "/run/world"))

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

# The Caddy container of the Reflector stack: every example.com host goes through it.
CADDY_CONTAINER = "reflector-caddy-1"

# Served by the HTTPS front itself, not through Caddy (the Authentik compose file, a redirect).
DIRECT_HOSTS = frozenset({"goauthentik.io", "docs.goauthentik.io"})

# Unreachable.status values that are not HTTP statuses.
REFUSED = 0
"""Nothing listens on :443 (Caddy is not running): refuse the TCP connection."""
TLS_ALERT = -1
"""Caddy listens but has no site (so no certificate) for the SNI: abort the handshake with a
TLS internal_error alert, which is what Caddy's certificate selection does; curl reports
`tlsv1 alert internal error` (exit 35)."""

UP_FOR = 2 * 3600
"""How long the fixture stack has been up when the guide starts (seconds)."""

# Which fake answers a container's port: (image prefix, port) -> app name.
_APPS = (
    ("monadicalsas/reflector-frontend", 3000, "web"),
    ("monadicalsas/reflector-backend", 1250, "reflector-api"),
    ("ghcr.io/goauthentik/server", 9000, "authentik"),
)


@dataclass(frozen=True, slots=True)
class Direct:
    """Served by the front directly; `name` is the hostname."""

    name: str


@dataclass(frozen=True, slots=True)
class Proxied:
    """Caddy proxies to a running container; `app` names the fake that answers."""

    app: str
    container_name: str
    container: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No app answers: `status` is the HTTP status Caddy sends, or REFUSED / TLS_ALERT."""

    status: int
    reason: str


Upstream = Direct | Proxied | Unreachable


def empty_state() -> dict[str, Any]:
    """A world with no containers, no networks and no Caddy routes."""
    return {
        "networks": {},
        "containers": {},
        "volumes": {},
        "caddy_routes": {},
        "authentik": {"api_tokens": []},
        "seq": 0,
    }


def read_state(world: Path = WORLD) -> dict[str, Any]:
    """The current state; a reader needs no lock because writers replace the file atomically."""
    data: dict[str, Any] = json.loads((world / STATE_FILE).read_text())
    return data


def write_state(world: Path, state: dict[str, Any]) -> None:
    """Replace state.json atomically (write a sibling, then rename); call under the lock."""
    tmp = world / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, world / STATE_FILE)


@contextlib.contextmanager
def locked_state(world: Path = WORLD) -> Iterator[dict[str, Any]]:
    """Read-modify-write under an exclusive flock; written back only if the block succeeds."""
    with open(world / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            path = world / STATE_FILE
            state = json.loads(path.read_text()) if path.exists() else empty_state()
            yield state
            write_state(world, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def init_state(world: Path, home: Path) -> None:
    """Create the starting state: the Reflector stack under ~/reflector already up with Caddy.

    Runs what the deployer ran before the guide starts,
    `docker compose -f docker-compose.prod.yml --profile caddy up -d`, through the docker
    stand-in's own model, so snapshots are exactly what that command would take.
    """
    from scripts.world.standins import docker  # lazy: docker imports this module

    world.mkdir(parents=True, exist_ok=True)
    (world / "log").mkdir(exist_ok=True)
    (world / STATE_FILE).unlink(missing_ok=True)
    with locked_state(world) as state:
        state.clear()
        state.update(empty_state())
        docker.bring_up(
            state,
            world,
            home,
            project_dir=home / "reflector",
            files=["docker-compose.prod.yml"],
            profiles=["caddy"],
        )
        for item in [*state["containers"].values(), *state["networks"].values()]:
            for key in ("created_at", "started_at"):  # the stack has been up a while: "Up 2 hours"
                if key in item:
                    item[key] -= UP_FOR


def resolve(world: Path, host: str) -> Upstream:
    """Who answers `https://<host>/` right now.

    A crash-looping container retries on its own (restart policy), so before answering, let
    it retry with what it sees now (e.g. the key file that has appeared since).
    """
    state = read_state(world)
    if any(c.get("status") == "restarting" for c in state.get("containers", {}).values()):
        from scripts.world.standins import docker  # lazy: only needed while something crash-loops

        with locked_state(world) as state:
            docker.refresh(state, world, Path(os.environ.get("HOME", "/home/deployer")))
    return resolve_state(state, host)


def resolve_state(state: dict[str, Any], host: str) -> Upstream:
    """Who answers `host` given `state`: directly, through Caddy to a container, or nobody."""
    host = host.lower().rstrip(".")
    if host in DIRECT_HOSTS:
        return Direct(host)
    containers: dict[str, dict[str, Any]] = state.get("containers", {})
    caddy = containers.get(CADDY_CONTAINER)
    if caddy is None or caddy.get("status") != "running":
        return Unreachable(REFUSED, "connect: connection refused")
    upstream = state.get("caddy_routes", {}).get(host)
    if upstream is None:
        return Unreachable(TLS_ALERT, f"no certificate available for '{host}'")
    name, _, port_text = upstream.rpartition(":")
    port = int(port_text) if port_text.isdigit() else 80
    found = lookup(containers, CADDY_CONTAINER, name)
    if found is None:
        return Unreachable(502, f"dial tcp: lookup {name} on 127.0.0.11:53: no such host")
    cname, container, ip = found
    for image_prefix, app_port, app in _APPS:
        if str(container.get("image", "")).startswith(image_prefix) and port == app_port:
            if app == "reflector-api" and container.get("service") != "server":
                continue  # worker and beat share the image but listen on nothing
            return Proxied(app, cname, container)
    return Unreachable(502, f"dial tcp {ip}:{port}: connect: connection refused")


def lookup(containers: dict[str, dict[str, Any]], client: str, name: str) -> tuple[str, dict[str, Any], str] | None:
    """Docker's embedded DNS as seen from `client`: a running container on a shared network
    whose name, or alias on that network (compose's service name), is `name`."""
    networks = containers[client].get("networks", [])
    for net in networks:
        for cname, c in containers.items():
            if c.get("status") != "running" or net not in c.get("networks", []):
                continue
            if cname == name or name in c.get("aliases", {}).get(net, []):
                return cname, c, c.get("ips", {}).get(net, "172.18.0.2")
    return None
