"""The fake services over real TLS: Authentik's OIDC and API, Reflector's token checks, the front's routing and faults."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3.util.connection
from authlib.integrations.requests_client import OAuth2Session
from jose import jwt

from scripts.contract import check_traffic
from scripts.world import state as real_world
from scripts.world.fakes import server, tls

AK = "https://authentik.example.com"
API = "https://api.example.com"
APP = "https://app.example.com"
CALLBACK = f"{APP}/api/auth/callback/authentik"
BOOT_TOKEN = "bootstrap-token-for-tests"
BOOT_PASSWORD = "bootstrap-password"
KEY_FILE = "/app/reflector/auth/jwt/keys/authentik_public.pem"
COMPOSE = "services:\n  postgresql: {}\n  server: {}\n  worker: {}\n"


@dataclass
class StubWorld:
    """scripts/world/state.py's state functions, with routing the test decides: host -> Upstream (by container name)."""

    routes: dict[str, Any] = field(default_factory=dict)

    def read_state(self, world_dir: Path, /) -> dict[str, Any]:
        return real_world.read_state(world_dir)

    def locked_state(self, world_dir: Path, /) -> AbstractContextManager[dict[str, Any]]:
        return real_world.locked_state(world_dir)

    def resolve(self, world_dir: Path, host: str, /) -> Any:
        if host in real_world.DIRECT_HOSTS:
            return real_world.Direct(host)
        route = self.routes.get(host)
        if route is None:
            return real_world.Unreachable(real_world.TLS_ALERT, f"no certificate available for '{host}'")
        if isinstance(route, real_world.Unreachable):
            return route
        app, name = route
        return real_world.Proxied(app, name, self.read_state(world_dir)["containers"][name])


def container(project: str, service: str, image: str, env: dict[str, str], files: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "project": project,
        "service": service,
        "image": image,
        "status": "running",
        "networks": [f"{project}_default"],
        "env": env,
        "files": files or {},
    }


