"""Replay a page's prerequisites once per test run: snapshot the world they leave, restore it into the next page's fresh world.

A page that `continues` another starts from the state the other leaves. Replaying that page's
steps costs seconds (the walkthrough: about 3 s) and three pages continue it, so the first page to
need a state replays it and snapshots the world; later pages, in this process or another xdist
worker of the same run, restore the snapshot into their own fresh world instead.

A snapshot is everything a replay leaves behind: HOME, /tmp, the world's files (state.json, the fake
Authentik's signing key, the fakes' logs) and the shell session (variables, functions, umask,
cwd). It leaves out what each world makes for itself: its CA and certificates, the stand-in
wrappers, the stand-ins' call record (a page reports only its own calls). Snapshot and restore
are ordinary `run` requests; a restore then tells the world (the `restored` request) so that the
engine holds the restored files its containers' single-file mounts are bound to.

The fixture stack's boot (the deployer's `docker compose up` on the engine) is cached the same way:
start_world() boots the run's first world and snapshots it, and later worlds restore that snapshot,
keyed by the world's code and fixtures, the reader's values and the CLIs (boot_key). A world that
restores a page's snapshot skips the boot altogether (World.start(boot=False)).

Snapshots live in a temp dir named after the run (REFLECTOR_DOCS_RUN or xdist's run id, else
this process) and are keyed by the prerequisite pages' text and where the replay stops, so an edited
page never restores a stale state; they never outlive the run. REFLECTOR_REPLAY_CACHE=0 turns
the cache off (every page replays for itself), to compare timings or to rule the cache out.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from scripts import upstream
from scripts.sandbox import HOME, HOST_PATH, WORLD, CheckResult, RunResult, World
from scripts.world import compose

# What a world makes for itself (or records per page) and a snapshot therefore leaves out.
WORLD_EXCLUDES = ("tls", "ca.pem", "bin", "snippets", "calls.jsonl", "traffic.jsonl", "state.lock", "docker.sock", "session/loader.sh", "session/*.new")
TIMEOUT = 60.0
MARKER = "REPLAY_SNAPSHOT_END"


class Runner(Protocol):
    """The part of sandbox.World a snapshot needs."""

    def run(self, id: str, script: str, timeout: float) -> RunResult: ...  # noqa: A002 - the protocol's field name

    def restored(self, inodes: str) -> CheckResult: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A world's files (a base64 gzip tar of HOME, /run/world and /tmp, rooted at /) and its shell's cwd.

    `inodes` lists `INODE PATH` for the files under HOME: a single-file bind mount is bound to an inode
    (the engine holds it open, and its state names it), and unpacking gives every file a new one, so
    restore() hands the listing to the world, whose engine holds the restored files instead.
    """

    cwd: str
    archive: str
    inodes: str = ""


class ReplayError(RuntimeError):
    """A snapshot could not be taken or restored; the message carries the shell's output."""


def capture_script() -> str:
    """Print the cwd, then the archive; the archive is made into a file first so tar's complaints cannot corrupt it."""
    world = WORLD.lstrip("/")
    excludes = " ".join(f"--exclude={shlex.quote(world + '/' + e)}" for e in WORLD_EXCLUDES)
    # The repository and the interpreters are bound read-only at their host paths, which may lie
    # under /tmp (a CI clone in a temp dir): their mount points are not the world's to save.
    bound = {Path(__file__).resolve().parent.parent, Path(sys.prefix), Path(sys.base_prefix)}
    excludes += "".join(f" --exclude={shlex.quote(str(p).lstrip('/'))}" for p in sorted(bound))
    archive = f"{WORLD}/snippets/replay-snapshot.tgz"
    tar = f"tar --one-file-system -czf {archive} -C / {excludes} {HOME.lstrip('/')} {world} tmp || exit 1"
    inodes = f"find {HOME} -type f -printf '%i %p\\n' | base64 -w0 && printf '\\n'"
    return f"printf '%s\\n' \"$PWD\"\n{inodes}\n{tar}\nbase64 -w0 {archive} && rm -f {archive}\n"


def snapshot(world: Runner) -> Snapshot:
    """The world's state now; run as a step that changes nothing (its shell state is saved back as it was)."""
    r = world.run("replay:snapshot", capture_script(), TIMEOUT)
    if r.rc != 0 or r.timed_out:
        raise ReplayError(f"taking a snapshot failed (exit {r.rc}):\n{r.output[-2000:]}")
    cwd, _, rest = r.output.partition("\n")
    inodes, _, archive = rest.partition("\n")
    return Snapshot(cwd, archive.strip(), base64.b64decode(inodes).decode())


