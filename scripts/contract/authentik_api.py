"""Authentik's /api/v3 contract, derived from `authentik-client` (generated from Authentik's OpenAPI schema), and the check of one exchange against it.

The client's `__init__` imports all of its ~860 models, which takes 9-18 s; the world needs a few dozen.
So the operation table is derived once, in a child process that imports the whole client
(`python -m scripts.contract CACHE`), and cached as JSON beside the build; a checking process
then imports only the model modules an exchange names (about 0.2 s), under stand-in parent packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from scripts.contract.common import Exchange, Violation, json_body, model_errors, unknown_fields
from scripts.versions import AUTHENTIK

PACKAGE = "authentik_client"
CACHE = Path(__file__).resolve().parent.parent.parent / "_build" / "contract"
# The DRF error body Authentik's exception handler writes for any status the schema does not list
# (404 from get_object_or_404, 405, 415): `{"detail": "..."}` (authentik/api/v3/config.py, EXCEPTION_HANDLER).
GENERIC_ERROR = "GenericError"
# The cache's layout: a cache written by an older check lacks what a newer one reads, so it gets another name.
FORMAT = 2
# Statuses DRF answers before it validates a body (authentication, permission, lookup, method, media type).
BEFORE_VALIDATION = frozenset({401, 403, 404, 405, 415})


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation as the client calls it: what it sends, and what it may get back per status."""

    name: str  # the client's method, e.g. ProvidersApi.providers_oauth2_create
    method: str
    path: str  # the full path template, e.g. /api/v3/providers/oauth2/{id}/
    query: tuple[str, ...]
    body: str | None  # the request model's class name
    content_types: tuple[str, ...]  # request content types the client may send
    responses: Mapping[str, str | None]  # status -> response type ("PaginatedFlowList", "List[X]", None)

    def matches(self, method: str, path: str) -> bool:
        return self.method == method and _template_pattern(self.path).fullmatch(path) is not None

    @property
    def literal_length(self) -> int:
        """How much of the template is literal: /all/ beats /{pm_uuid}/ as Django's URL order makes it."""
        return len(re.sub(r"\{[^}]+\}", "", self.path))


@functools.cache  # ~1,000 templates, more than re's own cache holds: compiling them on every lookup cost 1.3 s a walkthrough run
def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


# ---------------------------------------------------------------- derivation (child process)


class _Recorder:
    """Stands in for the client's ApiClient: records what one operation would send and which types it expects back."""

    def __init__(self) -> None:
        self.sent: dict[str, Any] = {}
        self.content_types: list[str] = []

    def select_header_accept(self, accepts: list[str]) -> str | None:
        return accepts[0] if accepts else None

    def select_header_content_type(self, content_types: list[str]) -> str | None:
        self.content_types = list(content_types)
        return content_types[0] if content_types else None

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        self.sent = kwargs
        return ()

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        return types.SimpleNamespace(read=lambda: None)

    def response_deserialize(self, response_data: Any = None, response_types_map: Mapping[str, str | None] | None = None) -> Any:
        raise _Captured(dict(response_types_map or {}))


class _Captured(Exception):
    def __init__(self, types_map: dict[str, str | None]) -> None:
        super().__init__("captured")
        self.types_map = types_map


class _Sentinel(str):
    """A parameter value that says which parameter it came from."""


