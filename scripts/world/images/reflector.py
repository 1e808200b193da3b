"""Reflector 0.34.0's images: the backend (server, worker, beat from one image) and the frontend.

Sources (tag v0.34.0): server/Dockerfile (python:3.12-slim, WORKDIR /app, CMD ["./runserver.sh"]),
server/runserver.sh (ENTRYPOINT picks server, worker or beat; no `set -e`), server/reflector/settings.py
(pydantic-settings; `settings = Settings()` at import, line 178), server/reflector/auth/__init__.py
(imports `reflector.auth.auth_<AUTH_BACKEND>`), auth/auth_jwt.py (opens the key file at import,
relative to /app), server/reflector/worker/app.py (beat schedule; PUBLIC_MODE adds
`cleanup_old_public_data` at 03:00 and logs its retention with structlog), www/Dockerfile
(node:22-alpine, CMD ["node", "server.js"], HEALTHCHECK on /api/health).

Assumptions: every import-time failure kills the process with exit status 1 and a Python traceback
on its log; the database and Redis are there (postgres and redis are modelled as always healthy);
structlog's default console lines and the servers' own lines share one log stream.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Mapping

from pydantic import PositiveInt, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from scripts.world.fixtures import REFLECTOR_CHECKOUT
from scripts.world.images.base import Box, Crashed, ImageConfig, NotStarted, Outcome, Program, Running
from scripts.world.images.common import common_program

BACKEND = "monadicalsas/reflector-backend"
FRONTEND = "monadicalsas/reflector-frontend"
WORKDIR = "/app"
KEYS_DIR = "/app/reflector/auth/jwt/keys"
MONADICAL_KEY = "authentik.monadical.com_public.pem"
RUNSERVER = ("./runserver.sh",)
CLEANUP_HOUR_UTC = 3
"""worker/app.py: `crontab(hour=3, minute=0)`; Celery's timezone is UTC by default (app.py sets none)."""

IMAGE_KEY = REFLECTOR_CHECKOUT / "server" / "reflector" / "auth" / "jwt" / "keys" / MONADICAL_KEY
"""The key the image ships in /app/reflector/auth/jwt/keys (copied from the checkout at build: Monadical's own Authentik)."""


class Settings(BaseSettings):
    """The part of server/reflector/settings.py that the world reads, with Reflector's types and defaults.

    Validated from the container's environment only (model_validate reads no environment or .env
    of this process); field names match it case-insensitively, as pydantic-settings does by default."""

    model_config = SettingsConfigDict(extra="ignore")

    AUTH_BACKEND: str = "none"
    AUTH_JWT_ALGORITHM: str = "RS256"
    AUTH_JWT_PUBLIC_KEY: str | None = MONADICAL_KEY
    AUTH_JWT_AUDIENCE: str | None = None
    CORS_ORIGIN: str = "*"
    CORS_ALLOW_CREDENTIALS: bool = False
    SECRET_KEY: str = "changeme-f02f86fd8b3e4fd892c6043e5a298e21"
    PUBLIC_MODE: bool = False
    PUBLIC_DATA_RETENTION_DAYS: PositiveInt = 7

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Settings:
        """Validate the container's environment as the backend does at import (raises pydantic's ValidationError)."""
        lowered = {k.lower(): v for k, v in env.items()}
        return cls.model_validate({name: lowered[name.lower()] for name in cls.model_fields if name.lower() in lowered})


def traceback(frame: str, code: str, error: str) -> tuple[str, ...]:
    """A Python traceback ending in `error`, as the crashed process leaves it on its log."""
    return ("Traceback (most recent call last):", f"  {frame}", f"    {code}", *error.splitlines())


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