def restore_script(snap: Snapshot) -> str:
    """Empty HOME, unpack the snapshot, then become the replayed shell: its cwd first, then its variables (OLDPWD included)."""
    lines = [
        f"find {HOME} -mindepth 1 -delete || exit 1",
        f"base64 -d <<'{MARKER}' | tar -xzf - -C / || exit 1",
        *(snap.archive[i : i + 76] for i in range(0, len(snap.archive), 76)),
        MARKER,
        f"cd -- {shlex.quote(snap.cwd)} || exit 1",
        "unset OLDPWD",
        f". {WORLD}/session/state.sh >/dev/null || exit 1",
    ]
    return "\n".join(lines) + "\n"


def restore(world: Runner, snap: Snapshot) -> None:
    """Make `world` (fresh, nothing run yet) what the snapshotted world was; its exit trap then saves the restored session."""
    r = world.run("replay:restore", restore_script(snap), TIMEOUT)
    if r.rc != 0 or r.timed_out:
        raise ReplayError(f"restoring a snapshot failed (exit {r.rc}):\n{r.output[-2000:]}")
    done = world.restored(snap.inodes)
    if not done.ok:
        raise ReplayError(f"the world could not take the restored files: {done.detail}")


def key(pages: Sequence[tuple[str, str, int | None]]) -> str:
    """The cache key of a replay: each prerequisite page's path, text and where the replay stops in it, and in
    upstream mode the real checkout the world booted from (a page's state on the fixture is not its state there)."""
    checkout = upstream.current()
    return hashlib.sha256(json.dumps([list(pages), checkout.digest if checkout is not None else None]).encode()).hexdigest()[:32]


class Claim:
    """A key's lock held by a run on its way to the key's state: store() the snapshot when there, or release()."""

    def __init__(self, cache: Cache, name: str, lock: TextIO) -> None:
        self.cache = cache
        self.name = name
        self.lock: TextIO | None = lock
        # The thread whose run will store it: pages running side by side (scripts/lanes.py) share a
        # process, and only a wait in the claiming thread itself could never end.
        self.owner = threading.get_ident()

    def store(self, snap: Snapshot) -> None:
        if self.lock is not None:
            self.cache.store(self.name, snap)
        self.release()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()  # closing the file drops its flock
            self.lock = None
        if self.cache.claims.get(self.name) is self:
            del self.cache.claims[self.name]


class Cache:
    """Snapshots shared by the processes of one run; a file lock per key, so one process replays and the others wait."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.touched: set[Path] = set()
        self.claims: dict[str, Claim] = {}  # this process's, by key
        # In a pytest run the controller removes the whole folder when every worker is done
        # (tests/conftest.py): a worker that finishes early must not delete locks others hold.
        if "REFLECTOR_DOCS_RUN" not in os.environ:
            atexit.register(self.clean)

    @contextlib.contextmanager
    def entry(self, name: str) -> Iterator[tuple[Snapshot | None, list[Snapshot]]]:
        """Hold the key's lock; yield the stored snapshot (or None) and a list to append a new one to, stored on exit."""
        if not enabled():
            yield None, []
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{name}.json"
        lock_path = self.directory / f"{name}.lock"
        self.touched.add(lock_path)
        mine = self.claims.get(name)
        if mine is not None and mine.owner == threading.get_ident():
            mine.release()  # its run is this thread's, which waits here instead of going on: it cannot store it
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found = Snapshot(**json.loads(path.read_text())) if path.exists() else None
                made: list[Snapshot] = []
                yield found, made
                if made and found is None:
                    self.store(name, made[0])
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def store(self, name: str, snap: Snapshot) -> None:
        """Write the key's snapshot (atomically: a reader never sees half of it); call holding its lock."""
        path = self.directory / f"{name}.json"
        with tempfile.NamedTemporaryFile("w", dir=self.directory, suffix=".tmp", delete=False) as tmp:
            tmp.write(json.dumps({"cwd": snap.cwd, "archive": snap.archive, "inodes": snap.inodes}))
        Path(tmp.name).replace(path)
        self.touched.add(path)

    def claim(self, name: str) -> Claim | None:
        """The key's lock, taken without waiting, for a run that will reach the key's state by itself later
        (a page's plain run): processes that want the key wait until it is stored or released. None when
        the key is stored already, someone else holds it, or the cache is off."""
        if not enabled():
            return None
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.directory / f"{name}.lock"
        self.touched.add(lock_path)
        lock = open(lock_path, "a")  # noqa: SIM115 - held beyond this call, until Claim.store or Claim.release
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        if (self.directory / f"{name}.json").exists():
            lock.close()
            return None
        claim = self.claims[name] = Claim(self, name, lock)
        return claim

    def clean(self) -> None:
        """At exit (the run is over): remove this process's snapshots and locks, and the dir once it is empty."""
        for path in self.touched:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only once the run's last process has cleaned up


def remove_run(run: str) -> None:
    """Remove a finished run's snapshots (they hold the worlds' generated secrets)."""
    shutil.rmtree(Path(tempfile.gettempdir()) / f"reflector-replays-{run}", ignore_errors=True)


