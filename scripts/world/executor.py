"""The disposable world's shell, sandbox side: set up /run/world, then serve JSON-line requests (run a snippet, check, apply, fault)."""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

HOME = Path(os.environ.get("HOME", "/home/deployer"))
WORLD = Path(os.environ.get("WORLD", "/run/world"))
SESSION = WORLD / "session"
STATE = SESSION / "state.sh"
LOADER = SESSION / "loader.sh"
# The session as the last step found it (state and cwd), for a writer's shell at a failing step.
STATE_BEFORE = SESSION / "state.before.sh"
# The commands that failed during the last step: status, line within the step, command (the ERR trap).
ERRORS = SESSION / "errors.new"
MAX_FAILED = 20  # failed commands reported per step (a loop can fail thousands of times)
# The host's end of the socket that hands the executor a terminal (SCM_RIGHTS) for `shell`.
CONTROL_FD = "WORLD_CONTROL_FD"
CALLS = WORLD / "calls.jsonl"
TRAFFIC = WORLD / "traffic.jsonl"  # written by the fakes' front (scripts/world/fakes/server.py)
STANDINS = ("sudo", "ssh", "nano")
DOCKER_SOCKET = WORLD / "docker.sock"
"""Where the simulated engine listens; the sandbox links /var/run/docker.sock (and /run/docker.sock) to it."""

GRACE = 1.0  # seconds between SIGTERM and SIGKILL when a snippet times out
DRAIN = 1.0  # seconds to collect output still buffered once every writer is gone
MAX_OUTPUT = 8 * 1024 * 1024  # a runaway snippet cannot exhaust the executor's memory
SWEEPS = 50  # rounds of kill-the-leftovers (a leftover may fork while being killed)
STOP_WAIT = 2.0  # seconds to wait for leftovers to stop before reading their command lines
STOP_POLL = 0.001  # seconds between looks at a stopping process's state

# bash's own variables: read-only, or meaningful only in the process that set them; never carried over.
SPECIAL_VARIABLES = (
    "BASH|BASH_*|BASHOPTS|BASHPID|COLUMNS|COMP_*|COPROC|DIRSTACK|EPOCHREALTIME|EPOCHSECONDS|EUID|FUNCNAME|"
    "GROUPS|HISTCMD|HOSTNAME|HOSTTYPE|LINENO|LINES|MACHTYPE|OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PWD|"
    "RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|_|__world_*"
)
NAME_STARTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"

# BASH_ENV of every snippet's bash. It unsets BASH_ENV at once, so the scripts a snippet starts
# (`bash setup.sh`) neither restore nor save the session. Saving is fork-free (bash builtins and
# redirections only): "${!A@}" lists variable names, `declare -F` re-applies `export -f`.
LOADER_TEXT = f"""\
# Restores the previous snippet's shell state, and saves this one's on exit (scripts/world/executor.py).
unset BASH_ENV
if [[ -f {STATE} ]]; then
  . {STATE} >/dev/null  # `declare -f NAME` (re-exporting functions) would print NAME's body
fi
__world_save() {{
  local __world_status=$?
  # A command that fails inside a `&&` list runs no ERR trap, yet its status is the step's: `$1` is the last
  # command bash ran (BASH_COMMAND as the trap began); its line is unknown here (0), the host finds it.
  if (( __world_status != 0 )); then
    __world_err "$__world_status" 0 "$1"
  fi
  set +o errexit +o nounset
  local __world_name
  local -a __world_names=()
  for __world_name in {" ".join(f'"${{!{c}@}}"' for c in NAME_STARTS)}; do
    case $__world_name in
      {SPECIAL_VARIABLES}) ;;
      *) __world_names+=("$__world_name") ;;
    esac
  done
  {{
    declare -p "${{__world_names[@]}}"
    declare -f
    declare -F
    shopt -po pipefail noclobber noglob allexport  # a terminal keeps these; errexit and nounset are not carried
    printf 'umask '
    umask
  }} >{SESSION}/state.new 2>/dev/null
  printf '%s' "$PWD" >{SESSION}/cwd.new
}}
trap '__world_save "$BASH_COMMAND"' EXIT
# Which command failed, and on which line of the step: recorded, never printed, so the output stays the step's own.
__world_err() {{
  printf '%s\\t%s\\t%s\\n' "$1" "$2" "${{3//$'\\n'/ }}" >>{ERRORS} 2>/dev/null
}}
trap '__world_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
"""

