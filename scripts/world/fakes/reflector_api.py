"""Fake Reflector: the backend's token checks and user/API-key endpoints, and the web app's sign-in pages.

Models Reflector 0.34.0 (scripts/versions.py): server/reflector/auth/auth_jwt.py, views/user.py,
views/user_api_keys.py, settings.py and app.py at tag v0.34.0, served by FastAPI 0.116.1 and pydantic 2.11
(server/uv.lock); the web app's flags from www/app/lib/features.ts and clientEnv.ts.
"""

from __future__ import annotations

import datetime as dt
import email.message
import hashlib
import hmac
import html
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from jose import JWTError, jwt

from scripts.world.fakes import AppContext, Request, Response, html_response, json_response
from scripts.world.fakes.reflector_models import CreateApiKeyRequest

KEYS_DIR = "/app/reflector/auth/jwt/keys"
# server/reflector/settings.py defaults, used when the container's env does not set them.
DEFAULTS = {
    "AUTH_BACKEND": "none",
    "AUTH_JWT_ALGORITHM": "RS256",
    "AUTH_JWT_PUBLIC_KEY": "authentik.monadical.com_public.pem",
    "SECRET_KEY": "changeme-f02f86fd8b3e4fd892c6043e5a298e21",
    "PUBLIC_MODE": "false",
    "CORS_ORIGIN": "*",
    "CORS_ALLOW_CREDENTIALS": "false",
}
TRUE = ("1", "true", "yes", "on", "t", "y")  # what pydantic accepts as a true bool


class KeyFileMissing(RuntimeError):
    """auth_jwt opens the key at import: without it the server process cannot start."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The backend's settings as pydantic-settings reads them from the container's environment."""

    backend: str
    algorithm: str
    audience: str | None
    public_key: str | None
    secret_key: str
    public_mode: bool
    cors_origins: tuple[str, ...] = ("*",)
    cors_credentials: bool = False

    @classmethod
    def of(cls, container: Mapping[str, Any]) -> Settings:
        env = DEFAULTS | dict(container.get("env", {}))
        key: str | None = None
        if env["AUTH_BACKEND"] == "jwt":
            path = f"{KEYS_DIR}/{env['AUTH_JWT_PUBLIC_KEY']}"
            files = container.get("files", {})
            if path not in files:
                raise KeyFileMissing(f"FileNotFoundError: [Errno 2] No such file or directory: 'reflector/auth/jwt/keys/{env['AUTH_JWT_PUBLIC_KEY']}'")
            key = str(files[path])
        return cls(
            backend=env["AUTH_BACKEND"],
            algorithm=env["AUTH_JWT_ALGORITHM"],
            audience=env.get("AUTH_JWT_AUDIENCE"),
            public_key=key,
            secret_key=env["SECRET_KEY"],
            public_mode=str(env["PUBLIC_MODE"]).lower() in TRUE,
            cors_origins=tuple(str(env["CORS_ORIGIN"]).split(",")),
            cors_credentials=str(env["CORS_ALLOW_CREDENTIALS"]).lower() in TRUE,
        )


