"""A world on the host, for tests of the engine and the images: temp HOME and world dir, the engine on a temp socket, the real CLIs pointed at it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import sandbox
from scripts.world import boot, engine
from scripts.world.fixtures import AUTHENTIK_COMPOSE
from scripts.world.state import Container, EngineState, read_engine, read_state

AUTHENTIK_BLOCK = "{$AUTHENTIK_DOMAIN:authentik.example.com} {\n\treverse_proxy authentik-server-1:9000\n}\n"
PROD = ("compose", "-f", "docker-compose.prod.yml")


@dataclass(frozen=True, slots=True)
class Result:
    rc: int
    out: str
    err: str


class HostWorld:
    """The world's state and fixture stack without the sandbox; `docker()` runs the host's docker CLI with the pinned Compose plugin."""

    def __init__(self, root: Path, *, booted: bool = True) -> None:
        self.root = root
        self.home = root / "home"
        self.world = root / "world"
        self.home.mkdir()
        (self.world / "log").mkdir(parents=True)
        config = root / "docker-config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(sandbox.compose_plugin())
        self.socket = root / "docker.sock"
        self.env = {
            "HOME": str(self.home),
            "PATH": sandbox.HOST_PATH,
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "WORLD": str(self.world),
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(config),
        }
        self.handle = engine.start(self.world, self.socket)
        if booted:
            boot.boot(self.home, self.world, self.env)

    def close(self) -> None:
        self.handle.stop()

    def docker(self, *args: str, cwd: Path | None = None, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        """The real `docker ARGS` against this world's engine."""
        proc = subprocess.run(
            ["docker", *args], cwd=cwd or self.reflector, env={**self.env, **(env or {})}, input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def engine(self) -> EngineState:
        return read_engine(self.world)

    def apps(self) -> dict[str, Any]:
        """The fakes' sections of the state (authentik, reflector)."""
        return read_state(self.world)

    def container(self, name: str) -> Container:
        found = self.engine().container_named(name)
        assert found is not None, f"no container {name}"
        return found

    @property
    def reflector(self) -> Path:
        return self.home / "reflector"

    def authentik_dir(self, env: str) -> Path:
        d = self.home / "authentik"
        d.mkdir(exist_ok=True)
        (d / "compose.yml").write_text(AUTHENTIK_COMPOSE.read_text())
        (d / ".env").write_text(env)
        return d

    def edit_in_place(self, path: Path, text: str) -> None:
        """What nano does: truncate and rewrite the same inode."""
        with open(path, "r+") as fh:
            fh.truncate(0)
            fh.write(text)

    def replace_file(self, path: Path, text: str) -> None:
        """What `sed -i` and many editors do: write a new file, rename it over the old one (a new inode)."""
        new = path.with_name(path.name + ".new")
        new.write_text(text)
        os.replace(new, path)


def host_world(root: Path, *, booted: bool = True) -> Iterator[HostWorld]:
    w = HostWorld(root, booted=booted)
    try:
        yield w
    finally:
        w.close()
