"""The world's fake services: the HTTPS front, Authentik, Reflector's API and web app; here, the records they share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit


class WorldAPI(Protocol):
    """What the fakes use of scripts/world/state.py: the shared state and the routing decision."""

    def read_state(self, world_dir: Path) -> dict[str, Any]: ...

    def locked_state(self, world_dir: Path) -> AbstractContextManager[dict[str, Any]]: ...

    def resolve(self, world_dir: Path, host: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as an app sees it; header names are lower-case."""

    method: str
    target: str
    host: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """First value of each query parameter (what Django's request.GET.get returns)."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query, keep_blank_values=True).items()}

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace"), keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Response:
    """What an app answers; the front adds Content-Length and the Server header."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    # Query parameters this answer depended on (a list filtered by them): the contract check
    # (scripts/contract/) holds each to the parameters the real operation declares. Not sent.
    honoured: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request a fake answered and its answer, as the front records it for the contract check (traffic.jsonl)."""

    app: str  # who answered: "authentik", "reflector-api", "web"
    request: Request
    response: Response

    def as_json(self) -> dict[str, Any]:
        q, r = self.request, self.response
        return {
            "app": self.app,
            "method": q.method,
            "target": q.target,
            "host": q.host,
            "request_headers": dict(q.headers),
            "request_body": q.body.decode(errors="replace"),
            "status": r.status,
            "response_headers": [list(h) for h in r.headers],
            "response_body": r.body.decode(errors="replace"),
            "honoured": list(r.honoured),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        request = Request(
            method=str(data["method"]),
            target=str(data["target"]),
            host=str(data["host"]),
            headers={str(k): str(v) for k, v in data["request_headers"].items()},
            body=str(data["request_body"]).encode(),
        )
        response = Response(
            status=int(data["status"]),
            body=str(data["response_body"]).encode(),
            headers=tuple((str(k), str(v)) for k, v in data["response_headers"]),
            honoured=tuple(str(n) for n in data["honoured"]),
        )
        return cls(str(data["app"]), request, response)


@dataclass(frozen=True, slots=True)
class AppContext:
    """Where an app finds its world: the state, its container record, and the faults in force."""

    world_dir: Path
    world: WorldAPI
    container: Mapping[str, Any]
    faults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    container_name: str = ""


def json_response(status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    # Compact and UTF-8, as both Starlette's JSONResponse and DRF's JSONRenderer write it: `curl` shows this exact text.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, (("Content-Type", "application/json"), *headers))


def html_response(status: int, html: str) -> Response:
    return Response(status, html.encode(), (("Content-Type", "text/html; charset=utf-8"),))


def redirect(location: str, status: int = 302) -> Response:
    return Response(status, b"", (("Location", location),))


def not_found_html() -> Response:
    """Django's plain 404 page, which Authentik and friends answer for unknown paths."""
    return html_response(
        404,
        '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
        "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n",
    )