def enabled() -> bool:
    return os.environ.get("REFLECTOR_REPLAY_CACHE", "1") != "0"


def run_id() -> str:
    """This run's name: the one tests/conftest.py gives a pytest run (its xdist workers inherit it), else xdist's, else this process."""
    return os.environ.get("REFLECTOR_DOCS_RUN") or os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"


CACHE = Cache(Path(tempfile.gettempdir()) / f"reflector-replays-{run_id()}")


# ---------------------------------------------------------------------------------------------
# The fixture stack's boot, once per run
# ---------------------------------------------------------------------------------------------

WORLD_CODE = Path(__file__).resolve().parent / "world"


def boot_key(rename: Mapping[str, str] | None = None) -> str:
    """What decides a world's boot: the world's code and fixtures (engine, images, boot, the checkout), the real
    checkout in upstream mode (scripts/upstream.py), the reader's own values (the checkout is renamed), and the
    CLIs that run the deployer's `up`."""
    digest = hashlib.sha256(json.dumps(sorted((rename or {}).items())).encode())
    for path in sorted(p for p in WORLD_CODE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"{path.relative_to(WORLD_CODE)}\0".encode() + path.read_bytes() + b"\0")
    # Upstream mode: the staged real checkout replaces the fixture's, so its files (and modes) are part of the key.
    checkout = upstream.current()
    if checkout is not None:
        digest.update(f"upstream:{checkout.digest}\0".encode())
    for tool in (shutil.which("docker", path=HOST_PATH), str(compose.plugin())):
        st = os.stat(tool) if tool else None
        digest.update(f"{tool}:{st.st_size if st else ''}:{st.st_mtime_ns if st else ''}\0".encode())
    return "boot-" + digest.hexdigest()[:32]


def start_world(repo: Path, *, rename: Mapping[str, str] | None = None, keep_dir: Path | None = None, nice: int = 0) -> World:
    """A fresh world with the fixture stack up. The run's first world boots it (the real `docker compose up`
    on the engine) and snapshots it at once; the others restore that snapshot instead of booting again.
    A plain fresh world (the guide's values, nothing kept, full priority) is the one prestart() began, if any."""
    if rename is None and keep_dir is None and nice == 0:
        with _PRESTARTED_LOCK:
            early = _PRESTARTED.pop(repo, None)
        if early is not None:
            return early.result()
    return _start_world(repo, rename=rename, keep_dir=keep_dir, nice=nice)


_PRESTARTED: dict[Path, Future[World]] = {}
_PRESTARTED_LOCK = threading.Lock()


def prestart(repo: Path) -> None:
    """Begin the run's first fresh world in the background (tests/conftest.py: while pytest still imports and
    collects the doc tests, about a second, which the first page's start otherwise waits out); the next
    start_world() with the same defaults takes it. One that nobody takes is closed when the process ends."""
    with _PRESTARTED_LOCK:
        if repo in _PRESTARTED:
            return
        future: Future[World] = Future()
        _PRESTARTED[repo] = future

    def boot() -> None:
        try:
            world = _start_world(repo)
        except BaseException as e:  # noqa: BLE001 - handed to whoever takes the world, as its own start would raise it
            future.set_exception(e)
            return
        future.set_result(world)
        # bwrap --die-with-parent ends the sandbox when the thread that started it ends (PR_SET_PDEATHSIG is a
        # thread's): this thread lives as long as the world, whichever thread uses and closes it.
        world.proc.wait()

    threading.Thread(target=boot, name="prestart", daemon=True).start()


def _start_world(repo: Path, *, rename: Mapping[str, str] | None = None, keep_dir: Path | None = None, nice: int = 0) -> World:
    with CACHE.entry(boot_key(rename)) as (found, made):
        world = World.start(repo, keep_dir=keep_dir, rename=rename, boot=found is None, nice=nice)
        try:
            if found is not None:
                restore(world, found)
            elif enabled():
                # A no-op step first, so the snapshot has the session a world has before its first step.
                world.run("replay:boot", "true", TIMEOUT)
                made.append(snapshot(world))
        except BaseException:
            world.close()
            raise
        return world


# A new terminal: the world stays as it is, the shell forgets everything. The script drops the
# executor's saved session (variables, functions, options, umask; see scripts/world/executor.py)
# and clears its own exit trap, so nothing is saved back; the next step starts in HOME.
FRESH_SHELL = f'trap - EXIT\nrm -f "{WORLD}/session/state.sh"\nprintf %s "$HOME" > "{WORLD}/session/cwd.new"\n'


def fresh_shell(world: Runner) -> None:
    """Make the world's next step run as the first command of a new terminal on the same server."""
    r = world.run("replay:new-terminal", FRESH_SHELL, TIMEOUT)
    if r.rc != 0 or r.timed_out:
        raise ReplayError(f"opening a new terminal failed (exit {r.rc}):\n{r.output[-2000:]}")
