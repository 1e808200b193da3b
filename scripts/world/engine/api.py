"""The simulated Docker Engine's HTTP API on a Unix socket: routes, JSON and stream encodings, hijacked exec connections.

What the real `docker` CLI and `docker compose` send for the guide's commands is answered here, each
request as one read-modify-write of the world's state (state.locked_world); a route this world does
not serve answers 501 "... is not modelled in this world", which the CLIs print as the daemon's error.
Sources: the Engine API reference v1.51 (docs.docker.com/reference/api/engine/version/v1.51/),
its stream formats (attach/logs: the 8-byte multiplexing header; exec start: the connection upgrade).
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import struct
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from scripts.world import state as world_state
from scripts.world.engine import views
from scripts.world.engine.daemon import Daemon, EngineError, not_modelled
from scripts.world.state import WorldState

ENGINE_VERSION = "28.5.1"
API_VERSION = "1.51"
MIN_API_VERSION = "1.24"
GO_VERSION = "go1.24.8"
SERVER = f"Docker/{ENGINE_VERSION} (linux)"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
IDLE_TIMEOUT = 60.0

T = TypeVar("T")
Json = Any


@dataclass(frozen=True, slots=True)
class Call:
    """One API request as a route sees it."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    match: re.Match[str]


class Reply:
    """What a route answers: JSON with a status, a finished stream, or a hijacked connection."""

    def __init__(
        self, status: int = 200, doc: Json = None, *, raw: bytes | None = None, content_type: str = "application/json", headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.status = status
        self.body = raw if raw is not None else (b"" if doc is None and status in (204, 304) else json.dumps(doc).encode() + b"\n")
        self.content_type = content_type
        self.headers = headers


def frame(stream: int, data: bytes) -> bytes:
    """The multiplexed-stream framing: stream id, three zero bytes, big-endian length, payload."""
    return struct.pack(">BxxxL", stream, len(data)) + data if data else b""


class Engine:
    """Routes and their handlers over one Daemon; thread-safe because every request holds the state lock."""

    def __init__(self, world_dir: Path) -> None:
        self.world_dir = world_dir
        self.daemon = Daemon(world_dir)
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Call], Reply]]] = []
        for method, pattern, handler in self.table():
            self.routes.append((method, re.compile(pattern), handler))

    def transact(self, fn: Callable[[WorldState], T]) -> T:
        """Run `fn` on the state under the lock, after time has passed; an EngineError still keeps what changed."""
        failure: EngineError | None = None
        result: T | None = None
        with world_state.locked_world(self.world_dir) as world:
            self.daemon.ensure_builtin(world.engine)
            self.daemon.refresh(world)
            try:
                result = fn(world)
            except EngineError as e:
                failure = e
        if failure is not None:
            raise failure
        return result  # type: ignore[return-value]  # set whenever no failure was raised

    def restored(self, paths: dict[int, str]) -> int:
        """After a snapshot was unpacked into the world (Daemon.restored); no time passes, so nothing restarts first."""
        with world_state.locked_world(self.world_dir) as world:
            return self.daemon.restored(world, paths)

    def observe(self) -> None:
        """Let time pass for what waits on its restart policy (only then is the state rewritten)."""
        if any(c.run.status == "restarting" for c in world_state.read_engine(self.world_dir).containers.values()):
            self.transact(lambda world: None)

    def table(self) -> list[tuple[str, str, Callable[[Call], Reply]]]:
        c = r"(?P<id>[^/]+)"
        return [
            ("GET", r"/version", self.version),
            ("GET", r"/info", self.info),
            ("GET", r"/containers/json", self.containers_list),
            ("POST", r"/containers/create", self.containers_create),
            ("GET", rf"/containers/{c}/json", self.containers_inspect),
            ("POST", rf"/containers/{c}/start", self.containers_start),
            ("POST", rf"/containers/{c}/stop", self.containers_stop),
            ("POST", rf"/containers/{c}/restart", self.containers_restart),
            ("POST", rf"/containers/{c}/kill", self.containers_kill),
            ("POST", rf"/containers/{c}/rename", self.containers_rename),
            ("POST", rf"/containers/{c}/wait", self.containers_wait),
            ("DELETE", rf"/containers/{c}", self.containers_remove),
            ("GET", rf"/containers/{c}/logs", self.containers_logs),
            ("POST", rf"/containers/{c}/exec", self.exec_create),
            ("GET", rf"/exec/{c}/json", self.exec_inspect),
            ("GET", r"/images/json", self.images_list),
            ("POST", r"/images/create", self.images_pull),
            ("GET", r"/images/(?P<id>.+)/json", self.images_inspect),
            ("GET", r"/networks", self.networks_list),
            ("POST", r"/networks/create", self.networks_create),
            ("GET", rf"/networks/{c}", self.networks_inspect),
            ("POST", rf"/networks/{c}/connect", self.networks_connect),
            ("POST", rf"/networks/{c}/disconnect", self.networks_disconnect),
            ("DELETE", rf"/networks/{c}", self.networks_remove),
            ("GET", r"/volumes", self.volumes_list),
            ("POST", r"/volumes/create", self.volumes_create),
            ("GET", rf"/volumes/{c}", self.volumes_inspect),
            ("DELETE", rf"/volumes/{c}", self.volumes_remove),
        ]

    def route(self, method: str, path: str) -> tuple[Callable[[Call], Reply], re.Match[str]] | None:
        for m, pattern, handler in self.routes:
            found = pattern.fullmatch(path)
            if found and m == method:
                return handler, found
        return None

    # -- system ----------------------------------------------------------------------------------------

    def version(self, call: Call) -> Reply:
        kernel = os.uname().release
        return Reply(doc={
            "Platform": {"Name": "Docker Engine - Community"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": {
                "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": "2025-10-08T12:17:14.000000000+00:00", "Experimental": "false",
                "GitCommit": "f8215cc", "GoVersion": GO_VERSION, "KernelVersion": kernel, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}}],
            "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "f8215cc",
            "GoVersion": GO_VERSION, "Os": "linux", "Arch": "amd64", "KernelVersion": kernel, "BuildTime": "2025-10-08T12:17:14.000000000+00:00",
        })  # fmt: skip

    def info(self, call: Call) -> Reply:
        def doc(world: WorldState) -> Json:
            cs = list(world.engine.containers.values())
            return {
                "ID": "WRLD:SIMU:LATE:DENG:INE0:0000:0000:0000:0000:0000:0000:0000", "Containers": len(cs),
                "ContainersRunning": sum(c.run.status == "running" for c in cs), "ContainersPaused": 0,
                "ContainersStopped": sum(c.run.status != "running" for c in cs), "Images": len(world.engine.images),
                "Driver": "overlay2", "DockerRootDir": "/var/lib/docker", "Name": "server", "ServerVersion": ENGINE_VERSION,
                "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux", "Architecture": "x86_64",
                "KernelVersion": os.uname().release, "NCPU": os.cpu_count() or 1, "MemTotal": 0, "IndexServerAddress": "https://index.docker.io/v1/",
                "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]}, "LoggingDriver": "json-file",
                "CgroupDriver": "systemd", "CgroupVersion": "2", "Swarm": {"LocalNodeState": "inactive"}, "Labels": [], "Warnings": None,
                "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"], "DefaultRuntime": "runc",
            }  # fmt: skip

        return Reply(doc=self.transact(doc))

    # -- containers -----------------------------------------------------------------------------------

    def containers_list(self, call: Call) -> Reply:
        filters = views.parse_filters(call.query.get("filters"))
        every = call.query.get("all") in ("1", "true", "True")

        def rows(world: WorldState) -> Json:
            try:
                chosen = [
                    c
                    for c in world.engine.containers.values()
                    if (every or c.run.status in ("running", "restarting")) and views.container_matches(world.engine, c, filters)
                ]
            except ValueError as e:
                raise EngineError(400, str(e)) from None
            chosen.sort(key=lambda c: c.created, reverse=True)
            return [views.container_summary(world.engine, c) for c in chosen]

        return Reply(doc=self.transact(rows))

    def containers_create(self, call: Call) -> Reply:
        if not isinstance(call.body, dict):
            raise EngineError(400, "config cannot be empty in order to create a container")
        name = call.query.get("name", "")
        created = self.transact(lambda w: self.daemon.create(w, name, call.body))
        return Reply(201, {"Id": created.id, "Warnings": []})

    def containers_inspect(self, call: Call) -> Reply:
        return Reply(doc=self.transact(lambda w: views.container_inspect(w.engine, self.daemon.container(w.engine, call.match["id"]))))

    def containers_start(self, call: Call) -> Reply:
        self.transact(lambda w: self.daemon.start(w, self.daemon.container(w.engine, call.match["id"])))
        return Reply(204)

    def containers_stop(self, call: Call) -> Reply:
        self.transact(lambda w: self.daemon.stop(w, self.daemon.container(w.engine, call.match["id"])))
        return Reply(204)

    def containers_restart(self, call: Call) -> Reply:
        def restart(world: WorldState) -> None:
            container = self.daemon.container(world.engine, call.match["id"])
            if container.run.status in ("running", "restarting"):
                container = self.daemon.stop(world, container)
            self.daemon.start(world, container)

        self.transact(restart)
        return Reply(204)

    def containers_kill(self, call: Call) -> Reply:
        signal = call.query.get("signal", "SIGKILL")
        if signal not in ("SIGKILL", "KILL", "9", "SIGTERM", "TERM", "15"):
            raise not_modelled(f"sending {signal} to a container")
        self.transact(lambda w: self.daemon.kill(w, self.daemon.container(w.engine, call.match["id"]), call.match["id"]))
        return Reply(204)

    def containers_rename(self, call: Call) -> Reply:
        self.transact(lambda w: self.daemon.rename(w, self.daemon.container(w.engine, call.match["id"]), call.query.get("name", "")))
        return Reply(204)

    def containers_wait(self, call: Call) -> Reply:
        def wait(world: WorldState) -> Json:
            container = self.daemon.container(world.engine, call.match["id"])
            if container.run.status in ("running", "restarting"):
                raise not_modelled(f"waiting for the running container {container.name} to stop (nothing stops by itself here)")
            return {"StatusCode": container.run.exit_code, "Error": None}

        return Reply(doc=self.transact(wait))

    def containers_remove(self, call: Call) -> Reply:
        force = call.query.get("force") in ("1", "true", "True")
        volumes = call.query.get("v") in ("1", "true", "True")
        self.transact(lambda w: self.daemon.remove(w, self.daemon.container(w.engine, call.match["id"]), force, volumes))
        return Reply(204)

    def containers_logs(self, call: Call) -> Reply:
        for unmodelled in ("since", "until"):
            if call.query.get(unmodelled) not in (None, "", "0"):
                raise not_modelled(f"logs --{unmodelled}")
        if call.query.get("timestamps") in ("1", "true", "True"):
            raise not_modelled("logs --timestamps")

        def read(world: WorldState) -> tuple[str, bool, int]:
            container = self.daemon.container(world.engine, call.match["id"])
            stream = self.daemon.behaviour_of(container).config.log_stream
            path = self.daemon.log_path(container.name)
            return (path.read_text(errors="replace") if path.exists() else ""), bool(container.config.get("Tty")), stream

        text, tty, stream = self.transact(read)
        lines = text.splitlines(keepends=True)
        tail = call.query.get("tail", "all")
        if tail not in ("all", "") and tail.lstrip("-").isdigit() and int(tail) >= 0:
            lines = lines[len(lines) - int(tail) :] if int(tail) else []
        wanted = {1: call.query.get("stdout"), 2: call.query.get("stderr")}[stream] in ("1", "true", "True")
        data = "".join(lines).encode() if wanted else b""
        if tty:
            return Reply(raw=data, content_type=RAW)
        return Reply(raw=b"".join(frame(stream, line.encode()) for line in lines) if wanted else b"", content_type=MULTIPLEXED)

    # -- exec -----------------------------------------------------------------------------------------

    def exec_create(self, call: Call) -> Reply:
        run = self.transact(lambda w: self.daemon.exec_create(w.engine, self.daemon.container(w.engine, call.match["id"]), call.body or {}))
        return Reply(201, {"Id": run.id})

    def exec_inspect(self, call: Call) -> Reply:
        def doc(world: WorldState) -> Json:
            run = world.engine.execs.get(call.match["id"])
            if run is None:
                raise EngineError(404, f"No such exec instance: {call.match['id']}")
            return {
                "ID": run.id, "Running": run.running, "ExitCode": run.exit_code,
                "ProcessConfig": {"tty": run.tty, "entrypoint": run.cmd[0], "arguments": list(run.cmd[1:]), "privileged": False, "user": run.user},
                "OpenStdin": run.attach_stdin, "OpenStderr": True, "OpenStdout": True, "CanRemove": False, "ContainerID": run.container_id, "DetachKeys": "", "Pid": 0,
            }  # fmt: skip

        return Reply(doc=self.transact(doc))

    # -- images -----------------------------------------------------------------------------------------

    def images_list(self, call: Call) -> Reply:
        return Reply(doc=self.transact(lambda w: [views.image_summary(i) for i in sorted(w.engine.images.values(), key=lambda i: i.tags)]))

    def images_inspect(self, call: Call) -> Reply:
        return Reply(doc=self.transact(lambda w: views.image_inspect(self.daemon.image(w.engine, call.match["id"]))))

    def images_pull(self, call: Call) -> Reply:
        if "fromSrc" in call.query:
            raise not_modelled("importing an image (docker import)")
        messages = self.transact(lambda w: self.daemon.pull(w.engine, call.query.get("fromImage", ""), call.query.get("tag", "")))
        return Reply(raw=b"".join(json.dumps(m).encode() + b"\r\n" for m in messages))

    # -- networks -------------------------------------------------------------------------------------

    def networks_list(self, call: Call) -> Reply:
        filters = views.parse_filters(call.query.get("filters"))

        def rows(world: WorldState) -> Json:
            try:
                return [views.network_summary(world.engine, n) for n in world.engine.networks.values() if views.network_matches(n, filters)]
            except ValueError as e:
                raise EngineError(400, str(e)) from None

        return Reply(doc=self.transact(rows))

    def networks_create(self, call: Call) -> Reply:
        net = self.transact(lambda w: self.daemon.network_create(w.engine, call.body or {}))
        return Reply(201, {"Id": net.id, "Warning": ""})

    def networks_inspect(self, call: Call) -> Reply:
        return Reply(doc=self.transact(lambda w: views.network_inspect(w.engine, self.daemon.network(w.engine, call.match["id"]))))

    def networks_connect(self, call: Call) -> Reply:
        body = call.body or {}

        def connect(world: WorldState) -> None:
            net = self.daemon.network(world.engine, call.match["id"])
            container = self.daemon.container(world.engine, str(body.get("Container") or ""))
            aliases = tuple((body.get("EndpointConfig") or {}).get("Aliases") or ())
            self.daemon.connect(world.engine, net, container, aliases)

        self.transact(connect)
        return Reply(200, raw=b"", content_type="text/plain")

    def networks_disconnect(self, call: Call) -> Reply:
        body = call.body or {}

        def disconnect(world: WorldState) -> None:
            net = self.daemon.network(world.engine, call.match["id"])
            container = self.daemon.container(world.engine, str(body.get("Container") or ""))
            self.daemon.disconnect(world.engine, net, container)

        self.transact(disconnect)
        return Reply(200, raw=b"", content_type="text/plain")

    def networks_remove(self, call: Call) -> Reply:
        self.transact(lambda w: self.daemon.network_remove(w.engine, self.daemon.network(w.engine, call.match["id"])))
        return Reply(204)

    # -- volumes ----------------------------------------------------------------------------------------

    def volumes_list(self, call: Call) -> Reply:
        filters = views.parse_filters(call.query.get("filters"))

        def rows(world: WorldState) -> Json:
            try:
                return {"Volumes": [views.volume_doc(v) for v in world.engine.volumes.values() if views.volume_matches(v, filters)], "Warnings": None}
            except ValueError as e:
                raise EngineError(400, str(e)) from None

        return Reply(doc=self.transact(rows))

    def volumes_create(self, call: Call) -> Reply:
        body = call.body or {}
        name = str(body.get("Name") or "") or os.urandom(32).hex()
        volume = self.transact(lambda w: self.daemon.volume_create(w.engine, name, dict(body.get("Labels") or {}), dict(body.get("DriverOpts") or {})))
        return Reply(201, views.volume_doc(volume))

    def volumes_inspect(self, call: Call) -> Reply:
        def doc(world: WorldState) -> Json:
            volume = world.engine.volumes.get(call.match["id"])
            if volume is None:
                raise EngineError(404, f"get {call.match['id']}: no such volume")
            return views.volume_doc(volume)

        return Reply(doc=self.transact(doc))

    def volumes_remove(self, call: Call) -> Reply:
        force = call.query.get("force") in ("1", "true", "True")
        self.transact(lambda w: self.daemon.volume_remove(w.engine, call.match["id"], force))
        return Reply(204)

    # -- exec start: the hijacked connection ----------------------------------------------------------------

    def exec_start(self, handler: Handler, exec_id: str, body: Json) -> None:
        """POST /exec/{id}/start: upgrade the connection, read stdin if the program wants it, run, stream its output."""
        body = body or {}

        def prepare(world: WorldState) -> tuple[Any, Any]:
            run = world.engine.execs.get(exec_id)
            if run is None:
                raise EngineError(404, f"No such exec instance: {exec_id}")
            if run.exit_code is not None or run.running:
                raise EngineError(409, f"Exec {exec_id} has already been started")
            _, program = self.daemon.exec_program(world.engine, run)
            return run, program

        run, program = self.transact(prepare)
        if body.get("Detach"):
            self.transact(lambda w: self.daemon.exec_run(w, run, b""))
            handler.reply(Reply(200, raw=b"", content_type="text/plain"))
            return
        tty = bool(body.get("Tty")) or run.tty
        upgrade = (handler.headers.get("Upgrade") or "").lower() == "tcp"
        handler.send_response_only(101 if upgrade else 200, "UPGRADED" if upgrade else "OK")
        handler.send_header("Content-Type", RAW if tty else MULTIPLEXED)
        handler.send_header("Api-Version", API_VERSION)
        handler.send_header("Server", SERVER)
        if upgrade:
            handler.send_header("Connection", "Upgrade")
            handler.send_header("Upgrade", "tcp")
        handler.end_headers()
        handler.wfile.flush()
        stdin = handler.rfile.read() if (program is not None and program.reads_stdin and run.attach_stdin) else b""
        output = self.transact(lambda w: self.daemon.exec_run(w, run, stdin))
        if tty:
            handler.wfile.write(output.stdout + output.stderr)
        else:
            handler.wfile.write(frame(1, output.stdout) + frame(2, output.stderr))
        handler.wfile.flush()
        handler.close_connection = True