class HTTPError(Exception):
    """FastAPI's HTTPException: a status and a detail, answered as {"detail": ...}."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _log(ctx: AppContext, level: str, message: str) -> None:
    name = ctx.container_name or f"{ctx.container.get('project', 'reflector')}-{ctx.container.get('service', 'server')}-1"
    log = ctx.world_dir / "log" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with log.open("a") as f:
        f.write(f"{stamp} [{level}] {message}\n")


def key_hash(secret_key: str, key: str) -> str:
    """user_api_keys.py: HMAC-SHA256 of the key, keyed with SECRET_KEY."""
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def _current_user_optional(request: Request, ctx: AppContext, settings: Settings) -> dict[str, Any] | None:
    """auth_jwt._authenticate_user: an API key and/or a bearer JWT, each naming a user."""
    if settings.backend != "jwt":
        return None  # auth_none ignores every credential
    assert settings.public_key is not None  # Settings.of loads it for jwt
    found: list[dict[str, Any]] = []
    with ctx.world.locked_state(ctx.world_dir) as state:
        rf = state.setdefault("reflector", {})
        users = rf.setdefault("users", {})
        keys = rf.setdefault("api_keys", [])
        api_key = request.header("X-API-Key")
        if api_key:
            digest = key_hash(settings.secret_key, api_key)
            row = next((k for k in keys if k["key_hash"] == digest), None)
            if row is not None:
                found.append({"sub": row["user_id"], "email": None})
        auth = request.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            try:
                payload = jwt.decode(
                    token,
                    settings.public_key,
                    algorithms=[settings.algorithm],
                    audience=settings.audience,
                )
            except JWTError as e:
                _log(ctx, "error", f"JWT error: {e}")  # once in JWTAuth.verify_token ...
                _log(ctx, "error", f"JWT error: {e}")  # ... and again in _authenticate_user
                raise HTTPError(401, "Invalid authentication") from e
            uid, email = (
                payload["sub"],
                payload["email"],
            )  # KeyError -> 500, as in Reflector
            if uid not in users:
                _log(ctx, "info", f"Creating new user on first login: {uid} ({email})")
                users[uid] = {
                    "id": str(uuid.uuid4()),
                    "authentik_uid": uid,
                    "email": email,
                }
            found.append({"sub": users[uid]["id"], "email": email})
    if not found:
        return None
    if len({u["sub"] for u in found}) > 1:
        # JWTException has no handler in Reflector's app: the client sees a 500.
        raise RuntimeError("Invalid authentication: more than one user provided")
    return found[0]


def _current_user(request: Request, ctx: AppContext, settings: Settings) -> dict[str, Any]:
    user = _current_user_optional(request, ctx, settings)
    if user is None:
        if settings.backend != "jwt":
            # Static analysis: auth_none.current_user returns None and the views then index it.
            raise RuntimeError("TypeError: 'NoneType' object is not subscriptable")
        raise HTTPError(401, "Not authenticated")
    return user


def cors_headers(request: Request, settings: Settings) -> tuple[int | None, tuple[tuple[str, str], ...]]:
    """Starlette's CORSMiddleware as app.py configures it (allow_origins=CORS_ORIGIN.split(","), methods and
    headers "*", allow_credentials=CORS_ALLOW_CREDENTIALS): (a preflight's status or None, headers to add)."""
    origin = request.headers.get("origin")
    if origin is None:
        return None, ()
    all_origins = "*" in settings.cors_origins
    allowed = all_origins or origin in settings.cors_origins
    creds = (("Access-Control-Allow-Credentials", "true"),) if settings.cors_credentials else ()
    if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
        explicit = not all_origins or settings.cors_credentials
        headers: list[tuple[str, str]] = [("Vary", "Origin")] if explicit else [("Access-Control-Allow-Origin", "*")]
        if allowed and explicit:
            headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"))
        if "access-control-request-headers" in request.headers:
            headers.append(("Access-Control-Allow-Headers", request.headers["access-control-request-headers"]))
        return (200 if allowed else 400), (*headers, *creds)
    if all_origins and "cookie" not in request.headers:
        return None, (("Access-Control-Allow-Origin", "*"), *creds)
    if allowed:
        return None, (("Access-Control-Allow-Origin", origin), ("Vary", "Origin"), *creds)
    return None, creds


def handle(request: Request, ctx: AppContext) -> Response:
    """Answer one request to api.example.com (the server container, behind Caddy, under CORSMiddleware)."""
    settings = Settings.of(ctx.container)
    preflight, cors = cors_headers(request, settings)
    if preflight is not None:
        body = b"OK" if preflight == 200 else b"Disallowed CORS origin"
        return Response(preflight, body, (("Content-Type", "text/plain; charset=utf-8"), *cors))
    response = _answer(request, ctx, settings)
    return Response(response.status, response.body, response.headers + cors)


def _answer(request: Request, ctx: AppContext, settings: Settings) -> Response:
    try:
        return _route(request, ctx, settings)
    except HTTPError as e:
        return json_response(e.status, {"detail": e.detail})
    except RequestValidation as e:
        return json_response(422, {"detail": e.errors})
    except Exception as e:  # noqa: BLE001  # uvicorn's answer to any unhandled error is a bare 500
        _log(ctx, "error", f"Exception in ASGI application: {type(e).__name__}: {e}")
        return Response(
            500,
            b"Internal Server Error",
            (("Content-Type", "text/plain; charset=utf-8"),),
        )


def _route(request: Request, ctx: AppContext, settings: Settings) -> Response:
    path, method = request.path, request.method
    if path == "/health" and method == "GET":
        return json_response(200, {"status": "healthy"})
    if path == "/v1/me" and method == "GET":
        return json_response(200, _current_user_optional(request, ctx, settings))
    if path == "/v1/transcripts" and method == "GET":
        user = _current_user_optional(request, ctx, settings)
        if user is None and not settings.public_mode:
            raise HTTPError(401, "Not authenticated")
        return json_response(200, {"items": [], "total": 0, "page": 1, "size": 50, "pages": 0})
    if path == "/v1/user/api-keys":
        if method == "POST":
            return _create_key(request, ctx, settings)
        if method == "GET":
            user = _current_user(request, ctx, settings)
            state = ctx.world.read_state(ctx.world_dir)
            rows = [k for k in state.get("reflector", {}).get("api_keys", []) if k["user_id"] == user["sub"]]
            return json_response(
                200,
                [{f: k[f] for f in ("id", "user_id", "name", "created_at")} for k in rows],
            )
        raise HTTPError(405, "Method Not Allowed")
    if (m := re.fullmatch(r"/v1/user/api-keys/(?P<id>[^/]+)", path)) and method == "DELETE":
        user = _current_user(request, ctx, settings)
        with ctx.world.locked_state(ctx.world_dir) as state:
            keys = state.setdefault("reflector", {}).setdefault("api_keys", [])
            keys[:] = [k for k in keys if not (k["id"] == m["id"] and k["user_id"] == user["sub"])]
        return json_response(200, {"status": "ok"})  # delete_key treats "no row" as success too
    if any(re.fullmatch(pattern, path) for pattern in ROUTE_PATHS):
        # Starlette's router: a path that a route matches with another method is 405, not 404.
        raise HTTPError(405, "Method Not Allowed")
    raise HTTPError(404, "Not Found")


# The paths of the routes modelled above (app.py, views/user.py, views/transcripts.py, views/user_api_keys.py).
ROUTE_PATHS = (r"/health", r"/v1/me", r"/v1/transcripts", r"/v1/user/api-keys", r"/v1/user/api-keys/[^/]+")


class RequestValidation(Exception):
    """FastAPI's RequestValidationError: answered 422 with {"detail": [errors]} (fastapi/exception_handlers.py)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


def _json_body(request: Request) -> Any:
    """How FastAPI 0.116 reads a JSON body (fastapi/routing.py, get_request_handler): no body is None; without a
    Content-Type it is parsed as JSON; with one, only application/json or */*+json is parsed, and any other is
    handed on as raw bytes, which the model then rejects. Bad JSON is a 422 json_invalid before any dependency runs."""
    if not request.body:
        return None
    content_type = request.header("Content-Type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return request.body
    try:
        return json.loads(request.body)
    except json.JSONDecodeError as e:
        raise RequestValidation([{"type": "json_invalid", "loc": ["body", e.pos], "msg": "JSON decode error", "input": {}, "ctx": {"error": e.msg}}]) from e


def _validated_body(model: type[pydantic.BaseModel], body: Any) -> pydantic.BaseModel:
    """fastapi/dependencies/utils.py request_body_to_args for one non-embedded body parameter: missing is
    "Field required" at ("body",); otherwise pydantic's own errors, their loc prefixed with "body" and no url."""
    if body is None:
        raise RequestValidation([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    try:
        return model.model_validate(body, from_attributes=True)
    except pydantic.ValidationError as e:
        errors = []
        for error in e.errors(include_url=False):
            item = {"type": error["type"], "loc": ["body", *error["loc"]], "msg": error["msg"], "input": _jsonable(error["input"])}
            if "ctx" in error:
                item["ctx"] = {k: _jsonable(v) for k, v in error["ctx"].items()}
            errors.append(item)
        raise RequestValidation(errors) from e


def _jsonable(value: Any) -> Any:
    """FastAPI's jsonable_encoder for what pydantic errors carry: bytes decode, exceptions become their text."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Exception):
        return str(value)
    return value


def _create_key(request: Request, ctx: AppContext, settings: Settings) -> Response:
    body = _json_body(request)  # bad JSON fails before the auth dependency runs
    user = _current_user(request, ctx, settings)
    req = _validated_body(CreateApiKeyRequest, body)
    assert isinstance(req, CreateApiKeyRequest)
    key = secrets.token_urlsafe(48)
    row = {
        "id": str(uuid.uuid4()),
        "user_id": user["sub"],
        "key_hash": key_hash(settings.secret_key, key),
        "name": req.name,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    with ctx.world.locked_state(ctx.world_dir) as state:
        state.setdefault("reflector", {}).setdefault("api_keys", []).append(row)
    return json_response(200, {f: row[f] for f in ("id", "user_id", "name", "created_at")} | {"key": key})


# ---------------------------------------------------------------- web (app.example.com)


def require_login(env: Mapping[str, Any]) -> bool:
    """features.ts: only "true" counts as true, and requireLogin defaults to true when unset."""
    value = env.get("FEATURE_REQUIRE_LOGIN")
    return value is None or value == "true"


def handle_web(request: Request, ctx: AppContext) -> Response:
    """Answer one request to app.example.com (the web container, behind Caddy)."""
    env = dict(ctx.container.get("env", {}))
    site = str(env.get("NEXTAUTH_URL") or f"https://{request.host}").rstrip("/")
    login = require_login(env)
    if request.path == "/api/auth/providers":
        providers = (
            {
                "authentik": {
                    "id": "authentik",
                    "name": "Authentik",
                    "type": "oauth",
                    "signinUrl": f"{site}/api/auth/signin/authentik",
                    "callbackUrl": f"{site}/api/auth/callback/authentik",
                }
            }
            if login
            else {}
        )
        return json_response(200, providers)
    if request.path == "/api/auth/signin":
        button = (
            f'<form action="{html.escape(site)}/api/auth/signin/authentik" method="POST"><button type="submit"><span>Sign in with Authentik</span></button></form>'
            if login
            else ""
        )
        return html_response(
            200,
            f"<!DOCTYPE html><html><head><title>Sign In</title></head><body>{button}</body></html>",
        )
    if request.path == "/":
        link = '<a href="/api/auth/signin">Log in</a>' if login else ""
        return html_response(
            200,
            f"<!DOCTYPE html><html><head><title>Reflector</title></head><body><header>{link}</header></body></html>",
        )
    return html_response(
        404,
        "<!DOCTYPE html><html><head><title>404: This page could not be found.</title></head><body><h1>404</h1></body></html>",
    )
