"""Upstream mode: the world's ~/reflector made from a real Reflector checkout (here a generated one) instead of the fixture."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from scripts import replay, upstream
from scripts.check import REPO, main
from scripts.replay import Cache
from scripts.world import fixtures

# What the real checkout has and the fixture is not: a working copy is never in a clone (git ignores .env).
NOT_IN_A_CLONE = ("server/.env", "www/.env", "Caddyfile")


@pytest.fixture(autouse=True)
def fixture_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts in fixture mode and leaves it so: no REFLECTOR_UPSTREAM, no staged checkout cached."""
    monkeypatch.delenv(upstream.UPSTREAM_ENV, raising=False)
    upstream.current.cache_clear()
    yield
    upstream.current.cache_clear()


def generated_checkout(tmp_path: Path, changelog: str = "## [0.34.0](https://example.invalid) (2026-02-20)\n") -> Path:
    """A small Reflector checkout: the fixture's files without the deployer's working copies, a CHANGELOG,
    and a file the world does not need (a README)."""
    root = tmp_path / "reflector-checkout"
    shutil.copytree(fixtures.REFLECTOR_CHECKOUT, root)
    for name in NOT_IN_A_CLONE:
        (root / name).unlink()
    (root / "scripts/setup-authentik-oauth.sh").chmod(0o755)
    (root / "CHANGELOG.md").write_text(f"# Changelog\n\n{changelog}")
    (root / "README.md").write_text("# Reflector\n")
    return root


def test_a_folder_that_is_not_a_reflector_checkout_is_refused_naming_each_missing_file(tmp_path: Path) -> None:
    """A wrong --reflector path (the parent folder, a half-copied checkout) must say what it lacks, not fail later in a world."""
    root = generated_checkout(tmp_path)
    (root / "scripts/setup-authentik-oauth.sh").unlink()
    (root / "www/.env.example").unlink()
    with pytest.raises(upstream.NotACheckout) as e:
        upstream.stage(root, tmp_path / "staged")
    assert str(e.value) == f"{root} is not a Reflector checkout: it has no scripts/setup-authentik-oauth.sh, www/.env.example"
    with pytest.raises(upstream.NotACheckout, match="is not a folder"):
        upstream.stage(tmp_path / "nowhere", tmp_path / "staged2")


def test_a_file_the_compose_file_needs_at_start_is_refused_when_the_checkout_lacks_it(tmp_path: Path) -> None:
    """`docker compose up` reads each build context's Dockerfile and env file: the refusal names the file and the service."""
    root = generated_checkout(tmp_path)
    (root / "docs/Dockerfile").unlink()
    with pytest.raises(upstream.NotACheckout) as e:
        upstream.stage(root, tmp_path / "staged")
    assert str(e.value) == f"{root} lacks docs/Dockerfile, which docker-compose.prod.yml needs (service docs's build context ./docs)"
    compose = yaml.safe_load((root / "docker-compose.prod.yml").read_text())
    compose["services"]["web"]["env_file"].append("./www/extra.env")
    (root / "docker-compose.prod.yml").write_text(yaml.safe_dump(compose))
    (root / "docs/Dockerfile").write_text("FROM nginx:alpine\n")
    with pytest.raises(upstream.NotACheckout, match=r"lacks www/extra\.env, which docker-compose\.prod\.yml needs \(service web's env_file \./www/extra\.env\)"):
        upstream.stage(root, tmp_path / "staged2")


def test_the_working_copies_are_made_from_the_examples_as_reflectors_deployment_guide_says(tmp_path: Path) -> None:
    """The pages start where Reflector's guide leaves a deployer: the .env files copied from the checkout's examples,
    the required settings filled in and sign-in off; only the files the world needs are taken, with git's modes."""
    root = generated_checkout(tmp_path)
    example = (root / "server/.env.example").read_text().replace("DATABASE_URL=", "#DATABASE_URL=").replace("REDIS_HOST=redis", "REDIS_HOST=localhost")
    (root / "server/.env.example").write_text(example + "EXAMPLE_ONLY=kept\n")
    staged = upstream.stage(root, tmp_path / "staged").staged
    server = dotenv_values(staged / "server/.env")
    assert server["AUTH_BACKEND"] == "none", "the example's AUTH_BACKEND=jwt is what the deployment guide turns off"
    assert server["DATABASE_URL"] == "postgresql+asyncpg://reflector:reflector@postgres:5432/reflector", "a commented setting is uncommented"
    assert server["REDIS_HOST"] == "redis"
    assert server["EXAMPLE_ONLY"] == "kept"
    assert len(server["SECRET_KEY"] or "") == 64
    text = (staged / "server/.env").read_text()
    assert text.count("\nAUTH_BACKEND=") == 1, "each setting is edited in place, not appended twice"
    assert "\n#DATABASE_URL=" not in text
    www = dotenv_values(staged / "www/.env")
    assert www["FEATURE_REQUIRE_LOGIN"] == "false"
    assert www["SERVER_API_URL"] == "http://server:1250"
    assert (staged / "Caddyfile").read_bytes() == (root / "Caddyfile.example").read_bytes()
    files = {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()}
    assert "README.md" not in files
    assert "CHANGELOG.md" not in files
    assert "server/reflector/auth/jwt/keys/authentik.monadical.com_public.pem" in files, "the folder the compose file bind-mounts"
    assert (staged / "scripts/setup-authentik-oauth.sh").stat().st_mode & 0o777 == 0o755
    assert (staged / "docker-compose.prod.yml").stat().st_mode & 0o777 == 0o644
    again = upstream.stage(root, tmp_path / "staged-again")
    assert again.digest == upstream.stage(root, tmp_path / "staged").digest, "every process of a run stages the same files"