@dataclass
class World:
    """A running front in a tmp world, reached as the guide's hostnames through a patched connect."""

    dir: Path
    stub: StubWorld
    handle: server.Handle
    ca: Path

    def session(self) -> requests.Session:
        s = requests.Session()
        s.verify = str(self.ca)
        return s

    def state(self) -> dict[str, Any]:
        return real_world.read_state(self.dir)

    def set_env(self, name: str, **env: str) -> None:
        with real_world.locked_state(self.dir) as state:
            state["containers"][name]["env"].update(env)

    def set_key_file(self, content: str) -> None:
        with real_world.locked_state(self.dir) as state:
            state["containers"]["reflector-server-1"]["files"][KEY_FILE] = content

    def log(self, name: str) -> str:
        path = self.dir / "log" / name
        return path.read_text() if path.exists() else ""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[World]:
    """A world with Authentik (server + worker with bootstrap env), Reflector's server and web, all running; its traffic is contract-checked."""
    world_dir = tmp_path / "world"
    world_dir.mkdir()
    fixtures = tmp_path / "fixtures"
    (fixtures / "authentik").mkdir(parents=True)
    (fixtures / "authentik" / "compose.yml").write_text(COMPOSE)
    public_pem = tls.signing_key(world_dir).public_key_pem
    with real_world.locked_state(world_dir) as state:
        state["containers"] = {
            "authentik-server-1": container("authentik", "server", "ghcr.io/goauthentik/server:2026.2", {}),
            "authentik-worker-1": container(
                "authentik",
                "worker",
                "ghcr.io/goauthentik/server:2026.2",
                {
                    "AUTHENTIK_BOOTSTRAP_TOKEN": BOOT_TOKEN,
                    "AUTHENTIK_BOOTSTRAP_PASSWORD": BOOT_PASSWORD,
                    "AUTHENTIK_BOOTSTRAP_EMAIL": "admin@example.com",
                },
            ),
            "reflector-server-1": container(
                "reflector",
                "server",
                "monadicalsas/reflector-backend:latest",
                {
                    "AUTH_BACKEND": "jwt",
                    "AUTH_JWT_AUDIENCE": "reflector",
                    "AUTH_JWT_PUBLIC_KEY": "authentik_public.pem",
                    "SECRET_KEY": "s3cret",
                },
                {KEY_FILE: public_pem},
            ),
            "reflector-web-1": container("reflector", "web", "monadicalsas/reflector-frontend:latest", {"NEXTAUTH_URL": APP}),
        }
    stub = StubWorld(
        {
            "authentik.example.com": ("authentik", "authentik-server-1"),
            "api.example.com": ("reflector-api", "reflector-server-1"),
            "app.example.com": ("web", "reflector-web-1"),
        }
    )
    handle = server.start(world_dir, port=0, fixtures=fixtures, world_api=stub)
    port = handle.address[1]
    original = urllib3.util.connection.create_connection

    def connect_to(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, dest = address
        if host in tls.HOSTNAMES and dest == 443:
            return original(("127.0.0.1", port), *args, **kwargs)
        return original(address, *args, **kwargs)

    # What /etc/hosts and :443 do inside the sandbox; the TLS name stays the guide's hostname.
    monkeypatch.setattr(urllib3.util.connection, "create_connection", connect_to)
    monkeypatch.setattr("urllib3.connection.connection.create_connection", connect_to)
    # As in the sandbox; requests lets these variables override Session.verify.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(world_dir / "ca.pem"))
    try:
        yield World(world_dir, stub, handle, world_dir / "ca.pem")
    finally:
        handle.stop()
    # Whatever a test made the fakes say is held to the real services' contracts, as the doc tests' traffic is.
    traffic = world_dir / "traffic.jsonl"
    records = [json.loads(line) for line in traffic.read_text().splitlines()] if traffic.exists() else []
    found = check_traffic(records, request.node.nodeid)
    assert not found, "\n".join(found)


def admin(world: World) -> requests.Session:
    s = world.session()
    s.headers["Authorization"] = f"Bearer {BOOT_TOKEN}"
    return s


def mapping_pks(world: World, *scopes: str) -> list[str]:
    results = admin(world).get(f"{AK}/api/v3/propertymappings/provider/scope/").json()["results"]
    return [m["pk"] for m in results if m["scope_name"] in scopes]


def make_application(
    world: World,
    slug: str = "reflector",
    scopes: tuple[str, ...] = ("openid", "email", "profile"),
    signing: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """What scripts/setup-authentik-oauth.sh does through the API (plus the choices the tests vary)."""
    s = admin(world)
    flow = s.get(f"{AK}/api/v3/flows/instances/", params={"slug": "default-provider-authorization-implicit-consent"})
    invalidation = s.get(f"{AK}/api/v3/flows/instances/", params={"slug": "default-provider-invalidation-flow"})
    key = s.get(f"{AK}/api/v3/crypto/certificatekeypairs/").json()["results"][0]["pk"]
    body = {
        "name": slug.title(),
        "authorization_flow": flow.json()["results"][0]["pk"],
        "invalidation_flow": invalidation.json()["results"][0]["pk"],
        "client_type": "confidential",
        "client_id": slug,
        "client_secret": f"{slug}-secret",
        "redirect_uris": [{"matching_mode": "strict", "url": CALLBACK}],
        "property_mappings": mapping_pks(world, *scopes),
        "signing_key": key if signing else None,
        "access_token_validity": "hours=1",
    } | extra
    provider = s.post(f"{AK}/api/v3/providers/oauth2/", json=body)
    assert provider.status_code == 201, provider.text
    app = s.post(f"{AK}/api/v3/core/applications/", json={"name": slug.title(), "slug": slug, "provider": provider.json()["pk"]})
    assert app.status_code == 201, app.text
    return dict(provider.json())


def oauth_client(world: World, client_id: str = "reflector", scope: str = "openid email profile") -> OAuth2Session:
    client = OAuth2Session(client_id, f"{client_id}-secret", scope=scope, redirect_uri=CALLBACK, token_endpoint_auth_method="client_secret_post")
    client.verify = str(world.ca)
    return client


def login(world: World, client: OAuth2Session) -> dict[str, Any]:
    """The authorization-code flow as NextAuth runs it, with akadmin already signed in to Authentik."""
    url, state = client.create_authorization_url(f"{AK}/application/o/authorize/", nonce="n-0S6")
    answer = world.session().get(url, headers={"X-Test-User": "akadmin"}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["state"] == [state]
    return dict(client.fetch_token(f"{AK}/application/o/token/", authorization_response=answer.headers["Location"]))


# ------------------------------------------------------------------ front and TLS


def test_front_answers_as_soon_as_start_returns(tmp_path: Path) -> None:
    """Readiness by construction: the socket is bound and listening before start() hands back the handle."""
    began = time.perf_counter()
    handle = server.start(tmp_path, port=0, world_api=StubWorld())
    seconds = time.perf_counter() - began
    try:
        context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        with socket.create_connection(handle.address) as raw, context.wrap_socket(raw, server_hostname="goauthentik.io") as conn:
            conn.sendall(b"GET /docker-compose.yml HTTP/1.1\r\nHost: goauthentik.io\r\nConnection: close\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 301")
    finally:
        handle.stop()
    print(f"front start (fresh world: CA, leaf, untrusted leaf, bind): {seconds * 1000:.0f} ms")  # timing: make bench


def test_signing_key_and_certificates_are_made_once_per_world(tmp_path: Path) -> None:
    """Every process of a world (front, stand-ins, checks) must see the same key and CA."""
    first, second = tls.signing_key(tmp_path), tls.signing_key(tmp_path)
    assert first == second
    assert "CN=authentik Self-signed Certificate" in first.certificate.subject.rfc4514_string()
    ca = tls.server_certs(tmp_path).ca_pem.read_bytes()
    assert tls.server_certs(tmp_path).ca_pem.read_bytes() == ca


def test_compose_download_without_L_saves_a_redirect(world: World) -> None:
    """`curl -O https://goauthentik.io/docker-compose.yml` gets a 301 body; following it gets the compose file."""
    s = world.session()
    moved = s.get("https://goauthentik.io/docker-compose.yml", allow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Location"] == "https://docs.goauthentik.io/compose.yml"
    assert "Moved Permanently" in moved.text
    assert s.get("https://goauthentik.io/docker-compose.yml").text == COMPOSE


def test_compose_file_is_404_when_the_fixture_is_missing(tmp_path: Path) -> None:
    handle = server.start(tmp_path, port=0, fixtures=tmp_path / "nothing", world_api=StubWorld())
    try:
        context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        with socket.create_connection(handle.address) as raw, context.wrap_socket(raw, server_hostname="docs.goauthentik.io") as conn:
            conn.sendall(b"GET /compose.yml HTTP/1.1\r\nHost: docs.goauthentik.io\r\nConnection: close\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 404")
    finally:
        handle.stop()


def test_unreachable_upstream_is_caddys_empty_502(world: World) -> None:
    """Caddy answers 502 with no body when it cannot dial the upstream, and logs why."""
    world.stub.routes["api.example.com"] = real_world.Unreachable(502, "dial tcp: lookup server on 127.0.0.11:53: no such host")
    answer = world.session().get(f"{API}/health")
    assert (answer.status_code, answer.text, answer.headers["Server"]) == (502, "", "Caddy")
    assert "no such host" in world.log("caddy.log")


def test_host_without_a_caddy_site_fails_the_handshake(world: World) -> None:
    """No site for the name means no certificate: Caddy aborts TLS with internal_error."""
    del world.stub.routes["app.example.com"]
    with pytest.raises(requests.exceptions.SSLError, match="INTERNAL_ERROR"):
        world.session().get(APP)


def test_every_request_is_in_the_access_log(world: World) -> None:
    world.session().get(f"{API}/health")
    assert '"GET /health" 200 reflector-api' in world.log("access.log")


# ------------------------------------------------------------------ Authentik: discovery and JWKS


def test_discovery_issuer_has_trailing_slash_and_names_the_endpoints(world: World) -> None:
    make_application(world)
    config = world.session().get(f"{AK}/application/o/reflector/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{AK}/application/o/reflector/"
    assert config["authorization_endpoint"] == f"{AK}/application/o/authorize/"
    assert config["token_endpoint"] == f"{AK}/application/o/token/"
    assert config["userinfo_endpoint"] == f"{AK}/application/o/userinfo/"
    assert config["jwks_uri"] == f"{AK}/application/o/reflector/jwks/"
    assert config["end_session_endpoint"] == f"{AK}/application/o/reflector/end-session/"
    assert "code" in config["response_types_supported"]
    assert config["scopes_supported"] == ["openid", "email", "profile"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]


def test_application_root_redirects_to_discovery(world: World) -> None:
    make_application(world)
    answer = world.session().get(f"{AK}/application/o/reflector/", allow_redirects=False)
    assert answer.headers["Location"].endswith("/application/o/reflector/.well-known/openid-configuration")


def test_unknown_slug_is_an_html_404(world: World) -> None:
    """What the guide's jq pipeline chokes on when the slug is wrong."""
    for path in ("jwks/", ".well-known/openid-configuration"):
        answer = world.session().get(f"{AK}/application/o/nope/{path}")
        assert answer.status_code == 404
        assert answer.headers["Content-Type"].startswith("text/html")


def test_jwks_certificate_yields_a_pem_that_verifies_issued_tokens(world: World, tmp_path: Path) -> None:
    """The guide's `jq -r '.keys[0].x5c[0]' | base64 -d | openssl x509 -pubkey -noout` gives Reflector a working key."""
    make_application(world)
    keys = world.session().get(f"{AK}/application/o/reflector/jwks/").json()["keys"]
    assert {"kty", "alg", "use", "kid", "n", "e", "x5c", "x5t", "x5t#S256"} <= set(keys[0])
    pem = subprocess.run(
        "base64 -d | openssl x509 -pubkey -noout",
        shell=True,
        input=keys[0]["x5c"][0],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    token = login(world, oauth_client(world))["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]
    claims = jwt.decode(token, pem, algorithms=["RS256"], audience="reflector")
    assert claims["iss"] == f"{AK}/application/o/reflector/"


def test_without_signing_key_jwks_is_empty_and_tokens_are_hs256(world: World) -> None:
    make_application(world, signing=False)
    assert world.session().get(f"{AK}/application/o/reflector/jwks/").json() == {}
    token = login(world, oauth_client(world))["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert jwt.decode(token, "reflector-secret", algorithms=["HS256"], audience="reflector")["aud"] == "reflector"


# ------------------------------------------------------------------ Authentik: authorize, token, userinfo


def test_authorization_code_flow_gives_tokens_with_scoped_claims(world: World) -> None:
    make_application(world)
    token = login(world, oauth_client(world))
    assert "refresh_token" not in token
    claims = jwt.get_unverified_claims(token["id_token"])
    assert claims["nonce"] == "n-0S6"
    assert claims["email"] == "admin@example.com"
    assert claims["preferred_username"] == "akadmin"
    assert claims["exp"] - claims["iat"] == 3600  # access_token_validity "hours=1"
    assert len(claims["sub"]) == 64  # hashed_user_id
    info = world.session().get(f"{AK}/application/o/userinfo/", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == "admin@example.com"


def test_email_claim_only_with_the_email_mapping(world: World) -> None:
    make_application(world, scopes=("openid", "profile"), access_token_validity="hours=1;minutes=5")
    claims = jwt.get_unverified_claims(login(world, oauth_client(world))["access_token"])
    assert "email" not in claims
    assert claims["name"] == "authentik Default Admin"
    assert claims["exp"] - claims["iat"] == 3900


def test_authorize_rejects_a_redirect_uri_that_is_not_strictly_equal(world: World) -> None:
    make_application(world)
    client = oauth_client(world)
    client.redirect_uri = CALLBACK + "/"
    url, _ = client.create_authorization_url(f"{AK}/application/o/authorize/")
    answer = world.session().get(url, headers={"X-Test-User": "akadmin"}, allow_redirects=False)
    assert answer.status_code == 400
    assert "Redirect URI Error" in answer.text
    assert "The request fails due to a missing, invalid, or mismatching redirection URI (redirect_uri)." in answer.text


def test_authorize_sends_an_anonymous_user_to_the_login_flow(world: World) -> None:
    make_application(world)
    url, _ = oauth_client(world).create_authorization_url(f"{AK}/application/o/authorize/")
    answer = world.session().get(url, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/if/flow/default-authentication-flow/?next=%2Fapplication%2Fo%2Fauthorize%2F")


def test_authorize_accepts_akadmin_with_the_bootstrap_password(world: World) -> None:
    make_application(world)
    url, _ = oauth_client(world).create_authorization_url(f"{AK}/application/o/authorize/")
    good = world.session().get(url, auth=("akadmin", BOOT_PASSWORD), allow_redirects=False)
    bad = world.session().get(url, auth=("akadmin", "wrong"), allow_redirects=False)
    assert "code=" in good.headers["Location"]
    assert "/if/flow/" in bad.headers["Location"]


def test_refresh_token_needs_the_offline_access_mapping(world: World) -> None:
    """Authentik >= 2024.2 drops offline_access unless the provider has its scope mapping, so no refresh token."""
    make_application(world)
    wanted = "openid email profile offline_access"
    assert "refresh_token" not in login(world, oauth_client(world, scope=wanted))
    make_application(world, slug="offline", scopes=("openid", "email", "profile", "offline_access"))
    client = oauth_client(world, client_id="offline", scope=wanted)
    first = login(world, client)
    assert "offline_access" in first["scope"].split()
    refreshed = client.refresh_token(f"{AK}/application/o/token/", refresh_token=first["refresh_token"])
    assert refreshed["refresh_token"] != first["refresh_token"]  # Authentik rotates refresh tokens
    assert jwt.get_unverified_claims(refreshed["access_token"])["aud"] == "offline"
    reused = world.session().post(
        f"{AK}/application/o/token/",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "offline", "client_secret": "offline-secret"},
    )
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


def issued_code(world: World) -> str:
    """An authorization code for the reflector client, akadmin signed in, as the callback would receive it."""
    make_application(world)
    url, _ = oauth_client(world).create_authorization_url(f"{AK}/application/o/authorize/")
    location = world.session().get(url, headers={"X-Test-User": "akadmin"}, allow_redirects=False).headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0]


def test_token_endpoint_rejects_a_wrong_secret_and_a_reused_code(world: World) -> None:
    code = issued_code(world)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": "reflector"}
    wrong = world.session().post(f"{AK}/application/o/token/", data=form | {"client_secret": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")  # Authentik answers every token error with 400 (views/token.py)
    basic = world.session().post(f"{AK}/application/o/token/", data=form, auth=("reflector", "reflector-secret"))
    assert basic.status_code == 200, basic.text
    again = world.session().post(f"{AK}/application/o/token/", data=form, auth=("reflector", "reflector-secret"))
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


# ------------------------------------------------------------------ Authentik: API


def test_api_needs_a_known_bearer_token(world: World) -> None:
    url = f"{AK}/api/v3/flows/instances/"
    none = world.session().get(url)
    assert (none.status_code, none.json()) == (403, {"detail": "Authentication credentials were not provided."})
    wrong = world.session().get(url, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()) == (403, {"detail": "Token invalid/expired"})
    with real_world.locked_state(world.dir) as state:
        state["authentik"]["api_tokens"].append("from-manage-shell")
    assert world.session().get(url, headers={"Authorization": "Bearer from-manage-shell"}).status_code == 200


def test_api_lists_what_the_setup_script_looks_up(world: World) -> None:
    s = admin(world)
    flows = s.get(f"{AK}/api/v3/flows/instances/", params={"slug": "default-provider-authorization-implicit-consent"}).json()
    assert flows["pagination"]["count"] == 1
    assert flows["results"][0]["slug"] == "default-provider-authorization-implicit-consent"
    names = {m["name"] for m in s.get(f"{AK}/api/v3/propertymappings/all/").json()["results"]}
    assert {f"authentik default OAuth Mapping: OpenID '{n}'" for n in ("openid", "email", "profile", "offline_access")} <= names
    pairs = s.get(f"{AK}/api/v3/crypto/certificatekeypairs/").json()["results"]
    assert [p["name"] for p in pairs] == ["authentik Self-signed Certificate"]


def test_api_provider_create_duplicate_then_patch(world: World) -> None:
    """The setup script's second run: POST says "already exists", so it looks the provider up by name and PATCHes it."""
    first = make_application(world)
    s = admin(world)
    again = s.post(f"{AK}/api/v3/providers/oauth2/", json={k: first[k] for k in ("name", "authorization_flow", "invalidation_flow", "redirect_uris")})
    assert (again.status_code, again.json()) == (400, {"name": ["o auth2 provider with this name already exists."]})
    found = s.get(f"{AK}/api/v3/providers/oauth2/", params={"name": "Reflector"}).json()["results"]
    assert [(p["pk"], p["client_id"], p["assigned_application_slug"]) for p in found] == [(first["pk"], "reflector", "reflector")]
    patched = s.patch(f"{AK}/api/v3/providers/oauth2/{first['pk']}/", json={"client_secret": "rotated"})
    assert patched.status_code == 200
    assert patched.json()["client_secret"] == "rotated"
    dup_app = s.post(f"{AK}/api/v3/core/applications/", json={"name": "Reflector", "slug": "reflector", "provider": first["pk"]})
    assert dup_app.status_code == 400
    assert dup_app.json()["slug"] == ["application with this slug already exists."]


def test_api_validates_provider_fields(world: World) -> None:
    s = admin(world)
    flow = s.get(f"{AK}/api/v3/flows/instances/", params={"slug": "default-provider-authorization-implicit-consent"}).json()["results"][0]["pk"]
    body = {"name": "X", "authorization_flow": flow, "invalidation_flow": flow}
    old_style = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"redirect_uris": CALLBACK})
    assert old_style.status_code == 400
    assert "redirect_uris" in old_style.json()
    bad_mode = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"redirect_uris": [{"matching_mode": "exact", "url": CALLBACK}]})
    assert bad_mode.json() == {"redirect_uris": [{"matching_mode": ['"exact" is not a valid choice.']}]}
    no_url = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"redirect_uris": [{"matching_mode": "strict"}]})
    assert no_url.json() == {"redirect_uris": [{"url": ["This field is required."]}]}
    missing = s.post(f"{AK}/api/v3/providers/oauth2/", json={"name": "Y"})
    assert set(missing.json()) == {"authorization_flow", "invalidation_flow", "redirect_uris"}
    bad_validity = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"access_token_validity": "1h"})
    assert "access_token_validity" in bad_validity.json()


# ------------------------------------------------------------------ Reflector API and web


def reflector_token(world: World, audience: str = "reflector") -> str:
    make_application(world, slug=audience)
    return str(login(world, oauth_client(world, client_id=audience))["access_token"])


def test_me_with_a_token_for_the_configured_audience(world: World) -> None:
    token = reflector_token(world)
    me = world.session().get(f"{API}/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["email"] == "admin@example.com"
    world.session().get(f"{API}/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert world.log("reflector-server-1.log").count("Creating new user on first login: ") == 1
    assert world.session().get(f"{API}/v1/me").json() is None


def test_wrong_audience_is_401_and_logged_as_jose_says(world: World) -> None:
    world.set_env("reflector-server-1", AUTH_JWT_AUDIENCE="someone-else")
    answer = world.session().get(f"{API}/v1/transcripts", headers={"Authorization": f"Bearer {reflector_token(world)}"})
    assert (answer.status_code, answer.json()) == (401, {"detail": "Invalid authentication"})
    assert world.log("reflector-server-1.log").count("JWT error: Invalid audience") == 2


def test_empty_public_key_is_a_500_not_a_401(world: World) -> None:
    """The 0-byte PEM a failed pipeline leaves: python-jose raises JWKError, which Reflector does not catch."""
    world.set_key_file("")
    answer = world.session().get(f"{API}/v1/me", headers={"Authorization": f"Bearer {reflector_token(world)}"})
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")


def test_missing_key_file_means_the_server_is_down(world: World) -> None:
    with real_world.locked_state(world.dir) as state:
        state["containers"]["reflector-server-1"]["files"].clear()
    assert world.session().get(f"{API}/health").status_code == 502


def test_transcripts_need_a_user(world: World) -> None:
    anonymous = world.session().get(f"{API}/v1/transcripts")
    assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "Not authenticated"})
    listed = world.session().get(f"{API}/v1/transcripts", headers={"Authorization": f"Bearer {reflector_token(world)}"})
    assert listed.json() == {"items": [], "total": 0, "page": 1, "size": 50, "pages": 0}


def test_api_key_create_use_delete(world: World) -> None:
    bearer = {"Authorization": f"Bearer {reflector_token(world)}"}
    s = world.session()
    created = s.post(f"{API}/v1/user/api-keys", json={"name": "ci"}, headers=bearer).json()
    assert len(created["key"]) == 64
    stored = world.state()["reflector"]["api_keys"][0]
    assert stored["key_hash"] != created["key"]
    assert created["key"] not in json.dumps(world.state())
    by_key = {"X-API-Key": created["key"]}
    assert s.get(f"{API}/v1/transcripts", headers=by_key).status_code == 200
    assert [k["name"] for k in s.get(f"{API}/v1/user/api-keys", headers=by_key).json()] == ["ci"]
    assert s.delete(f"{API}/v1/user/api-keys/{created['id']}", headers=bearer).json() == {"status": "ok"}
    assert s.get(f"{API}/v1/transcripts", headers=by_key).status_code == 401


def test_auth_none_ignores_every_credential(world: World) -> None:
    token = reflector_token(world)
    world.set_env("reflector-server-1", AUTH_BACKEND="none")
    assert world.session().get(f"{API}/v1/me", headers={"Authorization": f"Bearer {token}"}).json() is None
    assert world.session().get(f"{API}/v1/transcripts", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_web_signin_offers_authentik_unless_login_is_off(world: World) -> None:
    assert "Sign in with Authentik" in world.session().get(f"{APP}/api/auth/signin").text
    assert world.session().get(f"{APP}/api/auth/providers").json()["authentik"]["callbackUrl"] == CALLBACK
    world.set_env("reflector-web-1", FEATURE_REQUIRE_LOGIN="false")
    assert "Sign in with Authentik" not in world.session().get(f"{APP}/api/auth/signin").text
    assert world.session().get(f"{APP}/api/auth/providers").json() == {}


# ------------------------------------------------------------------ faults


def test_fault_authentik_down_is_a_502_from_caddy(world: World) -> None:
    assert world.handle.fault("authentik-down", {})[0]
    answer = world.session().get(f"{AK}/-/health/live/")
    assert (answer.status_code, answer.text, answer.headers["Server"]) == (502, "", "Caddy")
    assert "connection refused" in world.log("caddy.log")
    assert world.session().get(f"{API}/health").status_code == 200
    world.handle.fault("clear", {})
    assert world.session().get(f"{AK}/-/health/live/").status_code == 204


def test_fault_authentik_slow_delays_its_answers(world: World) -> None:
    assert world.handle.fault("authentik-slow", {"seconds": 0.4}) == (True, "faults in force: authentik-slow")
    began = time.perf_counter()
    world.session().get(f"{AK}/-/health/live/")
    assert time.perf_counter() - began >= 0.4
    assert world.handle.fault("authentik-slow", {})[0] is False


def test_fault_jwks_without_x5c(world: World) -> None:
    make_application(world)
    world.handle.fault("jwks-without-x5c", {})
    key = world.session().get(f"{AK}/application/o/reflector/jwks/").json()["keys"][0]
    assert "x5c" not in key
    assert key["n"]


def test_fault_untrusted_cert_fails_verification(world: World) -> None:
    world.handle.fault("untrusted-cert", {"host": "authentik.example.com"})
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        world.session().get(f"{AK}/-/health/live/")
    assert world.session().get(f"{API}/health").status_code == 200


def test_unknown_fault_is_refused_with_the_known_ones(world: World) -> None:
    ok, detail = world.handle.fault("dns-down", {})
    assert not ok
    assert "authentik-down" in detail


def test_jwks_x5c_decodes_to_authentiks_self_signed_certificate(world: World) -> None:
    make_application(world)
    x5c = world.session().get(f"{AK}/application/o/reflector/jwks/").json()["keys"][0]["x5c"][0]
    assert base64.b64decode(x5c) == tls.signing_key(world.dir).certificate.public_bytes(tls.serialization.Encoding.DER)


def test_real_world_routing_reaches_authentik_through_caddy(tmp_path: Path) -> None:
    """With scripts/world/state.py's own resolve: Caddy's route to authentik-server-1:9000 on a shared network."""
    running = {"status": "running", "networks": ["reflector_default"], "env": {}, "files": {}}
    with real_world.locked_state(tmp_path) as state:
        state["containers"] = {
            "reflector-caddy-1": running | {"project": "reflector", "service": "caddy", "image": "caddy:2-alpine"},
            "authentik-server-1": running | {"project": "authentik", "service": "server", "image": "ghcr.io/goauthentik/server:2026.2"},
        }
        state["caddy_routes"] = {"authentik.example.com": "authentik-server-1:9000", "api.example.com": "server:1250"}
    handle = server.start(tmp_path, port=0)
    try:
        context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        for host, path, status in (("authentik.example.com", "/-/health/live/", b"204"), ("api.example.com", "/health", b"502")):
            with socket.create_connection(handle.address) as raw, context.wrap_socket(raw, server_hostname=host) as conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                assert conn.recv(100).startswith(b"HTTP/1.1 " + status)
    finally:
        handle.stop()
    assert "no such host" in (tmp_path / "log" / "caddy.log").read_text()


@pytest.mark.parametrize(
    ("env", "status", "allow_origin", "credentials"),
    [
        ({}, 200, "*", None),  # Reflector's defaults: CORS_ORIGIN=*, no credentials
        ({"CORS_ALLOW_CREDENTIALS": "true"}, 200, "https://app.example.com", "true"),  # credentials: the origin is echoed
        ({"CORS_ORIGIN": "https://app.example.com", "CORS_ALLOW_CREDENTIALS": "true"}, 200, "https://app.example.com", "true"),
        ({"CORS_ORIGIN": "https://api.example.com", "CORS_ALLOW_CREDENTIALS": "true"}, 400, None, "true"),  # the wrong host
        ({"CORS_ORIGIN": "https://app.example.com/"}, 400, None, None),  # a trailing slash is another origin
    ],
)
def test_backend_answers_preflights_as_starlettes_cors_middleware(env: dict[str, str], status: int, allow_origin: str | None, credentials: str | None) -> None:
    from scripts.world.fakes import Request, reflector_api

    settings = reflector_api.Settings.of({"env": env})
    preflight = Request(
        "OPTIONS", "/v1/me", "api.example.com",
        {"origin": "https://app.example.com", "access-control-request-method": "GET", "access-control-request-headers": "authorization"},
    )  # fmt: skip
    got_status, headers = reflector_api.cors_headers(preflight, settings)
    h = dict(headers)
    assert (got_status, h.get("Access-Control-Allow-Origin"), h.get("Access-Control-Allow-Credentials")) == (status, allow_origin, credentials)


# ------------------------------------------------------------------ divergences the audit found (issue 11)
# Each test failed on the fake as it was before (commit 070764c) and passes now; the source it follows is in
# scripts/world/fakes/authentik.py or reflector_api.py beside the behaviour.


def test_list_parameters_that_are_not_declared_filters_are_ignored(world: World) -> None:
    """django-filter filters only on a ViewSet's declared fields: scope_name is not one of propertymappings/all/'s."""
    s = admin(world)
    everything = s.get(f"{AK}/api/v3/propertymappings/all/").json()["pagination"]["count"]
    undeclared = s.get(f"{AK}/api/v3/propertymappings/all/", params={"scope_name": "offline_access"}).json()
    declared = s.get(f"{AK}/api/v3/propertymappings/provider/scope/", params={"scope_name": "offline_access"}).json()
    assert (undeclared["pagination"]["count"], declared["pagination"]["count"]) == (everything, 1)
    assert everything > 1


def test_all_property_mappings_are_every_type_in_the_base_fields(world: World) -> None:
    """PropertyMappingViewSet lists SAML, SCIM and source mappings too, with no type's own fields (no scope_name)."""
    results = admin(world).get(f"{AK}/api/v3/propertymappings/all/").json()["results"]
    kinds = {m["meta_model_name"] for m in results}
    assert {"authentik_providers_oauth2.scopemapping", "authentik_providers_saml.samlpropertymapping"} <= kinds
    assert [m["name"] for m in results if "scope_name" in m] == []


def test_a_json_api_call_without_the_json_content_type_is_415(world: World) -> None:
    """Authentik's API parses only JSON: `curl -d` sends application/x-www-form-urlencoded and gets DRF's 415."""
    make_application(world)
    s = admin(world)
    pk = s.get(f"{AK}/api/v3/providers/oauth2/", params={"name": "Reflector"}).json()["results"][0]["pk"]
    form = s.patch(
        f"{AK}/api/v3/providers/oauth2/{pk}/",
        data=json.dumps({"client_secret": "changed"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status_code, form.json()) == (415, {"detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'})
    assert s.get(f"{AK}/api/v3/providers/oauth2/{pk}/").json()["client_secret"] == "reflector-secret"


def test_a_provider_needs_redirect_uris_and_credentials_of_at_most_255_characters(world: World) -> None:
    """OAuth2ProviderSerializer requires redirect_uris; client_id and client_secret are CharField(max_length=255)."""
    s = admin(world)
    flow = s.get(f"{AK}/api/v3/flows/instances/", params={"slug": "default-provider-invalidation-flow"}).json()["results"][0]["pk"]
    body = {"name": "X", "authorization_flow": flow, "invalidation_flow": flow, "redirect_uris": [{"matching_mode": "strict", "url": CALLBACK}]}
    no_uris = s.post(f"{AK}/api/v3/providers/oauth2/", json={k: v for k, v in body.items() if k != "redirect_uris"})
    long_id = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"client_id": "i" * 256})
    long_secret = s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"client_secret": "s" * 256})
    too_long = ["Ensure this field has no more than 255 characters."]
    assert [(r.status_code, r.json()) for r in (no_uris, long_id, long_secret)] == [
        (400, {"redirect_uris": ["This field is required."]}),
        (400, {"client_id": too_long}),
        (400, {"client_secret": too_long}),
    ]
    assert s.post(f"{AK}/api/v3/providers/oauth2/", json=body | {"client_secret": "s" * 255}).status_code == 201


def test_without_claims_in_the_id_token_the_access_token_has_no_email_and_reflector_answers_500(world: World) -> None:
    """IDToken.new adds the scopes' claims only with include_claims_in_id_token; Reflector reads payload["email"] (KeyError)."""
    make_application(world, include_claims_in_id_token=False)
    token = login(world, oauth_client(world))
    claims = jwt.get_unverified_claims(token["access_token"])
    me = world.session().get(f"{API}/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert ("email" in claims, me.status_code, me.text) == (False, 500, "Internal Server Error")
    assert claims["azp"] == "reflector"
    assert "KeyError: 'email'" in world.log("reflector-server-1.log")


def test_authentik_liveness_answers_204(world: World) -> None:
    """Authentik's Go router answers /-/health/live/ itself with 204 No Content (internal/web/proxy.go)."""
    live = world.session().get(f"{AK}/-/health/live/")
    assert (live.status_code, live.text) == (204, "")


def test_the_bearer_scheme_is_case_insensitive_where_the_real_code_lowercases_it(world: World) -> None:
    """Authentik's API (validate_auth) and Reflector (OAuth2PasswordBearer) lowercase the scheme; userinfo takes [Bb]earer only."""
    token = reflector_token(world)
    api = world.session().get(f"{AK}/api/v3/flows/instances/", headers={"Authorization": f"BEARER {BOOT_TOKEN}"})
    me = world.session().get(f"{API}/v1/me", headers={"Authorization": f"bearer {token}"})
    userinfo = [world.session().get(f"{AK}/application/o/userinfo/", headers={"Authorization": f"{scheme} {token}"}).status_code for scheme in ("bearer", "BEARER")]
    assert (api.status_code, me.status_code, userinfo) == (200, 200, [200, 401])


def test_a_redirect_uri_outside_the_providers_list_is_invalid_client_at_the_token_endpoint(world: World) -> None:
    """TokenParams.__check_redirect_uri raises TokenError("invalid_client") before the code is even looked up."""
    code = issued_code(world)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": f"{APP}/elsewhere", "client_id": "reflector", "client_secret": "reflector-secret"}
    answer = world.session().post(f"{AK}/application/o/token/", data=form)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_client")
    assert answer.headers["Cache-Control"] == "no-store"  # TokenResponse, errors included


def test_creating_an_api_key_needs_a_json_body_with_a_non_empty_name_or_none(world: World) -> None:
    """FastAPI: a required body model missing is 422 "Field required"; NonEmptyString rejects ""; `curl -d`'s form
    Content-Type hands the model raw bytes; with no Content-Type at all the body is read as JSON."""
    bearer = {"Authorization": f"Bearer {reflector_token(world)}"}
    s = world.session()
    missing = s.post(f"{API}/v1/user/api-keys", headers=bearer)
    empty = s.post(f"{API}/v1/user/api-keys", headers=bearer, json={"name": ""})
    form = s.post(f"{API}/v1/user/api-keys", headers=bearer | {"Content-Type": "application/x-www-form-urlencoded"}, data='{"name":"x"}')
    assert (missing.status_code, missing.json()) == (422, {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]})
    assert (empty.status_code, empty.json()) == (
        422,
        {"detail": [{"type": "string_too_short", "loc": ["body", "name"], "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}}]},
    )
    assert (form.status_code, form.json()["detail"][0]["type"], form.json()["detail"][0]["loc"]) == (422, "model_attributes_type", ["body"])
    unnamed = s.post(f"{API}/v1/user/api-keys", headers=bearer | {"Content-Type": "application/json"}, data="{}")
    untyped = s.post(f"{API}/v1/user/api-keys", headers=bearer, data='{"name":"x"}')  # requests sends no Content-Type
    assert ((unnamed.status_code, unnamed.json()["name"]), (untyped.status_code, untyped.json()["name"])) == ((200, None), (200, "x"))


def test_reflector_answers_405_for_a_known_path_with_another_method(world: World) -> None:
    """Starlette's router: a path some route matches, with a method none takes, is 405, and an unknown path 404."""
    s = world.session()
    assert [(r.status_code, r.json()) for r in (s.post(f"{API}/v1/me"), s.get(f"{API}/v1/nothing"))] == [
        (405, {"detail": "Method Not Allowed"}),
        (404, {"detail": "Not Found"}),
    ]
