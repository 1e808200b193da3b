"""Decide when two states of a page's run are the same for the rest of the page: world captures, the shell state that can still matter, drawn values.

scripts/reader.py's new-terminal ability runs the rest of the page after each break, and stops such
a run at a later break once its state there is, for the rest of the page, the state that a new
terminal opened at that later break has (whose run is made anyway). reader.py's docstring gives the
argument; this module gives its parts:

- capture(): the world as a snapshot carries it (scripts/replay.py), read into paths and contents;
- read_shell(): the shell state the executor carries from one step to the next (variables,
  functions, the carried options, umask, cwd; scripts/world/executor.py LOADER_TEXT);
- relevance(): which of that shell state the remaining steps can still read;
- match(): whether two states are equal up to a one-to-one renaming of drawn values (secrets,
  keys, IDs, clock readings) that neither held when the run being judged began;
- rename(): a capture with drawn values renamed, to judge a stopped run by the end it would have had.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scripts import replay
from scripts.sandbox import HOME, WORLD
from scripts.world.executor import SPECIAL_VARIABLES

# Files of the world that no step, check or service reads: the fakes' request and error logs
# (scripts/world/fakes/server.py writes them for people), like the traffic log that snapshots
# already leave out. The session is the shell's, compared apart through read_shell().
RECORDS = (f"{WORLD}/session/", f"{WORLD}/log/access.log", f"{WORLD}/log/fakes-error.log")

# Options the executor carries from step to step (its LOADER_TEXT saves exactly these).
CARRIED_OPTIONS = ("allexport", "noclobber", "noglob", "pipefail")

# Variables bash itself reads without a command naming them (bash(1), "Shell Variables").
IMPLICIT = frozenset(
    {
        *("IFS", "CDPATH", "GLOBIGNORE", "GLOBSORT", "EXECIGNORE", "FIGNORE", "TMOUT", "POSIXLY_CORRECT", "PS4", "BASH_XTRACEFD"),
        *("TIMEFORMAT", "FUNCNEST", "BASH_COMPAT", "HOME", "PATH", "LANG", "LANGUAGE"),
        *("LC_ALL", "LC_COLLATE", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME"),
    }
)

# Values that a world draws at random or from the clock, and that programs use only as opaque
# tokens: PEM blocks, ISO times, UUIDs, epoch seconds, hex strings of 12 characters or more (a
# Docker short ID has 12), and base64 strings of 16 or more with digits and both cases. Anything
# else that differs between two states is a real difference.
_RUN = r"[A-Za-z0-9+/_-]"
TOKEN = re.compile(
    r"-----BEGIN (?P<pem>[A-Z0-9 ]+)-----[\s\S]*?-----END (?P=pem)-----"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"|(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<epoch>(?<![\d.])1\d{9}(?:\.\d+)?(?![\d.]))"
    rf"|(?P<hex>(?<!{_RUN})(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{{12,}}(?![A-Za-z0-9+/_=-]))"
    rf"|(?P<b64>(?<!{_RUN})(?={_RUN}*[A-Z])(?={_RUN}*[a-z])(?={_RUN}*\d){_RUN}{{16,}}={{0,2}}(?![A-Za-z0-9+/_=-]))"
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Commands that read variables or functions by names their text doesn't spell: then all of them
# matter. (`env`, `printenv` and `export -p` read only the exported ones, which always matter.)
_DYNAMIC = re.compile(
    r"\beval\b|\$\{!|\bcompgen\b|\btypeset\b|\bdeclare\s+-\w*p|(?:^|[;&|({]\s*)(?:set|declare|local|readonly)\s*(?:$|[;&|)}])",
    re.MULTILINE,
)
# `. FILE` and `source FILE` where a command starts: the file's text is part of what runs.
_SOURCE = re.compile(r"(?:^|[;&|({!]|\bthen|\bdo|\belse)\s*(?:\.|source)\s+([^\s;&|)]+)", re.MULTILINE)
# What reads the previous directory (OLDPWD): `cd -` and the `~-` expansion.
_OLDPWD_READ = re.compile(r"\bcd\s+-(?:\s|$|[;&|)])|~-", re.MULTILINE)
# Leading lines of a step that set part of the shell state without reading any of it.
_SET_OPTION = re.compile(r"set\s+([-+])o\s+(\w+)\s*(?:&&|;)?")
_CD_ABSOLUTE = re.compile(r"cd\s+(~|~/[\w./-]*|/[\w./-]*|\"\$HOME(?:/[\w./-]*)?\")\s*(?:&&|;)?")


@dataclass(frozen=True, slots=True)
class Node:
    """What is at one path of the world: a file with its text, a directory, or a symbolic link with its target."""

    kind: str  # "file", "dir" or "link"
    mode: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class Capture:
    """A world as a later step can observe it: every path a snapshot carries, but the records nobody reads."""

    nodes: Mapping[str, Node]


@dataclass(frozen=True, slots=True)
class Shell:
    """The shell state the executor carries to the next step."""

    variables: Mapping[str, str]  # name -> its `declare -p` line (flags and value)
    functions: Mapping[str, str]  # name -> its `declare -f` text
    exported_functions: frozenset[str]
    options: Mapping[str, bool]  # CARRIED_OPTIONS -> on
    umask: str
    cwd: str


@dataclass(frozen=True, slots=True)
class State:
    """A run at a section boundary: its world and its shell."""

    world: Capture
    shell: Shell


@dataclass(frozen=True, slots=True)
class Relevance:
    """The part of a shell state that the remaining steps can read."""

    names: frozenset[str]  # variables and functions
    options: frozenset[str]
    cwd: bool


# ---------------------------------------------------------------------------------------------
# Reading a world and a shell
# ---------------------------------------------------------------------------------------------


def capture(world: replay.Runner) -> Capture:
    """The world now, as its snapshot carries it (the snapshot changes nothing)."""
    return from_snapshot(replay.snapshot(world))


def from_snapshot(snap: replay.Snapshot) -> Capture:
    """A snapshot's archive read into paths: JSON files in their canonical form, with each bind mount's inode
    number replaced by the path of the file it numbers (restoring gives every file a new number)."""
    inodes: dict[int, list[str]] = {}
    for line in snap.inodes.splitlines():
        number, _, path = line.partition(" ")
        if number.isdigit():
            inodes.setdefault(int(number), []).append(path)
    nodes: dict[str, Node] = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(snap.archive)), mode="r:gz") as tar:
        for member in tar:
            path = "/" + member.name.strip("/")
            if path.startswith(RECORDS) or path + "/" in RECORDS:
                continue
            if member.isdir():
                nodes[path] = Node("dir", member.mode)
            elif member.issym() or member.islnk():
                nodes[path] = Node("link", member.mode, member.linkname)
            elif member.isfile():
                data = tar.extractfile(member)
                text = data.read().decode("utf-8", "surrogateescape") if data is not None else ""
                if path.endswith(".json"):
                    text = _canonical_json(text, inodes)
                nodes[path] = Node("file", member.mode, text)
    return Capture(nodes)


def _canonical_json(text: str, inodes: Mapping[int, list[str]]) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return text

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ("@" + ",".join(sorted(inodes[x])) if k == "inode" and isinstance(x, int) and x in inodes else walk(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return json.dumps(walk(value), sort_keys=True, indent=1)


# Prints the shell's state as records: \036 ends one, \037 separates its fields. Run in a subshell,
# so the session it saves afterwards is the one it found.
_SHELL_PROBE = f"""(
for __world_n in $(compgen -v); do
  case $__world_n in
    {SPECIAL_VARIABLES}) ;;
    *) printf 'v\\037%s\\037%s\\036' "$__world_n" "$(declare -p "$__world_n")" ;;
  esac
