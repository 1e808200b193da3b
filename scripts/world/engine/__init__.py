"""The simulated Docker Engine: the daemon that the real `docker` and `docker compose` talk to inside the world.

api.py serves the Engine API on a Unix socket, daemon.py keeps containers, networks, volumes and
images in the world's state, views.py gives them the API's JSON shapes; what runs inside a
container is scripts/world/images. Pointing the CLIs at a real daemon (DOCKER_HOST) replaces all of it.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from scripts.world import state as world_state
from scripts.world.engine.api import Engine, Server

FAULTS = ("engine-down",)


class Handle:
    """A running engine: where it listens, how to stop it, and the faults it can take."""

    def __init__(self, world_dir: Path, socket: Path) -> None:
        self.world_dir = world_dir
        self.socket = socket
        self.engine = Engine(world_dir)
        self.server: Server | None = None
        self.thread: threading.Thread | None = None
        self.listen()

    def listen(self) -> None:
        """Bind and serve; the socket accepts connections when this returns (no client needs to wait)."""
        self.server = Server(self.socket, self.engine)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="docker-engine", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.socket.unlink(missing_ok=True)
            self.server = None
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def restored(self, inodes: str) -> tuple[bool, str]:
        """A snapshot was unpacked into the world; `inodes` lists `INODE PATH` of its files as the snapshot had them."""
        paths = {int(ino): path for ino, _, path in (line.partition(" ") for line in inodes.splitlines()) if ino.isdigit() and path}
        held = self.engine.restored(paths)
        return True, f"the engine holds {held} restored single-file mount(s)"

    def fault(self, name: str) -> tuple[bool, str]:
        """`engine-down`: the daemon stops (its socket goes away); `clear`: it is back."""
        if name == "engine-down":
            self.stop()
            return True, f"the engine is down: nothing listens on {self.socket}"
        if name == "clear" and self.server is None:
            self.listen()
        return True, "the engine is up"


class Observed:
    """The world as the fakes see it (scripts/world/fakes: WorldAPI): the state, and who answers a host
    once the restart manager has had its chance (a page request through Caddy lets time pass too)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read_state(self, world_dir: Path) -> dict[str, Any]:
        return world_state.read_state(world_dir)

    def locked_state(self, world_dir: Path) -> AbstractContextManager[dict[str, Any]]:
        return world_state.locked_state(world_dir)

    def resolve(self, world_dir: Path, host: str) -> world_state.Upstream:
        self.engine.observe()
        return world_state.resolve(world_dir, host)


def start(world_dir: Path, socket: Path) -> Handle:
    """Start the engine for `world_dir`, listening on `socket`."""
    return Handle(world_dir, socket)
