"""sudo, ssh and nano stand-ins: they do what the real tools do on the server, and fail as they do."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.world.standins import ssh
from scripts.world.standins.common import Failure

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class World:
    """A minimal world: $WORLD with bin/, a HOME, and the environment the sandbox gives."""

    root: Path
    home: Path
    env: dict[str, str]

    def run(self, tool: str, *args: str, stdin: Any = subprocess.DEVNULL, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.root / "bin" / tool, *args],
            cwd=cwd or self.home,
            env=self.env,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def calls(self) -> list[dict[str, Any]]:
        path = self.root / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def world(tmp_path: Path) -> World:
    root = tmp_path / "world"
    (root / "bin").mkdir(parents=True)
    home = tmp_path / "home" / "deployer"
    home.mkdir(parents=True)
    env = {
        "HOME": str(home),
        "USER": "deployer",
        "LOGNAME": "deployer",
        "PATH": f"{root / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "TERM": "dumb",
        "WORLD": str(root),
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    }
    for tool in ("sudo", "ssh", "nano"):
        install_wrapper(root, tool)
    return World(root, home, env)


def install_wrapper(root: Path, tool: str) -> None:
    """A wrapper in $WORLD/bin as the executor generates it (PYTHONPATH set inside, not exported)."""
    wrapper = root / "bin" / tool
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH='{REPO}' exec '{sys.executable}' -P -m scripts.world.standins.{tool} \"$@\"\n")
    wrapper.chmod(0o755)


def show(world: World, name: str) -> Path:
    """A stand-in in $WORLD/bin that prints its argv, cwd and a few variables."""
    path = world.root / "bin" / name
    path.write_text('#!/bin/bash\necho "args=$* cwd=$PWD home=$HOME user=$USER sudo_user=$SUDO_USER"\n')
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------- sudo


def test_sudo_runs_the_command_with_roots_environment(world: World) -> None:
    """Debian's env_reset: HOME=/root, USER=root, PATH=secure_path, SUDO_USER=the deployer."""
    world.env["EDITOR"] = "vi"
    done = world.run("sudo", "sh", "-c", 'echo "$HOME $USER $LOGNAME $SUDO_USER"; echo "$PATH"; echo "[$EDITOR]"')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "/root root root deployer"
    assert lines[1] == f"{world.root / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert lines[2] == "[]"  # not in env_keep


def test_sudo_keeps_the_worlds_plumbing_and_terminal_settings(world: World) -> None:
    done = world.run("sudo", "sh", "-c", 'echo "$WORLD $SSL_CERT_FILE $TERM $LANG $TZ"')
    assert done.stdout.split() == [str(world.root), "/etc/ssl/certs/ca-certificates.crt", "dumb", "C.UTF-8", "UTC"]


def test_sudo_cd_into_the_deployers_home_fails_as_on_a_real_server(world: World) -> None:
    """`~` is root's home under sudo, so a guide that writes `sudo sh -c 'cd ~/x'` is caught."""
    (world.home / "authentik").mkdir()
    done = world.run("sudo", "sh", "-c", "cd ~/authentik")
    assert done.returncode == 2
    assert "can't cd to /root/authentik" in done.stderr