done
for __world_n in $(compgen -A function); do
  printf 'f\\037%s\\037%s\\036' "$__world_n" "$(declare -f "$__world_n")"
done
printf 'F\\037%s\\036' "$(declare -F)"
printf 'o\\037%s\\036' "$(shopt -po {" ".join(CARRIED_OPTIONS)})"
printf 'u\\037%s\\036' "$(umask)"
printf 'c\\037%s\\036' "$PWD"
)
"""


def read_shell(world: replay.Runner) -> Shell:
    """The shell state the world's next step will start with."""
    r = world.run("equivalence:shell", _SHELL_PROBE, replay.TIMEOUT)
    if r.rc != 0 or r.timed_out:
        raise RuntimeError(f"reading the shell's state failed (exit {r.rc}):\n{r.output[-2000:]}")
    variables: dict[str, str] = {}
    functions: dict[str, str] = {}
    exported: set[str] = set()
    options: dict[str, bool] = {}
    umask = cwd = ""
    for record in r.output.split("\x1e"):
        kind, _, rest = record.lstrip("\n").partition("\x1f")
        if kind == "v":
            name, _, line = rest.partition("\x1f")
            variables[name] = line
        elif kind == "f":
            name, _, body = rest.partition("\x1f")
            functions[name] = body
        elif kind == "F":
            exported = {line.split()[-1] for line in rest.splitlines() if line.startswith("declare -fx ")}
        elif kind == "o":
            options = {parts[2]: parts[1] == "-o" for parts in (line.split() for line in rest.splitlines()) if len(parts) == 3}
        elif kind == "u":
            umask = rest.strip()
        elif kind == "c":
            cwd = rest
    return Shell(variables, functions, frozenset(exported), options, umask, cwd)