# The writer's shell (`shell`): the session as a step saw it, with the step's text in $STEP. No EXIT
# or ERR trap: what the writer does there is not a step and is not saved.
SHELL_RC = """\
. {state} >/dev/null 2>&1
cd -- {cwd} 2>/dev/null || cd
STEP={step}
PS1='[world {label}] \\w\\$ '
cat {banner}
"""


def log(message: str) -> None:
    print(f"executor: {message}", file=sys.stderr, flush=True)


def optional_module(name: str, attribute: str) -> ModuleType | None:
    """The module `name` if it exists and defines `attribute`; None (logged) when another engineer's module is not there yet."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            log(f"{name} is missing; skipping it")
            return None
        raise
    if not hasattr(module, attribute):
        log(f"{name} has no {attribute}(); skipping it")
        return None
    return module


def safe_name(id: str) -> str:  # noqa: A002 - the protocol's field name
    return re.sub(r"[^A-Za-z0-9._-]", "_", id).strip(".") or "snippet"


def stand_in_wrapper(tool: str, repo: Path) -> str:
    # PYTHONPATH only here: the snippet's environment stays the allowlist. -P keeps the snippet's
    # cwd (~/reflector has its own scripts/) off sys.path.
    # WORLD_HOME too: under `sudo` HOME is /root, but the stand-ins' world (the compose projects'
    # paths in state.json) lives in the deployer's home.
    return f"#!/bin/sh\nPYTHONPATH='{repo}' WORLD_HOME='{HOME}' exec '{sys.executable}' -P -m scripts.world.standins.{tool} \"$@\"\n"


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    pgid: int  # its process group: a timed-out snippet's group is killed whole
    comm: str  # the kernel's short name, for a process whose command line cannot be read


def stat_fields(pid: int) -> tuple[str, str, int] | None:
    """(state, comm, pgid) from /proc/PID/stat, or None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    return rest[0], comm, int(rest[2])


def processes(exclude: frozenset[int]) -> Iterator[Process]:
    """Live processes of this PID namespace, except `exclude` and zombies (PID 1 reaps those)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        fields = stat_fields(int(entry))
        if fields is None or fields[0] in "ZX":
            continue  # it exited while we looked, or is dead and waits to be reaped
        yield Process(int(entry), fields[2], fields[1])


def stop_and_wait(pids: list[int], deadline: float) -> None:
    """SIGSTOP each pid and wait until it is stopped (or gone).

    A stop takes effect on the way back to user space, so a stopped process is never inside execve:
    its command line is whole. Caught mid-exec instead, /proc/PID/cmdline is empty (the new program's
    memory is mapped, its arguments not yet copied in), which is how a busy machine once made the
    sweep report a background `sleep 600` as `[bash]`. The kernel notifies only the parent of a stop,
    so this polls /proc/PID/stat: about a scheduler tick on a busy machine, nothing when idle.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if (f := stat_fields(pid)) is not None and f[0] not in "TtZX"}
        if pending:
            time.sleep(STOP_POLL)