def test_sudo_preserve_env_keeps_home_but_not_path(world: World) -> None:
    world.env["EDITOR"] = "vi"
    done = world.run("sudo", "-E", "sh", "-c", 'echo "$HOME $USER $EDITOR"; echo "$PATH"')
    home, user, editor, path = done.stdout.split()
    assert (home, user, editor) == (str(world.home), "root", "vi")
    assert path.endswith(":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def test_sudo_finds_the_worlds_stand_ins_first(world: World) -> None:
    """The world's own wrappers come first for `sudo` too (a probe named docker here), before secure_path."""
    show(world, "docker")
    done = world.run("sudo", "docker", "compose", "up", "-d", cwd=world.home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"args=compose up -d cwd={world.home} home=/root user=root sudo_user=deployer\n"


def test_sudo_searches_secure_path_not_the_callers_path(world: World, tmp_path: Path) -> None:
    private = tmp_path / "private-bin"
    private.mkdir()
    tool = private / "mytool"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    world.env["PATH"] = f"{private}:{world.env['PATH']}"
    done = world.run("sudo", "mytool")
    assert done.returncode == 1
    assert done.stderr == "sudo: mytool: command not found\n"
    assert world.run("sudo", str(tool)).stdout == "ran\n"


@pytest.mark.parametrize("command", ["cd", "export", "./missing.sh", "./notes.txt"])
def test_sudo_refuses_builtins_and_non_executables(world: World, command: str) -> None:
    (world.home / "notes.txt").write_text("not a program\n")
    done = world.run("sudo", command, "x")
    assert done.returncode == 1
    assert done.stderr == f"sudo: {command}: command not found\n"


def test_sudo_passes_stdin_through_to_tee(world: World) -> None:
    target = world.home / "written.txt"
    done = subprocess.run(
        [world.root / "bin" / "sudo", "tee", str(target)],
        input="line one\n",
        env=world.env,
        cwd=world.home,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "line one\n"
    assert done.stdout == "line one\n"


def test_sudo_returns_the_commands_exit_status(world: World) -> None:
    assert world.run("sudo", "sh", "-c", "exit 7").returncode == 7


def test_sudo_as_another_user_uses_their_home(world: World) -> None:
    done = world.run("sudo", "-u", "deployer", "sh", "-c", 'echo "$HOME $USER"')
    assert done.stdout == f"{world.home} deployer\n"


def test_sudo_rejects_an_unknown_user(world: World) -> None:
    done = world.run("sudo", "-u", "no-such-user", "true")
    assert done.returncode == 1
    assert done.stderr.startswith("sudo: unknown user no-such-user\n")


def test_sudo_allows_variable_assignments(world: World) -> None:
    done = world.run("sudo", "GREETING=hi", "sh", "-c", 'echo "$GREETING"')
    assert done.stdout == "hi\n"


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["-z", "ls"], "sudo: invalid option -- 'z'"),
        (["--frobnicate", "ls"], "sudo: unrecognized option '--frobnicate'"),
        (["-u"], "sudo: option requires an argument -- 'u'"),
        ([], "usage: sudo -h | -K | -k | -V"),
        (["-E"], "usage: sudo -h | -K | -k | -V"),
    ],
)
def test_sudo_usage_errors_match_sudo(world: World, args: list[str], first_line: str) -> None:
    done = world.run("sudo", *args)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == first_line
    assert "[VAR=value] [-i | -s] [command [arg ...]]" in done.stderr
    assert done.stdout == ""


def test_sudo_refuses_valid_options_it_cannot_emulate_and_says_so(world: World) -> None:
    done = world.run("sudo", "-i")
    assert done.returncode == 125
    assert done.stderr == "sudo (stand-in): -i (a login shell in the target user's home) is not emulated in this world\n"


def test_sudo_shell_option_runs_the_command_through_roots_shell(world: World) -> None:
    done = world.run("sudo", "-s", "echo", "a b")
    assert done.stdout == "a b\n"


def test_sudo_records_its_call_and_the_commands_own_call(world: World) -> None:
    # a recording tool in $WORLD/bin, wrapped like the executor's wrappers
    docker = world.root / "bin" / "docker"
    code = "from scripts.world.standins.common import run_main; run_main('docker', lambda argv: 0)"
    docker.write_text(f"#!/bin/sh\nPYTHONPATH='{REPO}' exec '{sys.executable}' -P -c \"{code}\" \"$@\"\n")
    docker.chmod(0o755)
    world.run("sudo", "docker", "version")
    world.run("sudo", "cd", "/tmp")
    calls = world.calls()
    assert [(c["tool"], c["argv"], c["rc"]) for c in calls] == [
        ("docker", ["version"], 0),
        ("sudo", ["docker", "version"], 0),
        ("sudo", ["cd", "/tmp"], 1),
    ]
    assert calls[2]["stderr_tail"] == "sudo: cd: command not found\n"


# ---------------------------------------------------------------- ssh


def test_ssh_to_the_guides_placeholder_host_does_not_resolve(world: World) -> None:
    done = world.run("ssh", "user@your-server-ip")
    assert done.returncode == 255
    assert done.stderr == "ssh: Could not resolve hostname your-server-ip: Name or service not known\n"


@pytest.mark.parametrize("dest", ["localhost", "deployer@localhost", "reflector-server", "deployer@127.0.0.1", "ssh://deployer@localhost:22"])
def test_ssh_to_this_server_runs_the_command_in_home(world: World, dest: str) -> None:
    done = world.run("ssh", dest, 'echo "$PWD $USER"; exit 4', cwd=world.root)
    assert done.returncode == 4, done.stderr
    assert done.stdout == f"{world.home} deployer\n"
    assert done.stderr == ""


