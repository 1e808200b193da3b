"""The world's shared state (state.json under flock) as typed records, its paths, and who answers a hostname.

One owner per part: the simulated Docker Engine (scripts/world/engine) owns `engine` (containers,
networks, volumes, images, execs); each fake owns its own section of `apps` (`authentik`,
`reflector`), which stays plain JSON because only that fake reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

WORLD = Path(os.environ.get("WORLD", "/run/world"))

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

Json = Any
"""A JSON value as the Engine API carries it (a create request's Config, HostConfig)."""

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

# Which fake answers a container's port: (image repository, port) -> app name.
_APPS = (
    ("monadicalsas/reflector-frontend", 3000, "web"),
    ("monadicalsas/reflector-backend", 1250, "reflector-api"),
    ("ghcr.io/goauthentik/server", 9000, "authentik"),
)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mount:
    """A mount as the daemon set it up: `source` is a host path (bind) or a volume name (volume).

    `inode`, for a single-file bind mount, is the file the container was given at its last start:
    the daemon holds that inode open, so an edit in place shows and a file replaced by rename does
    not. LOST once a snapshot was restored in which that inode had no path any more (the container
    then sees what its process read at start); 0 for every other mount."""

    type: str
    source: str
    target: str
    read_only: bool = False
    inode: int = 0


LOST = -1
"""Mount.inode of a single-file bind whose file exists nowhere any more (see Mount)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A container's attachment to one network: its address and the names it answers to there."""

    network_id: str
    endpoint_id: str
    ip: str
    mac: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunState:
    """The main process: `status` is one of the Engine API's created|running|restarting|exited|dead.

    `health` is None without a healthcheck, else starting|healthy|unhealthy."""

    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    health: str | None = None


@dataclass(frozen=True, slots=True)
class Container:
    """One container. `config` is the Engine API Config after the daemon merged the image's defaults;
    `files` are what the main process read at its last start (a key, a Caddyfile); `routes` what a
    proxy loaded (host -> upstream dial)."""

    id: str
    name: str
    created: float
    image: str
    image_id: str
    config: Mapping[str, Json]
    host_config: Mapping[str, Json]
    mounts: tuple[Mount, ...] = ()
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    run: RunState = RunState()
    restart_count: int = 0
    files: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Config.Env as a mapping (the last of duplicate keys wins, as in the process's environ)."""
        out: dict[str, str] = {}
        for item in self.config.get("Env") or ():
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    @property
    def labels(self) -> Mapping[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def project(self) -> str:
        return self.labels.get("com.docker.compose.project", "")

    @property
    def service(self) -> str:
        return self.labels.get("com.docker.compose.service", "")

    @property
    def restart_policy(self) -> str:
        return str((self.host_config.get("RestartPolicy") or {}).get("Name") or "no")

    @property
    def running(self) -> bool:
        return self.run.status == "running"

    def app_view(self) -> Mapping[str, Any]:
        """What a fake app reads of the container that runs it (scripts/world/fakes: AppContext.container)."""
        return MappingProxyType({"name": self.name, "project": self.project, "service": self.service, "image": self.image, "env": self.env, "files": dict(self.files)})


@dataclass(frozen=True, slots=True)
class Network:
    """A user-defined bridge network (the world models no others)."""

    id: str
    name: str
    created: float
    subnet: str
    gateway: str
    driver: str = "bridge"
    attachable: bool = False
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Volume:
    """A named volume; `data` is the directory that holds its content (under the world dir).

    `incarnation` tells a volume from one of the same name created after it was removed."""

    name: str
    created: float
    data: str
    incarnation: str
    driver: str = "local"
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Image:
    """An image in the daemon's store: its tags and the config its Dockerfile gave."""

    id: str
    tags: tuple[str, ...]
    created: float
    config: Mapping[str, Json]


@dataclass(frozen=True, slots=True)
class Exec:
    """An exec instance: created by `POST /containers/{id}/exec`, run once by `/exec/{id}/start`."""

    id: str
    container_id: str
    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    attach_stdin: bool = False
    running: bool = False
    exit_code: int | None = None


@dataclass(slots=True)
class EngineState:
    """Everything the daemon keeps, keyed as the daemon keys it."""

    containers: dict[str, Container] = field(default_factory=dict)  # by id
    networks: dict[str, Network] = field(default_factory=dict)  # by id
    volumes: dict[str, Volume] = field(default_factory=dict)  # by name
    images: dict[str, Image] = field(default_factory=dict)  # by id
    execs: dict[str, Exec] = field(default_factory=dict)  # by id

    def container_named(self, name: str) -> Container | None:
        return next((c for c in self.containers.values() if c.name == name), None)

    def network_named(self, name: str) -> Network | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    def put(self, container: Container) -> Container:
        self.containers[container.id] = container
        return container

    def copy(self) -> EngineState:
        """Its own tables, holding the same records (they are frozen: a change replaces one)."""
        return EngineState(dict(self.containers), dict(self.networks), dict(self.volumes), dict(self.images), dict(self.execs))

    def holds_the_records_of(self, other: EngineState) -> bool:
        """Every table has the same keys and the very same records as `other`'s: nothing was put, replaced or removed."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine.keys() != theirs.keys() or any(record is not theirs[k] for k, record in mine.items()):
                return False
        return True


@dataclass(slots=True)
class WorldState:
    """The whole state file: the engine's typed part and the fakes' own sections."""

    engine: EngineState
    apps: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _container(d: Mapping[str, Any]) -> Container:
    return Container(
        id=d["id"], name=d["name"], created=d["created"], image=d["image"], image_id=d["image_id"],
        config=d["config"], host_config=d["host_config"],
        mounts=tuple(Mount(**m) for m in d["mounts"]),
        endpoints={k: Endpoint(**{**e, "aliases": tuple(e["aliases"])}) for k, e in d["endpoints"].items()},
        run=RunState(**d["run"]), restart_count=d["restart_count"], files=d["files"], routes=d["routes"],
    )  # fmt: skip


def engine_from_json(d: Mapping[str, Any]) -> EngineState:
    return EngineState(
        containers={k: _container(v) for k, v in d.get("containers", {}).items()},
        networks={k: Network(**v) for k, v in d.get("networks", {}).items()},
        volumes={k: Volume(**v) for k, v in d.get("volumes", {}).items()},
        images={k: Image(**{**v, "tags": tuple(v["tags"])}) for k, v in d.get("images", {}).items()},
        execs={k: Exec(**{**v, "cmd": tuple(v["cmd"]), "env": tuple(v["env"])}) for k, v in d.get("execs", {}).items()},
    )


def plain(value: Any) -> Any:
    """A record as json.loads would give it back: records as objects, tuples as arrays, mappings as dicts.

    Not dataclasses.asdict, which deep-copies every leaf: the engine serialises its state on every API
    request, and asdict made that most of a request's time. The Engine API's own documents (a
    container's Config and HostConfig, an image's Config) are JSON already and are never changed in
    place (records are replaced), so they are shared as they are."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return {f.name: (getattr(value, f.name) if f.name in _API_DOCUMENTS else plain(getattr(value, f.name))) for f in fields(value)}


_API_DOCUMENTS = frozenset({"config", "host_config"})


def engine_to_json(engine: EngineState) -> dict[str, Any]:
    return {
        "containers": {k: plain(v) for k, v in engine.containers.items()},
        "networks": {k: plain(v) for k, v in engine.networks.items()},
        "volumes": {k: plain(v) for k, v in engine.volumes.items()},
        "images": {k: plain(v) for k, v in engine.images.items()},
        "execs": {k: plain(v) for k, v in engine.execs.items()},
    }


def empty_state() -> dict[str, Any]:
    """A world with no containers, no networks, no images, and fakes that have not started."""
    return {"engine": engine_to_json(EngineState()), "authentik": {}, "reflector": {}}


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------


def read_state(world: Path = WORLD) -> dict[str, Any]:
    """The current state as JSON; a reader needs no lock because writers replace the file atomically."""
    data: dict[str, Any] = json.loads(state_text(world))
    return data


def state_text(world: Path) -> str:
    path = world / STATE_FILE
    return path.read_text() if path.exists() else json.dumps(empty_state())


def read_engine(world: Path = WORLD) -> EngineState:
    """The engine's part of the current state, as records (its own tables: a caller may change them)."""
    return _parsed(world, state_text(world)).records().copy()


@dataclass(slots=True)
class _Parsed:
    """One text of state.json, parsed: `pristine` is never handed out (callers get their own parse or copy)."""

    text: str
    pristine: dict[str, Any]
    engine: EngineState | None = None

    def records(self) -> EngineState:
        if self.engine is None:
            self.engine = engine_from_json(self.pristine.get("engine", {}))
        return self.engine


PARSED_WORLDS = 8
_PARSED: dict[Path, _Parsed] = {}
"""The last text each world's state.json had, parsed. Most engine requests only read, and the next one finds the
same text: parsing it again, and building the records again, was most of an engine request's time (3.3 ms of a
read-only one on the walkthrough's end state, 78 kB)."""


def _parsed(world: Path, text: str) -> _Parsed:
    found = _PARSED.get(world)
    if found is None or found.text != text:
        found = _Parsed(text, json.loads(text))
        _PARSED.pop(world, None)
        while len(_PARSED) >= PARSED_WORLDS:  # a test process goes through many worlds; an executor has one
            _PARSED.pop(next(iter(_PARSED)), None)
        _PARSED[world] = found
    return found


def write_state(world: Path, state: Mapping[str, Any]) -> None:
    """Replace state.json atomically (write a sibling, then rename); call under the lock."""
    tmp = world / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(state, sort_keys=True))  # no indent: only the C encoder is fast enough per request (`jq .` shows it)
    os.replace(tmp, world / STATE_FILE)


@contextlib.contextmanager
def locked_state(world: Path = WORLD) -> Iterator[dict[str, Any]]:
    """Read-modify-write under an exclusive flock; written back only if the block succeeds and changed something.

    The fakes use this for their own sections; each open() is its own open file description, so
    the lock also serialises threads of one process."""
    with _locked(world) as (_, state):
        yield state


@contextlib.contextmanager
def _locked(world: Path) -> Iterator[tuple[_Parsed, dict[str, Any]]]:
    """The state's text as last parsed, and the caller's own parse of it to change; written back if it changed."""
    with open(world / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            text = state_text(world)
            parsed = _parsed(world, text)
            state = json.loads(text)
            yield parsed, state
            if state != parsed.pristine:  # most requests only read: no rewrite, no new inode for state.json
                write_state(world, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def locked_world(world: Path = WORLD) -> Iterator[WorldState]:
    """The engine's read-modify-write: its records, with the fakes' sections alongside (for the calls
    the engine makes into a fake, such as Authentik's first start)."""
    with _locked(world) as (parsed, raw):
        before = parsed.records()
        state = WorldState(before.copy(), raw)
        yield state
        if not state.engine.holds_the_records_of(before):
            raw["engine"] = engine_to_json(state.engine)


# ---------------------------------------------------------------------------------------------
# Routing: who answers https://<host>/
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Direct:
    """Served by the front directly; `name` is the hostname."""

    name: str


@dataclass(frozen=True, slots=True)
class Proxied:
    """Caddy proxies to a running container; `app` names the fake that answers."""

    app: str
    container_name: str
    container: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No app answers: `status` is the HTTP status Caddy sends, or REFUSED / TLS_ALERT."""

    status: int
    reason: str


Upstream = Direct | Proxied | Unreachable


def resolve(world: Path, host: str) -> Upstream:
    """Who answers `https://<host>/` right now, from the state on disk."""
    return resolve_state(read_engine(world), host)


def resolve_state(engine: EngineState, host: str) -> Upstream:
    """Who answers `host`: directly, through Caddy to a container, or nobody."""
    host = host.lower().rstrip(".")
    if host in DIRECT_HOSTS:
        return Direct(host)
    caddy = engine.container_named(CADDY_CONTAINER)
    if caddy is None or not caddy.running:
        return Unreachable(REFUSED, "connect: connection refused")
    upstream = caddy.routes.get(host)
    if upstream is None:
        return Unreachable(TLS_ALERT, f"no certificate available for '{host}'")
    name, _, port_text = upstream.rpartition(":")
    port = int(port_text) if port_text.isdigit() else 80
    found = lookup(engine, caddy, name)
    if found is None:
        return Unreachable(502, f"dial tcp: lookup {name} on 127.0.0.11:53: no such host")
    target, ip = found
    for repository, app_port, app in _APPS:
        if target.image.split(":")[0] == repository and port == app_port:
            if app == "reflector-api" and target.env.get("ENTRYPOINT") not in (None, "server"):
                continue  # worker and beat share the image but listen on nothing
            return Proxied(app, target.name, target.app_view())
    return Unreachable(502, f"dial tcp {ip}:{port}: connect: connection refused")


def lookup(engine: EngineState, client: Container, name: str) -> tuple[Container, str] | None:
    """Docker's embedded DNS as seen from `client`: a running container on a shared network whose
    name, or alias on that network (compose's service name), is `name`; with its address there."""
    for net in client.endpoints:
        for c in engine.containers.values():
            endpoint = c.endpoints.get(net)
            if not c.running or endpoint is None:
                continue
            if name in (c.name, c.id[:12]) or name in endpoint.aliases:
                return c, endpoint.ip
    return None


def with_run(container: Container, **changes: Any) -> Container:
    """The container with its run state changed (records are frozen)."""
    return replace(container, run=replace(container.run, **changes))
