"""ghcr.io/goauthentik/server: `ak server` and `ak worker` start on their PostgreSQL database; the Django shell is judged by meaning.

Sources: Authentik's Dockerfile (ENTRYPOINT ["dumb-init", "--", "ak"], HEALTHCHECK `ak healthcheck`,
USER 1000, EXPOSE 9000 9443), lifecycle/ak (server, worker, shell), docs install-config/configuration
(AUTHENTIK_POSTGRESQL__HOST defaults to localhost; AUTHENTIK_SECRET_KEY is required) and
automated-install (bootstrap settings read once, on the first start). The Django shell
(`python -m manage shell`, `ak shell`) runs what it reads on stdin; this world understands the
programs that create an API token with `Token.objects.update_or_create(...)`, in any layout Python
parses the same (the fixture's one-liner and Reflector 0.34.0's multi-line program alike), and
refuses any other statement by naming its line.

What Authentik stores is the fake Authentik's (scripts/world/fakes/authentik.py): this module calls
its `first_start` and `update_or_create_token` and never writes Authentik's data itself.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scripts.world import state as world_state
from scripts.world.fakes import AppContext
from scripts.world.fakes import authentik as fake
from scripts.world.images.base import Box, Crashed, ImageConfig, NotStarted, Outcome, Output, Program, Running
from scripts.world.images.common import common_program

REPOSITORY = "ghcr.io/goauthentik/server"
ENTRYPOINT = ("dumb-init", "--", "ak")
PGDATA = "/var/lib/postgresql/data"
SHELLS = (("python", "-m", "manage", "shell"), ("ak", "shell"))
MODELS = "authentik.core.models"
INTENTS = {"INTENT_API": "api", "INTENT_APP_PASSWORD": "app_password", "INTENT_RECOVERY": "recovery", "INTENT_VERIFICATION": "verification"}


def log_line(event: str, **fields: str) -> str:
    """Authentik logs JSON lines (structlog) to stdout."""
    body = ", ".join(f'"{k}": "{v}"' for k, v in {"event": event, **fields}.items())
    return "{" + body + "}"


class Refused(Exception):
    """A statement of a Django shell program that this world does not model."""


class Authentik:
    repository = REPOSITORY
    tags = ("2026.2.1",)
    config = ImageConfig(
        entrypoint=ENTRYPOINT,
        env=("PATH=/ak-root/venv/bin:/lifecycle:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUNBUFFERED=1", "TMPDIR=/dev/shm/"),
        working_dir="/",
        user="1000",
        exposed_ports=("9000/tcp", "9443/tcp"),
        healthcheck=("CMD", "ak", "healthcheck"),
        log_stream=1,
    )

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv[:3] != ENTRYPOINT:
            return NotStarted(f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH')
        role = argv[3:]
        if role not in (("server",), ("worker",)):
            return NotStarted(f"ak {' '.join(role)}: not modelled in this world")
        env = box.container.env
        if not env.get("AUTHENTIK_SECRET_KEY"):
            return Crashed(1, (log_line("Secret key missing, check https://goauthentik.io/docs/installation/.", level="error"),))
        host = env.get("AUTHENTIK_POSTGRESQL__HOST", "localhost")
        database = box.resolve(host)
        if database is None:
            return Crashed(
                1,
                (log_line("PostgreSQL connection failed, retrying...", level="info", error=f'failed to resolve host "{host}"'),
                 log_line("Error while connecting to database", level="error")),
            )  # fmt: skip
        ctx = AppContext(world_dir=box.world_dir, world=world_state, container=box.container.app_view())
        fresh = fake.first_start(box.apps, ctx, f"{database.name}:{database_box_identity(box, database)}", env)
        lines = [log_line("Starting authentik bootstrap", level="info")]
        if fresh:
            lines.append(log_line("Applied migrations and blueprints to an empty database", level="info"))
        lines.append(log_line("Starting server" if role == ("server",) else "Starting worker", level="info"))
        return Running(log=tuple(lines))

    def program(self, argv: tuple[str, ...]) -> Program | None:
        if argv in SHELLS:
            return Program(True, django_shell)
        return common_program(argv, busybox=False)


def database_box_identity(box: Box, database: world_state.Container) -> str:
    """Which data directory the database container serves (a volume's incarnation, a bind, or its own layer)."""
    mount = next((m for m in database.mounts if m.target == PGDATA), None)
    if mount is None:
        return f"layer:{database.id}"
    if mount.type == "volume":
        volume = box.engine.volumes.get(mount.source)
        return f"volume:{mount.source}:{volume.incarnation if volume else ''}"
    return f"bind:{mount.source}"


def django_shell(box: Box, env: Mapping[str, str], stdin: bytes) -> Output:
    """`python -m manage shell` with a program on stdin: run it if this world models every statement."""
    source = stdin.decode(errors="replace")
    try:
        tree = ast.parse(source, "<stdin>")
    except SyntaxError as e:
        return Output(1, stderr=f'  File "<stdin>", line {e.lineno}\nSyntaxError: {e.msg}\n'.encode())
    if "authentik" not in box.apps or "users" not in box.apps["authentik"]:
        return Output(1, stderr=b'django.db.utils.ProgrammingError: relation "authentik_core_user" does not exist\n')
    names: dict[str, object] = {}
    out: list[str] = []
    try:
        for statement in tree.body:
            run_statement(statement, names, box.apps, out)
    except Refused as e:
        return Output(125, "".join(out).encode(), f"Django shell: {e}: not modelled in this world\n".encode())
    except LookupError as e:
        return Output(1, "".join(out).encode(), f'Traceback (most recent call last):\n  File "<stdin>", line {e.args[1]}, in <module>\n{e.args[0]}\n'.encode())
    return Output(0, "".join(out).encode())


@dataclass(frozen=True, slots=True)
class UserRef:
    username: str


@dataclass(frozen=True, slots=True)
class TokenRef:
    key: str
    identifier: str


def run_statement(node: ast.stmt, names: dict[str, object], apps: dict[str, Any], out: list[str]) -> None:
    """One top-level statement: an import from authentik.core.models, a user lookup, the token's update_or_create, a print."""
    where = f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}"
    if isinstance(node, ast.ImportFrom) and node.module == MODELS and all(a.name in ("User", "Token", "TokenIntents") for a in node.names):
        for alias in node.names:
            names[alias.asname or alias.name] = alias.name
        return
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and is_call(value, names, "User", "get"):
            assert isinstance(value, ast.Call)
            kwargs = keywords(value, where)
            username = constant(kwargs.get("username"), where)
            users = apps["authentik"]["users"]
            if username not in users:
                raise LookupError("authentik.core.models.User.DoesNotExist: User matching query does not exist.", node.lineno)
            names[target.id] = UserRef(str(username))
            return
        if (
            isinstance(target, ast.Tuple)
            and len(target.elts) == 2
            and all(isinstance(e, ast.Name) for e in target.elts)
            and is_call(value, names, "Token", "update_or_create")
        ):
            assert isinstance(value, ast.Call)
            token_name, created_name = (e.id for e in target.elts if isinstance(e, ast.Name))
            kwargs = keywords(value, where)
            identifier = constant(kwargs.pop("identifier", None), where)
            defaults = kwargs.pop("defaults", None)
            if kwargs or not isinstance(defaults, ast.Dict):
                raise Refused(f"{where} (only identifier= and a defaults={{...}} dict are modelled)")
            fields = {constant(k, where): v for k, v in zip(defaults.keys, defaults.values, strict=True)}
            user_node = fields.pop("user", None)
            user = names.get(user_node.id) if isinstance(user_node, ast.Name) else None
            intent_node = fields.pop("intent", None)
            expiring = constant(fields.pop("expiring", ast.Constant(True)), where)
            description = constant(fields.pop("description", ast.Constant("")), where)
            if not isinstance(user, UserRef) or fields or not is_intent(intent_node, names):
                raise Refused(f"{where} (the defaults must name a user looked up above, an intent from TokenIntents and at most expiring and description)")
            assert isinstance(intent_node, ast.Attribute)
            key, created = fake.update_or_create_token(apps, str(identifier), user.username, INTENTS[intent_node.attr], bool(expiring), str(description))
            names[token_name] = TokenRef(key, str(identifier))
            names[created_name] = created
            return
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and node.value.func.id == "print":
        call = node.value
        if call.keywords:
            raise Refused(f"{where} (print with keyword arguments)")
        out.append(" ".join(render(a, names, where) for a in call.args) + "\n")
        return
    raise Refused(where)


