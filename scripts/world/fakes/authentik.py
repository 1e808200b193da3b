"""Fake Authentik: its OAuth2/OIDC provider endpoints and the /api/v3 calls the guide and setup script make.

Models Authentik 2026.2.1 (scripts/versions.py). The /api/v3 answers follow authentik-client 2026.2.1's models,
and the contract check (scripts/contract/) holds every answer to them. The behaviour beyond the schema is read
from goauthentik/authentik's source, named at each place (views/token.py, id_token.py, utils.py, jwks.py,
api/authentication.py, internal/web/proxy.go, blueprints/system/*.yaml); the copies read were the search index's
stored versions, whose exact release could not be pinned here.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes
from jose import jwt

from scripts.world.fakes import (
    AppContext,
    Request,
    Response,
    html_response,
    json_response,
    not_found_html,
    redirect,
    tls,
)

ACR = "goauthentik.io/providers/oauth2/default"
ADMIN = "akadmin"

# The default blueprints' flows that the guide and the setup script look up by slug.
DEFAULT_FLOWS = (
    ("default-authentication-flow", "Welcome to authentik!", "authentication"),
    ("default-invalidation-flow", "Default Invalidation Flow", "invalidation"),
    (
        "default-provider-authorization-explicit-consent",
        "Authorize Application",
        "authorization",
    ),
    (
        "default-provider-authorization-implicit-consent",
        "Authorize Application",
        "authorization",
    ),
    ("default-provider-invalidation-flow", "Logged out of application", "invalidation"),
    ("initial-setup", "Welcome to authentik!", "stage_configuration"),
)

# blueprints/system/providers-oauth2.yaml (and providers-proxy.yaml for ak_proxy), read at goauthentik/authentik
# commit 0aada70: scope name -> mapping name, description, the claims its expression returns.
SCOPE_MAPPINGS = (
    ("openid", "authentik default OAuth Mapping: OpenID 'openid'", "", ()),
    ("email", "authentik default OAuth Mapping: OpenID 'email'", "Email address", ("email", "email_verified")),
    (
        "profile",
        "authentik default OAuth Mapping: OpenID 'profile'",
        "General Profile Information",
        ("name", "given_name", "preferred_username", "nickname", "groups"),
    ),
    ("entitlements", "authentik default OAuth Mapping: Application Entitlements", "Application entitlements", ("entitlements", "roles")),
    ("offline_access", "authentik default OAuth Mapping: OpenID 'offline_access'", "Access to request new tokens without interaction", ()),
    ("goauthentik.io/api", "authentik default OAuth Mapping: authentik API access", "authentik API Access on behalf of your user", ()),
    ("ak_proxy", "authentik default OAuth Mapping: Proxy outpost", "authentik Proxy - User information", ("sid", "ak_proxy")),
)
SCOPE_MANAGED = {
    "entitlements": "goauthentik.io/providers/oauth2/scope-entitlements",
    "goauthentik.io/api": "goauthentik.io/providers/oauth2/scope-authentik_api",
    "ak_proxy": "goauthentik.io/providers/proxy/scope-proxy",
}


@dataclass(frozen=True, slots=True)
class MappingType:
    """A property-mapping model: what its serializer reports about itself (component, verbose names, model name)."""

    component: str
    verbose_name: str
    meta_model_name: str


SCOPE = MappingType("ak-property-mapping-provider-scope-form", "Scope Mapping", "authentik_providers_oauth2.scopemapping")
# The other mappings a fresh install's system blueprints create (blueprints/system/providers-saml.yaml,
# providers-scim.yaml, sources-ldap.yaml, sources-kerberos.yaml): `propertymappings/all/` lists them too.
# RAC's need an enterprise licence (its blueprint's condition); Google Workspace's and Entra's are assumed to as well.
OTHER_MAPPINGS: tuple[tuple[MappingType, str, tuple[tuple[str, str], ...]], ...] = (
    (
        MappingType("ak-property-mapping-provider-saml-form", "SAML Provider Property Mapping", "authentik_providers_saml.samlpropertymapping"),
        "goauthentik.io/providers/saml/",
        (
            ("upn", "authentik default SAML Mapping: UPN"),
            ("name", "authentik default SAML Mapping: Name"),
            ("email", "authentik default SAML Mapping: Email"),
            ("username", "authentik default SAML Mapping: Username"),
            ("uid", "authentik default SAML Mapping: User ID"),
            ("groups", "authentik default SAML Mapping: Groups"),
            ("ms-windowsaccountname", "authentik default SAML Mapping: WindowsAccountname (Username)"),
        ),
    ),
    (
        MappingType("ak-property-mapping-provider-scim-form", "SCIM Provider Mapping", "authentik_providers_scim.scimmapping"),
        "goauthentik.io/providers/scim/",
        (("user", "authentik default SCIM Mapping: User"), ("group", "authentik default SCIM Mapping: Group")),
    ),
    (
        MappingType("ak-property-mapping-source-ldap-form", "LDAP Source Property Mapping", "authentik_sources_ldap.ldapsourcepropertymapping"),
        "goauthentik.io/sources/ldap/",
        (
            ("default-dn-path", "authentik default LDAP Mapping: DN to User Path"),
            ("default-name", "authentik default LDAP Mapping: Name"),
            ("default-mail", "authentik default LDAP Mapping: mail"),
            ("ms-samaccountname", "authentik default Active Directory Mapping: sAMAccountName"),
            ("ms-userprincipalname", "authentik default Active Directory Mapping: userPrincipalName"),
            ("ms-givenName", "authentik default Active Directory Mapping: givenName"),
            ("ms-sn", "authentik default Active Directory Mapping: sn"),
            ("openldap-uid", "authentik default OpenLDAP Mapping: uid"),
            ("openldap-cn", "authentik default OpenLDAP Mapping: cn"),
        ),
    ),
    (
        MappingType("ak-property-mapping-source-kerberos-form", "Kerberos Source Property Mapping", "authentik_sources_kerberos.kerberossourcepropertymapping"),
        "goauthentik.io/sources/kerberos/user/",
        (
            ("default/multipart-principals-as-service-accounts", "authentik default Kerberos User Mapping: Multipart principals as service accounts"),
            ("default/ignore-other-realms", "authentik default Kerberos User Mapping: Ignore other realms"),
            ("default/ignore-system-principals", "authentik default Kerberos User Mapping: Ignore system principals"),
            ("realm-as-group", "authentik default Kerberos User Mapping: Add realm as group"),
        ),
    ),
)

DURATION_UNITS = (
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "milliseconds",
    "microseconds",
)

INVALID_GRANT = (
    "The provided authorization grant or refresh token is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client"
)
INVALID_TOKEN = "The access token provided is expired, revoked, malformed, or invalid for other reasons."
INVALID_SCOPE = "The requested scope is invalid, unknown, or malformed."
INVALID_CLIENT = "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method)"

Handler = Callable[[Request, AppContext, dict[str, Any], re.Match[str]], Response]


# ---------------------------------------------------------------- state


def seed(state: dict[str, Any], ctx: AppContext) -> dict[str, Any]:
    """Authentik as a fresh install leaves it: default flows, scope mappings, the self-signed key pair, akadmin."""
    ak: dict[str, Any] = state.setdefault("authentik", {})
    ak.setdefault("install_id", str(uuid.uuid4()))
    ak.setdefault("api_tokens", [])
    ak.setdefault("providers", {})
    ak.setdefault("applications", {})
    ak.setdefault("codes", {})
    ak.setdefault("refresh_tokens", {})
    ak.setdefault("access_tokens", {})
    ak.setdefault("next_provider_pk", 1)
    if "flows" not in ak:
        ak["flows"] = {
            slug: {
                "pk": str(uuid.uuid4()),
                "name": title,
                "slug": slug,
                "title": title,
                "designation": designation,
            }
            for slug, title, designation in DEFAULT_FLOWS
        }
    if "property_mappings" not in ak:
        ak["property_mappings"] = [
            _mapping(SCOPE, SCOPE_MANAGED.get(scope, f"goauthentik.io/providers/oauth2/scope-{scope}"), name, _expression(claims))
            | {"scope_name": scope, "description": description}
            for scope, name, description, claims in SCOPE_MAPPINGS
        ] + [_mapping(kind, prefix + managed, name, "return {}") for kind, prefix, entries in OTHER_MAPPINGS for managed, name in entries]
    if "certificate_keypairs" not in ak:
        cert = tls.signing_key(ctx.world_dir).certificate
        ak["certificate_keypairs"] = [
            {
                "pk": str(uuid.uuid4()),
                "name": tls.SIGNING_KEY_NAME,
                "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
                "fingerprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),  # Authentik shows both
                "cert_expiry": cert.not_valid_after_utc.isoformat(),
                "cert_subject": cert.subject.rfc4514_string(),
                "private_key_available": True,
                "key_type": "rsa",
                "managed": None,
            }
        ]
    if "users" not in ak:
        boot = bootstrap(state, ctx)
        ak["users"] = {
            ADMIN: {
                "pk": 1,
                "username": ADMIN,
                "name": "authentik Default Admin",
                "email": boot.get("AUTHENTIK_BOOTSTRAP_EMAIL") or "root@localhost",
                "groups": ["authentik Admins"],
            }
        }
    return ak


def _mapping(kind: MappingType, managed: str, name: str, expression: str) -> dict[str, Any]:
    return {
        "pk": str(uuid.uuid4()),
        "managed": managed,
        "name": name,
        "expression": expression,
        "component": kind.component,
        "verbose_name": kind.verbose_name,
        "verbose_name_plural": kind.verbose_name + "s",
        "meta_model_name": kind.meta_model_name,
    }


def _expression(claims: tuple[str, ...]) -> str:
    return "return {" + ", ".join(f'"{c}": ...' for c in claims) + "}"


def bootstrap(state: Mapping[str, Any], ctx: AppContext) -> dict[str, str]:
    """The AUTHENTIK_BOOTSTRAP_* settings the install read at its first start (see first_start)."""
    return dict(state.get("authentik", {}).get("bootstrap", {}))


def first_start(state: dict[str, Any], ctx: AppContext, database: str, env: Mapping[str, str]) -> bool:
    """Authentik starting on `database`: an empty one is migrated, seeded, and bootstrapped from `env`; True if it was.

    The bootstrap settings are read only on the first start, and Authentik's data lives in its
    PostgreSQL database (docs: install-config/automated-install), so a new database (say, after
    `docker compose down -v`) starts over from the .env of that moment. Called by the Authentik
    image (scripts/world/images/authentik.py) when its server or worker starts."""
    if state.get("authentik", {}).get("database") == database:
        return False
    state["authentik"] = {"database": database, "bootstrap": {k: str(v) for k, v in env.items() if k.startswith("AUTHENTIK_BOOTSTRAP_")}}
    seed(state, ctx)
    return True


def update_or_create_token(state: dict[str, Any], identifier: str, username: str, intent: str, expiring: bool, description: str) -> tuple[str, bool]:
    """`Token.objects.update_or_create(identifier=..., defaults={...})` in Authentik's Django shell: (key, created).

    The key is kept on update and generated on create (authentik/core/models.py: default_token_key,
    60 characters)."""
    tokens: list[Any] = state["authentik"].setdefault("api_tokens", [])
    for i, token in enumerate(tokens):
        if isinstance(token, Mapping) and token.get("identifier") == identifier:
            tokens[i] = dict(token) | {"user": username, "intent": intent, "expiring": expiring, "description": description}
            return str(token["key"]), False
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(60))
    tokens.append({"key": key, "identifier": identifier, "user": username, "intent": intent, "expiring": expiring, "description": description})
    return key, True


def parse_duration(text: str) -> timedelta:
    """Authentik's timedelta_string ("hours=1;minutes=5"); ValueError names the expected format."""
    parts: dict[str, float] = {}
    for item in text.split(";"):
        unit, sep, value = item.partition("=")
        if not sep or unit.strip() not in DURATION_UNITS:
            raise ValueError(f"{text} is not in the correct format of 'hours=3;minutes=1'.")
        try:
            parts[unit.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{text} is not in the correct format of 'hours=3;minutes=1'.") from None
    return timedelta(**parts)


# ---------------------------------------------------------------- entry point


def handle(request: Request, ctx: AppContext) -> Response:
    """Answer one request to authentik.example.com (the server container, behind Caddy)."""
    method = "GET" if request.method == "HEAD" else request.method
    matches = [(m, pattern, handler) for m, pattern, handler in ROUTES if re.fullmatch(pattern, request.path)]
    for route_method, pattern, handler in matches:
        if route_method in ("*", method):
            with ctx.world.locked_state(ctx.world_dir) as state:
                seed(state, ctx)
                return handler(request, ctx, state, re.fullmatch(pattern, request.path))  # type: ignore[arg-type]  # matched above
    if matches and request.path.startswith("/api/"):
        return json_response(405, {"detail": f'Method "{request.method}" not allowed.'})
    return not_found_html()


# ---------------------------------------------------------------- OIDC


def _base(request: Request) -> str:
    return f"https://{request.host}"


def _provider_for_slug(ak: Mapping[str, Any], slug: str) -> dict[str, Any] | None:
    app = ak["applications"].get(slug)
    if not app or app.get("provider") is None:
        return None
    provider: dict[str, Any] | None = ak["providers"].get(str(app["provider"]))
    return provider


def _slug_for_provider(ak: Mapping[str, Any], provider: Mapping[str, Any]) -> str | None:
    for slug, app in ak["applications"].items():
        if app.get("provider") == provider["pk"]:
            return str(slug)
    return None


def _scope_names(ak: Mapping[str, Any], provider: Mapping[str, Any]) -> list[str]:
    by_pk = {m["pk"]: m for m in ak["property_mappings"]}
    return [by_pk[pk]["scope_name"] for pk in provider.get("property_mappings", []) if "scope_name" in by_pk.get(pk, {})]


def _issuer(request: Request, slug: str) -> str:
    return f"{_base(request)}/application/o/{slug}/"


def openid_configuration(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    provider = _provider_for_slug(ak, m["slug"])
    if provider is None:
        return not_found_html()
    base = _base(request)
    o = f"{base}/application/o"
    signed = provider.get("signing_key") is not None
    scopes = _scope_names(ak, provider)
    claims = ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce"]
    for scope, _name, _description, names in SCOPE_MAPPINGS:
        if scope in scopes:
            claims.extend(names)
    return json_response(
        200,
        {
            "issuer": _issuer(request, m["slug"]),
            "authorization_endpoint": f"{o}/authorize/",
            "token_endpoint": f"{o}/token/",
            "userinfo_endpoint": f"{o}/userinfo/",
            "end_session_endpoint": f"{o}/{m['slug']}/end-session/",
            "introspection_endpoint": f"{o}/introspect/",
            "revocation_endpoint": f"{o}/revoke/",
            "device_authorization_endpoint": f"{o}/device/",
            "response_types_supported": [
                "code",
                "id_token",
                "id_token token",
                "code token",
                "code id_token",
                "code id_token token",
            ],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "jwks_uri": f"{o}/{m['slug']}/jwks/",
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "implicit",
                "client_credentials",
                "password",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "id_token_signing_alg_values_supported": ["RS256" if signed else "HS256"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
            ],
            "acr_values_supported": [ACR],
            "scopes_supported": scopes,
            "request_parameter_supported": False,
            "claims_supported": claims,
            "claims_parameter_supported": False,
            "code_challenge_methods_supported": ["plain", "S256"],
        },
        (("Access-Control-Allow-Origin", "*"),),
    )


def application_root(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    if _provider_for_slug(state["authentik"], m["slug"]) is None:
        return not_found_html()
    return redirect(f"{_base(request)}/application/o/{m['slug']}/.well-known/openid-configuration")


def jwks(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    provider = _provider_for_slug(state["authentik"], m["slug"])
    if provider is None:
        return not_found_html()
    cors = (("Access-Control-Allow-Origin", "*"),)
    if provider.get("signing_key") is None:
        return json_response(200, {}, cors)
    key = tls.signing_key(ctx.world_dir).jwk()
    if "jwks-without-x5c" in ctx.faults:
        for name in ("x5c", "x5t", "x5t#S256"):
            key.pop(name)
    return json_response(200, {"keys": [key]}, cors)


def _error_page(title: str, description: str) -> Response:
    return html_response(
        400,
        f"<!DOCTYPE html>\n<html><head><title>authentik</title></head><body>\n<h1>{html.escape(title)}</h1>\n<p>{html.escape(description)}</p>\n</body></html>\n",
    )


def _redirect_allowed(provider: dict[str, Any], uri: str) -> bool:
    allowed = provider.get("redirect_uris", [])
    if not allowed:
        # Authentik saves the first redirect URI used when none is configured.
        provider["redirect_uris"] = [{"matching_mode": "strict", "url": uri}]
        return True
    for entry in allowed:
        if entry["matching_mode"] == "strict" and entry["url"] == uri:
            return True
        if entry["matching_mode"] == "regex" and re.fullmatch(entry["url"], uri):
            return True
    return False


def _redirect_listed(provider: Mapping[str, Any], uri: str) -> bool:
    """TokenParams.__check_redirect_uri: strict equality or a regex full match; an empty list matches nothing."""
    for entry in provider.get("redirect_uris", []):
        if entry["matching_mode"] == "strict" and entry["url"] == uri:
            return True
        if entry["matching_mode"] == "regex" and re.fullmatch(entry["url"], uri):
            return True
    return False


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def authenticated_user(request: Request, state: Mapping[str, Any], ctx: AppContext) -> str | None:
    """Tests have no login form: `X-Test-User: akadmin`, or basic auth with akadmin's bootstrap password."""
    if request.header("X-Test-User") == ADMIN:
        return ADMIN
    auth = request.header("Authorization") or ""
    if auth.startswith("Basic "):
        user, _, password = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
        expected = bootstrap(state, ctx).get("AUTHENTIK_BOOTSTRAP_PASSWORD")
        if user == ADMIN and expected and secrets.compare_digest(password, expected):
            return ADMIN
    return None


def authorize(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    params = request.query if request.method in ("GET", "HEAD") else request.form()
    provider = next(
        (p for p in ak["providers"].values() if p["client_id"] == params.get("client_id")),
        None,
    )
    if provider is None:
        return _error_page(
            "Client ID Error",
            "The client identifier (client_id) is missing or invalid.",
        )
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not _redirect_allowed(provider, redirect_uri):
        return _error_page(
            "Redirect URI Error",
            "The request fails due to a missing, invalid, or mismatching redirection URI (redirect_uri).",
        )
    extra = {"state": params["state"]} if "state" in params else {}
    if params.get("response_type") != "code":
        return redirect(_with_query(redirect_uri, {"error": "unsupported_response_type", **extra}))
    user = authenticated_user(request, state, ctx)
    if user is None:
        return redirect(f"/if/flow/default-authentication-flow/?next={quote(request.target, safe='')}")
    granted = [s for s in params.get("scope", "").split() if s in _scope_names(ak, provider)]
    code = secrets.token_hex(16)
    ak["codes"][code] = {
        "client_id": provider["client_id"],
        "redirect_uri": redirect_uri,
        "scope": granted,
        "nonce": params.get("nonce"),
        "user": user,
        "auth_time": int(time.time()),
        "expires": time.time() + parse_duration(provider.get("access_code_validity", "minutes=1")).total_seconds(),
        "code_challenge": params.get("code_challenge"),
        "code_challenge_method": params.get("code_challenge_method", "plain"),
    }
    return redirect(_with_query(redirect_uri, {"code": code, **extra}))


# utils.py TokenResponse: every token endpoint answer, errors included, must never be cached.
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description}, NO_STORE)


def _client(request: Request, ak: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any] | None:
    """client_secret_basic or client_secret_post; public clients need no secret."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = request.header("Authorization") or ""
    if auth.startswith("Basic "):
        raw_id, _, raw_secret = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
        client_id, secret = unquote(raw_id), unquote(raw_secret)
    provider = next((p for p in ak["providers"].values() if p["client_id"] == client_id), None)
    if provider is None:
        return None
    if provider["client_type"] == "confidential" and not secrets.compare_digest(secret or "", provider["client_secret"]):
        return None
    return dict(provider)


def _user_claims(ak: Mapping[str, Any], username: str, scopes: list[str]) -> dict[str, Any]:
    user = ak["users"][username]
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims |= {"email": user["email"], "email_verified": False}  # the 'email' mapping's expression (providers-oauth2.yaml)
    if "profile" in scopes:
        claims |= {
            "name": user["name"],
            "given_name": user["name"],
            "preferred_username": user["username"],
            "nickname": user["username"],
            "groups": list(user["groups"]),
        }
    return claims


def _subject(ak: Mapping[str, Any], username: str) -> str:
    """Authentik's default sub mode, hashed_user_id: User.uid = sha256("<pk>-<install id>")."""
    pk = ak["users"][username]["pk"]
    return hashlib.sha256(f"{pk}-{ak['install_id']}".encode()).hexdigest()


def _sign(ctx: AppContext, provider: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """RS256 with the provider's signing key (kid set), else HS256 with the client secret, as Authentik does."""
    if provider.get("signing_key") is not None:
        key = tls.signing_key(ctx.world_dir)
        return str(
            jwt.encode(
                dict(claims),
                key.private_key,
                algorithm="RS256",
                headers={"kid": key.kid},
            )
        )
    return str(jwt.encode(dict(claims), provider["client_secret"], algorithm="HS256"))


def _issue_tokens(
    request: Request,
    ctx: AppContext,
    ak: dict[str, Any],
    provider: dict[str, Any],
    grant: Mapping[str, Any],
) -> Response:
    slug = _slug_for_provider(ak, provider)
    if slug is None:
        return _oauth_error(400, "invalid_client", INVALID_CLIENT)
    now = int(time.time())
    lifetime = int(parse_duration(provider.get("access_token_validity", "minutes=5")).total_seconds())
    scopes = list(grant["scope"])
    base = {
        "iss": _issuer(request, slug),
        "sub": _subject(ak, grant["user"]),
        "aud": provider["client_id"],
        "exp": now + lifetime,
        "iat": now,
        "auth_time": grant["auth_time"],
        "acr": ACR,
        "amr": ["pwd"],
    }
    # IDToken.new (providers/oauth2/id_token.py): the scopes' claims only with include_claims_in_id_token; the
    # access token is the same IDToken plus azp and uid (to_access_token), so it loses them too.
    if provider.get("include_claims_in_id_token", True):
        base |= _user_claims(ak, grant["user"], scopes)
    id_claims = base | ({"nonce": grant["nonce"]} if grant.get("nonce") else {})
    access = _sign(ctx, provider, id_claims | {"azp": provider["client_id"], "uid": secrets.token_urlsafe(30)[:40]})
    # Expired tokens and codes only grow state.json, which every request rewrites.
    ak["access_tokens"] = {k: v for k, v in ak["access_tokens"].items() if v["exp"] >= now}
    ak["codes"] = {k: v for k, v in ak["codes"].items() if v["expires"] >= now}
    ak["access_tokens"][access] = {
        "provider": provider["pk"],
        "user": grant["user"],
        "scope": scopes,
        "exp": now + lifetime,
    }
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "scope": " ".join(scopes),
        "expires_in": lifetime,
        "id_token": _sign(ctx, provider, id_claims),
    }
    if "offline_access" in scopes:
        refresh = secrets.token_urlsafe(96)
        validity = parse_duration(provider.get("refresh_token_validity", "days=30")).total_seconds()
        ak["refresh_tokens"][refresh] = {
            "client_id": provider["client_id"],
            "user": grant["user"],
            "scope": scopes,
            "auth_time": grant["auth_time"],
            "expires": now + validity,
        }
        body["refresh_token"] = refresh
    return json_response(200, body, NO_STORE)


def token(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    form = request.form()
    provider = _client(request, ak, form)
    if provider is None:
        # TokenView.post answers every TokenError with 400, invalid_client included (providers/oauth2/views/token.py).
        return _oauth_error(400, "invalid_client", INVALID_CLIENT)
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        # TokenParams.__post_init_code (providers/oauth2/views/token.py): a missing code, then the redirect URI
        # against the provider's allowed list (a mismatch is invalid_client), then the code itself.
        if not form.get("code"):
            return _oauth_error(400, "invalid_grant", INVALID_GRANT)
        if not _redirect_listed(provider, form.get("redirect_uri", "")):
            return _oauth_error(400, "invalid_client", INVALID_CLIENT)
        grant = ak["codes"].pop(form.get("code", ""), None)
        if grant is None or grant["client_id"] != provider["client_id"] or grant["expires"] < time.time() or not _pkce_ok(grant, form.get("code_verifier")):
            return _oauth_error(400, "invalid_grant", INVALID_GRANT)
        return _issue_tokens(request, ctx, ak, provider, grant)
    if grant_type == "refresh_token":
        grant = ak["refresh_tokens"].get(form.get("refresh_token", ""))
        if grant is None or grant["client_id"] != provider["client_id"] or grant["expires"] < time.time():
            return _oauth_error(400, "invalid_grant", INVALID_GRANT)
        # Requested scopes are first cut to the provider's (__check_scopes); none left means the token's own;
        # more than the refresh token had, or no offline_access, is invalid_scope (create_refresh_response).
        allowed = _scope_names(ak, provider)
        wanted = [s for s in form.get("scope", "").split() if s in allowed] or list(grant["scope"])
        if set(wanted) - set(grant["scope"]) or "offline_access" not in wanted:
            return _oauth_error(400, "invalid_scope", INVALID_SCOPE)
        del ak["refresh_tokens"][form["refresh_token"]]  # Authentik rotates refresh tokens (threshold seconds=0)
        return _issue_tokens(request, ctx, ak, provider, grant | {"nonce": None})
    return _oauth_error(
        400,
        "unsupported_grant_type",
        "The authorization grant type is not supported by the authorization server.",
    )


def _pkce_ok(grant: Mapping[str, Any], verifier: str | None) -> bool:
    challenge = grant.get("code_challenge")
    if not challenge:
        return True
    if verifier is None:
        return False
    if grant.get("code_challenge_method") == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=") == str(challenge)
    return verifier == str(challenge)


def userinfo(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    auth = request.header("Authorization") or ""
    # extract_access_token and protected_resource_view (providers/oauth2/utils.py): `[Bb]earer <token>` only, and
    # an error is an empty 401 whose WWW-Authenticate carries the RFC 6750 code and description.
    found = re.fullmatch(r"[Bb]earer\s(\S+).*", auth)
    record = ak["access_tokens"].get(found.group(1)) if found else None
    if record is None or record["exp"] < time.time():
        return Response(401, b"", (("WWW-Authenticate", f'error="invalid_token", error_description="{INVALID_TOKEN}"'),))
    claims = {"sub": _subject(ak, record["user"])} | _user_claims(ak, record["user"], record["scope"])
    return json_response(200, claims, (("Access-Control-Allow-Origin", "*"),))


def end_session(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    if _provider_for_slug(state["authentik"], m["slug"]) is None:
        return not_found_html()
    return redirect("/if/flow/default-provider-invalidation-flow/")


def flow_page(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    if m["slug"] not in state["authentik"]["flows"]:
        return not_found_html()
    return html_response(
        200,
        f'<!DOCTYPE html>\n<html><head><title>authentik</title></head><body><ak-flow-executor flowslug="{html.escape(m["slug"])}"></ak-flow-executor></body></html>\n',
    )


def root(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    return redirect("/if/flow/default-authentication-flow/?next=%2F")


def health(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    """Liveness is answered by the Go router itself with 204 (internal/web/proxy.go); readiness by Django's
    ReadyView with 200 once the database answers (authentik/root/monitoring.py)."""
    return Response(204 if m.group(1) == "live" else 200)


# ---------------------------------------------------------------- API


def _api_user(request: Request, state: Mapping[str, Any], ctx: AppContext) -> Response | None:
    """authentik/api/authentication.py (validate_auth, bearer_auth) behind DRF, which answers 403 because the
    authenticator sends no WWW-Authenticate: no header is "not provided"; the scheme is compared case-insensitively."""
    auth = (request.header("Authorization") or "").strip()
    if not auth or " " not in auth:
        return json_response(403, {"detail": "Authentication credentials were not provided."})
    scheme, _, presented = auth.partition(" ")
    if scheme.lower() != "bearer":
        return json_response(403, {"detail": "Unsupported authentication type"})
    if presented == "":
        return json_response(403, {"detail": "Malformed header"})
    keys = {t["key"] if isinstance(t, Mapping) else str(t) for t in state["authentik"]["api_tokens"]}
    boot = bootstrap(state, ctx).get("AUTHENTIK_BOOTSTRAP_TOKEN")
    if boot:
        keys.add(boot)
    if presented not in keys:
        return json_response(403, {"detail": "Token invalid/expired"})
    return None


PAGE_SIZE = 100  # authentik/root/settings.py REST_FRAMEWORK PAGE_SIZE


def _page(request: Request, results: list[dict[str, Any]]) -> Response:
    """authentik/api/pagination.py: page/page_size, and 0 (not null) for a missing next or previous page."""
    try:
        size = max(1, int(request.query.get("page_size") or PAGE_SIZE))
        page = int(request.query.get("page") or 1)
    except ValueError:
        return json_response(404, {"detail": "Invalid page."})
    n = len(results)
    pages = max(1, -(-n // size))
    if page < 1 or page > pages:
        return json_response(404, {"detail": "Invalid page."})
    shown = results[(page - 1) * size : page * size]
    start = (page - 1) * size + 1 if shown else 0
    body = {
        "pagination": {
            "next": page + 1 if page < pages else 0,
            "previous": page - 1 if page > 1 else 0,
            "count": n,
            "current": page,
            "total_pages": pages,
            "start_index": start,
            "end_index": start + len(shown) - 1 if shown else 0,
        },
        "results": shown,
        "autocomplete": {},
    }
    used = tuple(k for k in ("page", "page_size") if k in request.query)
    response = json_response(200, body)
    return Response(response.status, response.body, response.headers, used)


@dataclass(frozen=True, slots=True)
class Filter:
    """A django-filter field a ViewSet declares: the query parameter, and the item field it compares."""

    param: str
    field: str
    kind: str = "exact"  # exact | bool | isnull


def _bool(value: str) -> bool | None:
    """django-filter's BooleanWidget: 1/0/true/false in any case; anything else means "no filter"."""
    return {"1": True, "0": False, "true": True, "false": False}.get(value.lower())


def _filtered(request: Request, items: list[dict[str, Any]], filters: tuple[Filter, ...]) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Items that pass the endpoint's declared filters (the ViewSet's filterset_fields); every other parameter is
    ignored, as django-filter ignores it. `search` matches the name (every ViewSet here lists name in search_fields).
    Returns the parameters that filtered, for the contract check."""
    used: list[str] = []
    for f in filters:
        value = request.query.get(f.param)
        if value is None:
            continue
        if f.kind == "bool":
            wanted = _bool(value)
            if wanted is None:
                continue
            items = [i for i in items if bool(i.get(f.field)) is wanted]
        elif f.kind == "isnull":
            wanted = _bool(value)
            if wanted is None:
                continue
            items = [i for i in items if (i.get(f.field) is None) is wanted]
        else:
            items = [i for i in items if str(i.get(f.field)) == value]
        used.append(f.param)
    search = request.query.get("search")
    if search:
        items = [i for i in items if search.lower() in str(i.get("name", "")).lower()]
        used.append("search")
    return items, tuple(used)


def _list(request: Request, items: list[dict[str, Any]], filters: tuple[Filter, ...]) -> Response:
    chosen, used = _filtered(request, items, filters)
    page = _page(request, chosen)
    return Response(page.status, page.body, page.headers, used + page.honoured)


def _body(request: Request) -> dict[str, Any] | Response:
    """DRF's JSONParser, the only parser Authentik's API configures (REST_FRAMEWORK DEFAULT_PARSER_CLASSES): another
    Content-Type with a body is 415; bad JSON is 400 "JSON parse error" (rest_framework/parsers.py, exceptions.py)."""
    if not request.body:
        return {}  # DRF: no body means empty data, whatever the Content-Type
    content_type = request.header("Content-Type") or ""
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json":
        return json_response(415, {"detail": f'Unsupported media type "{content_type}" in request.'})
    try:
        data = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return json_response(400, {"detail": f"JSON parse error - {e}"})
    if not isinstance(data, dict):
        return json_response(
            400,
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]},
        )
    return data


def api(guarded: Handler) -> Handler:
    def wrapped(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
        denied = _api_user(request, state, ctx)
        return denied if denied is not None else guarded(request, ctx, state, m)

    return wrapped


# The filters each list endpoint declares (its ViewSet's filterset; the same names authentik-client's
# list operations take, which the contract check holds them to). Only the ones the pages could use are modelled.
FLOW_FILTERS = (Filter("slug", "slug"), Filter("name", "name"), Filter("designation", "designation"), Filter("flow_uuid", "pk"), Filter("denied_action", "denied_action"))
MAPPING_FILTERS = (Filter("managed", "managed"), Filter("name", "name"), Filter("managed__isnull", "managed", "isnull"))
SCOPE_FILTERS = (*MAPPING_FILTERS, Filter("scope_name", "scope_name"))
KEYPAIR_FILTERS = (Filter("name", "name"), Filter("managed", "managed"), Filter("key_type", "key_type"), Filter("has_key", "private_key_available", "bool"))
PROVIDER_FILTERS = (
    *(Filter(n, n) for n in ("name", "client_id", "client_type", "authorization_flow", "signing_key", "issuer_mode", "sub_mode")),
    *(Filter(n, n) for n in ("access_code_validity", "access_token_validity", "refresh_token_validity")),
    Filter("include_claims_in_id_token", "include_claims_in_id_token", "bool"),
)
APPLICATION_FILTERS = tuple(Filter(n, n) for n in ("slug", "name", "group", "meta_launch_url", "meta_publisher", "meta_description"))


@api
def flows(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    items = [
        f
        | {
            "policybindingmodel_ptr_id": f["pk"],
            "background": "",
            "background_url": "/static/dist/assets/images/flow_background.jpg",
            "background_themed_urls": None,
            "stages": [],
            "policies": [],
            "cache_count": 0,
            "policy_engine_mode": "any",
            "compatibility_mode": False,
            "export_url": f"/api/v3/flows/instances/{f['slug']}/export/",
            "layout": "stacked",
            "denied_action": "message_continue",
            "authentication": "none",
        }
        for f in state["authentik"]["flows"].values()
    ]
    return _list(request, items, FLOW_FILTERS)


BASE_MAPPING_FIELDS = ("pk", "managed", "name", "expression", "component", "verbose_name", "verbose_name_plural", "meta_model_name")


@api
def all_mappings(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    """PropertyMappingViewSet: every mapping of every type, in the base serializer's fields only."""
    items = [{k: mapping[k] for k in BASE_MAPPING_FIELDS} for mapping in state["authentik"]["property_mappings"]]
    return _list(request, items, MAPPING_FILTERS)


@api
def scope_mappings(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    items = [mapping for mapping in state["authentik"]["property_mappings"] if "scope_name" in mapping]
    return _list(request, items, SCOPE_FILTERS)


@api
def keypairs(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    items = [
        k
        | {
            "certificate_download_url": f"/api/v3/crypto/certificatekeypairs/{k['pk']}/view_certificate/?download",
            "private_key_download_url": f"/api/v3/crypto/certificatekeypairs/{k['pk']}/view_private_key/?download",
        }
        for k in state["authentik"]["certificate_keypairs"]
    ]
    return _list(request, items, KEYPAIR_FILTERS)


PROVIDER_DEFAULTS: dict[str, Any] = {
    "authentication_flow": None,
    "property_mappings": [],
    "client_type": "confidential",
    "access_code_validity": "minutes=1",
    "access_token_validity": "minutes=5",
    "refresh_token_validity": "days=30",
    "refresh_token_threshold": "seconds=0",
    "include_claims_in_id_token": True,
    "signing_key": None,
    "encryption_key": None,
    "redirect_uris": [],
    "logout_uri": "",
    "logout_method": "backchannel",
    "sub_mode": "hashed_user_id",
    "issuer_mode": "per_provider",
    "jwt_federation_sources": [],
    "jwt_federation_providers": [],
}
# OAuth2ProviderSerializer's required fields: the model's non-blank fields, and redirect_uris (a nested
# RedirectURISerializer(many=True) without required=False); authentik-client's OAuth2ProviderRequest agrees.
PROVIDER_REQUIRED = ("name", "authorization_flow", "invalidation_flow", "redirect_uris")
# OAuth2Provider.client_id and client_secret are CharField(max_length=255) (providers/oauth2/models.py);
# DRF's CharField turns the limit into this message (rest_framework/fields.py).
MAX_LENGTHS = {"client_id": 255, "client_secret": 255}
NOT_BLANK = ("name", "client_id")
# The model's null=True fields (Provider.authentication_flow, OAuth2Provider.signing_key and encryption_key);
# for every other field DRF answers a null with "This field may not be null." (rest_framework/fields.py
# Field.validate_empty_values), client_secret included: it is CharField(blank=True), never null=True.
PROVIDER_NULLABLE = frozenset({"authentication_flow", "signing_key", "encryption_key"})


def _validate_provider(ak: Mapping[str, Any], data: Mapping[str, Any], partial: bool, own_pk: int | None) -> dict[str, Any]:
    """Field errors in DRF's shape ({"field": ["message"]}) for what Authentik's serializer rejects."""
    errors: dict[str, Any] = {}
    if not partial:
        for name in PROVIDER_REQUIRED:
            if name not in data:
                errors[name] = ["This field is required."]
    for name, value in data.items():
        if value is None and name in WRITABLE_PROVIDER_FIELDS and name not in PROVIDER_NULLABLE:
            errors[name] = ["This field may not be null."]
    for name in NOT_BLANK:
        if data.get(name) == "":
            errors[name] = ["This field may not be blank."]
    for name, limit in MAX_LENGTHS.items():
        value = data.get(name)
        if isinstance(value, str) and len(value) > limit:
            errors[name] = [f"Ensure this field has no more than {limit} characters."]
    flow_pks = {f["pk"] for f in ak["flows"].values()}
    for name in ("authorization_flow", "invalidation_flow", "authentication_flow"):
        value = data.get(name)
        if value not in (None, "") and value not in flow_pks:
            errors[name] = [f'Invalid pk "{value}" - object does not exist.']
    others = [p for p in ak["providers"].values() if p["pk"] != own_pk]
    for unique, label in (("name", "name"), ("client_id", "client id")):
        if unique in data and unique not in errors and any(p[unique] == data[unique] for p in others):
            errors[unique] = [f"o auth2 provider with this {label} already exists."]
    if "client_type" in data and data["client_type"] not in ("confidential", "public"):
        errors["client_type"] = [f'"{data["client_type"]}" is not a valid choice.']
    if isinstance(data.get("redirect_uris"), (list, str, int, dict)):
        uris = data["redirect_uris"]
        if not isinstance(uris, list):
            errors["redirect_uris"] = {"non_field_errors": [f'Expected a list of items but got type "{type(uris).__name__}".']}
        else:
            item_errors: list[dict[str, list[str]]] = []
            for entry in uris:
                e: dict[str, list[str]] = {}
                if not isinstance(entry, dict):
                    e["non_field_errors"] = [f"Invalid data. Expected a dictionary, but got {type(entry).__name__}."]
                else:
                    if entry.get("matching_mode") not in ("strict", "regex"):
                        e["matching_mode"] = ["This field is required."] if "matching_mode" not in entry else [f'"{entry["matching_mode"]}" is not a valid choice.']
                    if not isinstance(entry.get("url"), str) or not entry.get("url"):
                        e["url"] = ["This field is required."]
                item_errors.append(e)
            if any(item_errors):
                errors["redirect_uris"] = item_errors
    if "property_mappings" in data:
        known = {p["pk"] for p in ak["property_mappings"]}
        chosen = data["property_mappings"]
        if not isinstance(chosen, list):
            errors["property_mappings"] = [f'Expected a list of items but got type "{type(chosen).__name__}".']
        elif bad := [pk for pk in chosen if pk not in known]:
            errors["property_mappings"] = [f'Invalid pk "{bad[0]}" - object does not exist.']
    if data.get("signing_key") not in (None, "") and data["signing_key"] not in {k["pk"] for k in ak["certificate_keypairs"]}:
        errors["signing_key"] = [f'Invalid pk "{data["signing_key"]}" - object does not exist.']
    if "include_claims_in_id_token" in data and not isinstance(data["include_claims_in_id_token"], bool):
        errors["include_claims_in_id_token"] = ["Must be a valid boolean."]
    for name in (
        "access_code_validity",
        "access_token_validity",
        "refresh_token_validity",
        "refresh_token_threshold",
    ):
        if name in data:
            try:
                parse_duration(str(data[name]))
            except ValueError as e:
                errors[name] = [str(e)]
    return errors


PROVIDER_BASE = ("pk", "name", "authentication_flow", "authorization_flow", "invalidation_flow", "property_mappings")


def _provider_base(ak: Mapping[str, Any], provider: Mapping[str, Any]) -> dict[str, Any]:
    """ProviderSerializer: the fields every provider type shares (what an application's provider_obj shows)."""
    slug = _slug_for_provider(ak, provider)
    return {k: provider.get(k) for k in PROVIDER_BASE} | {
        "component": "ak-provider-oauth2-form",
        "assigned_application_slug": slug,
        "assigned_application_name": ak["applications"][slug]["name"] if slug else None,
        "assigned_backchannel_application_slug": None,
        "assigned_backchannel_application_name": None,
        "verbose_name": "OAuth2/OpenID Provider",
        "verbose_name_plural": "OAuth2/OpenID Providers",
        "meta_model_name": "authentik_providers_oauth2.oauth2provider",
    }


def _provider_view(ak: Mapping[str, Any], provider: Mapping[str, Any]) -> dict[str, Any]:
    return PROVIDER_DEFAULTS | dict(provider) | _provider_base(ak, provider)


WRITABLE_PROVIDER_FIELDS = ("name", "client_id", "client_secret", *PROVIDER_DEFAULTS)
WRITABLE_PROVIDER_FIELDS += ("authorization_flow", "invalidation_flow")


@api
def providers(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    if request.method == "GET":
        return _list(request, [_provider_view(ak, p) for p in ak["providers"].values()], PROVIDER_FILTERS)
    data = _body(request)
    if isinstance(data, Response):
        return data
    errors = _validate_provider(ak, data, partial=False, own_pk=None)
    if errors:
        return json_response(400, errors)
    pk = ak["next_provider_pk"]
    ak["next_provider_pk"] = pk + 1
    provider = (
        {"pk": pk}
        | PROVIDER_DEFAULTS
        | {
            "client_id": secrets.token_urlsafe(30)[:40],
            "client_secret": secrets.token_urlsafe(96)[:128],
        }
        | {k: v for k, v in data.items() if k in WRITABLE_PROVIDER_FIELDS}
    )
    ak["providers"][str(pk)] = provider
    return json_response(201, _provider_view(ak, provider))


@api
def provider_detail(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    provider = ak["providers"].get(m["pk"])
    if provider is None:
        return json_response(404, {"detail": "No OAuth2Provider matches the given query."})
    if request.method in ("GET", "HEAD"):
        return json_response(200, _provider_view(ak, provider))
    if request.method == "DELETE":
        del ak["providers"][m["pk"]]
        return Response(204)
    data = _body(request)
    if isinstance(data, Response):
        return data
    errors = _validate_provider(ak, data, partial=request.method == "PATCH", own_pk=provider["pk"])
    if errors:
        return json_response(400, errors)
    provider.update({k: v for k, v in data.items() if k in WRITABLE_PROVIDER_FIELDS})
    return json_response(200, _provider_view(ak, provider))


def _application_view(ak: Mapping[str, Any], app: Mapping[str, Any]) -> dict[str, Any]:
    provider = ak["providers"].get(str(app.get("provider")))
    return dict(app) | {
        "provider_obj": _provider_base(ak, provider) if provider else None,
        "backchannel_providers_obj": [],
        "launch_url": app.get("meta_launch_url") or None,
        "meta_icon_url": None,
        "meta_icon_themed_urls": None,
    }


APPLICATION_DEFAULTS: dict[str, Any] = {
    "provider": None,
    "backchannel_providers": [],
    "open_in_new_tab": False,
    "meta_launch_url": "",
    "meta_icon": "",
    "meta_description": "",
    "meta_publisher": "",
    "policy_engine_mode": "any",
    "group": "",
}


@api
def applications(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    if request.method == "GET":
        return _list(request, [_application_view(ak, a) for a in ak["applications"].values()], APPLICATION_FILTERS)
    data = _body(request)
    if isinstance(data, Response):
        return data
    errors: dict[str, list[str]] = {}
    for name in ("name", "slug"):
        if name not in data:
            errors[name] = ["This field is required."]
        elif data[name] is None:
            errors[name] = ["This field may not be null."]
        elif data[name] == "":
            errors[name] = ["This field may not be blank."]
    slug = data.get("slug")
    if isinstance(slug, str) and slug:
        if not re.fullmatch(r"[-a-zA-Z0-9_]+", slug):
            errors["slug"] = ["Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."]
        elif slug in ak["applications"]:
            errors["slug"] = ["application with this slug already exists."]
    provider = data.get("provider")
    if provider is not None:
        if str(provider) not in ak["providers"]:
            errors["provider"] = [f'Invalid pk "{provider}" - object does not exist.']
        elif any(a.get("provider") == int(provider) for a in ak["applications"].values()):
            errors["provider"] = ["application with this provider already exists."]
    if errors:
        return json_response(400, errors)
    app = {"pk": str(uuid.uuid4())} | APPLICATION_DEFAULTS | {k: v for k, v in data.items() if k in ("name", "slug", *APPLICATION_DEFAULTS)}
    if app["provider"] is not None:
        app["provider"] = int(app["provider"])
    ak["applications"][slug] = app
    return json_response(201, _application_view(ak, app))


@api
def application_detail(request: Request, ctx: AppContext, state: dict[str, Any], m: re.Match[str]) -> Response:
    ak = state["authentik"]
    app = ak["applications"].get(m["slug"])
    if app is None:
        return json_response(404, {"detail": "No Application matches the given query."})
    if request.method == "DELETE":
        del ak["applications"][m["slug"]]
        return Response(204)
    if request.method in ("PATCH", "PUT"):
        data = _body(request)
        if isinstance(data, Response):
            return data
        app.update({k: v for k, v in data.items() if k in ("name", *APPLICATION_DEFAULTS)})
    return json_response(200, _application_view(ak, app))


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", r"/", root),
    ("GET", r"/-/health/(live|ready)/", health),
    ("GET", r"/if/flow/(?P<slug>[-\w]+)/", flow_page),
    (
        "GET",
        r"/application/o/(?P<slug>[-\w]+)/\.well-known/openid-configuration",
        openid_configuration,
    ),
    ("GET", r"/application/o/(?P<slug>[-\w]+)/jwks/", jwks),
    ("GET", r"/application/o/(?P<slug>[-\w]+)/end-session/", end_session),
    ("*", r"/application/o/authorize/", authorize),
    ("POST", r"/application/o/token/", token),
    ("*", r"/application/o/userinfo/", userinfo),
    (
        "GET",
        r"/application/o/(?P<slug>(?!authorize|token|userinfo)[-\w]+)/",
        application_root,
    ),
    ("GET", r"/api/v3/flows/instances/", flows),
    ("GET", r"/api/v3/propertymappings/all/", all_mappings),
    ("GET", r"/api/v3/propertymappings/provider/scope/", scope_mappings),
    ("GET", r"/api/v3/crypto/certificatekeypairs/", keypairs),
    ("GET", r"/api/v3/providers/oauth2/", providers),
    ("POST", r"/api/v3/providers/oauth2/", providers),
    ("GET", r"/api/v3/providers/oauth2/(?P<pk>\d+)/", provider_detail),
    ("PATCH", r"/api/v3/providers/oauth2/(?P<pk>\d+)/", provider_detail),
    ("PUT", r"/api/v3/providers/oauth2/(?P<pk>\d+)/", provider_detail),
    ("DELETE", r"/api/v3/providers/oauth2/(?P<pk>\d+)/", provider_detail),
    ("GET", r"/api/v3/core/applications/", applications),
    ("POST", r"/api/v3/core/applications/", applications),
    ("GET", r"/api/v3/core/applications/(?P<slug>[-\w]+)/", application_detail),
    ("PATCH", r"/api/v3/core/applications/(?P<slug>[-\w]+)/", application_detail),
    ("PUT", r"/api/v3/core/applications/(?P<slug>[-\w]+)/", application_detail),
    ("DELETE", r"/api/v3/core/applications/(?P<slug>[-\w]+)/", application_detail),
)


def provider_summary(state: Mapping[str, Any], slug: str) -> dict[str, Any] | None:
    """What the checks ask about an application's provider: its scope names and whether it signs with a key."""
    ak = state.get("authentik", {})
    if "applications" not in ak or "property_mappings" not in ak:
        return None
    provider = _provider_for_slug(ak, slug)
    if provider is None:
        return None
    return {
        "client_id": provider["client_id"],
        "scopes": _scope_names(ak, provider),
        "signing_key": provider.get("signing_key"),
        "redirect_uris": [u["url"] for u in provider.get("redirect_uris", [])],
    }
