"""The guide's security advice holds in practice: no secret it generates is ever printed, and secret files are private."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.check import DOCS, PageRun, Verdict, load_page

SECRET_KEYS = {
    "authentik/.env": ["PG_PASS", "AUTHENTIK_SECRET_KEY", "AUTHENTIK_BOOTSTRAP_PASSWORD", "AUTHENTIK_BOOTSTRAP_TOKEN"],
    "reflector/www/.env": ["AUTHENTIK_CLIENT_SECRET", "NEXTAUTH_SECRET"],
}


@pytest.fixture(scope="module", params=["self-hosted-authentik.md", "manual-provider.md"])
def walked(request: pytest.FixtureRequest) -> tuple[list[Verdict], dict[str, str], dict[str, str]]:
    """A page run to its end: every step's verdict, the secrets it left in the world, and the secret files' modes."""
    run = PageRun(load_page(DOCS / request.param))
    try:
        run.start()
        verdicts = [run.step(s) for s in run.steps()]
        assert run.world is not None
        secrets: dict[str, str] = {}
        for file, keys in SECRET_KEYS.items():
            text = run.world.run("t", f"cat ~/{file}", 10).output
            for key in keys:
                values = re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)
                assert values, f"{key} is not set in ~/{file}"
                secrets[key] = values[-1]
        modes = {}
        for file in ["authentik/.env", "reflector/server/.env", "reflector/www/.env"]:
            modes[file] = run.world.run("t", f"stat -c %a ~/{file}", 10).output.strip()
    finally:
        run.close()
    assert all(v.status == "passed" for v in verdicts), [v.reason for v in verdicts if v.status != "passed"]
    return verdicts, secrets, modes


def printed_secrets(verdicts: list[Verdict], secrets: dict[str, str]) -> list[str]:
    """`page:line KEY` for every step whose output shows one of the secrets."""
    return [f"{v.snippet.id} {key}" for v in verdicts for key, value in secrets.items() if value in v.output]


def test_no_generated_secret_appears_in_any_steps_output(walked: tuple[list[Verdict], dict[str, str], dict[str, str]]) -> None:
    """The reader's terminal (and anyone looking over their shoulder, or at a CI log) never shows a secret."""
    verdicts, secrets, _ = walked
    assert printed_secrets(verdicts, secrets) == []


def test_no_secret_is_typed_into_a_command(walked: tuple[list[Verdict], dict[str, str], dict[str, str]]) -> None:
    """Secrets are generated or read from files inside the commands, so none lands in shell history."""
    verdicts, secrets, _ = walked
    for v in verdicts:
        for key, value in secrets.items():
            assert value not in v.snippet.text, f"{v.snippet.id} contains {key}"


def test_env_files_holding_secrets_are_private(walked: tuple[list[Verdict], dict[str, str], dict[str, str]]) -> None:
    _, _, modes = walked
    assert modes == {"authentik/.env": "600", "reflector/server/.env": "600", "reflector/www/.env": "600"}


def test_the_check_sees_a_printed_secret(tmp_path: Path) -> None:
    """The output test can fail: a step that echoes the client secret is caught."""
    page = (DOCS / "self-hosted-authentik.md").read_text()
    marker = "CLIENT_SECRET=$(env_value www/.env AUTHENTIK_CLIENT_SECRET) &&\n"
    assert page.count(marker) == 1
    (tmp_path / "docs").mkdir()
    for p in DOCS.glob("*.md"):
        (tmp_path / "docs" / p.name).write_text(p.read_text())
    (tmp_path / "docs" / "self-hosted-authentik.md").write_text(page.replace(marker, marker + 'echo "secret: $CLIENT_SECRET" &&\n'))
    (tmp_path / "conf.py").write_text((DOCS.parent / "conf.py").read_text())
    page_path = tmp_path / "docs" / "self-hosted-authentik.md"
    run = PageRun(load_page(page_path, tmp_path), root=tmp_path)
    try:
        run.start()
        verdicts = [run.step(s) for s in run.steps()]
        assert run.world is not None
        secret = run.world.run("t", "sed -n 's/^AUTHENTIK_CLIENT_SECRET=//p' ~/reflector/www/.env | tail -n 1", 10).output.strip()
    finally:
        run.close()
    assert secret
    leaking = next(s for s in run.steps() if 'echo "secret: $CLIENT_SECRET" &&' in s.text)
    assert printed_secrets(verdicts, {"AUTHENTIK_CLIENT_SECRET": secret}) == [f"{leaking.id} AUTHENTIK_CLIENT_SECRET"]