def command_line(p: Process) -> str:
    """What the reader would see in `ps`: the command line, else the program (exe) or the kernel's name for it."""
    try:
        raw = Path(f"/proc/{p.pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    cmdline = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    if cmdline:
        return cmdline
    try:
        return f"{os.readlink(f'/proc/{p.pid}/exe')} (arguments unreadable)"
    except OSError:
        return f"[{p.comm}]"


def kill_and_wait(pids: list[int]) -> None:
    """SIGKILL each pid and wait (pidfd, no polling) until it has exited."""
    fds: list[int] = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + 5.0
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(deadline - time.monotonic()):
                sel.unregister(key.fd)
    for fd in fds:
        os.close(fd)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


# ---------------------------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------------------------


class Executor:
    """The world's one resident process: owns the session state and the fakes' handle."""

    def __init__(self, repo: Path, *, boot: bool = True, checkout: Path | None = None) -> None:
        self.repo = repo
        self.boot = boot
        self.checkout = checkout
        self.env = dict(os.environ)
        self.cwd = HOME
        self.fakes: Any = None
        self.engine: Any = None
        self.checks: ModuleType | None = None
        self.checks_looked_up = False
        self.own = frozenset({1, os.getpid()})
        self.cwd_before = HOME
        control = self.env.pop(CONTROL_FD, None)
        self.control: socket.socket | None = None
        if control is not None:
            os.set_inheritable(int(control), False)
            self.control = socket.socket(fileno=int(control))
        self.traffic_offset = 0

    def setup(self) -> None:
        for sub in ("log", "bin", "snippets", "session"):
            (WORLD / sub).mkdir(parents=True, exist_ok=True)
        CALLS.touch()
        LOADER.write_text(LOADER_TEXT)
        for tool in STANDINS:
            wrapper = WORLD / "bin" / tool
            wrapper.write_text(stand_in_wrapper(tool, self.repo))
            wrapper.chmod(0o755)
        docker = optional_module("scripts.world.engine", "start")
        if docker is not None:
            self.engine = docker.start(WORLD, DOCKER_SOCKET)
            log("engine listening")
        fixtures = optional_module("scripts.world.boot", "boot") if self.boot else None
        if fixtures is not None:
            fixtures.boot(HOME, WORLD, self.env, self.checkout)
            log("fixture stack up" if self.checkout is None else f"stack up from the real checkout at {self.checkout}")
        server = optional_module("scripts.world.fakes.server", "start")
        if server is not None:
            # The fakes see the world through the engine, which lets crash-looping containers retry.
            self.fakes = server.start(WORLD, world_api=docker.Observed(self.engine.engine)) if docker is not None else server.start(WORLD)
            log("fakes started")
        # Whatever the hooks started (a helper process of the fakes) belongs to the world, not to a snippet.
        self.own = self.own | {p.pid for p in processes(frozenset())}

    def stop(self) -> None:
        if self.fakes is not None:
            self.fakes.stop()
            self.fakes = None
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    # -- run -------------------------------------------------------------------------------------

    def run(self, id: str, script: str, timeout: float) -> dict[str, Any]:  # noqa: A002 - the protocol's field name
        path = WORLD / "snippets" / f"{safe_name(id)}.sh"
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(script)
        calls_offset = CALLS.stat().st_size
        for stale in ("state.new", "cwd.new", ERRORS.name):
            (SESSION / stale).unlink(missing_ok=True)
        if STATE.exists():
            shutil.copyfile(STATE, STATE_BEFORE)
        else:
            STATE_BEFORE.unlink(missing_ok=True)
        cwd = self.cwd if self.cwd.is_dir() else HOME
        self.cwd_before = cwd
        env = {**self.env, "BASH_ENV": str(LOADER)}
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["bash", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        output = Output(proc.stdout)
        exited = output.read_until_exit(proc.pid, started + timeout)
        seconds = time.perf_counter() - started
        if not exited:
            signal_group(proc.pid, signal.SIGTERM)
            output.read_until_exit(proc.pid, time.perf_counter() + GRACE)
            # A timed-out snippet's whole group goes, stragglers that ignored SIGTERM included. The
            # members die asynchronously: wait until they have, or the sweep below finds one still
            # exiting and reports it as left running (a busy machine once made it `sleep 100`).
            signal_group(proc.pid, signal.SIGKILL)
            kill_and_wait([p.pid for p in processes(self.own) if p.pgid == proc.pid])
        status = proc.wait()
        leftover = self.sweep(f"bash {path}")
        text = output.drain()
        if exited:
            self.save_state()
        return {
            "rc": (128 - status if status < 0 else status) if exited else None,
            "timed_out": not exited,
            "output": text,
            "seconds": round(seconds, 6),
            "standins": self.calls_since(calls_offset),
            "leftover": leftover,
            "failed_commands": failed_commands(),
        }

    def sweep(self, snippet_bash: str) -> list[str]:
        """Report and kill every process a snippet left behind in the PID namespace.

        `snippet_bash` is the snippet's own command line: a leftover showing it is a subshell the
        snippet's bash forked (`( ... ) &`, or a background job caught before it ran its command).
        """
        found: dict[int, str] = {}
        for _ in range(SWEEPS):
            alive = list(processes(self.own))
            if not alive:
                break
            stop_and_wait([p.pid for p in alive], time.monotonic() + STOP_WAIT)
            for p in alive:
                if p.pid not in found:
                    line = command_line(p)
                    found[p.pid] = f"{line} (a background subshell of this step)" if line == snippet_bash else line
            kill_and_wait([p.pid for p in alive])
        return list(found.values())

    def save_state(self) -> None:
        new_state, new_cwd = SESSION / "state.new", SESSION / "cwd.new"
        if new_state.exists():
            new_state.replace(STATE)
        if new_cwd.exists():
            self.cwd = Path(new_cwd.read_text())

    def calls_since(self, offset: int) -> list[Any]:
        with open(CALLS, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        calls: list[Any] = []
        for line in lines:
            if line.strip():
                try:
                    calls.append(json.loads(line))
                except ValueError:
                    calls.append({"tool": "?", "unparsed": line})
        return calls

    # -- shell -----------------------------------------------------------------------------------

    def shell(self, id: str, state: str, term: str, banner: str, text: str) -> dict[str, Any]:  # noqa: A002 - the protocol's field name
        """An interactive bash on the terminal the host hands over the control socket, until the writer leaves it."""
        if self.control is None:
            return {"ok": False, "detail": "this world was started without a control socket", "rc": None}
        _, fds, _, _ = socket.recv_fds(self.control, 16, 1)
        if not fds:
            return {"ok": False, "detail": "the host sent no terminal", "rc": None}
        tty = fds[0]
        before = state == "before"
        state_file = STATE_BEFORE if before else STATE
        cwd = self.cwd_before if before else self.cwd
        step = SESSION / "step.sh"
        step.write_text(text)
        (SESSION / "shell-banner.txt").write_text(banner)
        rc_file = SESSION / "shell-rc.sh"
        rc_file.write_text(
            SHELL_RC.format(
                state=shlex.quote(str(state_file)), cwd=shlex.quote(str(cwd)), step=shlex.quote(str(step)),
                label=id.replace("'", ""), banner=shlex.quote(str(SESSION / "shell-banner.txt")),
            )
        )  # fmt: skip
        env = {**self.env, "TERM": term or "xterm"}
        # bash becomes a session leader whose controlling terminal is the host's pty, so job control and Ctrl-C work.
        take_tty = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp('bash', sys.argv[1:])"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", take_tty, "bash", "--rcfile", str(rc_file), "-i"],
                stdin=tty, stdout=tty, stderr=tty, cwd=HOME, env=env, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(tty)
        status = proc.wait()
        leftover = self.sweep(f"bash --rcfile {rc_file} -i")
        return {"ok": True, "detail": "", "rc": status, "leftover": leftover}

    # -- check, apply, fault, keep -----------------------------------------------------------------

    def checks_module(self) -> ModuleType | None:
        if not self.checks_looked_up:
            self.checks = optional_module("scripts.world.checks", "run_check")
            self.checks_looked_up = True
        return self.checks

    def check(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        module = self.checks_module()
        if module is None:
            return {"ok": False, "detail": f"cannot run check {name}: scripts.world.checks (run_check) is not available"}
        return outcome(lambda: module.run_check(name, args, HOME, WORLD), f"check {name}")

    def apply(self, path: str, content: str, format: str, mode: str) -> dict[str, Any]:  # noqa: A002 - the protocol's field name
        module = self.checks_module()
        if module is None or not hasattr(module, "apply_config"):
            return {"ok": False, "detail": f"cannot apply {path}: scripts.world.checks.apply_config is not available"}
        return outcome(lambda: module.apply_config(path, content, format, mode, HOME, WORLD), f"apply {path}")

    def fault(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        fakes, docker = self.fakes, self.engine
        if name.startswith("engine-"):
            if docker is None:
                return {"ok": False, "detail": f"cannot inject fault {name}: the engine is not running"}
            return outcome(lambda: docker.fault(name), f"fault {name}")
        if fakes is None:
            return {"ok": False, "detail": f"cannot inject fault {name}: the fakes are not running"}
        if name == "clear" and docker is not None:
            docker.fault("clear")
        return outcome(lambda: fakes.fault(name, args), f"fault {name}")

    def prepare(self, names: list[str]) -> dict[str, Any]:
        """Load what the named checks import on first use, while this world waits for the state it starts from."""
        module = self.checks_module()
        if module is None or not hasattr(module, "prepare"):
            return {"ok": True, "detail": "no checks module: nothing to load"}
        return outcome(lambda: (True, "loaded " + (", ".join(module.prepare(names)) or "nothing new")), "prepare")

    def restored(self, inodes: str) -> dict[str, Any]:
        """A snapshot was unpacked into this world (scripts/replay.py): the engine holds the restored files."""
        docker = self.engine
        if docker is None:
            return {"ok": True, "detail": "no engine: nothing holds files"}
        return outcome(lambda: docker.restored(inodes), "restored")

    def keep(self, dest: str) -> dict[str, Any]:
        keep = Path("/keep")
        if not keep.is_dir():
            return {"ok": False, "detail": "no keep dir is bound at /keep", "path": dest}
        for source, name in ((HOME, "home"), (WORLD, "world")):
            shutil.copytree(source, keep / name, symlinks=True, dirs_exist_ok=True, ignore_dangling_symlinks=True, ignore=sockets)
        return {"ok": True, "detail": "", "path": dest}

    # -- protocol --------------------------------------------------------------------------------

    def traffic(self) -> list[Any]:
        """The fakes' exchanges recorded since the last call (whole lines only), for the host's contract check."""
        try:
            with open(TRAFFIC, "rb") as f:
                f.seek(self.traffic_offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.traffic_offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        response = self.dispatch(request)
        if request.get("op") in ("run", "check", "apply"):
            response["traffic"] = self.traffic()
        return response

    def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "run":
            return self.run(str(request["id"]), str(request["script"]), float(request["timeout"]))
        if op == "check":
            return self.check(str(request["name"]), dict(request.get("args") or {}))
        if op == "apply":
            return self.apply(str(request["path"]), str(request["content"]), str(request["format"]), str(request["mode"]))
        if op == "fault":
            return self.fault(str(request["name"]), dict(request.get("args") or {}))
        if op == "restored":
            return self.restored(str(request.get("inodes", "")))
        if op == "prepare":
            return self.prepare([str(n) for n in request.get("checks") or ()])
        if op == "keep":
            return self.keep(str(request.get("dest", "")))
        if op == "shell":
            return self.shell(
                str(request["id"]), str(request.get("state", "after")), str(request.get("term", "")), str(request.get("banner", "")), str(request.get("text", ""))
            )
        if op == "shutdown":
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")


def failed_commands() -> list[dict[str, Any]]:
    """The commands the ERR trap recorded during the last step, oldest first (the last MAX_FAILED of them)."""
    try:
        lines = ERRORS.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines[-MAX_FAILED:]:
        status, _, rest = line.partition("\t")
        number, _, command = rest.partition("\t")
        if status.isdigit() and number.isdigit():
            found.append({"status": int(status), "line": int(number), "command": command})
    return found


def sockets(directory: str, names: list[str]) -> set[str]:
    """The sockets among a folder's names (the engine's docker.sock): a copy cannot open them, and kept worlds leave them out."""
    return {n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)}


def outcome(call: Callable[[], Any], what: str) -> dict[str, Any]:
    """(ok, detail) from a hook; a hook that crashes is a failure that says why, with the traceback in the log."""
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 - a crashing hook is reported as this step's failure, not the executor's death
        log(f"{what} crashed:\n{traceback.format_exc()}")
        return {"ok": False, "detail": f"{what} crashed: {type(e).__name__}: {e}"}
    if result is None:
        return {"ok": True, "detail": ""}
    ok, detail = result
    return {"ok": bool(ok), "detail": str(detail)}


class Output:
    """A snippet's merged stdout+stderr, read while waiting for bash to exit.

    Background processes inherit the pipe, so EOF does not mean the snippet is done: bash's exit
    (its pidfd) does.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self.data = bytearray()
        self.truncated = False
        self.eof = False

    def take(self) -> None:
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
        elif len(self.data) < MAX_OUTPUT:
            self.data += chunk
        else:
            self.truncated = True

    def read_until_exit(self, pid: int, deadline: float) -> bool:
        """Collect output until process `pid` exits (True) or the deadline passes (False)."""
        pidfd = os.pidfd_open(pid)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(pidfd, selectors.EVENT_READ)
                if not self.eof:
                    sel.register(self.fd, selectors.EVENT_READ)
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        return False
                    for key, _ in sel.select(remaining):
                        if key.fd == pidfd:
                            return True
                        self.take()
                        if self.eof:
                            sel.unregister(self.fd)
        finally:
            os.close(pidfd)

    def drain(self) -> str:
        """The rest of the output, once no process holds the pipe (bounded, in case one still does)."""
        deadline = time.perf_counter() + DRAIN
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            while not self.eof:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or not sel.select(remaining):
                    break
                self.take()
        self.stream.close()
        text = self.data.decode("utf-8", errors="replace")
        if self.truncated:
            text += f"\n[output truncated at {MAX_OUTPUT} bytes]\n"
        return text


def main() -> int:
    """Serve requests on stdin until `shutdown` or EOF; stdout carries only protocol lines."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (hooks, their subprocesses) go to the log, not into the protocol
    sys.stdout = sys.stderr
    # Another reader's values (sandbox.World.start(rename=...)): for the fixtures and the certificate,
    # never part of the snippets' environment.
    rename = os.environ.pop("WORLD_RENAME", None)
    if rename is not None:
        (WORLD / "rename.json").write_text(rename)
    # sandbox.World.start(boot=False): a snapshot is restored into this world next, so the fixture
    # stack is not booted (the snapshot holds one).
    boot = os.environ.pop("WORLD_BOOT", "1") != "0"
    # Upstream mode (scripts/upstream.py): the real checkout's staged files, bound read-only; the boot
    # copies them instead of the fixture's. Not the snippets' business either.
    checkout = os.environ.pop("WORLD_CHECKOUT", None)
    executor = Executor(Path.cwd(), boot=boot, checkout=Path(checkout) if checkout else None)

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")

    try:
        executor.setup()
    except Exception as e:  # noqa: BLE001 - reported to the host, which raises with this log's tail
        log(f"setup failed:\n{traceback.format_exc()}")
        send({"ready": False, "error": f"setup failed: {type(e).__name__}: {e}"})
        return 1
    # What setup imported and built lives as long as the world: moved out of the collector's reach, it is
    # not walked again by every full collection (a tenth of the executor's CPU, by perf, before this).
    gc.freeze()
    send({"ready": True, "error": None})
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                response = {**executor.handle(request), "error": None}
            except Exception as e:  # noqa: BLE001 - a bad request is answered, the session lives on
                log(f"request failed:\n{traceback.format_exc()}")
                response = {"error": f"{type(e).__name__}: {e}"}
            if response.get("error") is None and request.get("op") == "shutdown":
                executor.stop()
                send(response)
                # The host now kills the namespace's PID 1 (see sandbox.stop); until then, wait.
                sys.stdin.read()
                break
            send(response)
    finally:
        executor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
