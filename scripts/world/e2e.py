"""End-to-end sign-in with the configuration the pages produced, using a real OIDC client (Authlib).

It plays NextAuth with the settings the running `web` container holds: discovery from
AUTHENTIK_ISSUER, the authorization-code flow with the client id, secret and callback URL, then the
backend's `/v1/me` with the access token, a refresh through AUTHENTIK_REFRESH_TOKEN_URL, and an API
key created and used on `/v1/transcripts`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from scripts.world import compose
from scripts.world.fakes import reflector_api
from scripts.world.state import read_engine, read_state

API = "https://api.example.com"  # the example; a run with other values reads the API's address from the web container
SCOPE = "openid email profile offline_access"  # what Reflector's frontend requests (authBackend.ts)


def api_url(env: dict[str, str]) -> str:
    """The API's public address as the frontend knows it (www/.env API_URL, as the browser calls it)."""
    return (env.get("API_URL") or API).rstrip("/")


def web_env(world: Path) -> dict[str, str]:
    """The environment of the running web container (empty when there is none)."""
    container = read_engine(world).container_named("reflector-web-1")
    return container.env if container is not None and container.running else {}


class SignInError(Exception):
    """A step of the sign-in failed; the message says which and what came back."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    http: Any  # requests.Session trusting the world's CA
    client: Any  # authlib OAuth2Session
    token: dict[str, Any]
    env: dict[str, str]


def log_in(world: Path) -> SignedIn:
    """What the browser does on "Log in" → "Sign in with Authentik", with the running web container's settings."""
    env = web_env(world)
    needed = ["AUTHENTIK_ISSUER", "AUTHENTIK_CLIENT_ID", "AUTHENTIK_CLIENT_SECRET", "AUTHENTIK_REFRESH_TOKEN_URL", "NEXTAUTH_URL", "NEXTAUTH_SECRET"]
    missing = [k for k in needed if not env.get(k)]
    if missing:
        raise SignInError(f"the running web container lacks {missing} (set in www/.env, then recreate web)")
    if not reflector_api.require_login(env):
        raise SignInError(f"FEATURE_REQUIRE_LOGIN is {env.get('FEATURE_REQUIRE_LOGIN')!r} in the web container: sign-in is off")
    ca = world / "ca.pem"
    http = requests.Session()
    http.verify = str(ca) if ca.exists() else True

    issuer = env["AUTHENTIK_ISSUER"]
    r = http.get(f"{issuer}/.well-known/openid-configuration", timeout=10)  # NextAuth's discovery URL
    if r.status_code != 200:
        raise SignInError(f"discovery at {issuer}/.well-known/openid-configuration gave HTTP {r.status_code}")
    meta: dict[str, Any] = r.json()

    redirect_uri = env["NEXTAUTH_URL"].rstrip("/") + "/api/auth/callback/authentik"
    client = OAuth2Session(
        env["AUTHENTIK_CLIENT_ID"], env["AUTHENTIK_CLIENT_SECRET"], scope=SCOPE, redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_post",
    )  # fmt: skip
    client.verify = http.verify
    url, _state = client.create_authorization_url(meta["authorization_endpoint"], nonce=secrets.token_urlsafe(16))
    r = http.get(url, headers={"X-Test-User": "akadmin"}, allow_redirects=False, timeout=10)
    location = r.headers.get("Location", "")
    if r.status_code != 302 or not location.startswith(redirect_uri):
        body = r.text[:200].replace("\n", " ")
        raise SignInError(f"authorize did not redirect to {redirect_uri}: HTTP {r.status_code} {location or body}")
    if "code" not in parse_qs(urlsplit(location).query):
        raise SignInError(f"authorize redirected without a code: {location}")
    try:
        token = client.fetch_token(meta["token_endpoint"], authorization_response=location)
    except OAuthError as e:
        raise SignInError(f"the token request was refused ({e.error}): {why_refused(world, env)}") from None
    check_cors(http, env["NEXTAUTH_URL"].rstrip("/"), api_url(env))
    me = http.get(f"{api_url(env)}/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
    if me.status_code != 200 or not (me.json() or {}).get("sub") or not me.json().get("email"):
        raise SignInError(f"/v1/me with the access token gave HTTP {me.status_code} {me.text[:200]}")
    return SignedIn(http, client, dict(token), env)


def why_refused(world: Path, env: dict[str, str]) -> str:
    """Tell apart the two causes of `invalid_client` a reader meets: a stale `web` container, or Authentik holding another secret."""
    client_id, secret = env.get("AUTHENTIK_CLIENT_ID", ""), env.get("AUTHENTIK_CLIENT_SECRET", "")
    www_env = Path(os.environ.get("HOME", "/home/deployer")) / "reflector" / "www" / ".env"  # the executor runs checks as the deployer
    in_file = compose.env_file(www_env) if www_env.is_file() else {}
    providers = read_state(world).get("authentik", {}).get("providers", {}).values()
    provider = next((p for p in providers if p.get("client_id") == client_id), None)
    if in_file.get("AUTHENTIK_CLIENT_SECRET", secret) != secret or in_file.get("AUTHENTIK_CLIENT_ID", client_id) != client_id:
        return "the running web container has an older AUTHENTIK_CLIENT_ID or AUTHENTIK_CLIENT_SECRET than ~/reflector/www/.env: recreate web"
    if provider is None:
        return f"Authentik has no provider with the client ID {client_id!r} that web uses (~/reflector/www/.env)"
    if provider.get("client_secret") != secret:
        return f"Authentik's provider {provider.get('name')!r} holds another client secret than ~/reflector/www/.env and the web container"
    return "the client ID and secret match Authentik's provider; check the provider's client type and the token endpoint"


def check_cors(http: Any, origin: str, api: str = API) -> None:
    """The browser's preflight from the app for an authenticated API call, as Chromium would judge it.

    The frontend sends its token in an Authorization header and fetches without `credentials`
    (www/app/lib/apiClient.tsx, openapi-fetch's default "same-origin"), so a cross-origin call is
    not credentialed: `Access-Control-Allow-Origin: *` suffices and Allow-Credentials is not needed.
    """
    r = http.options(
        f"{api}/v1/me",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
        timeout=10,
    )
    allow_origin = r.headers.get("Access-Control-Allow-Origin")
    if r.status_code != 200 or allow_origin not in (origin, "*"):
        got = f"HTTP {r.status_code}, Access-Control-Allow-Origin {allow_origin!r}"
        raise SignInError(f"the API refuses the app's cross-origin requests (preflight from {origin}: {got}): check CORS_ORIGIN")
    allowed = {h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")}
    if "authorization" not in allowed and "*" not in allowed:
        raise SignInError(f"the API's preflight does not allow the Authorization header (allows {sorted(allowed)})")


def create_api_key(s: SignedIn, name: str) -> str:
    """Settings → Create API Key → Create: the key the page shows once."""
    r = s.http.post(f"{api_url(s.env)}/v1/user/api-keys", json={"name": name}, headers={"Authorization": f"Bearer {s.token['access_token']}"}, timeout=10)
    if r.status_code != 200:
        raise SignInError(f"creating an API key gave HTTP {r.status_code} {r.text[:200]}")
    key: str = r.json()["key"]
    return key


def sign_in(home: Path, world: Path) -> tuple[bool, str]:
    """Sign in, call the API with the token, refresh it, then create and use an API key."""
    try:
        s = log_in(world)
        if "refresh_token" not in s.token:
            return False, "Authentik issued no refresh token: the provider lacks the offline_access scope mapping"
        refreshed = s.client.refresh_token(s.env["AUTHENTIK_REFRESH_TOKEN_URL"], refresh_token=s.token["refresh_token"])
        again = s.http.get(f"{api_url(s.env)}/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=10)
        if again.status_code != 200:
            return False, f"/v1/me with the refreshed token gave HTTP {again.status_code} {again.text[:200]}"
        key = create_api_key(SignedIn(s.http, s.client, dict(refreshed), s.env), "e2e")
        listed = s.http.get(f"{api_url(s.env)}/v1/transcripts", headers={"X-API-Key": key}, timeout=10)
        if listed.status_code != 200:
            return False, f"/v1/transcripts with X-API-Key gave HTTP {listed.status_code} {listed.text[:200]}"
        user = again.json()
    except SignInError as e:
        return False, str(e)
    return True, f"signed in as {user['email']}, refreshed the token, created and used an API key"