def read_state(world: replay.Runner) -> State:
    return State(capture(world), read_shell(world))


# ---------------------------------------------------------------------------------------------
# What the remaining steps can read
# ---------------------------------------------------------------------------------------------


def _exported(line: str) -> bool:
    """Whether a `declare -p` line is an exported variable's (`declare -x NAME=…`, `declare -rx …`)."""
    flags = line.split(maxsplit=2)[1] if line.startswith("declare ") else ""
    return flags.startswith("-") and "x" in flags


def _sourced_path(word: str) -> str | None:
    """The path `. WORD` reads, when it can be known from the text; None otherwise."""
    word = word.strip("'\"")
    for prefix in ("~/", "$HOME/", "${HOME}/"):
        if word.startswith(prefix):
            word = f"{HOME}/{word[len(prefix) :]}"
    if not word.startswith("/") or re.search(r"[$`*?\[]", word):
        return None
    return word


def leading_settings(text: str) -> tuple[bool, frozenset[str]]:
    """What the first lines of a step set before reading any shell state: (sets the cwd to an absolute path, options set)."""
    sets_cwd, options = False, set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := _SET_OPTION.fullmatch(line):
            options.add(m.group(2))
        elif _CD_ABSOLUTE.fullmatch(line):
            sets_cwd = True
        else:
            break
    return sets_cwd, frozenset(options)


def _cd_target(text: str) -> str | None:
    for line in text.splitlines():
        if m := _CD_ABSOLUTE.fullmatch(line.strip()):
            target = m.group(1).strip('"').replace("$HOME", HOME)
            return HOME + target[1:] if target.startswith("~") else target
    return None


def relevance(rest: Sequence[str], states: Sequence[State]) -> Relevance:
    """The shell state that the remaining shell steps (their texts, in order) can read, in any of `states`.

    Names: every exported variable and function (a child process sees them), the variables bash
    reads by itself (IMPLICIT), and every name spelled by the steps' text, by the files they source,
    and by the bodies and values of the functions and variables so named, to a fixed point; all
    names when any of those texts can read a name it doesn't spell (eval, ${!…}, a bare `set`, a
    sourced file whose path the text doesn't give). OLDPWD counts only when spelled, or read by
    `cd -` or `~-`. The cwd and the carried options count unless the first step sets them before
    anything else runs.
    """
    names: set[str] = set(IMPLICIT)
    for s in states:
        names |= {n for n, line in s.shell.variables.items() if _exported(line) and n != "OLDPWD"}
        names |= s.shell.exported_functions
    pending, read, dynamic = list(rest), set(), False
    while pending and not dynamic:
        text = pending.pop()
        if text in read:
            continue
        read.add(text)
        names |= set(_NAME.findall(text))
        dynamic = bool(_DYNAMIC.search(text))
        for word in _SOURCE.findall(text):
            path = _sourced_path(word)
            dynamic |= path is None
            pending += [n.text for s in states if (n := s.world.nodes.get(path or "")) is not None and n.kind == "file"]
        if not pending:
            pending = [body for s in states for name in names for body in (s.shell.functions.get(name), s.shell.variables.get(name)) if body is not None]
    if dynamic:
        names |= {n for s in states for n in (*s.shell.variables, *s.shell.functions)}
    if any(_OLDPWD_READ.search(text) for text in read):
        names.add("OLDPWD")
    sets_cwd, set_options = leading_settings(rest[0]) if rest else (False, frozenset())
    target = _cd_target(rest[0]) if sets_cwd else None
    enterable = target is not None and all(
        (node := s.world.nodes.get(target.rstrip("/") or "/")) is not None and node.kind == "dir" and node.mode & 0o100 for s in states
    )
    return Relevance(frozenset(names), frozenset(CARRIED_OPTIONS) - set_options, not enterable)


