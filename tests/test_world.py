"""The world's state: the starting stack, atomic locked updates, and who answers a hostname."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.world import state as worldmod
from scripts.world.fixtures import install
from scripts.world.state import Direct, Proxied, Unreachable, resolve_state


def container(image: str, service: str, networks: list[str], status: str = "running", aliases: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "project": "reflector",
        "service": service,
        "image": image,
        "status": status,
        "networks": networks,
        "ips": dict.fromkeys(networks, "172.18.0.9"),
        "aliases": aliases if aliases is not None else {n: [service] for n in networks},
        "env": {},
    }


def guide_state(**changes: Any) -> dict[str, Any]:
    """The state at the end of the guide: Authentik linked into reflector_default and routed."""
    state: dict[str, Any] = {
        "networks": {"reflector_default": {}, "authentik_default": {}},
        "containers": {
            "reflector-caddy-1": container("caddy:2-alpine", "caddy", ["reflector_default"]),
            "reflector-web-1": container("monadicalsas/reflector-frontend:latest", "web", ["reflector_default"]),
            "reflector-server-1": container("monadicalsas/reflector-backend:latest", "server", ["reflector_default"]),
            "reflector-worker-1": container("monadicalsas/reflector-backend:latest", "worker", ["reflector_default"]),
            "authentik-server-1": container(
                "ghcr.io/goauthentik/server:2026.2.1",
                "server",
                ["authentik_default", "reflector_default"],
                aliases={"authentik_default": ["server"]},
            ),
        },
        "caddy_routes": {
            "app.example.com": "web:3000",
            "api.example.com": "server:1250",
            "authentik.example.com": "authentik-server-1:9000",
        },
    }
    state.update(changes)
    return state


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
    state = guide_state()
    state["containers"]["authentik-server-1"]["networks"] = ["authentik_default"]
    assert resolve_state(state, "authentik.example.com") == Unreachable(502, "dial tcp: lookup authentik-server-1 on 127.0.0.11:53: no such host")


def test_stopped_upstream_is_not_resolvable() -> None:
    state = guide_state()
    state["containers"]["reflector-server-1"]["status"] = "restarting"
    assert resolve_state(state, "api.example.com") == Unreachable(502, "dial tcp: lookup server on 127.0.0.11:53: no such host")


def test_service_alias_does_not_leak_across_projects() -> None:
    """`server` on reflector_default is Reflector's server, never Authentik's (no alias there)."""
    state = guide_state()
    del state["containers"]["reflector-server-1"]
    up = resolve_state(state, "api.example.com")
    assert isinstance(up, Unreachable)
    assert up.status == 502


def test_wrong_port_is_connection_refused() -> None:
    state = guide_state(caddy_routes={"authentik.example.com": "authentik-server-1:9443"})
    assert resolve_state(state, "authentik.example.com") == Unreachable(502, "dial tcp 172.18.0.9:9443: connect: connection refused")


def test_unconfigured_host_gets_a_tls_alert() -> None:
    state = guide_state(caddy_routes={"app.example.com": "web:3000"})
    up = resolve_state(state, "authentik.example.com")
    assert isinstance(up, Unreachable)
    assert up.status == worldmod.TLS_ALERT


@pytest.mark.parametrize("status", ["exited", "restarting"])
def test_caddy_down_refuses_connections(status: str) -> None:
    state = guide_state()
    state["containers"]["reflector-caddy-1"]["status"] = status
    assert resolve_state(state, "app.example.com").status == worldmod.REFUSED  # type: ignore[union-attr]


def test_no_caddy_container_refuses_connections() -> None:
    state = guide_state()
    del state["containers"]["reflector-caddy-1"]
    assert resolve_state(state, "app.example.com") == Unreachable(worldmod.REFUSED, "connect: connection refused")


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, Path]:
    home, world = tmp_path / "home", tmp_path / "world"
    home.mkdir()
    world.mkdir()
    install(home, world)
    return world, home


def test_initial_state_is_the_reflector_stack_up_with_caddy(started: tuple[Path, Path]) -> None:
    world, _ = started
    state = worldmod.read_state(world)
    for svc in ("web", "server", "worker", "beat", "redis", "postgres", "caddy"):
        c = state["containers"][f"reflector-{svc}-1"]
        assert (c["status"], c["networks"]) == ("running", ["reflector_default"]), svc
    assert state["networks"]["reflector_default"]["attachable"] is True
    assert state["caddy_routes"] == {"app.example.com": "web:3000", "api.example.com": "server:1250"}


def test_initial_snapshots_come_from_the_checkout(started: tuple[Path, Path]) -> None:
    world, home = started
    state = worldmod.read_state(world)
    server = state["containers"]["reflector-server-1"]
    assert server["env"]["AUTH_BACKEND"] == "none"
    assert server["env"]["ENTRYPOINT"] == "server"
    key = "/app/reflector/auth/jwt/keys/authentik.monadical.com_public.pem"
    assert server["files"][key].startswith("-----BEGIN PUBLIC KEY-----")
    caddy = state["containers"]["reflector-caddy-1"]
    assert caddy["files"]["/etc/caddy/Caddyfile"] == (home / "reflector" / "Caddyfile").read_text()
    assert state["containers"]["reflector-web-1"]["env"]["KV_URL"] == "redis://redis:6379"


def test_initial_state_routes_the_reflector_hosts(started: tuple[Path, Path]) -> None:
    world, _ = started
    assert isinstance(worldmod.resolve(world, "app.example.com"), Proxied)
    assert isinstance(worldmod.resolve(world, "api.example.com"), Proxied)
    assert worldmod.resolve(world, "authentik.example.com").status == worldmod.TLS_ALERT  # type: ignore[union-attr]


def test_locked_state_writes_back_on_success(tmp_path: Path) -> None:
    with worldmod.locked_state(tmp_path) as state:
        state["authentik"]["api_tokens"].append("t")
    assert worldmod.read_state(tmp_path)["authentik"]["api_tokens"] == ["t"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_locked_state_discards_changes_when_the_block_fails(tmp_path: Path) -> None:
    with worldmod.locked_state(tmp_path) as state:
        state["caddy_routes"]["a"] = "b:1"

    def fail_midway() -> None:
        with worldmod.locked_state(tmp_path) as state:
            state["caddy_routes"]["a"] = "c:2"
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert json.loads((tmp_path / "state.json").read_text())["caddy_routes"] == {"a": "b:1"}


def test_resolve_lets_a_crash_looping_server_recover(started: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The restart policy retries on its own: once the key file exists the API answers again."""
    world, home = started
    monkeypatch.setenv("HOME", str(home))
    with worldmod.locked_state(world) as state:
        server = state["containers"]["reflector-server-1"]
        server["env"].update(AUTH_BACKEND="jwt", AUTH_JWT_PUBLIC_KEY="authentik_public.pem")
        server["status"] = "restarting"
    assert resolve_state(worldmod.read_state(world), "api.example.com").status == 502  # type: ignore[union-attr]
    (home / "reflector/server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    up = worldmod.resolve(world, "api.example.com")
    assert isinstance(up, Proxied)
    assert up.container["files"]["/app/reflector/auth/jwt/keys/authentik_public.pem"] == "pem"
