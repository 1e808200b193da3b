"""The images this world can pull and run, by repository and tag, and how references name them."""

from __future__ import annotations

from scripts.world.images.authentik import Authentik
from scripts.world.images.base import Behaviour
from scripts.world.images.caddy import Caddy
from scripts.world.images.reflector import Backend, Frontend
from scripts.world.images.stores import DocsSite, Postgres, Redis

BEHAVIOURS: tuple[Behaviour, ...] = (Backend(), Frontend(), Authentik(), Caddy(), Postgres(), Redis(), DocsSite())
BUILT = frozenset({"reflector-docs"})
"""Images the deployer built locally (`build:` in docker-compose.prod.yml): in the store, never pulled."""


def familiar(reference: str) -> str:
    """A reference as Docker shows it: `docker.io/library/redis:7.2-alpine` -> `redis:7.2-alpine`, `:latest` added."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return f"{name}@{digest}" if digest else name


def split(reference: str) -> tuple[str, str]:
    """(repository, tag) of a familiar reference."""
    name = familiar(reference)
    repository, _, tag = name.rpartition(":")
    return repository, tag


def behaviour(reference: str) -> Behaviour | None:
    """The behaviour of the image named `reference` (any spelling), if this world models that repository and tag."""
    repository, tag = split(reference)
    return next((b for b in BEHAVIOURS if b.repository == repository and tag in b.tags), None)


def modelled() -> list[str]:
    return [f"{b.repository}:{t}" for b in BEHAVIOURS for t in b.tags if b.repository not in BUILT]
