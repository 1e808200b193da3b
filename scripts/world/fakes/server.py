"""The world's HTTPS front on :443: TLS with the world CA, routing by host through "Caddy" to the fake apps, faults."""

from __future__ import annotations

import datetime as dt
import json
import socketserver
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from scripts.world.fakes import (
    AppContext,
    Exchange,
    Request,
    Response,
    WorldAPI,
    authentik,
    not_found_html,
    redirect,
    reflector_api,
    tls,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
APPS: dict[str, Callable[[Request, AppContext], Response]] = {
    "authentik": authentik.handle,
    "reflector-api": reflector_api.handle,
    "web": reflector_api.handle_web,
}
FAULTS = (
    "authentik-down",
    "authentik-slow",
    "jwks-without-x5c",
    "untrusted-cert",
    "clear",
)
IDLE_TIMEOUT = 30.0  # seconds a kept-alive connection may sit idle before its thread lets go


class Front(ThreadingHTTPServer):
    """One listening socket for every host; TLS is negotiated per connection in its own thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], world_dir: Path, world: WorldAPI, fixtures: Path) -> None:
        super().__init__(address, Handler)
        self.world_dir = world_dir
        self.world = world
        self.fixtures = fixtures
        self.faults: dict[str, dict[str, Any]] = {}
        self.faults_lock = threading.Lock()
        self.stopping = threading.Event()
        certs = tls.server_certs(world_dir)
        self.context = _context(certs)
        self.untrusted = _context(tls.untrusted_certs(world_dir))
        self.context.sni_callback = self._choose_certificate
        (world_dir / "log").mkdir(parents=True, exist_ok=True)
        self.log_lock = threading.Lock()

    def fault_set(self) -> dict[str, dict[str, Any]]:
        with self.faults_lock:
            return dict(self.faults)

    def _choose_certificate(
        self,
        sock: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        _: ssl.SSLContext,
    ) -> int | None:
        """Caddy's certificate selection: no site for the name aborts the handshake with internal_error."""
        host = server_name or ""
        untrusted = self.fault_set().get("untrusted-cert")
        if untrusted is not None and untrusted.get("host") in (None, host):
            sock.context = self.untrusted
        if server_name:
            upstream = self.world.resolve(self.world_dir, host)
            if _is_unreachable(upstream) and upstream.status <= 0:
                self.caddy_log(host, "", upstream.reason)
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake here, in the connection's thread, so a slow client never blocks accept()."""
        request.settimeout(IDLE_TIMEOUT)
        conn = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError):
            conn.close()  # the alert (no site for the name, or the client distrusts us) has been sent
            return
        try:
            Handler(conn, client_address, self)
        finally:
            conn.close()

    def server_bind(self) -> None:
        """Skip HTTPServer's getfqdn(): a reverse lookup has no business in a world without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )

    def error_log(self, text: str) -> None:
        with self.log_lock, (self.world_dir / "log" / "fakes-error.log").open("a") as f:
            f.write(text + "\n")

    def record(self, exchange: Exchange) -> None:
        """traffic.jsonl: what a fake answered, for the host's contract check (scripts/contract/)."""
        line = json.dumps(exchange.as_json()) + "\n"
        with self.log_lock, (self.world_dir / "traffic.jsonl").open("a") as f:
            f.write(line)

    def access_log(self, line: str) -> None:
        with self.log_lock, (self.world_dir / "log" / "access.log").open("a") as f:
            f.write(line + "\n")

    def caddy_log(self, host: str, uri: str, reason: str) -> None:
        """Caddy's JSON error log line for an upstream it could not reach."""
        entry = {
            "level": "error",
            "ts": time.time(),
            "logger": "http.log.error",
            "msg": reason,
            "request": {"host": host, "uri": uri},
            "status": 502,
        }
        line = json.dumps(entry) + "\n"
        with self.log_lock:
            with (self.world_dir / "log" / "caddy.log").open("a") as f:
                f.write(line)
            # Caddy logs to stderr, so the same line is what `docker compose logs caddy` shows.
            with (self.world_dir / "log" / "reflector-caddy-1.log").open("a") as f:
                f.write(line)


def _context(certs: tls.ServerCerts) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.chain_pem, certs.private_pem)
    return context


def _is_unreachable(upstream: Any) -> bool:
    return type(upstream).__name__ == "Unreachable"


