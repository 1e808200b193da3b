"""`docker` and `docker compose` (v2) stand-in: runs commands against the world's state, fails as Docker does.

The deployer is in group `docker` in this world, so plain `docker` works without sudo (as on a
server set up by Docker's post-install steps). Compose progress is printed in compose's plain
(non-TTY) form, ` Container x  Started` on stderr, because snippets never run on a terminal.

Chosen behaviours, each from Docker/compose v2 sources or docs:
- A profile-gated service named on the command line is enabled (compose docs, "Using profiles":
  targeted services run regardless of their profile); `up`/`down` without names touch only
  services whose profiles are enabled.
- `exec` finds the container by project and service (compose's cmd/compose/exec.go), so the
  caddy profile is not needed to exec into a running caddy.
- `logs -f` prints what is there and returns (following forever is not testable).
- env_file is read only when a container is created (compose reads it at load time; the
  difference only shows for commands that create nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from scripts.world import state as worldmod
from scripts.world.standins.common import fail, home_dir, run_main, unsupported, world_dir

State = dict[str, Any]
Json = Any

COMPOSE_VERSION = "2.29.7"
DOCKER_VERSION = "27.3.1"
CONFIG_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_NAMES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)
SERVICE_KEYS = frozenset(
    [
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "pull_policy",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ]
)
TOP_KEYS = frozenset(["version", "name", "include", "services", "networks", "volumes", "secrets", "configs"])

BACKEND_IMAGE = "monadicalsas/reflector-backend"
AUTHENTIK_IMAGE = "ghcr.io/goauthentik/server"
KEYS_DIR = "/app/reflector/auth/jwt/keys"
IMAGE_KEYS = frozenset({"authentik.monadical.com_public.pem"})  # baked into the backend image
CADDYFILE = "/etc/caddy/Caddyfile"
# Images whose Dockerfile declares a HEALTHCHECK (authentik: `ak healthcheck`).
IMAGE_HEALTHCHECKS = (AUTHENTIK_IMAGE,)
# What `caddy` sees in the caddy:2-alpine image: its ENV lines; compose adds nothing.
CADDY_IMAGE_ENV = {"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}
TOKEN_SNIPPET = "Token.objects.update_or_create(identifier='reflector-setup'"


def main(argv: list[str]) -> int:
    """Dispatch `docker ARGS`."""
    args = list(argv)
    while args and args[0] in ("-D", "--debug", "-l", "--log-level", "-H", "--host", "--context", "-c"):
        args = args[2:] if args[0] in ("-l", "--log-level", "-H", "--host", "--context", "-c") else args[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers")
        return 0
    if args[0] in ("-v", "--version"):
        print(f"Docker version {DOCKER_VERSION}, build ce12230")
        return 0
    cmd, rest = args[0], args[1:]
    handlers: dict[str, Callable[[list[str]], int]] = {
        "compose": compose_main,
        "network": network_main,
        "ps": ps_main,
        "inspect": inspect_main,
        "logs": logs_main,
        "exec": exec_main,
        "restart": lambda a: container_lifecycle("restart", a),
        "start": lambda a: container_lifecycle("start", a),
        "stop": lambda a: container_lifecycle("stop", a),
        "container": container_main,
        "version": version_main,
    }
    if cmd not in handlers:
        fail(f"docker: '{cmd}' is not a docker command.\nSee 'docker --help'")
    return handlers[cmd](rest)


# ---------------------------------------------------------------- argument parsing


def parse_flags(
    args: list[str],
    bools: set[str],
    values: set[str],
    stop_at_positional: bool = False,
) -> tuple[dict[str, list[str]], list[str]]:
    """Cobra-like flags: `--x v`, `--x=v`, `-x v`, grouped short booleans (`-dT`)."""
    opts: dict[str, list[str]] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            pos.extend(args[i + 1 :])
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a.partition("=")
            if name in bools:
                opts.setdefault(name, []).append(val if eq else "true")
            elif name in values:
                if not eq:
                    i += 1
                    if i >= len(args):
                        fail(f"flag needs an argument: {name}")
                    val = args[i]
                opts.setdefault(name, []).append(val)
            else:
                fail(f"unknown flag: {name}")
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                name = "-" + a[j]
                if name in bools:
                    opts.setdefault(name, []).append("true")
                    j += 1
                elif name in values:
                    val = a[j + 1 :].removeprefix("=")
                    if not val:
                        i += 1
                        if i >= len(args):
                            fail(f"flag needs an argument: '{a[j]}' in {name}")
                        val = args[i]
                    opts.setdefault(name, []).append(val)
                    break
                else:
                    fail(f"unknown shorthand flag: '{a[j]}' in {a}")
        else:
            pos.append(a)
            if stop_at_positional:
                pos.extend(args[i + 1 :])
                break
        i += 1
    return opts, pos


def has(opts: dict[str, list[str]], *names: str) -> bool:
    """Whether any of the flag spellings was given."""
    return any(n in opts for n in names)


def value(opts: dict[str, list[str]], *names: str) -> str | None:
    """The last value given for any of the flag spellings."""
    found = [v for n in names for v in opts.get(n, [])]
    return found[-1] if found else None


# ---------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$(?:(\$)|([_a-zA-Z][_a-zA-Z0-9]*)|\{)")


def interpolate(text: str, lookup: dict[str, str], path: str = "", warn: bool = True) -> str:
    """compose-go's template substitution: `$$`, `$name`, `${...}`; any other `$` stays literal
    (so `$(openssl ...)` is kept as text, compose-go since 6bf774c)."""
    out: list[str] = []
    i = 0
    while True:
        m = _VAR.search(text, i)
        if m is None:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        if m.group(1):
            out.append("$")
            i = m.end()
        elif m.group(2):
            out.append(_lookup(m.group(2), lookup, warn))
            i = m.end()
        else:
            body, end = _braced(text, m.end())
            if end < 0:
                fail(f"invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{text}")
            out.append(_substitute(body, lookup, path, text, warn))
            i = end


def _braced(text: str, start: int) -> tuple[str, int]:
    """The body of `${...}` starting after `${` (nested braces allowed) and the index after `}`."""
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[start:j], j + 1
    return "", -1


def _lookup(name: str, lookup: dict[str, str], warn: bool) -> str:
    if name not in lookup:
        if warn:
            print(f'WARN[0000] The "{name}" variable is not set. Defaulting to a blank string.', file=sys.stderr)
        return ""
    return lookup[name]


def _substitute(body: str, lookup: dict[str, str], path: str, whole: str, warn: bool) -> str:
    m = re.fullmatch(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])(.*))?", body, re.DOTALL)
    if m is None:
        fail(f"invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{whole}")
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    val = lookup.get(name)
    unset_or_empty = val is None or (val == "" and op is not None and op.startswith(":"))
    if op in ("-", ":-"):
        return interpolate(arg, lookup, path, warn) if unset_or_empty else str(val)
    if op in ("?", ":?"):
        if unset_or_empty:
            reason = interpolate(arg, lookup, path, warn)
            msg = f"required variable {name} is missing a value"
            fail(f"error while interpolating {path}: {msg}" + (f": {reason}" if reason else ""))
        return str(val)
    if op in ("+", ":+"):
        return "" if unset_or_empty else interpolate(arg, lookup, path, warn)
    return _lookup(name, lookup, warn)


def read_dotenv(path: Path, lookup: dict[str, str]) -> dict[str, str]:
    """A .env / env_file as compose-go reads it: python-dotenv's tokenizer for quoting, then
    compose's own interpolation (not python-dotenv's) on unquoted and double-quoted values."""
    import io

    from dotenv.parser import parse_stream

    result: dict[str, str] = {}
    text = path.read_text()
    for b in parse_stream(io.StringIO(text)):
        if b.error:
            line = b.original.string.rstrip("\n")
            fail(f"failed to read {path}: line {b.original.line}: unexpected character in variable name near {line!r}")
        if b.key is None:
            continue
        raw = b.original.string.split("=", 1)[1].lstrip() if "=" in b.original.string else ""
        val = b.value or ""
        if not raw.startswith("'"):
            val = interpolate(val, {**lookup, **result}, b.key, warn=False)
        result[b.key] = val
    return result


# ---------------------------------------------------------------- the compose project


class Project:
    """A loaded compose project: merged, interpolated model plus where it came from."""

    def __init__(self, name: str, directory: Path, files: list[Path], model: dict[str, Any], env: dict[str, str], profiles: set[str]) -> None:
        self.name = name
        self.directory = directory
        self.files = files
        self.model = model
        self.env = env
        self.profiles = profiles

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        s: dict[str, dict[str, Any]] = self.model.get("services") or {}
        return s

    def active(self, service: str) -> bool:
        """Enabled: no profiles, or one of them given (`*` enables all)."""
        prof = self.services[service].get("profiles") or []
        return not prof or "*" in self.profiles or bool(set(prof) & self.profiles)

    def container_name(self, service: str) -> str:
        return str(self.services[service].get("container_name") or f"{self.name}-{service}-1")

    def check_services(self, names: list[str]) -> None:
        for n in names:
            if n not in self.services:
                fail(f"no such service: {n}")

    def network_name(self, key: str) -> str:
        net = (self.model.get("networks") or {}).get(key) or {}
        if net.get("name"):
            return str(net["name"])
        if net.get("external"):
            return key
        return f"{self.name}_{key}"


def normalize_project_name(name: str) -> str:
    """compose-go's NormalizeProjectName: lowercase, keep [a-z0-9_-], trim leading _ and -."""
    return "".join(re.findall(r"[a-z0-9_-]", name.lower())).lstrip("_-")