def _model_name(annotation: Any) -> str | None:
    """The pydantic model class inside Optional[...] / Annotated[...]."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation.__name__
    for arg in typing.get_args(annotation):
        found = _model_name(arg)
        if found is not None:
            return found
    return None


def _derive_operation(api: Any, cls_name: str, name: str, base: str) -> Operation:
    recorder = _Recorder()
    api.api_client = recorder
    function = getattr(type(api), name).raw_function
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self" and not p.name.startswith("_")]
    args = {p.name: _Sentinel(p.name) for p in params}
    try:
        function(api, **args)
    except _Captured as captured:
        types_map = captured.types_map
    else:
        raise RuntimeError(f"{cls_name}.{name} did not ask for its response types")
    sent = recorder.sent
    body = sent.get("body")
    hints = typing.get_type_hints(function, include_extras=True)
    body_model = _model_name(hints[str(body)]) if isinstance(body, _Sentinel) else None
    return Operation(
        name=f"{cls_name}.{name}",
        method=str(sent["method"]),
        path=base + str(sent["resource_path"]),
        query=tuple(str(k) for k, _ in sent.get("query_params") or []),
        body=body_model,
        content_types=tuple(recorder.content_types) if body_model else (),
        responses=types_map,
    )


def _nested_model(annotation: Any, in_list: bool = False) -> tuple[type[pydantic.BaseModel], bool] | None:
    """The request model a field holds (inside Optional/Annotated), and whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation, in_list
    is_list = typing.get_origin(annotation) in (list, typing.List)  # noqa: UP006 - the client annotates with typing.List
    for arg in typing.get_args(annotation):
        found = _nested_model(arg, in_list or is_list)
        if found is not None:
            return found
    return None


def null_refused(model: type[pydantic.BaseModel], prefix: tuple[str, ...] = (), depth: int = 3) -> list[str]:
    """The paths in a request body of `model` where Authentik refuses an explicit null ("This field may not be null.").

    The generated models declare every optional field `Optional[...] = None`, so pydantic takes a null for
    any of them. The schema's `nullable` survives only in each model's `to_dict`, which sends an explicit
    None for the nullable fields alone; that is what is asked here, field by field (nested models too, a
    list's items as `*`).
    """
    found: list[str] = []
    fields = model.model_fields
    for name, info in fields.items():
        key = info.alias or name
        probe = model.model_construct(_fields_set={name}, **dict.fromkeys(fields))
        sent = probe.to_dict()  # type: ignore[attr-defined]  # every model the generator writes has to_dict
        # A oneOf wrapper (actual_instance) has no fields of its own to send: it refuses nothing here.
        if isinstance(sent, dict) and not (key in sent and sent[key] is None):
            found.append(".".join((*prefix, key)))
        nested = _nested_model(info.annotation)
        if nested is not None and depth > 0:
            inner, is_list = nested
            found += null_refused(inner, (*prefix, key, *(("*",) if is_list else ())), depth - 1)
    return found


def derive() -> dict[str, Any]:
    """Every operation of every API class of the installed client, the module of every model they name, and where
    each request model refuses a null."""
    client = importlib.import_module(PACKAGE)
    api_package = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    base = str(client.Configuration().host)
    operations: list[Operation] = []
    for cls_name, cls in sorted(vars(api_package).items()):
        if not (isinstance(cls, type) and cls_name.endswith("Api")):
            continue
        api: Any = object.__new__(cls)  # no ApiClient: _derive_operation gives it a recorder
        for name in sorted(vars(cls)):
            if name.startswith("_") or name.endswith(("_with_http_info", "_without_preload_content")):
                continue
            if not hasattr(cls, f"_{name}_serialize"):
                continue
            operations.append(_derive_operation(api, cls_name, name, base))
    named = {op.body for op in operations if op.body} | {GENERIC_ERROR}
    for op in operations:
        for kind in op.responses.values():
            named.update(re.findall(r"\w+", kind or ""))
    modules = {n: getattr(models, n).__module__ for n in sorted(named) if isinstance(getattr(models, n, None), type)}
    bodies = sorted({op.body for op in operations if op.body})
    return {
        "format": FORMAT,
        "client": str(client.__version__),
        "null_refused": {b: null_refused(getattr(models, b)) for b in bodies},
        "operations": [
            {
                "name": op.name,
                "method": op.method,
                "path": op.path,
                "query": list(op.query),
                "body": op.body,
                "content_types": list(op.content_types),
                "responses": dict(op.responses),
            }
            for op in operations
        ],
        "modules": modules,
    }


