"""What every stand-in shares: the world's path, failing like the real tool, recording each call."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TextIO

CALLS_FILE = "calls.jsonl"
TAIL = 2000
UNSUPPORTED_EXIT = 125
"""Exit status when a command is valid for the real tool but this world cannot emulate it
(docker uses 125 for "the docker command itself failed"); the message always says so."""


class Failure(Exception):
    """Stop the stand-in: print `message` to stderr (as the real tool would) and exit `rc`."""

    def __init__(self, message: str, rc: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.rc = rc


def fail(message: str, rc: int = 1) -> NoReturn:
    """Fail exactly as the real tool does: `message` on stderr, exit status `rc`."""
    raise Failure(message, rc)


def unsupported(tool: str, what: str) -> NoReturn:
    """Refuse loudly what the real tool could do but this world cannot emulate."""
    raise Failure(f"{tool} (stand-in): {what} is not emulated in this world", UNSUPPORTED_EXIT)


def world_dir() -> Path:
    """The world directory from $WORLD (the sandbox sets /run/world)."""
    return Path(os.environ.get("WORLD", "/run/world"))


def home_dir() -> Path:
    """The deployer's home: WORLD_HOME (set by the world's wrappers, so `sudo` resetting HOME changes nothing), else $HOME."""
    return Path(os.environ.get("WORLD_HOME") or os.environ.get("HOME", "/home/deployer"))


class _Tee:
    """A text stream that writes through and keeps the last TAIL characters."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.tail = ""

    def write(self, text: str) -> int:
        self.tail = (self.tail + text)[-TAIL:]
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def record_call(world: Path, tool: str, argv: list[str], cwd: str, rc: int, stderr_tail: str) -> None:
    """Append one JSON line to <world>/calls.jsonl (one write with O_APPEND: lines never mix)."""
    line = json.dumps({"tool": tool, "argv": argv, "cwd": cwd, "rc": rc, "stderr_tail": stderr_tail[-TAIL:]})
    fd = os.open(world / CALLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def run_main(tool: str, handler: Callable[[list[str]], int]) -> NoReturn:
    """Run `handler(argv)` as the stand-in `tool`: map Failure to stderr + exit status, record it."""
    argv = sys.argv[1:]
    tee = _Tee(sys.stderr)
    sys.stderr = tee  # duck-typed stream that keeps the stderr tail
    try:
        cwd = os.getcwd()
    except OSError:  # the snippet's cwd was removed under it
        cwd = ""
    try:
        rc = handler(argv)
    except Failure as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        rc = exc.rc
    except BrokenPipeError:  # `docker ps | head -1`: the reader went away, as with the real tool
        rc = 0
    except Exception:  # noqa: BLE001  # a bug in the stand-in: shown, never passed off as the tool's answer
        import traceback  # only on a crash: a stand-in starts once per command, so its start stays lean

        print(f"{tool} (stand-in) crashed:\n{traceback.format_exc()}", file=sys.stderr)
        rc = 70
    with contextlib.suppress(BrokenPipeError):  # output piped into `head`: fine for the real tool too
        sys.stdout.flush()
    world = world_dir()
    if world.is_dir():
        record_call(world, tool, argv, cwd, rc, tee.tail)
    sys.stderr = tee.inner
    sys.exit(rc)