class Handler(BaseHTTPRequestHandler):
    """Reads one request at a time and hands it to `dispatch`."""

    server: Front
    protocol_version = "HTTP/1.1"

    def do_any(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = self.headers.get("Host") or ""
        host = raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw  # drop a port; IPv6 hosts are not in this world
        request = Request(
            method=self.command,
            target=self.path,
            host=host.lower(),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response, upstream = dispatch(self.server, request)
        except Exception:  # noqa: BLE001  # a bug in a fake must show up as a 500 and a traceback, not a hang
            self.server.error_log(traceback.format_exc())
            response, upstream = (
                Response(500, b"fake service error; see log/fakes-error.log"),
                "error",
            )
        if response is None:
            self.close_connection = True  # Caddy could not even take the request: drop it
            status = 0
        else:
            if upstream in APPS:
                # Before the answer leaves: once a client has it, its step may end and be judged.
                self.server.record(Exchange(upstream, request, response))
            self._send(response)
            status = response.status
        self.server.access_log(
            f'{dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")} {host} "{self.command} {self.path}" {status} {upstream} {time.perf_counter() - started:.3f}s'
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any

    def _send(self, response: Response) -> None:
        self.send_response_only(response.status)
        names = {k.lower() for k, _ in response.headers}
        for key, value in response.headers:
            self.send_header(key, value)
        if "server" not in names:
            self.send_header("Server", "Caddy")
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the stdlib names it so
        """Requests go to access.log; the stdlib's stderr lines would only interleave with the executor's."""


def dispatch(front: Front, request: Request) -> tuple[Response | None, str]:
    """Who answers `request.host`, and what they say; None means the connection is dropped."""
    upstream = front.world.resolve(front.world_dir, request.host)
    kind = type(upstream).__name__
    if kind == "Direct":
        return direct(front.fixtures, upstream.name, request), upstream.name
    if kind == "Unreachable":
        front.caddy_log(request.host, request.target, upstream.reason)
        if upstream.status <= 0:
            return None, "unreachable"
        return Response(upstream.status, b"", (("Server", "Caddy"),)), "unreachable"
    faults = front.fault_set()
    app = upstream.app
    if app == "authentik":
        if "authentik-down" in faults:
            front.caddy_log(
                request.host,
                request.target,
                f"dial tcp {getattr(upstream, 'container_name', 'authentik-server-1')}:9000: connect: connection refused",
            )
            return Response(502, b"", (("Server", "Caddy"),)), app
        if "authentik-slow" in faults:
            front.stopping.wait(float(faults["authentik-slow"]["seconds"]))
    ctx = AppContext(
        world_dir=front.world_dir,
        world=front.world,
        container=upstream.container,
        faults=faults,
        container_name=str(getattr(upstream, "container_name", "")),
    )
    try:
        return APPS[app](request, ctx), app
    except reflector_api.KeyFileMissing as e:
        # The server crashes at import without its key file and restarts forever: Caddy cannot dial it.
        front.caddy_log(request.host, request.target, f"dial tcp: connect: connection refused ({e})")
        return Response(502, b"", (("Server", "Caddy"),)), app


def direct(fixtures: Path, name: str, request: Request) -> Response:
    """goauthentik.io redirects the compose file to docs.goauthentik.io, which serves the fixture.

    The redirect is an assumption: whether the old address still redirects is not known (facts §8.2);
    Authentik's current docs give the docs.goauthentik.io address, so the world models the move.
    """
    own = (("Server", "cloudflare"),)
    if name == "goauthentik.io":
        if request.path in ("/docker-compose.yml", "/compose.yml"):
            target = "https://docs.goauthentik.io/compose.yml"
            body = f'<html><head><title>301 Moved Permanently</title></head><body><a href="{target}">Moved Permanently</a>.</body></html>\n'
            return Response(
                301,
                body.encode(),
                (("Location", target), ("Content-Type", "text/html"), *own),
            )
        if request.path == "/":
            return Response(
                200,
                b"<!DOCTYPE html><html><head><title>authentik</title></head><body></body></html>\n",
                own,
            )
    if name == "docs.goauthentik.io":
        compose = fixtures / "authentik" / "compose.yml"
        if request.path == "/compose.yml" and compose.is_file():
            return Response(
                200,
                compose.read_bytes(),
                (("Content-Type", "application/x-yaml"), *own),
            )
        if request.path == "/":
            return redirect("https://docs.goauthentik.io/docs/")
    response = not_found_html()
    return Response(response.status, response.body, (*response.headers, *own))


class Handle:
    """A running front: where it listens, how to stop it, and how to inject faults."""

    def __init__(self, front: Front, thread: threading.Thread) -> None:
        self._front = front
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._front.server_address[:2]
        return str(host), int(port)

    @property
    def faults(self) -> Mapping[str, Mapping[str, Any]]:
        return self._front.fault_set()

    def stop(self) -> None:
        self._front.stopping.set()
        self._front.shutdown()
        self._front.server_close()
        self._thread.join()

    def fault(self, name: str, args: Mapping[str, Any] | None = None) -> tuple[bool, str]:
        """Inject (or with "clear", remove) a fault; the detail says what is now in force."""
        args = dict(args or {})
        if name not in FAULTS:
            return False, f"unknown fault {name!r}; known: {', '.join(FAULTS)}"
        if name == "authentik-slow":
            try:
                seconds = float(args["seconds"])
            except (KeyError, TypeError, ValueError):
                return False, "authentik-slow needs seconds=<number>"
            if seconds <= 0:
                return False, f"authentik-slow needs a positive delay, got {seconds}"
            args = {"seconds": seconds}
        if name == "untrusted-cert" and args.get("host") not in (None, *tls.HOSTNAMES):
            return False, f"untrusted-cert host must be one of {tls.HOSTNAMES}"
        with self._front.faults_lock:
            if name == "clear":
                self._front.faults.clear()
            else:
                self._front.faults[name] = args
            active = sorted(self._front.faults)
        return True, f"faults in force: {', '.join(active) or 'none'}"


def start(
    world: Path,
    *,
    bind: str = "127.0.0.1",
    port: int = 443,
    fixtures: Path = FIXTURES,
    world_api: WorldAPI | ModuleType | None = None,
) -> Handle:
    """Bind and serve; the socket is listening when this returns, so clients need no wait."""
    if world_api is None:
        from scripts.world import state as world_module

        world_api = world_module
    front = Front((bind, port), world, world_api, fixtures)
    thread = threading.Thread(
        target=front.serve_forever,
        kwargs={"poll_interval": 0.05},  # how soon shutdown() is noticed; stop() waits for it
        name="fakes-front",
        daemon=True,
    )
    thread.start()
    return Handle(front, thread)
