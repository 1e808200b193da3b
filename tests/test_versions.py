"""The modelled versions are stated once and agree with the files that pin them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import versions

ROOT = Path(__file__).resolve().parent.parent


def test_authentik_version_is_the_fixture_compose_files_tag() -> None:
    """The fake serves the compose file the guide downloads; its default tag is the version the world claims to model."""
    compose = (ROOT / "scripts" / "world" / "fixtures" / "authentik" / "compose.yml").read_text()
    tags = set(re.findall(r"\$\{AUTHENTIK_TAG:-([^}]+)\}", compose))
    assert tags == {versions.AUTHENTIK}


def test_authentik_client_is_the_release_of_the_served_version() -> None:
    """The contract check is only as good as its schema: authentik-client must be the release of the Authentik the world serves."""
    from scripts.contract.authentik_api import installed_version

    pins = re.findall(r"^authentik-client==(\S+)$", (ROOT / "requirements-test.txt").read_text(), re.MULTILINE)
    assert (pins, installed_version()) == ([versions.AUTHENTIK], versions.AUTHENTIK)


@pytest.mark.parametrize("page", ["docs/testing.md", "scripts/README.md"])
def test_the_modelled_versions_are_stated_where_writers_and_maintainers_read(page: str) -> None:
    """The writers' page and the modules' contract name the versions the world models, and no others."""
    text = (ROOT / page).read_text()
    stated = {
        "Authentik": set(re.findall(r"Authentik (\d{4}\.\d+\.\d+)", text)),
        "Reflector": set(re.findall(r"Reflector (\d+\.\d+\.\d+)", text)),
        "Compose": set(re.findall(r"Compose (\d+\.\d+\.\d+)", text)),
    }
    assert stated == {"Authentik": {versions.AUTHENTIK}, "Reflector": {versions.REFLECTOR}, "Compose": {versions.COMPOSE}}