def find_config(cwd: Path) -> list[Path]:
    """compose's default lookup: the first directory from cwd upwards holding a compose file,
    plus its override file."""
    for d in [cwd, *cwd.parents]:
        found = [d / n for n in CONFIG_NAMES if (d / n).is_file()]
        if found:
            if len(found) > 1:
                print(f"WARN[0000] Found multiple config files with supported names: {', '.join(map(str, found))}\nWARN[0000] Using {found[0]}", file=sys.stderr)
            overrides = [d / n for n in OVERRIDE_NAMES if (d / n).is_file()]
            return [found[0], *overrides[:1]]
    return fail("no configuration file provided: not found")


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        fail(f"yaml: line {line}: {exc.problem}")
    except yaml.YAMLError as exc:
        fail(f"yaml: {exc}")
    if data is None:
        fail(f"empty compose file: {path}")
    if not isinstance(data, dict):
        fail("Top-level object must be a mapping")
    return data


def _listmap(value: Any, sep: str = "=") -> dict[str, Any]:
    """environment / networks / depends_on in list or mapping form -> mapping."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        k, eq, v = str(item).partition(sep)
        out[k] = v if eq else None
    return out


def _volume(spec: Any, project_dir: Path) -> dict[str, Any]:
    if isinstance(spec, dict):
        v = dict(spec)
        src = str(v.get("source", ""))
        if v.get("type") == "bind":
            v["source"] = str(_host_path(src, project_dir))
        v["read_only"] = bool(v.get("read_only"))
        return v
    parts = str(spec).split(":")
    if len(parts) == 1:
        return {"type": "volume", "source": "", "target": parts[0], "read_only": False}
    src, target = parts[0], parts[1]
    ro = len(parts) > 2 and "ro" in parts[2].split(",")
    if src.startswith((".", "/", "~")):
        return {"type": "bind", "source": str(_host_path(src, project_dir)), "target": target, "read_only": ro}
    return {"type": "volume", "source": src, "target": target, "read_only": ro}


def _host_path(src: str, project_dir: Path) -> Path:
    if src.startswith("~"):
        return Path(os.path.expanduser(src))
    return Path(os.path.normpath(project_dir / src))


def _merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """compose's override rules for the fields this world uses."""
    out = dict(base)
    for key, val in over.items():
        if key in ("environment", "labels", "networks", "depends_on"):
            merged = _listmap(base.get(key))
            merged.update(_listmap(val))
            out[key] = merged
        elif key == "volumes":
            by_target = {str(v).split(":")[1] if ":" in str(v) else str(v): v for v in base.get(key) or []}
            for v in val or []:
                t = v.get("target") if isinstance(v, dict) else (str(v).split(":")[1] if ":" in str(v) else str(v))
                by_target[str(t)] = v
            out[key] = list(by_target.values())
        elif key in ("ports", "expose", "env_file", "dns", "cap_add", "cap_drop"):
            a = base.get(key) or []
            b = val or []
            a = a if isinstance(a, list) else [a]
            b = b if isinstance(b, list) else [b]
            out[key] = a + [x for x in b if x not in a]
        else:
            out[key] = val
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in over.items():
        if key == "services":
            services = dict(base.get("services") or {})
            for name, svc in (val or {}).items():
                services[name] = _merge_service(services.get(name) or {}, svc or {})
            out["services"] = services
        elif key in ("networks", "volumes") and isinstance(val, dict):
            merged = dict(base.get(key) or {})
            for name, cfg in val.items():
                merged[name] = {**(merged.get(name) or {}), **(cfg or {})}
            out[key] = merged
        else:
            out[key] = val
    return out


