"""The sandbox keeps the world in: read-only system, no network, no host secrets, bounded HOME, nothing left after close."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts import sandbox
from scripts.sandbox import BASE_ENV, MIB, SandboxError, SandboxUnavailable, World
from tests import proctree

REPO = Path(__file__).resolve().parent.parent
SECRET = "WORLD_TEST_FAKE_SECRET"


def bare_repo(root: Path) -> Path:
    """A repo holding only the executor: these tests need none of the other engineers' modules."""
    (root / "scripts" / "world").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "world" / "executor.py", root / "scripts" / "world" / "executor.py")
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def world(repo: Path) -> Iterator[World]:
    """One world for the isolation tests, started while the host has a secret in its environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET, "hunter2")
        w = World.start(repo)
    with w:
        yield w


def tree(pid: int) -> set[int]:
    """`pid` and its descendants."""
    return {pid, *proctree.descendants(pid)}


def processes_mentioning(marker: str) -> set[int]:
    """Host pids whose command line mentions `marker` (a world's temp dir appears in its bwrap's)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.add(int(entry))
    return pids


def test_runs_as_deployer_in_a_fresh_home(world: World) -> None:
    r = world.run("t", 'id -un; id -u; echo "$HOME"; pwd; ls -A ~ | wc -l; getent group docker', 10)
    assert r.output.split("\n")[:6] == ["deployer", "1000", "/home/deployer", "/home/deployer", "0", "docker:x:999:deployer"]


def test_environment_is_exactly_the_allowlist(world: World) -> None:
    """Nothing from the host environment leaks in; bash adds only its own PWD, SHLVL, OLDPWD and _."""
    r = world.run("t", "env -0", 10)
    env = dict(item.split("=", 1) for item in r.output.split("\0") if item)
    assert set(env) - {"PWD", "SHLVL", "OLDPWD", "_"} == set(BASE_ENV)
    assert {k: env[k] for k in BASE_ENV} == dict(BASE_ENV)


def test_host_secret_is_not_visible_inside(world: World) -> None:
    r = world.run("t", f'echo "${{{SECRET}:-absent}}"; grep -rl "hunter""2" /proc/self/environ /etc /run/world 2>/dev/null; true', 10)
    assert r.output == "absent\n"


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/new-file", "/usr/bin/sneaky", "/work-probe"])
def test_system_is_read_only(world: World, target: str) -> None:
    r = world.run("t", f"echo x > {target}", 10)
    assert r.rc == 1
    assert "Read-only file system" in r.output


def test_repo_is_read_only(world: World, repo: Path) -> None:
    r = world.run("t", f"echo x > {repo}/scripts/world/executor.py; touch {repo}/probe", 10)
    assert "Read-only file system" in r.output
    assert not (repo / "probe").exists()
    assert (repo / "scripts" / "world" / "executor.py").read_text() == (REPO / "scripts" / "world" / "executor.py").read_text()


def test_callers_home_is_neither_visible_nor_writable(world: World) -> None:
    """Only the base interpreter (which may live under it) is bound from the caller's HOME, read-only."""
    home = Path.home()
    probe = home / "world-sandbox-probe"
    r = world.run("t", f"touch {probe}; ls -A {home}", 10)
    assert "Read-only file system" in r.output
    assert not probe.exists()
    visible = set(r.output.split("\n")[1:]) - {""}
    assert all((home / name).is_dir() and Path(sys.base_prefix).is_relative_to(home / name) for name in visible), visible


def test_etc_holds_no_host_secrets(world: World) -> None:
    r = world.run("t", "for f in /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh; do [ -e $f ] && echo $f; done; wc -c </etc/resolv.conf", 10)
    assert r.output == "0\n"


def test_no_network_beyond_loopback(world: World) -> None:
    interfaces = world.run("t", "tail -n +3 /proc/net/dev | cut -d: -f1", 10).output.split()
    assert interfaces == ["lo"]
    r = world.run("t", "curl -sS --max-time 5 http://192.0.2.1/; echo rc=$?; curl -sS --max-time 5 http://example.org/; echo rc=$?", 15)
    assert "rc=7" in r.output  # no route: the network namespace has only loopback
    assert "Could not resolve host: example.org" in r.output
    assert r.output.endswith("rc=6\n")


def test_guide_hostnames_resolve_to_loopback(world: World) -> None:
    r = world.run("t", "getent hosts authentik.example.com api.example.com goauthentik.io", 10)
    assert [line.split()[0] for line in r.output.splitlines()] == ["127.0.0.1"] * 3


def test_ca_bundle_is_the_worlds_own(world: World) -> None:
    r = world.run("t", "readlink /etc/ssl/certs/ca-certificates.crt; ls /etc/ssl/certs", 10)
    assert r.output == "/run/world/ca.pem\nca-certificates.crt\n"