class Backend:
    """monadicalsas/reflector-backend: `runserver.sh` runs server, worker or beat by ENTRYPOINT."""

    repository = BACKEND
    tags = ("latest", "0.34.0")
    config = ImageConfig(
        cmd=RUNSERVER,
        env=("PATH=/root/.local/bin/:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUNBUFFERED=1", "LANG=C.UTF-8"),
        working_dir=WORKDIR,
    )

    def files(self) -> Mapping[str, str]:
        return {f"{KEYS_DIR}/{MONADICAL_KEY}": IMAGE_KEY.read_text()}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv not in (RUNSERVER, ("/app/runserver.sh",)):
            return NotStarted(f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH')
        env = box.container.env
        role = env.get("ENTRYPOINT", "")
        if role not in ("server", "worker", "beat"):
            return Crashed(0, ("Unknown command",))  # runserver.sh's last branch, exit 0
        try:
            settings = Settings.of(env)
        except ValidationError as e:
            lines = traceback('File "/app/reflector/settings.py", line 178, in <module>', "settings = Settings()", f"pydantic_core._pydantic_core.ValidationError: {e}")
            # server: alembic fails first, then uvicorn (runserver.sh has no `set -e`); both import the settings.
            return Crashed(1, (*lines, *lines) if role == "server" else lines)
        if settings.AUTH_BACKEND not in ("jwt", "none"):
            return Crashed(
                1,
                traceback(
                    'File "/app/reflector/auth/__init__.py", line 6, in <module>',
                    'auth = importlib.import_module(f"reflector.auth.auth_{settings.AUTH_BACKEND}")',
                    f"ModuleNotFoundError: No module named 'reflector.auth.auth_{settings.AUTH_BACKEND}'",
                ),
            )
        files: dict[str, str] = {}
        if settings.AUTH_BACKEND == "jwt":
            relative = f"reflector/auth/jwt/keys/{settings.AUTH_JWT_PUBLIC_KEY}"
            path = posixpath.normpath(posixpath.join(WORKDIR, relative))
            key = box.read(path)
            if key is None:
                return Crashed(
                    1,
                    traceback(
                        'File "/app/reflector/auth/auth_jwt.py", line 22, in __init__',
                        'self.public_key = open(f"reflector/auth/jwt/keys/{settings.AUTH_JWT_PUBLIC_KEY}").read()',
                        f"FileNotFoundError: [Errno 2] No such file or directory: '{relative}'",
                    ),
                )
            files[f"{KEYS_DIR}/{settings.AUTH_JWT_PUBLIC_KEY}"] = key
        return Running(files=files, log=self.started_log(role, settings))

    def started_log(self, role: str, settings: Settings) -> tuple[str, ...]:
        """What each role prints once it runs: uvicorn's lines, Celery's, and app.py's structlog lines."""
        if role == "server":
            return (
                "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.",
                "INFO  [alembic.runtime.migration] Will assume transactional DDL.",
                f"{stamp()} [info     ] User authentication using {settings.AUTH_BACKEND}",
                "INFO:     Started server process [1]",
                "INFO:     Waiting for application startup.",
                "INFO:     Application startup complete.",
                "INFO:     Uvicorn running on http://0.0.0.0:1250 (Press CTRL+C to quit)",
            )
        schedule: list[str] = []
        if settings.PUBLIC_MODE:
            schedule.append(f"{stamp()} [info     ] Public mode cleanup enabled    retention_days={settings.PUBLIC_DATA_RETENTION_DAYS}")
        schedule.append(f"{stamp()} [warning  ] Healthcheck disabled, no url configured")
        if role == "worker":
            return (*schedule, "[INFO/MainProcess] Connected to redis://redis:6379/1", "[INFO/MainProcess] celery@reflector ready.")
        return (*schedule, "celery beat v5.5.3 (immunity) is starting.", "[INFO/MainProcess] beat: Starting...")

    def program(self, argv: tuple[str, ...]) -> Program | None:
        return common_program(argv, busybox=False)


class Frontend:
    """monadicalsas/reflector-frontend: Next.js reads its settings at request time, so it always starts."""

    repository = FRONTEND
    tags = ("latest", "0.34.0")
    config = ImageConfig(
        cmd=("node", "server.js"),
        env=("PATH=/pnpm:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production", "PORT=3000", "HOSTNAME=0.0.0.0"),
        working_dir="/app",
        user="nextjs",
        exposed_ports=("3000/tcp",),
        healthcheck=("CMD-SHELL", "wget --no-verbose --tries=1 --spider http://127.0.0.1:3000/api/health || exit 1"),
        log_stream=1,
    )

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv != ("node", "server.js"):
            return NotStarted(f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH')
        return Running(log=("   ▲ Next.js 15.5.9", "   - Local:        http://localhost:3000", "   - Network:      http://0.0.0.0:3000", " ✓ Ready in 212ms"))

    def program(self, argv: tuple[str, ...]) -> Program | None:
        return common_program(argv, busybox=True)
