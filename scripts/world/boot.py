"""The deployer's server when the guide starts: the checkout, the images they had, and the stack that the real `docker compose` brought up two hours ago."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from scripts.world.engine.daemon import Daemon
from scripts.world.fixtures import copy_checkout, rename_in_checkout
from scripts.world.images import catalogue
from scripts.world.state import UP_FOR, locked_world

STACK_IMAGES = (
    "monadicalsas/reflector-frontend:latest",
    "monadicalsas/reflector-backend:latest",
    "redis:7.2-alpine",
    "postgres:17-alpine",
    "caddy:2-alpine",
    "reflector-docs:latest",  # built from docs/Dockerfile by the deployer's first `up`
)
UP = ("compose", "-f", "docker-compose.prod.yml", "--profile", "caddy", "up", "-d")
"""What the deployer ran in ~/reflector (Reflector's deployment guide, with the bundled Caddy)."""


class BootError(RuntimeError):
    """The fixture stack did not come up; the message carries compose's output."""


def docker_cli(path: str | None = None) -> str:
    """The docker CLI on PATH (the host's, bound read-only into the world)."""
    found = shutil.which("docker", path=path)
    if found is None:
        raise BootError("the docker CLI is not on PATH: install Docker's client (Debian: `apt-get install docker.io`)")
    return found


def boot(home: Path, world: Path, env: Mapping[str, str] | None = None, source: Path | None = None) -> None:
    """Lay the checkout into `home`, give the engine the deployer's images, run their `up`, and age it all by UP_FOR.

    The checkout is the fixture's, or the real one that upstream mode staged at `source` (scripts/upstream.py).
    It has the reader's own hostnames when the world was started with them (fixtures.rename_in_checkout).
    The engine must be listening where `env` (DOCKER_HOST, else /var/run/docker.sock) points."""
    environ = dict(env if env is not None else os.environ)
    docker = docker_cli(environ.get("PATH"))
    checkout = copy_checkout(home) if source is None else copy_checkout(home, source, executables=None)
    rename_in_checkout(checkout, world)  # a reader with other hostnames deployed Reflector under them
    world.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(world)
    with locked_world(world) as state:
        daemon.ensure_builtin(state.engine)
        for reference in STACK_IMAGES:
            behaviour = catalogue.behaviour(reference)
            assert behaviour is not None, reference  # STACK_IMAGES names modelled images only
            daemon.store_image(state.engine, reference, behaviour)
    done = subprocess.run([docker, *UP], cwd=checkout, env=environ, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise BootError(f"`docker {' '.join(UP)}` in {checkout} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}")
    age(world, UP_FOR)


def age(world: Path, seconds: float) -> None:
    """Move every timestamp back by `seconds`: the stack has been up a while ("Up 2 hours")."""
    with locked_world(world) as state:
        engine = state.engine
        for cid, c in engine.containers.items():
            run = c.run
            engine.containers[cid] = replace(
                c,
                created=c.created - seconds,
                run=replace(run, started_at=run.started_at - seconds if run.started_at else 0.0, finished_at=run.finished_at - seconds if run.finished_at else 0.0),
            )
        for nid, n in engine.networks.items():
            engine.networks[nid] = replace(n, created=n.created - seconds)
        for name, v in engine.volumes.items():
            engine.volumes[name] = replace(v, created=v.created - seconds)