def test_missing_hooks_are_logged_not_fatal(world: World) -> None:
    log = world.log.read_text()
    assert "scripts.world.engine is missing" in log
    assert "scripts.world.boot is missing" in log
    assert "scripts.world.fakes.server is missing" in log


def test_check_without_a_checks_module_fails_with_a_reason(world: World) -> None:
    res = world.check("env-has", {"file": "x"})
    assert not res.ok
    assert "scripts.world.checks" in res.detail


def test_unknown_op_is_a_protocol_error(world: World) -> None:
    with pytest.raises(SandboxError, match="unknown op 'bogus'"):
        world.request("bogus", 10)
    assert world.run("t", "echo still here", 10).output == "still here\n"


def test_home_size_limit_is_enforced(repo: Path) -> None:
    with World.start(repo, home_size=1 * MIB) as w:
        r = w.run("t", "head -c 10M /dev/zero > ~/big", 20)
    assert r.rc == 1
    assert "No space left on device" in r.output


def test_executor_death_is_a_clear_error(repo: Path) -> None:
    with World.start(repo) as w, pytest.raises(SandboxError, match=r"the executor died \(exit status .*\) during run\n.*executor log"):
        w.run("t", "kill -9 $PPID", 10)


def test_close_leaves_no_process_and_no_temp_dir(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tmproot"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    assert processes_mentioning(str(root)) == set()
    w = World.start(repo)
    w.run("t", "sleep 100 & disown; echo started", 10)
    inside = tree(w.proc.pid)
    assert len(inside) >= 3  # bwrap, PID 1 of the namespace, the executor
    assert processes_mentioning(str(root))
    assert list(root.iterdir()) == [w.tmp]
    w.close()
    assert not [pid for pid in inside if Path(f"/proc/{pid}").exists()]
    assert processes_mentioning(str(root)) == set()
    assert list(root.iterdir()) == []


def test_keep_copies_home_world_and_log(repo: Path, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    with World.start(repo, keep_dir=keep) as w:
        w.run("docs/p.md:3", "echo hi > ~/note", 10)
    assert (keep / "home" / "note").read_text() == "hi\n"
    assert (keep / "world" / "snippets" / "docs_p.md_3.sh").read_text() == "echo hi > ~/note"
    assert "scripts.world.boot is missing" in (keep / "executor.log").read_text()


def test_keep_leaves_out_sockets_and_still_shuts_down(repo: Path, tmp_path: Path) -> None:
    """A world with the engine has docker.sock under /run/world: copying a socket fails, and the failed keep
    used to skip the rest of the copy and the shutdown request."""
    keep = tmp_path / "kept"
    with World.start(repo, keep_dir=keep) as w:
        r = w.run("docs/p.md:3", f"{sys.executable} -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"/run/world/x.sock\")' && echo hi > ~/note", 10)
        assert r.rc == 0, r.output
    assert (keep / "home" / "note").read_text() == "hi\n"
    assert not (keep / "world" / "x.sock").exists()
    assert "request failed" not in (keep / "executor.log").read_text()


def failing_preexec(uid: int, gid: int) -> Callable[[], None]:
    def preexec() -> None:
        os.write(2, b"unshare(CLONE_NEWUSER|CLONE_NEWNET): Operation not permitted\n")
        raise OSError(errno.EPERM, "unshare")

    return preexec


def test_missing_user_namespaces_say_how_to_enable_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "enter_namespaces", failing_preexec)
    sandbox.check_prerequisites.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match=r"Operation not permitted.*sysctl -w kernel.unprivileged_userns_clone=1"):
            sandbox.check_prerequisites()
    finally:
        sandbox.check_prerequisites.cache_clear()


def test_missing_host_tool_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "HOST_TOOLS", {**sandbox.HOST_TOOLS, "no-such-tool-xyz": "xyz-utils"})
    sandbox.check_prerequisites.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match=r"no-such-tool-xyz.*apt-get install xyz-utils"):
            World.start(REPO)
    finally:
        sandbox.check_prerequisites.cache_clear()


def test_a_world_with_the_readers_hostnames_has_no_name_for_the_examples() -> None:
    """A reader's server does not resolve the guide's example hostnames: a command that kept one must fail
    in the other-values run, not reach the fakes under the old name."""
    hosts = sandbox.generated_etc({"authentik.example.com": "id.corp.test", "admin@example.com": "ops@corp.test"})["hosts"]
    names = hosts.split("\n")[0].split()[2:]
    assert "id.corp.test" in names
    assert "authentik.example.com" not in names
    assert {"app.example.com", "docs.goauthentik.io"} <= set(names)  # names the reader did not change stay
