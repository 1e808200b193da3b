"""Stand-in for `sudo` as configured on Debian 12: validate the command line, then run the command."""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scripts.world.standins.common import Failure, fail, run_main, unsupported, world_dir

# Assumptions, each a choice made for the test world:
#
# - The deployer may run anything without a password prompt (cloud images give the default
#   user `NOPASSWD: ALL`); so `-n` and `-S` change nothing, and `VAR=value` is allowed
#   (a command that matches `ALL` implies SETENV).
# - Debian's sudoers: `env_reset` and `secure_path`. The command therefore gets a fresh
#   environment with HOME=/root (so `sudo sh -c 'cd ~/authentik'` fails, as on a real server),
#   USER/LOGNAME=root and PATH=secure_path; `-E` keeps the caller's environment (HOME too) but
#   PATH is still secure_path.
# - The stand-ins in $WORLD/bin play tools that a real server has in /usr/bin, so they come first
#   in the path that sudo searches and in the PATH it passes on.
# - The world's plumbing ($WORLD and the CA bundle variables) is kept: it describes the machine,
#   not the user, and a real server trusts its CA system-wide.
# - The sandbox cannot change uid: the command runs as the deployer's uid, with the environment
#   of the target user. Whether it ran as root shows in the recorded argv (no `-u`) and in
#   SUDO_USER/USER in its environment.

VERSION = "1.9.13p3"  # Debian 12's sudo

SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Kept from the caller's environment under env_reset: sudo's built-in env_keep and env_check
# lists (`sudo -V` as root), which Debian's sudoers does not change.
ENV_KEEP = frozenset(
    {
        "COLORS", "DISPLAY", "HOSTNAME", "KRB5CCNAME", "LS_COLORS", "PS1", "PS2",
        "XAUTHORITY", "XAUTHORIZATION", "XDG_CURRENT_DESKTOP",
        "COLORTERM", "LANG", "LANGUAGE", "LINGUAS", "TERM", "TZ",
    }
)  # fmt: skip
ENV_KEEP_PREFIXES = ("LC_",)

WORLD_PLUMBING = ("WORLD", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

# sudo 1.9.13's usage text, printed after a usage error (to stderr) and by a bare `sudo`.
USAGE = """\
usage: sudo -h | -K | -k | -V
usage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]
usage: sudo -l [-ABkNnS] [-g group] [-h host] [-p prompt] [-U user] [-u user]
            [command [arg ...]]
usage: sudo [-ABbEHkNnPS] [-r role] [-t type] [-C num] [-D directory] [-g
            group] [-h host] [-p prompt] [-R directory] [-T timeout] [-u user]
            [VAR=value] [-i | -s] [command [arg ...]]
usage: sudo -e [-ABkNnS] [-r role] [-t type] [-C num] [-D directory] [-g group]
            [-h host] [-p prompt] [-R directory] [-T timeout] [-u user] file ...
"""

# Short options of sudo 1.9.13 (getopt syntax): the ones followed by ":" take an argument.
SHORT_OPTS = "Aa:BbC:c:D:Eeg:Hh::iKklNnPp:R:r:SsT:t:U:u:Vv"
LONG_OPTS = {
    "askpass": "A", "auth-type": "a", "bell": "B", "background": "b", "close-from": "C",
    "login-class": "c", "chdir": "D", "preserve-env": "E", "edit": "e", "group": "g",
    "set-home": "H", "help": "h", "host": "h", "login": "i", "remove-timestamp": "K",
    "reset-timestamp": "k", "list": "l", "no-update": "N", "non-interactive": "n",
    "preserve-groups": "P", "prompt": "p", "chroot": "R", "role": "r", "stdin": "S",
    "shell": "s", "command-timeout": "T", "type": "t", "other-user": "U", "user": "u",
    "version": "V", "validate": "v",
}  # fmt: skip
LONG_WITH_ARG = frozenset(
    {
        "auth-type", "close-from", "login-class", "chdir", "group", "host", "prompt", "chroot",
        "role", "command-timeout", "type", "other-user", "user",
    }
)  # fmt: skip

# Valid options that change nothing here (no password is ever asked) or that we emulate.
HARMLESS = frozenset("nSPpBAk")
EMULATED = frozenset("EHhusVvK")
WHY_NOT = {
    "b": "running the command in the background",
    "i": "a login shell in the target user's home",
    "l": "listing the sudoers rules",
    "e": "sudoedit (it needs an editor and a terminal)",
    "D": "changing directory (needs runcwd in sudoers)",
    "R": "chroot",
    "g": "running with another group",
    "U": "listing another user's rules",
}


@dataclass(slots=True)
class Request:
    """What the command line asks for."""

    preserve_env: bool = False
    preserve_list: list[str] = field(default_factory=list)
    set_home: bool = False
    shell: bool = False
    user: str = "root"
    mode: str = "run"  # run | help | version | validate | kill
    assignments: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)