def is_call(node: ast.expr, names: Mapping[str, object], model: str, method: str) -> bool:
    """`<model>.objects.<method>(...)` with `model` imported from authentik.core.models."""
    f = node.func if isinstance(node, ast.Call) else None
    return (
        isinstance(f, ast.Attribute) and f.attr == method and isinstance(f.value, ast.Attribute) and f.value.attr == "objects"
        and isinstance(f.value.value, ast.Name) and names.get(f.value.value.id) == model
    )  # fmt: skip


def is_intent(node: ast.expr | None, names: Mapping[str, object]) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in INTENTS and isinstance(node.value, ast.Name) and names.get(node.value.id) == "TokenIntents"


def keywords(call: ast.Call, where: str) -> dict[str, ast.expr]:
    if call.args or any(k.arg is None for k in call.keywords):
        raise Refused(f"{where} (only keyword arguments are modelled)")
    return {str(k.arg): k.value for k in call.keywords}


def constant(node: ast.expr | None, where: str) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    raise Refused(f"{where} (a literal value was expected)")


def render(node: ast.expr, names: Mapping[str, object], where: str) -> str:
    """A print argument: a literal, an f-string over token.key / token.identifier / user.username, or a name."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(render(v.value if isinstance(v, ast.FormattedValue) else v, names, where) for v in node.values)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        obj = names.get(node.value.id)
        if isinstance(obj, TokenRef) and node.attr in ("key", "identifier"):
            return str(getattr(obj, node.attr))
        if isinstance(obj, UserRef) and node.attr == "username":
            return obj.username
    if isinstance(node, ast.Name) and isinstance(names.get(node.id), bool):
        return str(names[node.id])
    raise Refused(f"{where} (printing {ast.unparse(node)})")
