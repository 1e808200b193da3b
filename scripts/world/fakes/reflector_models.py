"""Reflector 0.34.0's API models, as its views declare them: the fake validates requests with them, the contract check responses.

Sources (tag v0.34.0 of Monadical-SAS/reflector): server/reflector/views/user_api_keys.py (CreateApiKeyRequest,
ApiKeyResponse, CreateApiKeyResponse), views/user.py (UserInfo), utils/string.py (NonEmptyString: constr(min_length=1)),
app.py (/health), views/transcripts.py (Page[GetTranscriptMinimal], fastapi-pagination's Page).
The backend's own dependencies are not installable here, so its OpenAPI schema cannot be generated offline; these
models are read from the source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

NonEmptyString = Annotated[str, StringConstraints(min_length=1)]


class CreateApiKeyRequest(BaseModel):
    name: NonEmptyString | None = None


class ApiKeyResponse(BaseModel):
    id: NonEmptyString
    user_id: NonEmptyString
    name: NonEmptyString | None
    created_at: datetime


class CreateApiKeyResponse(ApiKeyResponse):
    key: NonEmptyString


class UserInfo(BaseModel):
    sub: str
    email: str | None


class Health(BaseModel):
    status: str


class Page(BaseModel):
    """fastapi-pagination's Page; the fake's transcript list is always empty, so items stay untyped."""

    items: list[dict[str, Any]]
    total: int | None
    page: int | None
    size: int | None
    pages: int | None


class Deleted(BaseModel):
    status: str


class HTTPErrorBody(BaseModel):
    """FastAPI's answer to an HTTPException: {"detail": "..."}."""

    detail: str


class ValidationErrorItem(BaseModel):
    """One entry of FastAPI's 422 body: pydantic's error without its url (fastapi/exception_handlers.py)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]
