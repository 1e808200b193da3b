"""The inert images: postgres and redis (always healthy once running) and the docs site's nginx.

Sources: the official images' Dockerfiles and docker-entrypoint.sh (postgres: ENTRYPOINT
docker-entrypoint.sh, CMD postgres, PGDATA=/var/lib/postgresql/data, initdb only into an empty
data directory and only with a superuser password; redis: CMD redis-server, WORKDIR /data),
Reflector's docs/Dockerfile (nginx:alpine, HEALTHCHECK). Assumption: nothing in the guide talks to
them except through Reflector and Authentik, so they only start, report healthy, and keep their data
directory (postgres writes PG_VERSION there at initdb, which is how Authentik tells a fresh database).
"""

from __future__ import annotations

from collections.abc import Mapping

from scripts.world.images.base import Box, Crashed, ImageConfig, NotStarted, Outcome, Program, Running
from scripts.world.images.common import common_program

PGDATA = "/var/lib/postgresql/data"
PG_VERSIONS = {"17-alpine": "17", "16-alpine": "16"}


def not_found(argv: tuple[str, ...]) -> NotStarted:
    return NotStarted(f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH')


class Postgres:
    repository = "postgres"
    tags = tuple(PG_VERSIONS)
    config = ImageConfig(
        cmd=("postgres",),
        entrypoint=("docker-entrypoint.sh",),
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=en_US.utf8", f"PGDATA={PGDATA}"),
        exposed_ports=("5432/tcp",),
        stop_signal="SIGINT",
    )

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv != ("docker-entrypoint.sh", "postgres"):
            return not_found(argv)
        env = box.container.env
        if box.read(f"{PGDATA}/PG_VERSION") is not None:
            return Running(log=("PostgreSQL Database directory appears to contain a database; Skipping initialization", "database system is ready to accept connections"))
        if not env.get("POSTGRES_PASSWORD") and env.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
            return Crashed(
                1,
                (
                    "Error: Database is uninitialized and superuser password is not specified.",
                    "       You must specify POSTGRES_PASSWORD to a non-empty value for the",
                    '       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".',
                ),
            )
        version = PG_VERSIONS.get(box.container.image.rsplit(":", 1)[-1], "17")
        box.write(f"{PGDATA}/PG_VERSION", version + "\n")
        return Running(
            log=(
                'The files belonging to this database system will be owned by user "postgres".',
                "PostgreSQL init process complete; ready for start up.",
                "database system is ready to accept connections",
            )
        )

    def program(self, argv: tuple[str, ...]) -> Program | None:
        return common_program(argv, busybox=True)


class Redis:
    repository = "redis"
    tags = ("7.2-alpine",)
    config = ImageConfig(cmd=("redis-server",), entrypoint=("docker-entrypoint.sh",), working_dir="/data", exposed_ports=("6379/tcp",), log_stream=1)

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv != ("docker-entrypoint.sh", "redis-server"):
            return not_found(argv)
        return Running(log=("1:M * Server initialized", "1:M * Ready to accept connections tcp"))

    def program(self, argv: tuple[str, ...]) -> Program | None:
        return common_program(argv, busybox=True)


class DocsSite:
    """The `docs` service's image, built from docs/Dockerfile (nginx serving the built site)."""

    repository = "reflector-docs"
    tags = ("latest",)
    config = ImageConfig(
        cmd=("nginx", "-g", "daemon off;"),
        entrypoint=("/docker-entrypoint.sh",),
        exposed_ports=("80/tcp",),
        healthcheck=("CMD-SHELL", "wget --no-verbose --tries=1 --spider http://localhost/ || exit 1"),
        stop_signal="SIGQUIT",
    )

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv != ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"):
            return not_found(argv)
        return Running(log=("/docker-entrypoint.sh: Configuration complete; ready for start up",))

    def program(self, argv: tuple[str, ...]) -> Program | None:
        return common_program(argv, busybox=True)