def _interpolate_tree(value: Any, lookup: dict[str, str], path: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, lookup, path)
    if isinstance(value, dict):
        return {k: _interpolate_tree(v, lookup, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate_tree(v, lookup, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def load_project(
    cwd: Path,
    files: list[str],
    project_name: str | None,
    profiles: list[str],
    project_directory: str | None = None,
    env_files: list[str] | None = None,
    environ: dict[str, str] | None = None,
) -> Project:
    """Load a project the way `docker compose` does before any command runs."""
    environ = dict(os.environ) if environ is None else environ
    if files:
        paths = []
        for f in files:
            p = Path(os.path.normpath(cwd / f))
            if not p.is_file():
                fail(f"open {p}: no such file or directory")
            paths.append(p)
    else:
        paths = find_config(cwd)
    directory = Path(os.path.normpath(cwd / project_directory)) if project_directory else paths[0].parent
    dotenv: dict[str, str] = {}
    for ef in env_files or [".env"]:
        p = Path(os.path.normpath(directory / ef))
        if p.is_file():
            dotenv.update(read_dotenv(p, environ))
        elif env_files:
            fail(f"couldn't find env file: {p}")
    env = {**dotenv, **environ}
    model: dict[str, Any] = {}
    for p in paths:
        data = load_yaml(p)
        for key in data:
            if key not in TOP_KEYS and not str(key).startswith("x-"):
                fail(f"validating {p}: additional properties '{key}' not allowed")
        if "version" in data:
            print(f"WARN[0000] {p}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion", file=sys.stderr)
        for sname, svc in (data.get("services") or {}).items():
            for key in svc or {}:
                if key not in SERVICE_KEYS and not str(key).startswith("x-"):
                    fail(f"validating {p}: services.{sname} additional properties '{key}' not allowed")
            if svc and "extends" in svc:
                unsupported("docker compose", f"`extends` in {p}")
        if "include" in data:
            unsupported("docker compose", f"`include` in {p}")
        model = _merge(model, data)
    model = _interpolate_tree(model, env, "")
    name = project_name or env.get("COMPOSE_PROJECT_NAME") or model.get("name")
    if name:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", str(name)):
            fail(
                f'invalid project name "{name}": must consist only of lowercase alphanumeric '
                "characters, hyphens, and underscores as well as start with a letter or number"
            )
    else:
        name = normalize_project_name(directory.name)
    all_profiles = set(profiles)
    if env.get("COMPOSE_PROFILES"):
        all_profiles |= {p for p in env["COMPOSE_PROFILES"].split(",") if p}
    return Project(str(name), directory, paths, model, env, all_profiles)


def service_env(project: Project, service: str) -> dict[str, str]:
    """The container environment: env_file(s) in order (last duplicate wins), then
    `environment:` on top (compose precedence)."""
    svc = project.services[service] or {}
    env: dict[str, str] = {}
    env_files = svc.get("env_file") or []
    for item in env_files if isinstance(env_files, list) else [env_files]:
        path_text, required = (item.get("path"), item.get("required", True)) if isinstance(item, dict) else (item, True)
        p = Path(os.path.normpath(project.directory / str(path_text)))
        if not p.is_file():
            if required:
                fail(f"env file {p} not found: stat {p}: no such file or directory")
            continue
        env.update(read_dotenv(p, project.env))
    for k, v in _listmap(svc.get("environment")).items():
        if v is None:
            if k in project.env:
                env[k] = project.env[k]
        else:
            env[k] = str(v)
    return env


def service_networks(project: Project, service: str) -> dict[str, list[str]]:
    """Network name -> aliases for a service (compose adds the service name as an alias)."""
    svc = project.services[service] or {}
    if svc.get("network_mode"):
        return {}
    nets = _listmap(svc.get("networks")) or {"default": None}
    out: dict[str, list[str]] = {}
    for key, cfg in nets.items():
        aliases = [service, *((cfg or {}).get("aliases") or [])]
        out[project.network_name(key)] = aliases
    return out


def depends(project: Project, service: str) -> list[str]:
    return list(_listmap((project.services[service] or {}).get("depends_on")))


def ordered(project: Project, names: list[str], with_deps: bool) -> list[str]:
    """Services in dependency order, dependencies included when `with_deps`."""
    seen: list[str] = []

    def visit(n: str) -> None:
        if n in seen:
            return
        if with_deps:
            for d in depends(project, n):
                if d in project.services:
                    visit(d)
        seen.append(n)

    for n in names:
        visit(n)
    return seen


# ---------------------------------------------------------------- containers


def _now() -> float:
    return time.time()


def _rand_id() -> str:
    return secrets.token_hex(32)


def project_containers(state: State, project: str) -> dict[str, dict[str, Any]]:
    return {n: c for n, c in state["containers"].items() if c.get("project") == project}


def to_home_relative(path: str, home: Path) -> str:
    """Store host paths under HOME as `~/...`, so the state reads the same inside and outside."""
    try:
        return "~/" + str(Path(path).relative_to(home))
    except ValueError:
        return path


def host_path(stored: str, home: Path) -> Path:
    return home / stored[2:] if stored.startswith("~/") else Path(stored)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def snapshot_files(mounts: list[dict[str, Any]], home: Path, previous: dict[str, str]) -> dict[str, str]:
    """Content the container sees at (re)start for each bind mount (files up to 64 KiB). A
    single-file mount stays bound to the inode it got at creation (`inode` in the mount)."""
    files: dict[str, str] = {}
    for m in mounts:
        if m["type"] != "bind":
            continue
        src = host_path(m["source"], home)
        if src.is_dir():
            for f in sorted(src.rglob("*")):
                if f.is_file() and f.stat().st_size <= 65536:
                    files[f"{m['target']}/{f.relative_to(src)}"] = _read(f)
        elif "inode" in m:
            try:
                same = src.stat().st_ino == m["inode"]
            except OSError:
                same = False
            files[m["target"]] = _read(src) if same else previous.get(m["target"], "")
        elif src.is_file():
            m["inode"] = src.stat().st_ino
            files[m["target"]] = _read(src)
        elif not src.exists() and not str(src).startswith(("/var/run/", "/run/")):
            src.mkdir(parents=True, exist_ok=True)  # dockerd creates a missing bind source as a directory
    return files


def config_hash(cfg: dict[str, Any]) -> str:
    keys = ("image", "env", "mounts_spec", "entrypoint", "command", "networks", "ports", "healthcheck")
    return hashlib.sha256(json.dumps([cfg.get(k) for k in keys], sort_keys=True, default=str).encode()).hexdigest()


def build_config(project: Project, service: str, home: Path) -> dict[str, Any]:
    """What a fresh `docker compose up` would create for `service` (without runtime fields)."""
    svc = project.services[service] or {}
    mounts = [_volume(v, project.directory) for v in svc.get("volumes") or []]
    for m in mounts:
        if m["type"] == "bind":
            m["source"] = to_home_relative(m["source"], home)
        elif m["source"]:
            m["source"] = f"{project.name}_{m['source']}"
    image = str(svc.get("image") or f"{project.name}-{service}")
    healthy = bool(svc.get("healthcheck")) and not (svc.get("healthcheck") or {}).get("disable")
    cfg = {
        "project": project.name,
        "service": service,
        "image": image,
        "env": service_env(project, service),
        "mounts_spec": [{k: m[k] for k in ("type", "source", "target", "read_only")} for m in mounts],
        "entrypoint": svc.get("entrypoint"),
        "command": svc.get("command"),
        "networks": sorted(service_networks(project, service)),
        "ports": [str(p) for p in svc.get("ports") or []],
        "healthcheck": healthy or image.startswith(IMAGE_HEALTHCHECKS),
        "restart": str(svc.get("restart") or "no"),
        "working_dir": to_home_relative(str(project.directory), home),
        "config_files": [to_home_relative(str(p), home) for p in project.files],
    }
    cfg["config_hash"] = config_hash(cfg)
    cfg["mounts"] = mounts
    cfg["aliases"] = service_networks(project, service)
    return cfg


def ensure_network(state: State, name: str, project: str, attachable: bool, out: list[str], key: str = "default") -> None:
    if name in state["networks"]:
        return
    index = len(state["networks"])
    state["networks"][name] = {
        "id": _rand_id(),
        "project": project,
        "attachable": attachable,
        "driver": "bridge",
        "subnet": f"172.{18 + index}.0.0/16",
        "created_at": _now(),
        "compose_key": key,
    }
    out.append(f" Network {name}  Creating")
    out.append(f" Network {name}  Created")


def attach(state: State, cname: str, net: str, aliases: list[str]) -> None:
    c = state["containers"][cname]
    n = state["networks"][net]
    prefix = ".".join(n["subnet"].split("/")[0].split(".")[:3])
    used = {int(o.get("ips", {}).get(net, "0.0.0.0").rsplit(".", 1)[1]) for o in state["containers"].values() if net in o.get("networks", [])}
    host = next(i for i in range(2, 255) if i not in used)
    c.setdefault("networks", []).append(net)
    c.setdefault("ips", {})[net] = f"{prefix}.{host}"
    c.setdefault("aliases", {})[net] = [*aliases, c["id"][:12]]


def log_path(world: Path, cname: str) -> Path:
    return world / "log" / f"{cname}.log"


def append_log(world: Path, cname: str, text: str) -> None:
    (world / "log").mkdir(exist_ok=True)
    with open(log_path(world, cname), "a") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def visible_file(c: dict[str, Any], target: str, home: Path) -> str | None:
    """The content at `target` inside the container. A single-file bind mount is bound to the
    inode it had at container start: edits in place show, a replaced file (new inode) does not."""
    for m in c.get("mounts", []):
        if m["type"] == "bind" and m["target"] == target and "inode" in m:
            src = host_path(m["source"], home)
            try:
                if src.stat().st_ino == m["inode"]:
                    c["files"][target] = _read(src)
            except OSError:
                pass
            return str(c["files"].get(target, ""))
        if m["type"] == "bind" and target.startswith(m["target"] + "/"):
            f = host_path(m["source"], home) / target[len(m["target"]) + 1 :]
            return _read(f) if f.is_file() else None
    found = c.get("files", {}).get(target)
    return None if found is None else str(found)


def start_process(state: State, world: Path, home: Path, cname: str) -> None:
    """Start (or restart) the container's main process and decide its fate from what it sees."""
    c = state["containers"][cname]
    c["started_at"] = _now()
    c["files"] = snapshot_files(c["mounts"], home, c.get("files", {}))
    crash = crash_reason(state, world, home, cname)
    if crash is None:
        c["status"] = "running"
        c["exit_code"] = 0
        c["health"] = "healthy" if c.get("healthcheck") else None
    else:
        c["status"] = "restarting" if c.get("restart") in ("always", "unless-stopped", "on-failure") else "exited"
        c["exit_code"] = 1
        c["restart_count"] = c.get("restart_count", 0) + 1
        c["health"] = "unhealthy" if c.get("healthcheck") else None
        c["crash"] = crash
        append_log(world, cname, crash)


def crash_reason(state: State, world: Path, home: Path, cname: str) -> str | None:
    """Why the main process dies at start, or None if it runs (what the real image would do)."""
    c = state["containers"][cname]
    image = str(c.get("image", ""))
    if image.startswith(BACKEND_IMAGE):
        backend = c["env"].get("AUTH_BACKEND", "none")
        if backend not in ("jwt", "none"):
            return f"ModuleNotFoundError: No module named 'reflector.auth.auth_{backend}'"
        if backend == "jwt":
            key = c["env"].get("AUTH_JWT_PUBLIC_KEY", "authentik.monadical.com_public.pem")
            mounted = [m for m in c["mounts"] if m["type"] == "bind" and m["target"] == KEYS_DIR]
            present = (host_path(mounted[0]["source"], home) / key).is_file() if mounted else key in IMAGE_KEYS
            if not present:
                return f"FileNotFoundError: [Errno 2] No such file or directory: 'reflector/auth/jwt/keys/{key}'"
        return None
    if image.startswith("caddy"):
        text = visible_file(c, CADDYFILE, home)
        if text is None:
            return None
        c["failed_caddyfile"] = None
        routes, err = caddy_adapt(text)
        if err is not None:
            c["failed_caddyfile"] = text
            return err
        if cname == worldmod.CADDY_CONTAINER:
            state["caddy_routes"] = routes
        return None
    return None


def refresh(state: State, world: Path, home: Path) -> None:
    """Let time pass: crash-looping containers retry with what they see now."""
    for cname, c in state["containers"].items():
        if c.get("status") != "restarting":
            continue
        if str(c.get("image", "")).startswith("caddy") and visible_file(c, CADDYFILE, home) == c.get("failed_caddyfile"):
            continue
        start_process(state, world, home, cname)


def create_container(state: State, world: Path, home: Path, cname: str, cfg: dict[str, Any]) -> None:
    state["seq"] = state.get("seq", 0) + 1
    c = {k: v for k, v in cfg.items() if k != "aliases"}
    c.update(
        {
            "id": _rand_id(),
            "status": "created",
            "created": state["seq"],
            "created_at": _now(),
            "networks": [],
            "ips": {},
            "aliases": {},
            "files": {},
            "routes": {},
            "restart_count": 0,
        }
    )
    state["containers"][cname] = c
    for net, aliases in cfg["aliases"].items():
        attach(state, cname, net, aliases)


def remove_container(state: State, cname: str) -> None:
    state["containers"].pop(cname, None)


def caddy_binary() -> str:
    """The real caddy next to this interpreter (the venv's bin/caddy; PATH in the world is
    minimal)."""
    for cand in (Path(sys.executable).parent / "caddy", Path(sys.prefix) / "bin" / "caddy"):
        if cand.is_file():
            return str(cand)
    import shutil

    found = shutil.which("caddy")
    if found is None:
        fail("docker (stand-in): the caddy binary is missing from the virtualenv", 125)
    return found


def run_caddy(args: list[str], files: dict[str, str]) -> tuple[int, str, str]:
    """Run the real caddy with the container's files mapped into a temp root; output names the
    container's paths."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caddy-") as tmp:
        root = Path(tmp) / "root"
        for path, text in files.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        (root / "srv").mkdir(parents=True, exist_ok=True)
        mapped = [str(root) + a if a.startswith("/") and a in files else a for a in args]
        env = {"PATH": "/usr/bin:/bin", **CADDY_IMAGE_ENV}
        proc = subprocess.run([caddy_binary(), *mapped], cwd=root / "srv", env=env, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout.replace(str(root), ""), proc.stderr.replace(str(root), "")


def caddy_adapt(text: str) -> tuple[dict[str, str], str | None]:
    """Routes host -> upstream dial from `caddy adapt`, or caddy's error message."""
    rc, out, err = run_caddy(["adapt", "--config", CADDYFILE, "--adapter", "caddyfile"], {CADDYFILE: text})
    if rc != 0:
        msgs = [json.loads(line).get("msg", line) if line.startswith("{") else line for line in err.splitlines() if line.strip()]
        return {}, msgs[-1] if msgs else err
    return routes_from(json.loads(out)), None


def routes_from(config: Json) -> dict[str, str]:
    """host -> first reverse_proxy upstream dial, in Caddy's route order (first match wins)."""
    routes: dict[str, str] = {}

    def dial(handlers: list[Any]) -> str | None:
        for h in handlers or []:
            if h.get("handler") == "reverse_proxy" and h.get("upstreams"):
                return str(h["upstreams"][0].get("dial"))
            if h.get("handler") == "subroute":
                for r in h.get("routes") or []:
                    d = dial(r.get("handle") or [])
                    if d:
                        return d
        return None

    for server in (config.get("apps", {}).get("http", {}).get("servers") or {}).values():
        for route in server.get("routes") or []:
            d = dial(route.get("handle") or [])
            for m in route.get("match") or []:
                for host in m.get("host") or []:
                    if d and host not in routes:
                        routes[host.lower()] = d
    return routes


# ---------------------------------------------------------------- compose commands

COMPOSE_GLOBAL_VALUES = {"-f", "--file", "-p", "--project-name", "--profile", "--project-directory", "--env-file", "--progress", "--ansi", "--parallel"}
COMPOSE_GLOBAL_BOOLS = {"--dry-run", "--compatibility", "--all-resources"}


def compose_main(argv: list[str]) -> int:
    """`docker compose [global flags] COMMAND ...`."""
    i = 0
    glob: list[str] = []
    while i < len(argv) and argv[i].startswith("-"):
        a = argv[i]
        glob.append(a)
        if a.split("=")[0] in COMPOSE_GLOBAL_VALUES and "=" not in a:
            i += 1
            if i < len(argv):
                glob.append(argv[i])
        i += 1
    if glob and glob[0] in ("-v", "--version"):
        return _compose_version([])
    opts, _ = parse_flags(glob, COMPOSE_GLOBAL_BOOLS | {"-h", "--help", "-v", "--version"}, COMPOSE_GLOBAL_VALUES)
    if i >= len(argv):
        print("Usage:  docker compose [OPTIONS] COMMAND\n\nDefine and run multi-container applications with Docker")
        return 0
    cmd, rest = argv[i], argv[i + 1 :]
    commands: dict[str, Callable[[Ctx, list[str]], int]] = {
        "up": compose_up,
        "down": compose_down,
        "ps": compose_ps,
        "logs": compose_logs,
        "restart": compose_restart,
        "stop": compose_stop,
        "start": compose_start,
        "exec": compose_exec,
        "pull": compose_pull,
        "config": compose_config,
    }
    if cmd not in commands:
        fail(f'unknown docker command: "compose {cmd}"')
    if cmd == "version":
        return _compose_version(rest)
    ctx = Ctx(opts)
    return commands[cmd](ctx, rest)


def _compose_version(args: list[str]) -> int:
    print(COMPOSE_VERSION if "--short" in args else f"Docker Compose version v{COMPOSE_VERSION}")
    return 0


class Ctx:
    """One compose invocation: global options, the world, and lazily the project."""

    def __init__(self, opts: dict[str, list[str]]) -> None:
        self.opts = opts
        self.world = world_dir()
        self.home = home_dir()
        self.cwd = Path(os.getcwd())

    def project(self) -> Project:
        o = self.opts
        return load_project(
            self.cwd,
            o.get("-f", []) + o.get("--file", []),
            value(o, "-p", "--project-name"),
            [p for v in o.get("--profile", []) for p in v.split(",")],
            value(o, "--project-directory"),
            o.get("--env-file"),
        )


def emit(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def bring_up(
    state: State,
    world: Path,
    home: Path,
    project_dir: Path,
    files: list[str],
    profiles: list[str],
    services: list[str] | None = None,
    force: bool = False,
    no_deps: bool = False,
    project: Project | None = None,
) -> list[str]:
    """`docker compose up -d` on `state`; returns compose's progress lines."""
    if project is None:
        project = load_project(project_dir, files, None, profiles, environ={})
    out: list[str] = []
    targets = services or [s for s in project.services if project.active(s)]
    project.check_services(targets)
    order = ordered(project, targets, with_deps=not no_deps)
    top = project.model.get("networks") or {}
    for svc in order:
        for key in _listmap((project.services[svc] or {}).get("networks")) or ({"default": None} if not (project.services[svc] or {}).get("network_mode") else {}):
            cfg = top.get(key) or {}
            name = project.network_name(key)
            if cfg.get("external"):
                if name not in state["networks"]:
                    fail(f"network {name} declared as external, but could not be found")
            else:
                ensure_network(state, name, project.name, bool(cfg.get("attachable")), out, key)
        for v in (project.services[svc] or {}).get("volumes") or []:
            vol = _volume(v, project.directory)
            if vol["type"] == "volume" and vol["source"]:
                vname = f"{project.name}_{vol['source']}"
                if vname not in state.setdefault("volumes", {}):
                    state["volumes"][vname] = {"project": project.name}
                    out += [f' Volume "{vname}"  Creating', f' Volume "{vname}"  Created']
    for svc in order:
        cname = project.container_name(svc)
        cfg = build_config(project, svc, home)
        existing = state["containers"].get(cname)
        if existing is not None and existing.get("project") != project.name:
            fail(
                f'Error response from daemon: Conflict. The container name "/{cname}" is already in use by '
                f'container "{existing["id"]}". You have to remove (or rename) that container to be able to reuse that name.'
            )
        if existing is None:
            out += [f" Container {cname}  Creating"]
            create_container(state, world, home, cname, cfg)
            out += [f" Container {cname}  Created"]
        elif force or existing.get("config_hash") != cfg["config_hash"]:
            out += [f" Container {cname}  Recreate"]
            remove_container(state, cname)  # manual `docker network connect` links go with it
            create_container(state, world, home, cname, cfg)
            out += [f" Container {cname}  Recreated"]
        elif existing.get("status") in ("running", "restarting"):
            out += [f" Container {cname}  Running"]
            continue
        out += [f" Container {cname}  Starting"]
        start_process(state, world, home, cname)
        out += [f" Container {cname}  Started"]
    return out


def compose_up(ctx: Ctx, args: list[str]) -> int:
    opts, services = parse_flags(
        args,
        {
            "-d",
            "--detach",
            "--wait",
            "--force-recreate",
            "--no-deps",
            "--build",
            "--no-build",
            "--remove-orphans",
            "--no-recreate",
            "--quiet-pull",
            "--no-start",
            "--always-recreate-deps",
            "-V",
            "--renew-anon-volumes",
            "-y",
            "--yes",
        },
        {"--pull", "--wait-timeout", "--scale", "-t", "--timeout"},
    )
    project = ctx.project()
    project.check_services(services)
    if not has(opts, "-d", "--detach", "--wait"):
        unsupported("docker compose", "`up` without -d (it attaches to the logs and never returns)")
    with worldmod.locked_state(ctx.world) as state:
        refresh(state, ctx.world, ctx.home)
        lines = bring_up(
            state, ctx.world, ctx.home, project.directory, [], [], services or None, force=has(opts, "--force-recreate"), no_deps=has(opts, "--no-deps"), project=project
        )
        emit(lines)
    if has(opts, "--wait"):  # after the block: what was created stays created
        names = [project.container_name(s) for s in ordered(project, services or [s for s in project.services if project.active(s)], True)]
        for cname in names:
            c = state["containers"][cname]
            print(f" Container {cname}  Waiting", file=sys.stderr)
            if c["status"] != "running":
                print(f" Container {cname}  Error", file=sys.stderr)
                fail(f"container {cname} exited ({c.get('exit_code', 1)})")
            print(f" Container {cname}  {'Healthy' if c.get('health') else 'Started'}", file=sys.stderr)
    return 0


def _targets(project: Project, services: list[str], state: State) -> list[str]:
    project.check_services(services)
    names = services or [s for s in project.services if project.active(s)]
    return [project.container_name(s) for s in names if project.container_name(s) in state["containers"]]


def compose_down(ctx: Ctx, args: list[str]) -> int:
    opts, services = parse_flags(args, {"-v", "--volumes", "--remove-orphans"}, {"-t", "--timeout", "--rmi"})
    project = ctx.project()
    with worldmod.locked_state(ctx.world) as state:
        out: list[str] = []
        for cname in reversed(_targets(project, services, state)):
            out += [f" Container {cname}  Stopping", f" Container {cname}  Stopped", f" Container {cname}  Removing", f" Container {cname}  Removed"]
            remove_container(state, cname)
        error = None
        if not services:
            for name, net in list(state["networks"].items()):
                if net.get("project") != project.name:
                    continue
                out.append(f" Network {name}  Removing")
                users = [c for c in state["containers"].values() if name in c.get("networks", []) and c["status"] == "running"]
                if users:
                    out.append(f" Network {name}  Error")
                    error = (
                        f"failed to remove network {name}: Error response from daemon: error while removing network: network {name} id {net['id']} has active endpoints"
                    )
                else:
                    del state["networks"][name]
                    out.append(f" Network {name}  Removed")
            if has(opts, "-v", "--volumes"):
                for vname in [v for v, d in state.get("volumes", {}).items() if d.get("project") == project.name]:
                    del state["volumes"][vname]
                    out += [f" Volume {vname}  Removing", f" Volume {vname}  Removed"]
        emit(out)
    if error:  # after the block: the containers are gone even though the network stays
        fail(error)
    return 0


def compose_restart(ctx: Ctx, args: list[str]) -> int:
    _, services = parse_flags(args, {"--no-deps"}, {"-t", "--timeout"})
    project = ctx.project()
    with worldmod.locked_state(ctx.world) as state:
        for cname in _targets(project, services, state):
            print(f" Container {cname}  Restarting", file=sys.stderr)
            start_process(state, ctx.world, ctx.home, cname)  # same container: env is not re-read
            print(f" Container {cname}  Started", file=sys.stderr)
    return 0


def compose_stop(ctx: Ctx, args: list[str]) -> int:
    _, services = parse_flags(args, set(), {"-t", "--timeout"})
    project = ctx.project()
    with worldmod.locked_state(ctx.world) as state:
        for cname in reversed(_targets(project, services, state)):
            c = state["containers"][cname]
            print(f" Container {cname}  Stopping", file=sys.stderr)
            c["status"], c["exit_code"], c["health"] = "exited", 0, None
            print(f" Container {cname}  Stopped", file=sys.stderr)
    return 0


def compose_start(ctx: Ctx, args: list[str]) -> int:
    _, services = parse_flags(args, {"--wait"}, {"--wait-timeout"})
    project = ctx.project()
    with worldmod.locked_state(ctx.world) as state:
        for cname in _targets(project, services, state):
            if state["containers"][cname]["status"] != "running":
                print(f" Container {cname}  Starting", file=sys.stderr)
                start_process(state, ctx.world, ctx.home, cname)
                print(f" Container {cname}  Started", file=sys.stderr)
    return 0


def compose_pull(ctx: Ctx, args: list[str]) -> int:
    _, services = parse_flags(args, {"-q", "--quiet", "--ignore-pull-failures", "--include-deps", "--ignore-buildable"}, {"--policy"})
    project = ctx.project()
    project.check_services(services)
    names = services or [s for s in project.services if project.active(s)]
    pulls = [s for s in names if (project.services[s] or {}).get("image")]
    emit([f" {s} Pulling " for s in pulls] + [f" {s} Pulled " for s in pulls])
    return 0


def compose_config(ctx: Ctx, args: list[str]) -> int:
    opts, _ = parse_flags(args, {"-q", "--quiet", "--services", "--volumes", "--profiles", "--no-interpolate"}, {"--format", "-o", "--output"})
    import yaml

    project = ctx.project()
    if has(opts, "-q", "--quiet"):
        return 0
    if has(opts, "--services"):
        print("\n".join(s for s in project.services if project.active(s)))
        return 0
    model = {"name": project.name, **{k: v for k, v in project.model.items() if k not in ("version", "name")}}
    print(yaml.safe_dump(model, sort_keys=False).rstrip())
    return 0


def compose_ps(ctx: Ctx, args: list[str]) -> int:
    opts, services = parse_flags(args, {"-a", "--all", "-q", "--quiet", "--services", "--no-trunc", "--orphans"}, {"--format", "--status", "--filter"})
    project = ctx.project()
    project.check_services(services)
    with worldmod.locked_state(ctx.world) as state:
        refresh(state, ctx.world, ctx.home)
    rows = []
    for cname, c in sorted(project_containers(state, project.name).items()):
        if services and c["service"] not in services:
            continue
        if not has(opts, "-a", "--all") and c["status"] not in ("running", "restarting"):
            continue
        status_filter = value(opts, "--status")
        if status_filter and c["status"] != status_filter:
            continue
        rows.append((cname, c))
    if has(opts, "--services"):
        print("\n".join(dict.fromkeys(c["service"] for _, c in rows)))
        return 0
    if has(opts, "-q", "--quiet"):
        print("\n".join(c["id"] for _, c in rows))
        return 0
    fmt = value(opts, "--format") or "table"
    data = [compose_ps_row(cname, c, state) for cname, c in rows]
    if fmt == "json":
        for d in data:
            print(json.dumps(d, separators=(",", ":")))
        return 0
    cols = ["Name", "Image", "Command", "Service", "RunningFor", "Status", "Ports"]
    headers = ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    if fmt == "table":
        print_table(headers, [[str(d[k]) if k != "Command" else f'"{d[k][:20]}…"' if len(d[k]) > 20 else f'"{d[k]}"' for k in cols] for d in data])
        return 0
    print_template(fmt, data)
    return 0


def compose_ps_row(cname: str, c: dict[str, Any], state: State) -> dict[str, Any]:
    return {
        "Command": command_text(c),
        "CreatedAt": iso(c.get("created_at", 0)),
        "ExitCode": c.get("exit_code", 0),
        "Health": c.get("health") or "",
        "ID": c["id"][:12],
        "Image": c["image"],
        "Labels": ",".join(f"{k}={v}" for k, v in labels(c).items()),
        "LocalVolumes": "0",
        "Mounts": "",
        "Name": cname,
        "Names": cname,
        "Networks": ",".join(c.get("networks", [])),
        "Ports": ports_text(c),
        "Project": c["project"],
        "Publishers": [],
        "RunningFor": ago(c.get("created_at", 0)),
        "Service": c["service"],
        "Size": "0B",
        "State": c["status"],
        "Status": status_text(c),
    }


def compose_logs(ctx: Ctx, args: list[str]) -> int:
    opts, services = parse_flags(args, {"-f", "--follow", "-t", "--timestamps", "--no-color", "--no-log-prefix"}, {"-n", "--tail", "--since", "--until", "--index"})
    project = ctx.project()
    state = worldmod.read_state(ctx.world)
    tail = value(opts, "-n", "--tail")
    for cname in _targets(project, services, state):
        c = state["containers"][cname]
        lines = _read(log_path(ctx.world, cname)).splitlines()
        if tail not in (None, "all"):
            lines = lines[-int(str(tail)) :] if int(str(tail)) else []
        prefix = "" if has(opts, "--no-log-prefix") else f"{c['service']}-1  | "
        for line in lines:
            print(prefix + line)
    return 0


def compose_exec(ctx: Ctx, args: list[str]) -> int:
    opts, rest = parse_flags(
        args,
        {"-T", "--no-TTY", "-d", "--detach", "--privileged", "-i", "--interactive", "-t", "--tty"},
        {"-e", "--env", "-u", "--user", "-w", "--workdir", "--index"},
        stop_at_positional=True,
    )
    if len(rest) < 2:
        fail('"docker compose exec" requires at least 2 arguments.')
    service, cmd = rest[0], rest[1:]
    project = ctx.project()
    with worldmod.locked_state(ctx.world) as state:
        refresh(state, ctx.world, ctx.home)
        found = [n for n, c in project_containers(state, project.name).items() if c["service"] == service and c["status"] == "running"]
        if not found:
            fail(f'service "{service}" is not running')
        return exec_in(state, ctx.world, ctx.home, found[0], cmd, opts)


# ---------------------------------------------------------------- exec emulation


def exec_in(state: State, world: Path, home: Path, cname: str, cmd: list[str], opts: dict[str, list[str]]) -> int:
    """Run `cmd` in a running container, for the commands this world can answer truthfully."""
    c = state["containers"][cname]
    env = dict(c["env"]) | dict(e.partition("=")[::2] for e in opts.get("-e", []) + opts.get("--env", []))
    image = str(c["image"])
    prog = cmd[0]
    if prog in ("env", "printenv") and len(cmd) <= 2:
        if len(cmd) == 2:
            if cmd[1] not in env:
                return 1
            print(env[cmd[1]])
        else:
            for k, v in env.items():
                print(f"{k}={v}")
        return 0
    if prog == "cat" and len(cmd) >= 2:
        rc = 0
        for path in cmd[1:]:
            text = visible_file(c, path, home)
            if text is None:
                print(f"cat: can't open '{path}': No such file or directory", file=sys.stderr)
                rc = 1
            else:
                sys.stdout.write(text)
        return rc
    if prog == "true":
        return 0
    if image.startswith("caddy") and prog == "caddy":
        return exec_caddy(state, home, cname, cmd[1:])
    if image.startswith(AUTHENTIK_IMAGE) and (cmd[:4] == ["python", "-m", "manage", "shell"] or cmd[:2] == ["ak", "shell"]):
        return exec_manage_shell(state)
    return unsupported("docker", f"running {' '.join(cmd)!r} in {cname}")


def exec_caddy(state: State, home: Path, cname: str, args: list[str]) -> int:
    """The real caddy CLI on what the container sees at /etc/caddy/Caddyfile, with the caddy
    image's environment only (the service gets no env, so {$X:default} uses the default)."""
    c = state["containers"][cname]
    sub = args[0] if args else ""
    text = visible_file(c, CADDYFILE, home)
    files = {CADDYFILE: text} if text is not None else {}
    if sub not in ("reload", "validate", "adapt", "fmt", "version", "environ", "list-modules"):
        unsupported("docker", f"caddy {sub}")
    if sub == "reload":
        # Adapt exactly as `caddy reload` does (its own messages), against an admin address
        # where nothing listens; the load step is ours.
        rc, out, err = run_caddy([*args, "--address", "127.0.0.1:1"], files)
        lines = err.splitlines()
        sent = [i for i, line in enumerate(lines) if "sending configuration to instance" in line]
        if not sent:
            sys.stdout.write(out)
            sys.stderr.write(err)
            return rc or 1
        sys.stderr.write("".join(line + "\n" for line in lines[: sent[0]]))
        config_arg = args[args.index("--config") + 1] if "--config" in args else None
        if config_arg == CADDYFILE and text is not None:
            routes, error = caddy_adapt(text)
            if error is None and cname == worldmod.CADDY_CONTAINER:
                state["caddy_routes"] = routes
        return 0
    rc, out, err = run_caddy(args, files)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


def exec_manage_shell(state: State) -> int:
    """Authentik's Django shell, for the one program the setup script feeds it."""
    code = sys.stdin.read()
    if not code.strip():
        return 0
    if TOKEN_SNIPPET not in code:
        unsupported("docker", "Django shell input other than the setup script's token snippet")
    ak = state.setdefault("authentik", {})
    ids = ak.setdefault("token_identifiers", {})
    key = ids.get("reflector-setup")
    if key is None:
        key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(60))
        ids["reflector-setup"] = key
    tokens = ak.setdefault("api_tokens", [])
    if key not in tokens:
        tokens.append(key)
    print(f"TOKEN:{key}")
    return 0


# ---------------------------------------------------------------- plain docker commands


def find_container(state: State, ref: str) -> tuple[str, dict[str, Any]] | None:
    ref = ref.lstrip("/")
    if ref in state["containers"]:
        return ref, state["containers"][ref]
    for n, c in state["containers"].items():
        if len(ref) >= 3 and c["id"].startswith(ref):
            return n, c
    return None


def find_network(state: State, ref: str) -> tuple[str, dict[str, Any]] | None:
    if ref in state["networks"]:
        return ref, state["networks"][ref]
    for n, net in state["networks"].items():
        if len(ref) >= 3 and net["id"].startswith(ref):
            return n, net
    return None


def network_main(argv: list[str]) -> int:
    if not argv:
        print("Usage:  docker network COMMAND")
        return 0
    sub, args = argv[0], argv[1:]
    world = world_dir()
    if sub in ("connect", "disconnect"):
        opts, pos = parse_flags(args, {"-f", "--force"}, {"--alias", "--ip", "--ip6", "--link", "--link-local-ip", "--driver-opt", "--gw-priority"})
        if len(pos) != 2:
            fail(
                f"\"docker network {sub}\" requires exactly 2 arguments.\nSee 'docker network {sub} --help'.\n\nUsage:  docker network {sub} [OPTIONS] NETWORK CONTAINER"
            )
        with worldmod.locked_state(world) as state:
            found_c = find_container(state, pos[1])
            if found_c is None:
                fail(f"Error response from daemon: No such container: {pos[1]}")
            found_n = find_network(state, pos[0])
            if found_n is None:
                fail(f"Error response from daemon: network {pos[0]} not found")
            cname, c = found_c
            net, _ = found_n
            if sub == "connect":
                if net in c.get("networks", []):
                    fail(f"Error response from daemon: endpoint with name {cname} already exists in network {net}")
                attach(state, cname, net, opts.get("--alias", []))
            else:
                if net not in c.get("networks", []):
                    fail(f"Error response from daemon: container {c['id']} is not connected to network {net}")
                c["networks"].remove(net)
                c.get("ips", {}).pop(net, None)
                c.get("aliases", {}).pop(net, None)
        return 0
    if sub == "ls" or sub == "list":
        opts, _ = parse_flags(args, {"-q", "--quiet", "--no-trunc"}, {"-f", "--filter", "--format"})
        state = worldmod.read_state(world)
        rows = [{"ID": BUILTIN_NETS[n][:12], "Name": n, "Driver": n if n != "none" else "null", "Scope": "local"} for n in BUILTIN_NETS]
        rows += [{"ID": d["id"][:12], "Name": n, "Driver": d.get("driver", "bridge"), "Scope": "local"} for n, d in state["networks"].items()]
        rows.sort(key=lambda r: r["Name"])
        if has(opts, "-q", "--quiet"):
            print("\n".join(r["ID"] for r in rows))
        elif value(opts, "--format"):
            print_template(str(value(opts, "--format")), rows)
        else:
            print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows])
        return 0
    if sub == "inspect":
        opts, pos = parse_flags(args, {"-v", "--verbose"}, {"-f", "--format"})
        if not pos:
            fail('"docker network inspect" requires at least 1 argument.')
        state = worldmod.read_state(world)
        docs = []
        for ref in pos:
            found = find_network(state, ref)
            if found is None:
                fail(f"Error: No such network: {ref}")
            docs.append(network_doc(state, *found))
        return output_inspect(docs, value(opts, "-f", "--format"))
    if sub == "create":
        opts, pos = parse_flags(args, {"--attachable", "--internal", "--ipv6"}, {"-d", "--driver", "--subnet", "--label", "-o", "--opt"})
        if len(pos) != 1:
            fail('"docker network create" requires exactly 1 argument.')
        with worldmod.locked_state(world) as state:
            if pos[0] in state["networks"] or pos[0] in BUILTIN_NETS:
                fail(f"Error response from daemon: network with name {pos[0]} already exists")
            ensure_network(state, pos[0], "", has(opts, "--attachable"), [])
            print(state["networks"][pos[0]]["id"])
        return 0
    if sub in ("rm", "remove"):
        _, pos = parse_flags(args, {"-f", "--force"}, set())
        with worldmod.locked_state(world) as state:
            for ref in pos:
                found = find_network(state, ref)
                if found is None:
                    fail(f"Error response from daemon: network {ref} not found")
                net_name, net_doc = found
                if any(net_name in c.get("networks", []) and c["status"] == "running" for c in state["containers"].values()):
                    fail(f"Error response from daemon: error while removing network: network {net_name} id {net_doc['id']} has active endpoints")
                del state["networks"][net_name]
                print(ref)
        return 0
    return fail(f"docker: 'network {sub}' is not a docker command.\nSee 'docker --help'")


BUILTIN_NETS = {
    "bridge": "3c1f4e1c0b7a" + "0" * 52,
    "host": "9b4e1d2a77f0" + "0" * 52,
    "none": "e2a1c9d3f456" + "0" * 52,
}


def network_doc(state: State, name: str, net: dict[str, Any]) -> dict[str, Any]:
    subnet = net.get("subnet", "172.18.0.0/16")
    members = {
        c["id"]: {
            "Name": cname,
            "EndpointID": hashlib.sha256((c["id"] + name).encode()).hexdigest(),
            "MacAddress": "02:42:" + ":".join(f"{int(x):02x}" for x in c["ips"][name].split(".")),
            "IPv4Address": c["ips"][name] + "/16",
            "IPv6Address": "",
        }
        for cname, c in state["containers"].items()
        if name in c.get("networks", []) and c.get("status") == "running"
    }
    label = (
        {"com.docker.compose.network": net.get("compose_key", "default"), "com.docker.compose.project": net["project"], "com.docker.compose.version": COMPOSE_VERSION}
        if net.get("project")
        else {}
    )
    return {
        "Name": name,
        "Id": net["id"],
        "Created": iso(net.get("created_at", 0)),
        "Scope": "local",
        "Driver": net.get("driver", "bridge"),
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": subnet, "Gateway": subnet.rsplit(".", 2)[0] + ".0.1"}]},
        "Internal": False,
        "Attachable": bool(net.get("attachable")),
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": members,
        "Options": {},
        "Labels": label,
    }


def labels(c: dict[str, Any]) -> dict[str, str]:
    return {
        "com.docker.compose.config-hash": c.get("config_hash", ""),
        "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": c["project"],
        "com.docker.compose.project.config_files": ",".join(c.get("config_files", [])),
        "com.docker.compose.project.working_dir": c.get("working_dir", ""),
        "com.docker.compose.service": c["service"],
        "com.docker.compose.version": COMPOSE_VERSION,
    }


def container_doc(state: State, cname: str, c: dict[str, Any]) -> dict[str, Any]:
    status = c["status"]
    st: dict[str, Any] = {
        "Status": status,
        "Running": status in ("running", "restarting"),
        "Paused": False,
        "Restarting": status == "restarting",
        "OOMKilled": False,
        "Dead": False,
        "Pid": 4242 if status == "running" else 0,
        "ExitCode": c.get("exit_code", 0),
        "Error": "",
        "StartedAt": iso(c.get("started_at", 0)),
        "FinishedAt": "0001-01-01T00:00:00Z",
    }
    if c.get("healthcheck"):
        st["Health"] = {"Status": c.get("health") or "starting", "FailingStreak": 0 if c.get("health") == "healthy" else 1, "Log": []}
    nets = {
        n: {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": c.get("aliases", {}).get(n, []),
            "NetworkID": state["networks"].get(n, {}).get("id", ""),
            "Gateway": c["ips"][n].rsplit(".", 1)[0] + ".1",
            "IPAddress": c["ips"][n],
            "IPPrefixLen": 16,
            "MacAddress": "02:42:" + ":".join(f"{int(x):02x}" for x in c["ips"][n].split(".")),
            "DNSNames": [cname, *c.get("aliases", {}).get(n, [])],
        }
        for n in c.get("networks", [])
    }
    return {
        "Id": c["id"],
        "Created": iso(c.get("created_at", 0)),
        "Path": command_text(c).split(" ")[0],
        "Args": command_text(c).split(" ")[1:],
        "State": st,
        "Image": "sha256:" + hashlib.sha256(c["image"].encode()).hexdigest(),
        "Name": "/" + cname,
        "RestartCount": c.get("restart_count", 0),
        "Mounts": [{"Type": m["type"], "Source": m["source"], "Destination": m["target"], "RW": not m.get("read_only")} for m in c.get("mounts", [])],
        "Config": {"Hostname": c["id"][:12], "Image": c["image"], "Env": [f"{k}={v}" for k, v in c.get("env", {}).items()], "Labels": labels(c)},
        "HostConfig": {"RestartPolicy": {"Name": c.get("restart", "no"), "MaximumRetryCount": 0}},
        "NetworkSettings": {"Networks": nets},
    }


def inspect_main(argv: list[str]) -> int:
    opts, pos = parse_flags(argv, {"-s", "--size"}, {"-f", "--format", "--type"})
    if not pos:
        fail('"docker inspect" requires at least 1 argument.')
    state = worldmod.read_state(world_dir())
    kind = value(opts, "--type")
    docs = []
    for ref in pos:
        found_c = find_container(state, ref) if kind in (None, "container") else None
        if found_c is not None:
            docs.append(container_doc(state, *found_c))
            continue
        found_n = find_network(state, ref) if kind in (None, "network") else None
        if found_n is not None:
            docs.append(network_doc(state, *found_n))
            continue
        fail(f"Error: No such object: {ref}" if kind is None else f"Error: No such {kind}: {ref}")
    return output_inspect(docs, value(opts, "-f", "--format"))


def container_main(argv: list[str]) -> int:
    if not argv:
        print("Usage:  docker container COMMAND")
        return 0
    sub, args = argv[0], argv[1:]
    if sub == "inspect":
        opts, pos = parse_flags(args, {"-s", "--size"}, {"-f", "--format"})
        state = worldmod.read_state(world_dir())
        docs = []
        for ref in pos:
            found = find_container(state, ref)
            if found is None:
                fail(f"Error: No such container: {ref}")
            docs.append(container_doc(state, *found))
        return output_inspect(docs, value(opts, "-f", "--format"))
    sub_map: dict[str, Callable[[list[str]], int]] = {
        "ls": ps_main,
        "list": ps_main,
        "ps": ps_main,
        "logs": logs_main,
        "exec": exec_main,
        "restart": lambda a: container_lifecycle("restart", a),
        "start": lambda a: container_lifecycle("start", a),
        "stop": lambda a: container_lifecycle("stop", a),
    }
    if sub not in sub_map:
        fail(f"docker: 'container {sub}' is not a docker command.\nSee 'docker --help'")
    return sub_map[sub](args)


def container_lifecycle(action: str, argv: list[str]) -> int:
    _, pos = parse_flags(argv, {"-a", "--attach", "-i", "--interactive"}, {"-t", "--time", "-s", "--signal"})
    world = world_dir()
    with worldmod.locked_state(world) as state:
        for ref in pos:
            found = find_container(state, ref)
            if found is None:
                fail(f"Error response from daemon: No such container: {ref}")
            cname, c = found
            if action == "stop":
                c["status"], c["exit_code"], c["health"] = "exited", 0, None
            elif action == "restart" or c["status"] != "running":
                start_process(state, world, home_dir(), cname)
            print(ref)
    return 0


def exec_main(argv: list[str]) -> int:
    opts, rest = parse_flags(
        argv,
        {"-d", "--detach", "-i", "--interactive", "-t", "--tty", "--privileged"},
        {"-e", "--env", "-u", "--user", "-w", "--workdir", "--env-file"},
        stop_at_positional=True,
    )
    if len(rest) < 2:
        fail('"docker exec" requires at least 2 arguments.')
    world, home = world_dir(), home_dir()
    with worldmod.locked_state(world) as state:
        refresh(state, world, home)
        found = find_container(state, rest[0])
        if found is None:
            fail(f"Error response from daemon: No such container: {rest[0]}")
        cname, c = found
        if c["status"] == "restarting":
            fail(f"Error response from daemon: Container {c['id']} is restarting, wait until the container is running")
        if c["status"] != "running":
            fail(f"Error response from daemon: container {c['id']} is not running")
        return exec_in(state, world, home, cname, rest[1:], opts)


def logs_main(argv: list[str]) -> int:
    opts, pos = parse_flags(argv, {"-f", "--follow", "-t", "--timestamps", "--details"}, {"-n", "--tail", "--since", "--until"})
    if len(pos) != 1:
        fail('"docker logs" requires exactly 1 argument.')
    world = world_dir()
    state = worldmod.read_state(world)
    found = find_container(state, pos[0])
    if found is None:
        fail(f"Error response from daemon: No such container: {pos[0]}")
    lines = _read(log_path(world, found[0])).splitlines()
    tail = value(opts, "-n", "--tail")
    if tail not in (None, "all"):
        lines = lines[-int(str(tail)) :] if int(str(tail)) else []
    for line in lines:
        print(line)
    return 0


def ps_main(argv: list[str]) -> int:
    opts, _ = parse_flags(argv, {"-a", "--all", "-q", "--quiet", "--no-trunc", "-s", "--size", "-l", "--latest"}, {"-f", "--filter", "--format", "-n", "--last"})
    world = world_dir()
    with worldmod.locked_state(world) as state:
        refresh(state, world, home_dir())
    rows = []
    for cname, c in sorted(state["containers"].items(), key=lambda kv: -kv[1].get("created", 0)):
        if not has(opts, "-a", "--all") and c["status"] not in ("running", "restarting"):
            continue
        if not all(_ps_filter(f, cname, c) for f in opts.get("-f", []) + opts.get("--filter", [])):
            continue
        rows.append(
            {
                "ID": c["id"][:12],
                "Image": c["image"],
                "Command": f'"{command_text(c)[:20]}…"' if len(command_text(c)) > 20 else f'"{command_text(c)}"',
                "CreatedAt": iso(c.get("created_at", 0)),
                "RunningFor": ago(c.get("created_at", 0)),
                "Ports": ports_text(c),
                "State": c["status"],
                "Status": status_text(c),
                "Size": "0B",
                "Names": cname,
                "Labels": ",".join(f"{k}={v}" for k, v in labels(c).items()),
                "Mounts": ",".join(m["source"] for m in c.get("mounts", [])),
                "Networks": ",".join(c.get("networks", [])),
            }
        )
    if has(opts, "-q", "--quiet"):
        print("\n".join(r["ID"] for r in rows))
        return 0
    fmt = value(opts, "--format")
    if fmt is None or fmt == "table":
        print_table(
            ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
            [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]] for r in rows],
        )
        return 0
    if fmt == "json":
        for r in rows:
            print(json.dumps(r, separators=(",", ":")))
        return 0
    print_template(fmt, rows)
    return 0


