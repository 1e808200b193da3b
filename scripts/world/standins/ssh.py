"""Stand-in for `ssh` (OpenSSH 9.2): the world *is* the server, so a login to it runs locally."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scripts.world.standins.common import fail, run_main, unsupported

# A destination that names this machine (its hostname, `reflector-server`, `localhost`, a loopback
# address, or an /etc/hosts name for one) "connects": the remote command runs with the deployer's
# shell in HOME, as sshd runs it. Any other destination fails the way it would from inside this
# sandbox, which has no DNS and no route out: a name does not resolve, an address is unreachable.
#
# Choices for the test world: the deployer's key is authorized for their own account only (another
# login gets `Permission denied (publickey)`); the host key is already known; a session without a
# command runs `bash -s` (not a login shell: Debian's /etc/profile would reset PATH and lose the
# world's stand-ins) on ssh's stdin, which under the harness is /dev/null.

SERVER_NAMES = frozenset({"reflector-server", "localhost", "localhost.localdomain"})
HOSTS_FILE = Path("/etc/hosts")
HOSTNAME_FILE = Path("/etc/hostname")

USAGE = """\
usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface]
           [-b bind_address] [-c cipher_spec] [-D [bind_address:]port]
           [-E log_file] [-e escape_char] [-F configfile] [-I pkcs11]
           [-i identity_file] [-J [user@]host[:port]] [-L address]
           [-l login_name] [-m mac_spec] [-O ctl_cmd] [-o option] [-p port]
           [-Q query_option] [-R address] [-S ctl_path] [-W host:port]
           [-w local_tun[:remote_tun]] destination [command [argument ...]]"""

VERSION = "OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19 27 Jan 2026"

# OpenSSH 9.2's getopt string: letters followed by ":" take an argument.
OPTSTRING = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:Q:R:S:TVw:W:XYy"

# Options that change nothing for a login to this very machine.
HARMLESS = frozenset("1246aAbBcCeEgiIkKmovxXyY")
WHY_NOT = {
    "f": "going to the background",
    "N": "a session without a remote command (port forwarding)",
    "L": "local port forwarding",
    "R": "remote port forwarding",
    "D": "dynamic port forwarding",
    "W": "stdio forwarding",
    "w": "tunnel devices",
    "J": "jump hosts",
    "M": "connection sharing",
    "O": "control commands",
    "S": "control sockets",
    "G": "printing the configuration",
    "Q": "queries",
    "s": "subsystems",
}


@dataclass(slots=True)
class Request:
    """What the command line asks for."""

    destination: str = ""
    login: str | None = None
    port: int = 22
    tty: int = 0  # -t count; -1 for -T
    quiet: bool = False
    stdin_null: bool = False
    version: bool = False
    command: list[str] = field(default_factory=list)


def usage_error(message: str) -> None:
    """ssh's reaction to a bad command line: the message, the usage, exit 255."""
    fail(f"{message}\n{USAGE}", 255)


def parse(argv: list[str]) -> Request:
    """Parse like ssh: options, the destination, options again, then the remote command."""
    req = Request()
    i = parse_options(argv, 0, req)
    if req.version:
        return req
    if i >= len(argv):
        fail(USAGE, 255)
    req.destination = argv[i]
    i = parse_options(argv, i + 1, req)
    req.command = argv[i:]
    return req