def test_the_version_is_the_checkouts_git_tag_else_its_changelogs_newest_release(tmp_path: Path) -> None:
    """The summary and the report name what ran: a clone's tag, or for a copy without git the CHANGELOG's release."""
    root = generated_checkout(tmp_path)
    assert upstream.read_version(root) == "0.34.0 (CHANGELOG.md)"
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    subprocess.run([*git, "tag", "v9.9.9"], check=True)
    assert upstream.read_version(root) == "v9.9.9"
    (root / "docker-compose.prod.yml").write_text("# edited\n", encoding="utf-8")
    assert upstream.read_version(root) == "v9.9.9-dirty"


def test_fixture_and_upstream_worlds_never_share_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A boot or page state cached for the fixture must not be restored into an upstream run, nor one checkout's into another's."""
    root = generated_checkout(tmp_path)
    fixture_boot, fixture_page = replay.boot_key(), replay.key([("docs/a.md", "text", None)])
    monkeypatch.setenv(upstream.UPSTREAM_ENV, str(root))
    upstream.current.cache_clear()
    first_boot, first_page = replay.boot_key(), replay.key([("docs/a.md", "text", None)])
    assert first_boot != fixture_boot
    assert first_page != fixture_page
    (root / "scripts/setup-authentik-oauth.sh").write_text("#!/bin/bash\necho changed\n")
    upstream.current.cache_clear()
    assert replay.boot_key() != first_boot
    assert replay.key([("docs/a.md", "text", None)]) != first_page


PAGE = """\
# P

```bash
docker ps --format '{{.Names}}' | grep -x reflector-extra-1
```

```bash
grep -x 'echo generated' ~/reflector/scripts/setup-authentik-oauth.sh && test -x ~/reflector/scripts/setup-authentik-oauth.sh
```
"""


def test_the_cli_runs_pages_on_the_checkout_given_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--reflector PATH` boots the world from that checkout's compose file and gives it that checkout's script, even
    when the run already cached a fixture boot; the summary and the report name the checkout and its version."""
    monkeypatch.setattr(replay, "CACHE", Cache(tmp_path / "replays"))
    replay.start_world(REPO).close()  # the run's fixture boot, cached
    root = generated_checkout(tmp_path)
    compose = yaml.safe_load((root / "docker-compose.prod.yml").read_text())
    compose["services"]["extra"] = {"image": "redis:7.2-alpine"}
    (root / "docker-compose.prod.yml").write_text(yaml.safe_dump(compose))
    with (root / "scripts/setup-authentik-oauth.sh").open("a") as script:
        script.write("echo generated\n")
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    shutil.copy(REPO / "conf.py", site / "conf.py")
    (site / "docs/p.md").write_text(textwrap.dedent(PAGE))
    reports = tmp_path / "reports"
    monkeypatch.setenv(upstream.UPSTREAM_ENV, "")  # main() sets it; monkeypatch puts this back afterwards
    rc = main(["--reflector", str(root), str(site / "docs/p.md"), "--report-dir", str(reports)])
    out = capsys.readouterr().out
    assert rc == 0, out
    line = f"upstream mode: ~/reflector from {root} (Reflector 0.34.0 (CHANGELOG.md))"
    lines = out.splitlines()
    summary = next(i for i, text in enumerate(lines) if text.startswith("steps: 2 passed, 0 failed"))
    assert lines[0] == line, "said before the run"
    assert lines[summary + 1] == line, "and after its summary"
    run = json.loads((reports / "report.json").read_text())["run"]
    assert run["checkout"] == {"mode": "upstream", "source": str(root), "version": "0.34.0 (CHANGELOG.md)", "digest": upstream.current().digest}  # type: ignore[union-attr]


def test_the_cli_refuses_a_path_that_is_not_a_checkout_before_starting_a_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong path is the writer's typo: exit 2 with the reason, not a world that boots the wrong thing."""
    monkeypatch.setenv(upstream.UPSTREAM_ENV, "")
    assert main(["--reflector", str(tmp_path), str(REPO / "docs/api-keys.md"), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --reflector: {tmp_path} is not a Reflector checkout: it has no {', '.join(upstream.NAMED)}\n"
    assert not (tmp_path / "r").exists()