# ---------------------------------------------------------------------------------------------
# Equal up to drawn values
# ---------------------------------------------------------------------------------------------


def token_shape(m: re.Match[str]) -> str:
    """A drawn value's kind, and its length where every value of that kind has the same length."""
    kind = next(k for k in ("pem", "iso", "uuid", "epoch", "hex", "b64") if m.group(k) is not None)
    if kind == "pem":
        return f"pem {m.group('pem')}"
    return kind if kind in ("iso", "epoch") else f"{kind} {len(m.group(0))}"


def _render(state: State, rel: Relevance) -> str:
    parts = [f"{path}\x1f{n.kind}\x1f{n.mode:o}\x1f{n.text}" for path, n in sorted(state.world.nodes.items())]
    shell = state.shell
    for name in sorted(rel.names):
        fn = shell.functions.get(name)
        exported = " (exported)" if name in shell.exported_functions else ""
        parts.append(f"variable {name}\x1f{shell.variables.get(name, '(unset)')}\x1ffunction{exported}\x1f{fn if fn is not None else '(none)'}")
    parts += [f"option {o}\x1f{shell.options.get(o)}" for o in sorted(rel.options)]
    parts.append(f"umask\x1f{shell.umask}")
    if rel.cwd:
        parts.append(f"cwd\x1f{shell.cwd}")
    return "\x1e".join(parts)


def drawn(cap: Capture) -> frozenset[str]:
    """The drawn values a world holds (in its paths and contents)."""
    return frozenset(m.group(0) for path, n in cap.nodes.items() for m in TOKEN.finditer(f"{path}\x1f{n.text}"))


def _canonical(text: str, kept: frozenset[str]) -> tuple[str, list[str]]:
    """`text` with each drawn value not in `kept` replaced by its first-appearance number and its shape."""
    order: dict[str, int] = {}

    def label(m: re.Match[str]) -> str:
        value = m.group(0)
        if value in kept:
            return value
        number = order.setdefault(value, len(order))
        return f"\x00{number} {token_shape(m)}\x00"

    return TOKEN.sub(label, text), list(order)


def match(mine: State, theirs: State, rest: Sequence[str], kept: frozenset[str]) -> dict[str, str] | None:
    """A one-to-one renaming of drawn values that turns `mine` into `theirs` as far as the remaining steps
    (`rest`, the shell steps' texts) can tell, keeping every value in `kept`; None when there is none.

    Rendering both states in one order and numbering each drawn value at its first appearance gives
    equal texts exactly when such a renaming exists; it pairs values of the same shape only.
    """
    rel = relevance(rest, (mine, theirs))
    a, drawn_a = _canonical(_render(mine, rel), kept)
    b, drawn_b = _canonical(_render(theirs, rel), kept)
    return dict(zip(drawn_a, drawn_b, strict=True)) if a == b else None


def rename(cap: Capture, mapping: Mapping[str, str]) -> Capture:
    """The capture with each drawn value that `mapping` names replaced by its image."""
    if not mapping:
        return cap

    def swap(text: str) -> str:
        return TOKEN.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)

    return Capture({swap(path): Node(n.kind, n.mode, swap(n.text)) for path, n in cap.nodes.items()})