def _ps_filter(spec: str, cname: str, c: dict[str, Any]) -> bool:
    key, _, val = spec.partition("=")
    if key == "name":
        return val in cname
    if key == "status":
        return bool(c["status"] == val)
    if key == "network":
        return val in c.get("networks", [])
    if key == "label":
        k, eq, v = val.partition("=")
        return k in labels(c) and (not eq or labels(c)[k] == v)
    return fail(f"Error response from daemon: invalid filter '{key}'")


def version_main(argv: list[str]) -> int:
    print(f"Client: Docker Engine - Community\n Version:           {DOCKER_VERSION}\n\nServer: Docker Engine - Community\n Engine:\n  Version:          {DOCKER_VERSION}")
    return 0


# ---------------------------------------------------------------- formatting


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    return f"{h // 24} days"


def ago(t: float) -> str:
    return human_duration(_now() - t) + " ago"


def status_text(c: dict[str, Any]) -> str:
    since = human_duration(_now() - c.get("started_at", _now()))
    if c["status"] == "running":
        health = f" ({c['health']})" if c.get("health") else ""
        return f"Up {since}{health}"
    if c["status"] == "restarting":
        return f"Restarting ({c.get('exit_code', 1)}) {since} ago"
    if c["status"] == "created":
        return "Created"
    return f"Exited ({c.get('exit_code', 0)}) {since} ago"