# ---------------------------------------------------------------- the cached contract


@dataclass(frozen=True, slots=True)
class Contract:
    client: str
    operations: tuple[Operation, ...]
    modules: Mapping[str, str]
    null_refused: Mapping[str, tuple[str, ...]]  # request model -> paths where Authentik refuses a null (`*`: any list item)

    def operation(self, method: str, path: str) -> Operation | None:
        found = [op for op in self.operations if op.matches(method, path)]
        return max(found, key=lambda op: op.literal_length) if found else None

    def model(self, name: str) -> type[pydantic.BaseModel]:
        cls = getattr(importlib.import_module(self.modules[name]), name)
        if not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
            raise TypeError(f"{self.modules[name]}.{name} is not a pydantic model")
        return cls


def installed_version() -> str:
    return importlib.metadata.version(PACKAGE.replace("_", "-"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cache_path(directory: Path = CACHE) -> Path:
    return directory / f"authentik-client-{installed_version()}-format{FORMAT}.json"


def load(directory: Path = CACHE) -> Contract:
    """The contract of the installed client: from the cache, or derived now (once per machine and client version)."""
    path = cache_path(directory)
    with _locked(path):
        if not path.exists():
            subprocess.run(
                [sys.executable, "-m", "scripts.contract", str(path)],
                check=True,
                cwd=Path(__file__).resolve().parent.parent.parent,
            )
    data = json.loads(path.read_text())
    _partial_package()
    return Contract(
        client=data["client"],
        operations=tuple(
            Operation(
                name=o["name"],
                method=o["method"],
                path=o["path"],
                query=tuple(o["query"]),
                body=o["body"],
                content_types=tuple(o["content_types"]),
                responses=o["responses"],
            )
            for o in data["operations"]
        ),
        modules=data["modules"],
        null_refused={k: tuple(v) for k, v in data["null_refused"].items()},
    )


def _partial_package() -> None:
    """Make `authentik_client.models.<m>` importable without running the packages' __init__ (see the docstring)."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{PACKAGE} is not installed: run `make .venv/.installed` (requirements.txt pins authentik-client=={AUTHENTIK})")
    root = list(spec.submodule_search_locations)
    for name, path in ((PACKAGE, root), (f"{PACKAGE}.models", [os.path.join(root[0], "models")])):
        module = types.ModuleType(name)
        module.__path__ = path
        sys.modules[name] = module


def write_cache(out: Path) -> None:
    """Derive and write atomically (readers only ever see a whole file)."""
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(derive(), indent=1))
    tmp.replace(out)


# ---------------------------------------------------------------- checking one exchange


def _response_type(contract: Contract, kind: str) -> type[pydantic.BaseModel] | pydantic.TypeAdapter[Any] | None:
    """The validator for a response type the client names: a model, `List[Model]`, or None (no JSON body)."""
    if m := re.fullmatch(r"List\[(\w+)\]", kind):
        item: Any = contract.model(m[1])  # a class known only at run time
        return pydantic.TypeAdapter(list[item])
    if kind in contract.modules:
        return contract.model(kind)
    return None


def _validated(contract: Contract, kind: str, text: str, prefix: str) -> Iterator[tuple[str, str]]:
    validator = _response_type(contract, kind)
    if validator is None:
        return
    errors = list(model_errors(validator, text, prefix))
    if errors:
        yield from errors
        return
    value = validator.validate_json(text) if isinstance(validator, pydantic.TypeAdapter) else validator.model_validate_json(text)
    for path in unknown_fields(value, json_body(text), prefix):
        yield path, f"not a field of {kind} (the real API never sends it)"


def body_errors(contract: Contract, model: str, text: str) -> Iterator[tuple[str, str]]:
    """(field, message) for what Authentik's serializer refuses in a JSON request body: what the request model
    rejects, and a null where the schema allows none."""
    errors = list(model_errors(contract.model(model), text, "request"))
    yield from errors
    try:
        data = json_body(text)
    except ValueError:
        return
    refused, reported = contract.null_refused.get(model, ()), {path for path, _ in errors}
    for pattern, path in _null_paths(data):
        if pattern in refused and f"request.{path}" not in reported:
            yield f"request.{path}", "This field may not be null."


def _null_paths(data: Any, pattern: str = "", shown: str = "") -> Iterator[tuple[str, str]]:
    """(pattern, path) of every null in a JSON value: the pattern writes a list item as `*`, the path by its index."""

    def join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    if data is None:
        yield pattern, shown
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _null_paths(value, join(pattern, str(key)), join(shown, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _null_paths(value, join(pattern, "*"), join(shown, str(index)))


def _refusal_mismatch(refused: list[tuple[str, str]], response: Any) -> Iterator[tuple[str, str]]:
    """How the fake's refusal of a body differs from Authentik's: DRF answers 400 with an error per refused field."""
    first = refused[0]
    if response.status != 400:
        yield "status", f"{response.status} for a body that Authentik refuses ({first[0]}: {first[1]}); Authentik answers 400 with the field's error"
        return
    try:
        named = json_body(response.body.decode(errors="replace"))
    except ValueError:
        return  # the response check below reports a 400 that is not JSON
    for path, message in refused:
        field = path.split(".")[1]
        if isinstance(named, dict) and field not in named:
            yield f"response.{field}", f"Authentik's 400 names {field} ({message}); the fake's names {', '.join(map(str, named)) or 'nothing'}"


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def check(contract: Contract, exchange: Exchange) -> Iterator[Violation]:
    """What in one /api/v3 exchange the client's operation does not allow."""
    request, response = exchange.request, exchange.response
    method = "GET" if request.method == "HEAD" else request.method
    op = contract.operation(method, request.path)
    label = f"{method} {request.path}"
    if op is None:
        if response.status not in (404, 405):
            yield Violation(label, "path", f"authentik-client {contract.client} has no such operation, yet the fake answered {response.status}")
        return
    label = f"{op.name} ({op.method} {op.path})"
    for name in response.honoured:
        if name not in op.query:
            yield Violation(label, f"query.{name}", f"the fake filtered by it, but the operation declares only: {', '.join(op.query) or 'none'}")
    ok = 200 <= response.status < 300
    if op.body and request.body:
        content_type = request.headers.get("content-type")
        if ok and not any(_is_json(content_type) and ct == "application/json" for ct in op.content_types):
            yield Violation(label, "request.content-type", f"the fake accepted {content_type!r}; the operation takes {', '.join(op.content_types)}")
        elif _is_json(content_type):
            refused = list(body_errors(contract, op.body, request.body.decode(errors="replace")))
            if ok:
                for path, message in refused:
                    yield Violation(label, path, f"the fake accepted a body that {op.body} rejects: {message}; Authentik answers 400")
            elif refused and response.status not in BEFORE_VALIDATION:
                wrong = list(_refusal_mismatch(refused, response))
                yield from (Violation(label, path, message) for path, message in wrong)
                if wrong and response.status != 400:
                    return
    kind = op.responses.get(str(response.status), GENERIC_ERROR if response.status >= 400 else None)
    if str(response.status) not in op.responses and response.status < 400:
        yield Violation(label, "status", f"{response.status} is not a status the operation answers ({', '.join(op.responses)})")
        return
    text = response.body.decode(errors="replace")
    if kind is None:
        if text:
            yield Violation(label, "response", f"{response.status} has no body in the schema, the fake sent {text[:60]!r}")
        return
    if not _is_json(response.header("Content-Type")):
        yield Violation(label, "response.content-type", f"{response.header('Content-Type')!r}, not application/json")
        return
    try:
        json_body(text)
    except ValueError:
        yield Violation(label, "response", f"not JSON: {text[:60]!r}")
        return
    for path, message in _validated(contract, kind, text, "response"):
        yield Violation(label, path, f"{message} ({response.status} answers {kind})")