def test_ssh_joins_the_remote_arguments_like_sshd(world: World) -> None:
    """The remote shell gets one string: quoting that protected a local argument is gone."""
    done = world.run("ssh", "localhost", "echo", "a   b", "'c   d'")
    assert done.stdout == "a b c   d\n"


def test_ssh_without_a_command_reads_the_session_from_stdin(world: World) -> None:
    done = world.run("ssh", "deployer@localhost")
    assert done.returncode == 0
    assert done.stderr == "Pseudo-terminal will not be allocated because stdin is not a terminal.\n"
    piped = subprocess.run(
        [world.root / "bin" / "ssh", "-T", "localhost"],
        input="pwd\nexit 3\n",
        env=world.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (piped.returncode, piped.stdout, piped.stderr) == (3, f"{world.home}\n", "")


def test_ssh_as_another_account_is_denied(world: World) -> None:
    done = world.run("ssh", "root@localhost", "true")
    assert done.returncode == 255
    assert done.stderr == "root@localhost: Permission denied (publickey).\n"


def test_ssh_to_another_address_is_unreachable(world: World) -> None:
    done = world.run("ssh", "-p", "2222", "203.0.113.7", "true")
    assert done.returncode == 255
    assert done.stderr == "ssh: connect to host 203.0.113.7 port 2222: Network is unreachable\n"


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["-Z", "localhost"], "unknown option -- Z"),
        (["localhost", "-p"], "option requires an argument -- p"),
        ([], "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface]"),
    ],
)
def test_ssh_usage_errors_match_openssh(world: World, args: list[str], first_line: str) -> None:
    done = world.run("ssh", *args)
    assert done.returncode == 255
    assert done.stderr.splitlines()[0] == first_line
    assert done.stderr.rstrip().endswith("destination [command [argument ...]]")


def test_ssh_refuses_port_forwarding_it_cannot_emulate(world: World) -> None:
    done = world.run("ssh", "-L", "8080:localhost:80", "localhost")
    assert done.returncode == 125
    assert "ssh (stand-in): -L (local port forwarding) is not emulated" in done.stderr


def test_ssh_resolves_its_own_hostname_and_etc_hosts_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost authentik.example.com  # the world's names\n10.0.0.5 db.internal\n")
    monkeypatch.setattr(ssh, "HOSTS_FILE", hosts)
    hostname = tmp_path / "hostname"
    hostname.write_text("server\n")
    monkeypatch.setattr(ssh, "HOSTNAME_FILE", hostname)
    assert ssh.address_of("server") == "127.0.0.1"
    assert ssh.address_of("authentik.example.com") == "127.0.0.1"
    assert ssh.address_of("db.internal") == "10.0.0.5"
    with pytest.raises(Failure, match=r"Could not resolve hostname example\.org"):
        ssh.address_of("example.org")


def test_ssh_records_its_call(world: World) -> None:
    world.run("ssh", "user@your-server-ip")
    assert [(c["tool"], c["argv"], c["rc"]) for c in world.calls()] == [("ssh", ["user@your-server-ip"], 255)]


# ---------------------------------------------------------------- nano


def test_nano_without_a_terminal_fails_as_real_nano_and_leaves_the_file(world: World) -> None:
    caddyfile = world.home / "Caddyfile"
    caddyfile.write_text("app.example.com {\n}\n")
    done = world.run("nano", "Caddyfile")
    assert done.returncode == 1
    assert done.stderr == "Standard input is not a terminal\n"
    assert caddyfile.read_text() == "app.example.com {\n}\n"
    assert [(c["tool"], c["argv"], c["rc"]) for c in world.calls()] == [("nano", ["Caddyfile"], 1)]


def test_nano_with_a_terminal_says_editing_is_not_emulated(world: World) -> None:
    controller, terminal = pty.openpty()
    try:
        done = world.run("nano", "Caddyfile", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 125
    assert done.stderr == "nano (stand-in): interactive editing is not emulated in this world\n"


def test_nano_prints_its_version(world: World) -> None:
    done = world.run("nano", "--version")
    assert done.returncode == 0
    assert done.stdout.startswith(" GNU nano, version 7.2\n")
