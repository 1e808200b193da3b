"""Authentik's OAuth2/OIDC endpoints, which its OpenAPI schema leaves out, held to the specs' required fields and Authentik's views.

Sources: OpenID Connect Discovery 1.0 §3 and §4.3 (https://openid.net/specs/openid-connect-discovery-1_0.html),
OpenID Connect Core 1.0 §2, §3.1.3.3, §5.3.2 (https://openid.net/specs/openid-connect-core-1_0.html), RFC 6749 §5.1-5.2,
RFC 6750 §3, RFC 7517 §4-5 and RFC 7518 §6.3.1; Authentik's providers/oauth2/views/{provider,jwks,token,userinfo}.py
and utils.py (TokenResponse: Cache-Control no-store; errors 400, or 403 for a user who may not use the application).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
from jose import jwt

from scripts.contract.common import Exchange, Violation, json_body, model_errors


class Discovery(pydantic.BaseModel):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    userinfo_endpoint: str | None = None
    scopes_supported: list[str] | None = None
    claims_supported: list[str] | None = None


class RSAKey(pydantic.BaseModel):
    kty: Literal["RSA"]
    n: str
    e: str
    kid: str | None = None
    alg: str | None = None
    use: str | None = None
    x5c: list[str] | None = None


class JWKS(pydantic.BaseModel):
    """jwks.py: {"keys": [...]}, or {} when the provider has no signing key (then tokens are HS256)."""

    keys: list[RSAKey] | None = None


class TokenSuccess(pydantic.BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int | None = None
    refresh_token: str | None = None
    scope: str | None = None
    id_token: str


class TokenError(pydantic.BaseModel):
    error: Literal["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope"]
    error_description: str | None = None


class IDTokenClaims(pydantic.BaseModel):
    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int


class UserInfo(pydantic.BaseModel):
    sub: str


def _json(exchange: Exchange, label: str, model: type[pydantic.BaseModel]) -> Iterator[Violation]:
    text = exchange.response.body.decode(errors="replace")
    for path, message in model_errors(model, text, "response"):
        yield Violation(label, path, f"{message} ({model.__name__})")


def check(exchange: Exchange) -> Iterator[Violation]:
    request, response = exchange.request, exchange.response
    path, status = request.path, response.status
    if status == 404 or 300 <= status < 400 or "text/html" in (response.header("Content-Type") or ""):
        return  # unknown slugs, redirects and the consent/error pages are Django HTML, not a protocol message
    if re.fullmatch(r"/application/o/[-\w]+/\.well-known/openid-configuration", path):
        label = "OIDC discovery"
        found = list(_json(exchange, label, Discovery))
        yield from found
        if not found:
            issuer = str(json_body(response.body.decode())["issuer"])
            if f"{issuer.rstrip('/')}/.well-known/openid-configuration" != f"https://{request.host}{path}":
                yield Violation(label, "response.issuer", f"{issuer} is not the URL the document was fetched from (Discovery §4.3)")
    elif re.fullmatch(r"/application/o/[-\w]+/jwks/", path):
        yield from _json(exchange, "JWKS", JWKS)
    elif path == "/application/o/token/":
        yield from _token(exchange)
    elif path == "/application/o/userinfo/":
        if status == 200:
            yield from _json(exchange, "userinfo", UserInfo)
        elif not re.search(r'error="[a-z_]+"', response.header("WWW-Authenticate") or ""):
            yield Violation("userinfo", "response.WWW-Authenticate", f"a {status} must say its error in WWW-Authenticate (RFC 6750 §3)")


def _token(exchange: Exchange) -> Iterator[Violation]:
    response = exchange.response
    label = "token endpoint"
    if response.header("Cache-Control") != "no-store":
        yield Violation(label, "response.Cache-Control", f"{response.header('Cache-Control')!r}; RFC 6749 §5.1 and TokenResponse send no-store")
    if response.status == 200:
        found = list(_json(exchange, label, TokenSuccess))
        yield from found
        if found:
            return
        body: dict[str, Any] = json_body(response.body.decode())
        for name in ("id_token", "access_token"):
            try:
                claims = jwt.get_unverified_claims(body[name])
            except Exception as e:  # noqa: BLE001  # python-jose raises several kinds for a malformed token
                yield Violation(label, f"response.{name}", f"not a JWT: {e}")
                continue
            try:
                IDTokenClaims.model_validate(claims)
            except pydantic.ValidationError as e:
                for error in e.errors(include_url=False):
                    yield Violation(label, f"response.{name}.{'.'.join(map(str, error['loc']))}", f"{error['msg']} (OIDC Core §2)")
    elif response.status in (400, 403):
        yield from _json(exchange, label, TokenError)
    else:
        yield Violation(label, "status", f"{response.status}: Authentik's TokenView answers 200, 400 or 403")
