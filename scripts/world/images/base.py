"""The contract between the simulated engine and the images: what an image declares and what its processes do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scripts.world.state import Container, EngineState

NOT_MODELLED = 125
"""Exit status of a command this world cannot run (docker's own status for "the docker command failed")."""


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What the image's Dockerfile sets (ENV, ENTRYPOINT, CMD, WORKDIR, EXPOSE, HEALTHCHECK, STOPSIGNAL)."""

    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    healthcheck: tuple[str, ...] = ()
    stop_signal: str = ""
    log_stream: int = 2
    """Where the main process writes its log: 1 stdout, 2 stderr (Python's logging, Caddy and uvicorn use stderr)."""


@dataclass(frozen=True, slots=True)
class Running:
    """The main process started and runs: what it read at start, the routes a proxy loaded, its log."""

    files: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, str] = field(default_factory=dict)
    log: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Crashed:
    """The main process exited at start (with this status and log): the restart policy decides what next."""

    exit_code: int
    log: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotStarted:
    """The runtime could not start the process at all (the command is not in the image): 400 to the client."""

    message: str
    exit_code: int = 127


Outcome = Running | Crashed | NotStarted


@dataclass(frozen=True, slots=True)
class Output:
    """What a command run with `docker exec` did: its status and its two streams; `routes` when it
    reloaded a proxy's configuration."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    routes: Mapping[str, str] | None = None


class Box(Protocol):
    """The container as its processes see it: its record, its filesystem, the world around it."""

    @property
    def container(self) -> Container: ...

    @property
    def engine(self) -> EngineState: ...

    @property
    def apps(self) -> dict[str, Any]: ...

    @property
    def world_dir(self) -> Path: ...

    def read(self, path: str) -> str | None:
        """The content at `path` inside the container (mounts first, then the image's own files); None if absent."""

    def write(self, path: str, text: str) -> None:
        """Write `path` inside the container (into the mount that holds it, else its own layer)."""

    def resolve(self, name: str) -> Container | None:
        """The running container that answers `name` on one of this container's networks (Docker's DNS)."""

    def data_identity(self, path: str) -> str:
        """What holds `path` inside the container: a volume's name and incarnation, a bind source, or the
        container's own layer; a new volume of the same name is another identity."""


@dataclass(frozen=True, slots=True)
class Program:
    """A command the image can run with `docker exec`: whether it reads stdin, and what it does."""

    reads_stdin: bool
    run: Callable[[Box, Mapping[str, str], bytes], Output]


class Behaviour(Protocol):
    """One image's behaviour."""

    @property
    def repository(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def config(self) -> ImageConfig: ...

    def files(self) -> Mapping[str, str]:
        """Files baked into the image that the world reads (a key, a default config)."""

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        """Run the main process `argv` (entrypoint + cmd) in `box`."""

    def program(self, argv: tuple[str, ...]) -> Program | None:
        """The exec command `argv` if this image models it (the common ones are in scripts.world.images.common)."""


def unmodelled(what: str) -> Output:
    """The loud refusal: a command valid in the real image that this world does not emulate."""
    return Output(NOT_MODELLED, stderr=f"{what}: not modelled in this world\n".encode())