class Handler(BaseHTTPRequestHandler):
    """One connection: requests in order (keep-alive), each answered by the Engine's routes."""

    server: Server
    protocol_version = "HTTP/1.1"
    server_version = SERVER
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(IDLE_TIMEOUT)

    def address_string(self) -> str:
        return "unix"

    def body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self) -> None:
        engine = self.server.engine
        url = urlsplit(self.path)
        raw_body = self.body()
        path = url.path
        versioned = re.match(r"/v(\d+)\.(\d+)(/.*)", path)
        if versioned:
            major, minor, path = int(versioned[1]), int(versioned[2]), versioned[3]
            if (major, minor) > (1, 51):
                self.reply(Reply(400, {"message": f"client version {major}.{minor} is too new. Maximum supported API version is {API_VERSION}"}))
                return
            if (major, minor) < (1, 24):
                self.reply(
                    Reply(
                        400,
                        {
                            "message": f"client version {major}.{minor} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                            "please upgrade your client to a newer version"
                        },
                    )
                )
                return
        if path == "/_ping" and self.command in ("GET", "HEAD"):
            self.reply(
                Reply(
                    200,
                    raw=b"OK",
                    content_type="text/plain; charset=utf-8",
                    headers=(("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"), ("Swarm", "inactive")),
                )
            )
            return
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError as e:
            self.reply(Reply(400, {"message": f"invalid JSON: {e}"}))
            return
        try:
            exec_start = re.fullmatch(r"/exec/(?P<id>[^/]+)/start", path)
            if exec_start and self.command == "POST":
                engine.exec_start(self, exec_start["id"], body)
                return
            found = engine.route(self.command, path)
            if found is None:
                raise not_modelled(f"{self.command} {path}")
            handler, match = found
            reply = handler(Call(self.command, path, query, body, match))
        except EngineError as e:
            reply = Reply(e.status, {"message": e.message} if e.status != 304 else None)
        except Exception:  # noqa: BLE001 - a bug in the engine is a 500 with its traceback in the log, never a hang
            self.server.log(traceback.format_exc())
            reply = Reply(500, {"message": "the simulated engine crashed; see /run/world/log/engine.log"})
        self.reply(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def reply(self, reply: Reply) -> None:
        self.send_response_only(reply.status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        self.send_header("Server", SERVER)
        self.send_header("Date", self.date_time_string())
        for key, value in reply.headers:
            self.send_header(key, value)
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib names it so
        self.server.log(f"{self.requestline} {format % args}")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The listening socket; one thread per connection."""

    daemon_threads = True
    request_queue_size = 128  # compose opens a connection per container at once (ps, up): a short backlog refuses some

    def __init__(self, path: Path, engine: Engine) -> None:
        self.engine = engine
        self.log_lock = threading.Lock()
        self.log_file = engine.world_dir / "log" / "engine.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        super().__init__(str(path), Handler)
        os.chmod(path, 0o660)

    def get_request(self) -> tuple[Any, Any]:
        request, _ = super().get_request()
        return request, ("unix", 0)

    def log(self, text: str) -> None:
        with self.log_lock, self.log_file.open("a") as f:
            f.write(text.rstrip("\n") + "\n")
