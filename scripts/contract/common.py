"""What every contract check shares: the violation record, JSON bodies, pydantic errors as field paths, unknown fields."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from scripts.world.fakes import Exchange


@dataclass(frozen=True, slots=True)
class Violation:
    """A fake answered differently from the real service's published contract."""

    operation: str  # e.g. "ProvidersApi.providers_oauth2_create (POST /api/v3/providers/oauth2/)"
    field: str  # where in the message: "response.results.0.name", "query.scope_name", "request.body"
    message: str

    def describe(self, step: str) -> str:
        return f"contract: {self.operation}: {self.field}: {self.message} (traffic of {step})"


def json_body(text: str) -> Any:
    """The parsed body; ValueError when it is not JSON."""
    return json.loads(text)


def field_path(prefix: str, loc: Sequence[int | str]) -> str:
    return ".".join([prefix, *(str(part) for part in loc)])


def model_errors(model: type[pydantic.BaseModel] | pydantic.TypeAdapter[Any], text: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(field, message) for each error the model finds in a JSON text; nothing when it validates."""
    try:
        if isinstance(model, pydantic.TypeAdapter):
            model.validate_json(text)
        else:
            model.model_validate_json(text)
    except pydantic.ValidationError as e:
        for error in e.errors(include_url=False):
            got = "" if error["type"] == "missing" else f" (got {_short(error.get('input'))})"
            yield field_path(prefix, error["loc"]), f"{error['msg']}{got}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, pydantic.BaseModel) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unknown_fields(value: Any, data: Any, prefix: str) -> Iterator[str]:
    """Paths of keys in `data` that the validated `value` (a model, or lists/dicts of them) has no field for."""
    if isinstance(value, pydantic.BaseModel) and isinstance(data, dict):
        fields = type(value).model_fields
        if "additional_properties" in fields:
            return  # the schema allows any further keys (additionalProperties)
        known = {f.alias or name: name for name, f in fields.items()}
        for key, item in data.items():
            if key not in known:
                yield f"{prefix}.{key}"
            else:
                yield from unknown_fields(getattr(value, known[key]), item, f"{prefix}.{key}")
    elif isinstance(value, list) and isinstance(data, list):
        for i, (v, d) in enumerate(zip(value, data, strict=False)):
            yield from unknown_fields(v, d, f"{prefix}.{i}")
    elif isinstance(value, dict) and isinstance(data, dict):
        for key, item in data.items():
            if key in value:
                yield from unknown_fields(value[key], item, f"{prefix}.{key}")


__all__ = ["Exchange", "Violation", "field_path", "json_body", "model_errors", "unknown_fields"]
