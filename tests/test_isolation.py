"""A snippet that tries to get out of its world fails inside it, and nothing outside the world changes."""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.sandbox import RunResult, World
from tests.proctree import descendants

REPO = Path(__file__).resolve().parent.parent
SECRET_NAME = "REFLECTOR_DOCS_SECRET"
SECRET_VALUE = f"s3cr3t-{uuid.uuid4().hex}"  # unique, so finding it anywhere in the output means it leaked
TIMEOUT = 20.0


def fingerprint(path: Path) -> tuple[object, ...]:
    """What a write would change: for a file its bytes and metadata, for a directory its listing and metadata."""
    st = path.lstat()
    meta = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ino)
    if path.is_dir() and not path.is_symlink():
        return (*meta, tuple(sorted(os.listdir(path))))
    if path.is_file():
        return (*meta, hashlib.sha256(path.read_bytes()).hexdigest())
    return meta


def unchanged(world: World, script: str, *paths: Path) -> RunResult:
    """Run `script` and assert that the host paths look the same afterwards.

    Compared right around the run (not over the whole module): the repo and the machine are shared,
    and another engineer's edit during the module would otherwise read as a sandbox escape.
    """
    before = {p: fingerprint(p) for p in paths if p.exists()}
    r = run(world, script)
    changed = [str(p) for p in paths if (fingerprint(p) if p.exists() else None) != before.get(p)]
    assert not changed, f"the snippet changed host paths: {changed}\n{r.output}"
    return r


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private temp root for this module's worlds, so their leftovers can be told from other test runs'."""
    root = tmp_path_factory.mktemp("tmproot")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(root))
        yield root
    assert list(root.iterdir()) == [], "a world left its temp dir behind"


@pytest.fixture(scope="module")
def world(temp_root: Path) -> Iterator[World]:
    """One world with the real executor and fakes, started while the host environment holds a secret."""
    before = set(descendants(os.getpid()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_NAME, SECRET_VALUE)
        w = World.start(REPO)
    with w:
        yield w
    leftover = {p: c for p, c in descendants(os.getpid()).items() if p not in before}
    assert not leftover, f"processes outlived the world: {leftover}"


def run(world: World, script: str) -> RunResult:
    r = world.run("docs/isolation.md:1", script, TIMEOUT)
    assert not r.timed_out, f"the attempt hung instead of failing:\n{r.output}"
    return r


# ---------------------------------------------------------------------------------------------
# Writing outside the world
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd", id="append-etc-passwd"),
        pytest.param("echo '1.2.3.4 evil.example' >> /etc/hosts", id="append-etc-hosts"),
        pytest.param("touch /etc/reflector-docs-was-here", id="create-in-etc"),
        pytest.param("touch /usr/bin/reflector-docs-was-here", id="create-in-usr-bin"),
    ],
)
def test_writing_to_etc_or_usr_fails(world: World, script: str) -> None:
    """The system directories are read-only binds (or made up by the world): a write fails with an error."""
    r = unchanged(
        world,
        script,
        Path("/etc"),
        Path("/etc/passwd"),
        Path("/etc/hosts"),
        Path("/usr/bin"),
        Path("/etc/reflector-docs-was-here"),
        Path("/usr/bin/reflector-docs-was-here"),
    )
    assert r.rc != 0
    assert "Read-only file system" in r.output or "Permission denied" in r.output, r.output


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(REPO / "reflector-docs-was-here", id="new-file-in-repo"),
        pytest.param(REPO / "conf.py", id="repo-conf-py"),
        pytest.param(REPO / "tests" / "test_isolation.py", id="this-test-file"),
        pytest.param(REPO / "docs" / "index.md", id="a-page"),
        pytest.param(Path(sys.prefix) / "reflector-docs-was-here", id="the-venv"),
    ],
)
def test_writing_to_the_repository_fails(world: World, target: Path) -> None:
    """The repository and the venv are bound read-only at their host paths: the snippet can read them, not change them."""
    quoted = shlex.quote(str(target))
    r = unchanged(world, f"echo pwned >> {quoted}", target, target.parent)
    assert r.rc != 0
    assert "Read-only file system" in r.output, r.output


def test_writing_to_the_callers_home_fails_and_home_is_the_worlds_own(world: World) -> None:
    """The caller's HOME is not in the world: writing there fails, and `~` is the world's tmpfs, not the caller's."""
    caller = shlex.quote(str(Path.home()))
    r = run(world, f'echo pwned >> {caller}/.bashrc; rc=$?; touch {caller}/reflector-docs-was-here || rc=$?; echo "HOME=$HOME"; exit $rc')
    assert r.rc != 0
    assert "No such file or directory" in r.output or "Read-only file system" in r.output, r.output
    assert "HOME=/home/deployer" in r.output


