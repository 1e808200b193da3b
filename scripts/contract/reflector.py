"""Reflector's API (0.34.0) as FastAPI serves it: the fake's answers held to the views' models, its accepted bodies to the request models.

The routes and their response models are read from the source (scripts/world/fakes/reflector_models.py says
where); the backend's dependencies cannot be installed here, so its OpenAPI schema cannot be generated offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pydantic

from scripts.contract.common import Exchange, Violation, model_errors, unknown_fields
from scripts.world.fakes import reflector_models as rm


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # a regex over the request path
    response: Any  # the success body's type (a model, or a typing form for TypeAdapter)
    body: type[pydantic.BaseModel] | None = None


ROUTES = (
    Route("GET", r"/health", rm.Health),  # app.py
    Route("GET", r"/v1/me", rm.UserInfo | None),  # views/user.py: -> UserInfo | None
    Route("GET", r"/v1/transcripts", rm.Page),  # views/transcripts.py: response_model=Page[GetTranscriptMinimal]
    Route("POST", r"/v1/user/api-keys", rm.CreateApiKeyResponse, rm.CreateApiKeyRequest),  # views/user_api_keys.py
    Route("GET", r"/v1/user/api-keys", list[rm.ApiKeyResponse]),
    Route("DELETE", r"/v1/user/api-keys/[^/]+", rm.Deleted),
)


def _errors(kind: Any, text: str, prefix: str) -> Iterator[tuple[str, str]]:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(kind)
    errors = list(model_errors(adapter, text, prefix))
    if errors:
        yield from errors
        return
    for path in unknown_fields(adapter.validate_json(text), pydantic.TypeAdapter(Any).validate_json(text), prefix):
        yield path, "not a field of the response model (FastAPI filters responses through it)"


def check(exchange: Exchange) -> Iterator[Violation]:
    request, response = exchange.request, exchange.response
    route = next((r for r in ROUTES if r.method == request.method and re.fullmatch(r.path, request.path)), None)
    label = f"{request.method} {request.path}" if route is None else f"{route.method} {route.path.replace('[^/]+', '{key_id}')}"
    if response.status == 500 or (request.method == "OPTIONS" and "access-control-request-method" in request.headers):
        return  # uvicorn's bare 500 and CORSMiddleware's preflight are plain text
    if route is None:
        if response.status not in (404, 405):
            yield Violation(label, "path", f"Reflector 0.34.0 has no such route, yet the fake answered {response.status}")
        return
    text = response.body.decode(errors="replace")
    if 200 <= response.status < 300:
        if route.body is not None and request.body:
            content_type = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
            if not (content_type.startswith("application/") and (content_type.endswith("/json") or content_type.endswith("+json"))):
                yield Violation(label, "request.content-type", f"the fake accepted {content_type!r}; FastAPI hands such a body on as bytes and answers 422")
            errors = list(model_errors(route.body, request.body.decode(errors="replace"), "request"))
            for path, message in errors:
                yield Violation(label, path, f"the fake accepted a body that {route.body.__name__} rejects: {message}; FastAPI answers 422")
        for path, message in _errors(route.response, text, "response"):
            yield Violation(label, path, message)
        return
    kind: Any = rm.ValidationErrorBody if response.status == 422 else rm.HTTPErrorBody
    for path, message in _errors(kind, text, "response"):
        yield Violation(label, path, f"{message} ({response.status} is FastAPI's {kind.__name__})")