def usage_error(message: str) -> None:
    """sudo's own reaction to a bad command line: the message, then the usage, exit 1."""
    fail(f"sudo: {message}\n{USAGE}".rstrip("\n"))


def parse(argv: list[str]) -> Request:
    """Parse like sudo's getopt_long with "+": options stop at the first non-option."""
    req = Request()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [n for n in LONG_OPTS if n.startswith(name)] if name else []
            if name in LONG_OPTS:
                matches = [name]
            if not matches:
                usage_error(f"unrecognized option '{arg}'")
            if len({LONG_OPTS[m] for m in matches}) > 1:
                usage_error(f"option '{arg}' is ambiguous")
            opt = LONG_OPTS[matches[0]]
            takes = matches[0] in LONG_WITH_ARG
            if opt == "E" and eq:
                req.preserve_list.extend(v for v in value.split(",") if v)
            elif opt == "E":
                req.preserve_env = True
            elif takes:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        usage_error(f"option '--{matches[0]}' requires an argument")
                    value = argv[i]
                apply_option(req, opt, value)
            elif eq:
                usage_error(f"option '--{matches[0]}' doesn't allow an argument")
            else:
                apply_option(req, opt, None)
            i += 1
            continue
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            opt = arg[j]
            pos = SHORT_OPTS.find(opt)
            if opt == ":" or pos < 0:
                usage_error(f"invalid option -- '{opt}'")
            spec = SHORT_OPTS[pos + 1 : pos + 3]
            if spec.startswith("::"):  # -h takes an optional, attached argument
                apply_option(req, opt, arg[j + 1 :] or None)
                break
            if spec.startswith(":"):
                value = arg[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(argv):
                        usage_error(f"option requires an argument -- '{opt}'")
                    value = argv[i]
                apply_option(req, opt, value)
                break
            apply_option(req, opt, None)
            j += 1
        i += 1
    rest = argv[i:]
    while rest and "=" in rest[0] and not rest[0].startswith("=") and req.mode == "run":
        name, _, value = rest.pop(0).partition("=")
        req.assignments[name] = value
    req.command = rest
    if req.mode == "run" and not req.command and not req.shell:
        fail(USAGE.rstrip("\n"))
    if req.mode in {"validate", "kill"} and req.command:
        usage_error("the -v and -K options may not be used with a command")
    return req


def apply_option(req: Request, opt: str, value: str | None) -> None:
    """Record one option, or refuse it with the reason this world cannot do it."""
    if opt in HARMLESS:
        return
    if opt not in EMULATED:
        unsupported("sudo", f"-{opt} ({WHY_NOT.get(opt, 'this option')})")
    if opt == "E":
        req.preserve_env = True
    elif opt == "H":
        req.set_home = True
    elif opt == "s":
        req.shell = True
    elif opt == "u":
        req.user = value or ""
    elif opt == "h":
        if value is not None:  # -h HOST is the remote-host option, not help
            unsupported("sudo", "-h host (running on another host)")
        req.mode = "help"
    elif opt == "V":
        req.mode = "version"
    elif opt == "v":
        req.mode = "validate"
    elif opt == "K":
        req.mode = "kill"


def target_user(name: str) -> pwd.struct_passwd:
    """The user to run as; root and the deployer are known even if the sandbox's passwd
    lacks them."""
    if name == invoking_user().pw_name:
        return invoking_user()
    spec = name[1:] if name.startswith("#") else None
    try:
        return pwd.getpwuid(int(spec)) if spec is not None else pwd.getpwnam(name)
    except (KeyError, ValueError):
        if name in {"root", "#0"}:
            return pwd.struct_passwd(("root", "x", 0, 0, "root", "/root", "/bin/bash"))
        fail(f"sudo: unknown user {name}\nsudo: error initializing audit plugin sudoers_audit")


def invoking_user() -> pwd.struct_passwd:
    """The deployer, as the world defines them ($USER, $HOME), else by our uid."""
    try:
        entry = pwd.getpwuid(os.getuid())
        name, home, shell = entry.pw_name, entry.pw_dir, entry.pw_shell
    except KeyError:  # the sandbox's passwd need not list the world's uid
        name, home, shell = "deployer", "/home/deployer", "/bin/bash"
    name = os.environ.get("USER", name)
    home = os.environ.get("HOME", home)
    return pwd.struct_passwd((name, "x", os.getuid(), os.getgid(), name, home, shell))


def search_path() -> str:
    """secure_path, with the world's stand-ins where a real server keeps docker and friends."""
    return f"{world_dir() / 'bin'}:{SECURE_PATH}"


def find_command(name: str, cwd: Path) -> str:
    """Resolve like sudo: a name with a slash is a path, others are searched in secure_path."""
    dirs = [cwd] if "/" in name else [Path(d or ".") for d in search_path().split(":")]
    for path in (d / name for d in dirs):
        # sudo's own test: a regular file with an execute bit (root passes access(X_OK) anyway)
        if path.is_file() and path.stat().st_mode & 0o111 and os.access(path, os.X_OK):
            return str(path)
    raise Failure(f"sudo: {name}: command not found", 1)


def command_env(req: Request, target: pwd.struct_passwd, command: str, argv: list[str]) -> dict[str, str]:
    """The environment sudo hands the command under Debian's env_reset and secure_path."""
    caller = dict(os.environ)
    if req.preserve_env:
        env = dict(caller)
    else:
        env = {k: v for k, v in caller.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}
        env.update({k: caller[k] for k in req.preserve_list if k in caller})
        env["HOME"] = target.pw_dir
        env["SHELL"] = target.pw_shell
        env["MAIL"] = f"/var/mail/{target.pw_name}"
    env.update({k: caller[k] for k in WORLD_PLUMBING if k in caller})
    if req.set_home:
        env["HOME"] = target.pw_dir
    me = invoking_user()
    env.update(
        {
            "PATH": search_path(),
            "USER": target.pw_name,
            "LOGNAME": target.pw_name,
            "SUDO_USER": me.pw_name,
            "SUDO_UID": str(me.pw_uid),
            "SUDO_GID": str(me.pw_gid),
            "SUDO_COMMAND": " ".join([command, *argv[1:]]),
        }
    )
    env.update(req.assignments)
    return env


def handle(argv: list[str]) -> int:
    """Validate the command line and run the command; its exit status is sudo's."""
    req = parse(argv)
    if req.mode == "help":
        print(f"sudo - execute a command as another user\n\n{USAGE}", end="")
        return 0
    if req.mode == "version":
        print(f"Sudo version {VERSION}")
        return 0
    if req.mode in {"validate", "kill"}:
        return 0
    target = target_user(req.user)
    cwd = Path.cwd()
    argv_run = list(req.command)
    if req.shell:
        # -s: the target's shell, given the command as one string (sudo escapes each argument).
        argv_run = [target.pw_shell]
        if req.command:
            argv_run += ["-c", " ".join(shlex.quote(a) for a in req.command)]
    path = find_command(argv_run[0], cwd)
    env = command_env(req, target, path, argv_run)
    sys.stdout.flush()
    try:
        done = subprocess.run(argv_run, executable=path, env=env, check=False)
    except OSError as exc:  # e.g. a script without a #! line: ENOEXEC
        raise Failure(f"sudo: unable to execute {path}: {exc.strerror}", 1) from exc
    # A command killed by a signal: report it as a shell would (sudo re-raises the signal).
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


def main() -> None:
    """Entry point for `python -m scripts.world.standins.sudo`."""
    run_main("sudo", handle)


if __name__ == "__main__":
    main()