def parse_options(argv: list[str], i: int, req: Request) -> int:
    """Consume options from argv[i:]; return the index of the first non-option."""
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1
        if not arg.startswith("-") or arg == "-":
            return i
        j = 1
        while j < len(arg):
            opt = arg[j]
            pos = OPTSTRING.find(opt)
            if opt == ":" or pos < 0:
                usage_error(f"unknown option -- {opt}")
            if OPTSTRING[pos + 1 : pos + 2] == ":":
                value = arg[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(argv):
                        usage_error(f"option requires an argument -- {opt}")
                    value = argv[i]
                apply_option(req, opt, value)
                break
            apply_option(req, opt, None)
            j += 1
        i += 1
    return i


def apply_option(req: Request, opt: str, value: str | None) -> None:
    """Record one option, or refuse it with the reason this world cannot do it."""
    if opt == "V":
        req.version = True
    elif opt == "l":
        req.login = req.login or value
    elif opt == "p":
        req.port = parse_port(value or "")
    elif opt == "t":
        req.tty = max(req.tty, 0) + 1
    elif opt == "T":
        req.tty = -1
    elif opt == "q":
        req.quiet = True
    elif opt == "n":
        req.stdin_null = True
    elif opt == "F":
        if not Path(value or "").is_file():
            fail(f"Can't open user config file {value}: No such file or directory", 255)
    elif opt not in HARMLESS:
        unsupported("ssh", f"-{opt} ({WHY_NOT.get(opt, 'this option')})")


def parse_port(text: str) -> int:
    """A port number as ssh accepts it."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        fail(f"Bad port '{text}'", 255)
    return int(text)


def split_destination(req: Request) -> tuple[str, str]:
    """(user, host) from `[user@]host` or `ssh://[user@]host[:port]`."""
    dest = req.destination
    if dest.startswith("ssh://"):
        dest = dest[len("ssh://") :]
        hostport = dest.rpartition("@")[2]
        if ":" in hostport.strip("[]"):
            dest, _, port = dest.rpartition(":")
            req.port = parse_port(port)
    user, at, host = dest.rpartition("@")
    if not at:
        user = ""
    host = host.strip("[]").lower()
    if not host:
        fail(f"ssh: Could not resolve hostname {host}: Name or service not known", 255)
    return req.login or user or local_user().pw_name, host


def local_user() -> pwd.struct_passwd:
    """The deployer, as the world defines them ($USER, $HOME), else by our uid."""
    try:
        entry = pwd.getpwuid(os.getuid())
        name, home, shell = entry.pw_name, entry.pw_dir, entry.pw_shell
    except KeyError:  # the sandbox's passwd need not list the world's uid
        name, home, shell = "deployer", "/home/deployer", "/bin/bash"
    name = os.environ.get("USER", name)
    home = os.environ.get("HOME", home)
    return pwd.struct_passwd((name, "x", os.getuid(), os.getgid(), name, home, shell))


def hosts_entries() -> dict[str, str]:
    """Name -> first address, from /etc/hosts (the sandbox's own, bound by the harness)."""
    entries: dict[str, str] = {}
    try:
        text = HOSTS_FILE.read_text()
    except OSError:
        return entries
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            entries.setdefault(name.lower(), fields[0])
    return entries


def own_hostnames() -> set[str]:
    """This machine's names: the kernel's hostname and /etc/hostname (they may differ here)."""
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):  # no /etc/hostname: the kernel's name is the only one
        names.add(HOSTNAME_FILE.read_text().strip().lower())
    return names - {""}


def address_of(host: str) -> str:
    """Resolve `host` as this sandbox would, or fail as ssh does."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if host in SERVER_NAMES or host in own_hostnames():
        return "127.0.0.1"
    address = hosts_entries().get(host)
    if address is None:
        fail(f"ssh: Could not resolve hostname {host}: Name or service not known", 255)
    return address


def handle(argv: list[str]) -> int:
    """Log in to this machine, or fail to reach any other."""
    req = parse(argv)
    if req.version:
        print(VERSION, file=sys.stderr)
        return 0
    user, host = split_destination(req)
    address = address_of(host)
    if not ipaddress.ip_address(address).is_loopback:
        fail(f"ssh: connect to host {host} port {req.port}: Network is unreachable", 255)
    if req.port != 22:
        fail(f"ssh: connect to host {host} port {req.port}: Connection refused", 255)
    me = local_user()
    if user != me.pw_name:
        fail(f"{user}@{host}: Permission denied (publickey).", 255)
    stdin_tty = not req.stdin_null and os.isatty(0)
    wants_pty = req.tty > 0 or (req.tty == 0 and not req.command)
    if wants_pty and not stdin_tty and req.tty < 2 and not req.quiet:
        print(
            "Pseudo-terminal will not be allocated because stdin is not a terminal.",
            file=sys.stderr,
        )
    env = dict(os.environ)
    env.update(
        {
            "HOME": me.pw_dir,
            "USER": me.pw_name,
            "LOGNAME": me.pw_name,
            "SHELL": me.pw_shell,
            "PWD": me.pw_dir,
            "SSH_CLIENT": f"{address} 50022 22",
            "SSH_CONNECTION": f"{address} 50022 {address} 22",
        }
    )
    env.pop("OLDPWD", None)
    shell = me.pw_shell or "/bin/bash"
    # sshd hands the command to the login shell as one string (the arguments joined by spaces).
    args = [shell, "-c", " ".join(req.command)] if req.command else [shell, "-s"]
    stdin = subprocess.DEVNULL if req.stdin_null else None
    sys.stdout.flush()
    done = subprocess.run(args, cwd=me.pw_dir, env=env, stdin=stdin, check=False)
    # The remote side killed by a signal: OpenSSH reports exit status 255.
    return done.returncode if done.returncode >= 0 else 255


def main() -> None:
    """Entry point for `python -m scripts.world.standins.ssh`."""
    run_main("ssh", handle)


if __name__ == "__main__":
    main()