def command_text(c: dict[str, Any]) -> str:
    parts = []
    for key in ("entrypoint", "command"):
        v = c.get(key)
        if v:
            parts.append(" ".join(v) if isinstance(v, list) else str(v))
    return " ".join(parts) or "/docker-entrypoint.sh"


def ports_text(c: dict[str, Any]) -> str:
    if c["status"] != "running":
        return ""
    out = []
    for p in c.get("ports", []):
        host, _, cont = p.rpartition(":")
        out.append(f"0.0.0.0:{host}->{cont}/tcp" if host else f"{cont}/tcp")
    return ", ".join(out)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """docker's tabwriter(minwidth 10, padding 3): every column but the last is padded."""
    widths = [max(10, max([len(h)] + [len(r[i]) for r in rows]) + 3) for i, h in enumerate(headers)]
    for r in [headers, *rows]:
        cells = [cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r)]
        print("".join(cells).rstrip())


def output_inspect(docs: list[dict[str, Any]], fmt: str | None) -> int:
    if fmt is None:
        print(json.dumps(docs, indent=4))
    else:
        for d in docs:
            print(render(fmt, d))
    return 0


def print_template(fmt: str, rows: list[dict[str, Any]]) -> None:
    if fmt.startswith("table"):
        body = fmt[len("table") :].strip()
        names = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", body)
        header = body
        for n in names:
            header = re.sub(r"\{\{\s*\." + n + r"\s*\}\}", HEADERS.get(n, n.upper()), header, count=1)
        table = [header.split("\t")] + [render(body, r).split("\t") for r in rows]
        print_table(table[0], table[1:])
        return
    for r in rows:
        print(render(fmt, r))


HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Name": "NAME",
    "Image": "IMAGE",
    "Status": "STATUS",
    "State": "STATE",
    "Ports": "PORTS",
    "Command": "COMMAND",
    "RunningFor": "CREATED",
    "Service": "SERVICE",
    "Networks": "NETWORKS",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "CreatedAt": "CREATED AT",
}


# A small Go text/template: {{.A.B}}, {{json .X}}, {{index .M "k"}}, {{range .X}}...{{end}},
# {{range $k, $v := .X}}, {{if .X}}...{{else}}...{{end}}, {{println}}, {{join .L ","}}, {{lower}}, {{upper}}.
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


def render(fmt: str, data: Any) -> str:
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(fmt):
        text = fmt[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = fmt[pos:]
            pos += len(rest) - len(rest.lstrip())
    tokens.append(("text", fmt[pos:]))
    tree, i = _parse(tokens, 0)
    if i != len(tokens):
        fail(f"template parsing error: template: :1: unexpected {{{{{tokens[i][1]}}}}}")
    return _exec(tree, data, {"$": data})


def _parse(tokens: list[tuple[str, str]], i: int) -> tuple[list[Any], int]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "text":
            nodes.append(("text", text))
            i += 1
            continue
        word = text.split(" ", 1)[0]
        if word in ("end", "else"):
            return nodes, i
        if word in ("range", "if", "with"):
            body, i = _parse(tokens, i + 1)
            alt: list[Any] = []
            if i < len(tokens) and tokens[i][1] == "else":
                alt, i = _parse(tokens, i + 1)
            if i >= len(tokens) or tokens[i][1] != "end":
                fail("template parsing error: template: :1: unexpected EOF")
            nodes.append((word, text[len(word) :].strip(), body, alt))
            i += 1
            continue
        nodes.append(("expr", text))
        i += 1
    return nodes, i


def _exec(nodes: list[Any], dot: Any, scope: dict[str, Any]) -> str:
    out: list[str] = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(_gostr(_eval(node[1], dot, scope)))
        elif node[0] == "range":
            spec = node[1]
            m = re.fullmatch(r"(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*(.+)", spec)
            target = _eval(m.group(3) if m else spec, dot, scope)
            items = sorted(target.items()) if isinstance(target, dict) else list(enumerate(target or []))
            if not items:
                out.append(_exec(node[3], dot, scope))
            for k, v in items:
                local = dict(scope)
                if m:
                    if m.group(2):
                        local[m.group(1)], local[m.group(2)] = k, v
                    else:
                        local[m.group(1)] = v
                out.append(_exec(node[2], v, local))
        else:  # if / with
            val = _eval(node[1], dot, scope)
            if val:
                out.append(_exec(node[2], val if node[0] == "with" else dot, scope))
            else:
                out.append(_exec(node[3], dot, scope))
    return "".join(out)


def _eval(expr: str, dot: Any, scope: dict[str, Any]) -> Any:
    import shlex

    if "|" in expr:
        parts = [p.strip() for p in expr.split("|")]
        val = _eval(parts[0], dot, scope)
        for fn in parts[1:]:
            val = _call(fn.split(), [val], dot, scope)
        return val
    words = shlex.split(expr, posix=False)
    if len(words) == 1 and words[0] not in FUNCS:
        return _path(words[0], dot, scope)
    return _call(words[:1], [_arg(w, dot, scope) for w in words[1:]], dot, scope)


FUNCS = {"json", "index", "println", "join", "lower", "upper", "len", "print", "printf", "title", "split"}


def _call(name_words: list[str], args: list[Any], dot: Any, scope: dict[str, Any]) -> Any:
    name = name_words[0]
    extra = [_arg(w, dot, scope) for w in name_words[1:]]
    args = extra + args
    if name == "json":
        return json.dumps(args[0], separators=(",", ":")) if args else ""
    if name == "index":
        val = args[0]
        for k in args[1:]:
            val = val.get(k) if isinstance(val, dict) else val[int(k)]
        return val
    if name == "println":
        return " ".join(_gostr(a) for a in args) + "\n"
    if name == "print":
        return "".join(_gostr(a) for a in args)
    if name == "join":
        return str(args[1]).join(_gostr(a) for a in args[0] or [])
    if name in ("lower", "upper", "title"):
        return getattr(str(args[0]), name)()
    if name == "len":
        return len(args[0] or [])
    if name == "split":
        return str(args[0]).split(str(args[1]))
    if name == "printf":
        fmt = re.sub(r"%[vsd]", "{}", str(args[0]))
        return fmt.format(*(_gostr(a) for a in args[1:]))
    return fail(f'template parsing error: template: :1: function "{name}" not defined')


def _arg(word: str, dot: Any, scope: dict[str, Any]) -> Any:
    if word.startswith('"') and word.endswith('"'):
        return json.loads(word)
    if word.isdigit():
        return int(word)
    return _path(word, dot, scope)


def _path(word: str, dot: Any, scope: dict[str, Any]) -> Any:
    if word.startswith("$"):
        head, _, rest = word.partition(".")
        val = scope.get(head)
        word = "." + rest if rest else "."
        dot = val
    if word == ".":
        return dot
    val = dot
    for part in word.strip(".").split("."):
        if isinstance(val, dict):
            val = val.get(part)
        else:
            return None
    return val


def _gostr(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_gostr(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_gostr(x) for x in v) + "]"
    return str(v)


def entry() -> NoReturn:
    run_main("docker", main)


if __name__ == "__main__":
    entry()
