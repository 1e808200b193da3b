"""The world's state: the starting stack, atomic locked updates, and who answers a hostname."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.world import state as worldmod
from scripts.world.engine import Observed
from scripts.world.state import CADDY_CONTAINER, Container, Direct, Endpoint, EngineState, Proxied, RunState, Unreachable, resolve_state
from tests.hostworld import PROD, HostWorld, host_world

NETS = {"reflector_default": "net-reflector", "authentik_default": "net-authentik"}


def container(
    name: str, image: str, service: str, networks: list[str], status: str = "running", aliases: dict[str, list[str]] | None = None, env: dict[str, str] | None = None
) -> Container:
    chosen = aliases if aliases is not None else {n: [service] for n in networks}
    endpoints = {n: Endpoint(NETS[n], f"ep-{name}-{n}", "172.18.0.9", "02:42:ac:12:00:09", tuple(chosen.get(n, []))) for n in networks}
    labels = {"com.docker.compose.project": name.split("-")[0], "com.docker.compose.service": service}
    config = {"Image": image, "Labels": labels, "Env": [f"{k}={v}" for k, v in (env or {}).items()]}
    return Container(
        id=f"id-{name}", name=name, created=0.0, image=image, image_id="sha256:x", config=config, host_config={}, endpoints=endpoints, run=RunState(status=status)
    )


def guide_state(routes: dict[str, str] | None = None, **replaced: Container | None) -> EngineState:
    """The state at the end of the guide: Authentik linked into reflector_default and routed; keyword arguments replace or drop containers."""
    caddy_routes = routes if routes is not None else {"app.example.com": "web:3000", "api.example.com": "server:1250", "authentik.example.com": "authentik-server-1:9000"}
    containers = {
        "reflector-caddy-1": replace(container("reflector-caddy-1", "caddy:2-alpine", "caddy", ["reflector_default"]), routes=caddy_routes),
        "reflector-web-1": container("reflector-web-1", "monadicalsas/reflector-frontend:latest", "web", ["reflector_default"]),
        "reflector-server-1": container("reflector-server-1", "monadicalsas/reflector-backend:latest", "server", ["reflector_default"], env={"ENTRYPOINT": "server"}),
        "reflector-worker-1": container("reflector-worker-1", "monadicalsas/reflector-backend:latest", "worker", ["reflector_default"], env={"ENTRYPOINT": "worker"}),
        "authentik-server-1": container(
            "authentik-server-1", "ghcr.io/goauthentik/server:2026.2.1", "server", ["authentik_default", "reflector_default"], aliases={"authentik_default": ["server"]}
        ),
    }
    for key, value in replaced.items():
        name = key.replace("_", "-")
        if value is None:
            del containers[name]
        else:
            containers[name] = value
    engine = EngineState()
    for c in containers.values():
        engine.put(c)
    return engine


@pytest.mark.parametrize(
    ("host", "app", "name"),
    [
        ("app.example.com", "web", "reflector-web-1"),
        ("api.example.com", "reflector-api", "reflector-server-1"),
        ("authentik.example.com", "authentik", "authentik-server-1"),
        ("Authentik.Example.com.", "authentik", "authentik-server-1"),
    ],
)
def test_routed_hosts_reach_their_container(host: str, app: str, name: str) -> None:
    up = resolve_state(guide_state(), host)
    assert isinstance(up, Proxied)
    assert (up.app, up.container_name) == (app, name)


@pytest.mark.parametrize("host", ["goauthentik.io", "docs.goauthentik.io"])
def test_goauthentik_hosts_are_served_directly(host: str) -> None:
    assert resolve_state(guide_state(), host) == Direct(host)


def test_unlinked_authentik_is_a_dns_failure_in_caddy() -> None:
    unlinked = container("authentik-server-1", "ghcr.io/goauthentik/server:2026.2.1", "server", ["authentik_default"])
    state = guide_state(authentik_server_1=unlinked)
    assert resolve_state(state, "authentik.example.com") == Unreachable(502, "dial tcp: lookup authentik-server-1 on 127.0.0.11:53: no such host")


def test_stopped_upstream_is_not_resolvable() -> None:
    state = guide_state(reflector_server_1=container("reflector-server-1", "monadicalsas/reflector-backend:latest", "server", ["reflector_default"], status="restarting"))
    assert resolve_state(state, "api.example.com") == Unreachable(502, "dial tcp: lookup server on 127.0.0.11:53: no such host")


def test_service_alias_does_not_leak_across_projects() -> None:
    """`server` on reflector_default is Reflector's server, never Authentik's (no alias there)."""
    state = guide_state(reflector_server_1=None)
    up = resolve_state(state, "api.example.com")
    assert isinstance(up, Unreachable)
    assert up.status == 502


def test_wrong_port_is_connection_refused() -> None:
    state = guide_state(routes={"authentik.example.com": "authentik-server-1:9443"})
    assert resolve_state(state, "authentik.example.com") == Unreachable(502, "dial tcp 172.18.0.9:9443: connect: connection refused")


def test_unconfigured_host_gets_a_tls_alert() -> None:
    state = guide_state(routes={"app.example.com": "web:3000"})
    up = resolve_state(state, "authentik.example.com")
    assert isinstance(up, Unreachable)
    assert up.status == worldmod.TLS_ALERT


@pytest.mark.parametrize("status", ["exited", "restarting"])
def test_caddy_down_refuses_connections(status: str) -> None:
    caddy = replace(container("reflector-caddy-1", "caddy:2-alpine", "caddy", ["reflector_default"], status=status), routes={"app.example.com": "web:3000"})
    state = guide_state(reflector_caddy_1=caddy)
    assert resolve_state(state, "app.example.com").status == worldmod.REFUSED  # type: ignore[union-attr]


def test_no_caddy_container_refuses_connections() -> None:
    state = guide_state(reflector_caddy_1=None)
    assert resolve_state(state, "app.example.com") == Unreachable(worldmod.REFUSED, "connect: connection refused")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[HostWorld]:
    yield from host_world(tmp_path)


def test_initial_state_is_the_reflector_stack_up_with_caddy(started: HostWorld) -> None:
    engine = started.engine()
    net = engine.network_named("reflector_default")
    assert net is not None
    assert net.attachable
    for svc in ("web", "server", "worker", "beat", "redis", "postgres", "caddy", "docs"):
        c = started.container(f"reflector-{svc}-1")
        assert (c.run.status, sorted(c.endpoints)) == ("running", ["reflector_default"]), svc
    assert started.container(CADDY_CONTAINER).routes == {"app.example.com": "web:3000", "api.example.com": "server:1250"}


def test_initial_snapshots_come_from_the_checkout(started: HostWorld) -> None:
    server = started.container("reflector-server-1")
    assert (server.env["AUTH_BACKEND"], server.env["ENTRYPOINT"]) == ("none", "server")
    caddy = started.container(CADDY_CONTAINER)
    assert caddy.files["/etc/caddy/Caddyfile"] == (started.reflector / "Caddyfile").read_text()
    assert started.container("reflector-web-1").env["KV_URL"] == "redis://redis:6379"


def test_initial_state_routes_the_reflector_hosts(started: HostWorld) -> None:
    assert isinstance(worldmod.resolve(started.world, "app.example.com"), Proxied)
    assert isinstance(worldmod.resolve(started.world, "api.example.com"), Proxied)
    assert worldmod.resolve(started.world, "authentik.example.com").status == worldmod.TLS_ALERT  # type: ignore[union-attr]


def test_state_round_trips_through_json(started: HostWorld) -> None:
    """The records survive the state file unchanged (what the engine writes is what it reads)."""
    raw = worldmod.read_state(started.world)
    assert json.loads(json.dumps(worldmod.engine_to_json(worldmod.engine_from_json(raw["engine"])))) == raw["engine"]


def test_locked_state_writes_back_on_success(tmp_path: Path) -> None:
    with worldmod.locked_state(tmp_path) as state:
        state["authentik"]["api_tokens"] = ["t"]
    assert worldmod.read_state(tmp_path)["authentik"]["api_tokens"] == ["t"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_locked_state_discards_changes_when_the_block_fails(tmp_path: Path) -> None:
    with worldmod.locked_state(tmp_path) as state:
        state["reflector"]["a"] = "b:1"

    def fail_midway() -> None:
        with worldmod.locked_state(tmp_path) as state:
            state["reflector"]["a"] = "c:2"
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert json.loads((tmp_path / "state.json").read_text())["reflector"] == {"a": "b:1"}


def test_the_engines_transactions_see_each_others_changes_and_never_a_failed_ones(started: HostWorld) -> None:
    """Transactions share one parse of the state while its text is unchanged: a change written by one is what the
    next reads, a change in a block that fails reaches nobody, and a read-only one leaves the file alone."""
    name = next(iter(worldmod.read_engine(started.world).containers.values())).name
    path = started.world / "state.json"
    with worldmod.locked_world(started.world) as w:
        c = w.engine.container_named(name)
        assert c is not None
        w.engine.put(replace(c, restart_count=41))

    def fail_midway() -> None:
        with worldmod.locked_world(started.world) as w:
            c = w.engine.container_named(name)
            assert c is not None
            assert c.restart_count == 41
            w.engine.put(replace(c, restart_count=99))
            del w.engine.containers[c.id]
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    inode = path.stat().st_ino
    with worldmod.locked_world(started.world) as w:
        c = w.engine.container_named(name)
        assert c is not None
        assert c.restart_count == 41
    assert path.stat().st_ino == inode  # read only: not rewritten
    mine = worldmod.read_engine(started.world)
    mine.containers.clear()  # a reader's tables are its own
    assert worldmod.read_engine(started.world).container_named(name) is not None


def test_observing_the_world_lets_a_crash_looping_server_recover(started: HostWorld) -> None:
    """The restart policy retries on its own: once the key file exists, a request through Caddy reaches the API."""
    with open(started.reflector / "server" / ".env", "a") as f:
        f.write("AUTH_BACKEND=jwt\nAUTH_JWT_PUBLIC_KEY=authentik_public.pem\n")
    assert started.docker(*PROD, "up", "-d", "server").rc == 0
    observed = Observed(started.handle.engine)
    assert observed.resolve(started.world, "api.example.com").status == 502  # type: ignore[union-attr]
    (started.reflector / "server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    up = observed.resolve(started.world, "api.example.com")
    assert isinstance(up, Proxied)
    assert up.container["files"]["/app/reflector/auth/jwt/keys/authentik_public.pem"] == "pem"