# ---------------------------------------------------------------------------------------------
# Reading the caller's secrets
# ---------------------------------------------------------------------------------------------


def test_callers_environment_secret_is_not_visible(world: World) -> None:
    """A secret in the environment of the process that started the world reaches no snippet: not its env, nor any process's."""
    script = f"""
env
cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'
printenv {SECRET_NAME} && echo FOUND-BY-PRINTENV
head={shlex.quote(SECRET_VALUE[:10])}; tail={shlex.quote(SECRET_VALUE[10:])}
grep -rs "$head$tail" /proc/[0-9]*/environ /run/world /home/deployer /tmp && echo FOUND-BY-GREP
true
"""  # the value is joined at run time, so grep does not find it in this script's own file
    r = run(world, script)
    assert r.rc == 0, r.output
    assert "HOME=/home/deployer" in r.output  # the listing did run
    assert SECRET_VALUE not in r.output
    assert SECRET_NAME not in r.output
    assert "FOUND-BY" not in r.output


def test_host_processes_are_not_visible(world: World) -> None:
    """The world has its own PID namespace: the test process (and its environment) does not exist in it."""
    r = run(world, f"test -e /proc/{os.getpid()}/environ && cat /proc/{os.getpid()}/environ; ls /proc | grep -c '^[0-9]'")
    assert SECRET_VALUE not in r.output
    count = int(r.output.strip().splitlines()[-1])
    assert count < 20, f"{count} processes visible: the PID namespace is not private\n{r.output}"


# ---------------------------------------------------------------------------------------------
# Reaching beyond the fakes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param("curl -sS --max-time 10 https://1.1.1.1/", ("Network is unreachable", "Couldn't connect", "Failed to connect"), id="curl-ip"),
        pytest.param("curl -sS --max-time 10 https://example.net/", ("Could not resolve host",), id="curl-name"),
        pytest.param(
            f"{shlex.quote(sys.executable)} -c 'import socket; socket.create_connection((\"8.8.8.8\", 53), timeout=10)'",
            ("Network is unreachable",),
            id="python-socket",
        ),
        pytest.param(
            f"{shlex.quote(sys.executable)} -c 'import socket; print(socket.getaddrinfo(\"example.net\", 443))'",
            ("Name or service not known", "Temporary failure in name resolution", "No address associated"),
            id="python-dns",
        ),
    ],
)
def test_reaching_hosts_beyond_the_fakes_fails_fast(world: World, script: str, expected: tuple[str, ...]) -> None:
    """Only loopback exists in the world's network namespace: public addresses and names fail at once, not by timeout."""
    r = run(world, script)
    assert r.rc != 0
    assert r.seconds < 15, f"took {r.seconds:.1f} s: it waited for a network instead of finding none"
    assert any(e in r.output for e in expected), r.output


def test_the_fakes_still_answer(world: World) -> None:
    """The control for the network tests: the same tools reach the fakes, so the failures above are the namespace's doing."""
    r = run(world, "curl -fsS -o /dev/null -w '%{http_code}\\n' https://docs.goauthentik.io/compose.yml")
    assert r.rc == 0, r.output
    assert r.output.strip() == "200"


# ---------------------------------------------------------------------------------------------
# Processes that try to outlive their snippet
# ---------------------------------------------------------------------------------------------


def test_double_forked_setsid_daemon_is_reported_and_killed(world: World) -> None:
    """A daemon that double-forks into a new session escapes the snippet's process group, but not the world: it is reported and killed."""
    marker = "6017"  # a distinctive sleep length, to find it in /proc
    script = f"""
( setsid sh -c 'nohup sleep {marker} > /dev/null 2>&1 &' & )
setsid -f sleep {int(marker) + 1} > /dev/null 2>&1
echo launched
"""
    r = run(world, script)
    assert r.rc == 0, r.output
    # Reported as leftovers; which command lines depends on how far the forks had got when the
    # executor looked (the background job may still be the snippet's forked bash), so assert on
    # what matters: something was reported, and nothing of it runs any more, in the world or on the host.
    assert r.leftover, "the daemons were not reported"
    host_view = [c for c in descendants(os.getpid()).values() if f"sleep {marker}" in c or f"sleep {int(marker) + 1}" in c]
    assert host_view == [], f"still running on the host: {host_view}"
    again = run(world, "ps -eo args 2>/dev/null || cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert f"sleep {marker}" not in again.output
    assert f"sleep {int(marker) + 1}" not in again.output
