"""Effect checks judge real files with the real parsers: a check that cannot fail would prove nothing."""

from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from scripts.check import REPO
from scripts.sandbox import CheckResult, World
from scripts.world import checks


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_env_secrets_rejects_a_literal_command_substitution(home: Path, tmp_path: Path) -> None:
    (home / ".env").write_text("PG_PASS=$(openssl rand -base64 36 | tr -d '\\n')\n")
    ok, detail = checks.run_check("env-secrets", {"file": "~/.env", "keys": "PG_PASS"}, home, tmp_path)
    assert not ok
    assert "literal text" in detail


@pytest.mark.parametrize(("value", "ok"), [("a" * 64, True), ("ab" * 20, False), ("Zm9v" * 11, True), ("Zm9v" * 10, False)])
def test_env_secrets_counts_bits_by_alphabet(home: Path, tmp_path: Path, value: str, ok: bool) -> None:
    # 64 hex chars = 256 bits; 40 hex = 160; 44 base64 = 264; 40 base64 = 240.
    (home / ".env").write_text(f"KEY={value}\n")
    assert checks.run_check("env-secrets", {"file": "~/.env", "keys": "KEY"}, home, tmp_path)[0] is ok


def test_env_unique_names_the_duplicated_keys(home: Path, tmp_path: Path) -> None:
    (home / ".env").write_text("A=1\nB=2\nA=3\n")
    assert checks.run_check("env-unique", {"file": "~/.env"}, home, tmp_path) == (False, "~/.env has duplicated keys: A")


def test_unknown_check_and_missing_argument_fail_with_the_reason(home: Path, tmp_path: Path) -> None:
    ok, detail = checks.run_check("no-such-check", {}, home, tmp_path)
    assert not ok
    assert "unknown check 'no-such-check'" in detail
    (home / "x").write_text("")
    assert checks.run_check("file-mode", {"file": "x"}, home, tmp_path) == (False, "check file-mode needs the argument mode")


def test_yaml_fence_is_verified_as_a_subset_of_the_compose_file(home: Path, tmp_path: Path) -> None:
    (home / "c.yml").write_text("services:\n  server:\n    image: x\n    volumes:\n      - a:/a\n      - ./k:/k:ro\n")
    shown = "server:\n  volumes:\n    - ./k:/k:ro\n"
    assert checks.run_check("config-contains", {"file": "c.yml", "content": shown, "format": "yaml"}, home, tmp_path)[0]
    wrong = "server:\n  volumes:\n    - ./k:/keys:ro\n"
    ok, detail = checks.run_check("config-contains", {"file": "c.yml", "content": wrong, "format": "yaml"}, home, tmp_path)
    assert not ok
    assert "./k:/keys:ro" in detail


def test_caddyfile_fence_is_compared_by_what_caddy_adapts(home: Path, tmp_path: Path) -> None:
    (home / "Caddyfile").write_text("{$API:api.example.com} {\n\treverse_proxy server:1250\n}\n")
    shown = "api.example.com {\n\treverse_proxy server:1250\n}\n"
    assert checks.run_check("config-contains", {"file": "Caddyfile", "content": shown, "format": "caddyfile"}, home, tmp_path)[0]
    typo = "api.example.com {\n\treverse_prxy server:1250\n}\n"
    ok, detail = checks.run_check("config-contains", {"file": "Caddyfile", "content": typo, "format": "caddyfile"}, home, tmp_path)
    assert not ok
    assert "caddy adapt rejects it" in detail


def test_apply_merges_env_keys_in_place_and_validates(home: Path, tmp_path: Path) -> None:
    target = home / "server.env"
    target.write_text("A=1\n# keep me\nB=2\nA=9\n")
    inode = target.stat().st_ino
    ok, _ = checks.apply_config("server.env", "A=3\nC=4\n", "env", "merge", home, tmp_path)
    assert ok
    assert target.read_text() == "A=3\n# keep me\nB=2\nC=4\n"
    assert target.stat().st_ino == inode  # a single-file bind mount keeps seeing it


def test_apply_refuses_an_invalid_caddyfile(home: Path, tmp_path: Path) -> None:
    ok, detail = checks.apply_config("Caddyfile", "example.com {\n\treverse_prxy web:3000\n}\n", "caddyfile", "replace", home, tmp_path)
    assert not ok
    assert "reverse_prxy" in detail


@pytest.mark.parametrize(
    ("web", "in_file", "in_authentik", "cause"),
    [
        ("old", "new", "new", "the running web container has an older AUTHENTIK_CLIENT_ID or AUTHENTIK_CLIENT_SECRET than ~/reflector/www/.env: recreate web"),
        ("mine", "mine", "theirs", "Authentik's provider 'Reflector' holds another client secret than ~/reflector/www/.env and the web container"),
        ("same", "same", None, "Authentik has no provider with the client ID 'reflector' that web uses (~/reflector/www/.env)"),
    ],
)
def test_a_refused_sign_in_says_whether_web_is_stale_or_authentik_holds_another_secret(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: str, in_file: str, in_authentik: str | None, cause: str
) -> None:
    """Both give the same `invalid_client`; the fix differs (recreate web, or copy the provider's secret), so the message must too."""
    from scripts.world import e2e

    (home / "reflector" / "www").mkdir(parents=True)
    (home / "reflector" / "www" / ".env").write_text(f"AUTHENTIK_CLIENT_ID=reflector\nAUTHENTIK_CLIENT_SECRET={in_file}\n")
    providers = {} if in_authentik is None else {"1": {"name": "Reflector", "client_id": "reflector", "client_secret": in_authentik}}
    (tmp_path / "state.json").write_text(json.dumps({"authentik": {"providers": providers}}))
    monkeypatch.setenv("HOME", str(home))
    assert e2e.why_refused(tmp_path, {"AUTHENTIK_CLIENT_ID": "reflector", "AUTHENTIK_CLIENT_SECRET": web}) == cause


@pytest.mark.parametrize(
    ("name", "args", "detail"),
    [
        ("file-mode", {"file": "~/x.env", "mode": "600"}, "~/x.env has mode 644, expected 600"),
        ("env-has", {"file": "~/x.env", "A": "2"}, "A is '1' in ~/x.env, which the program does not read as '2'"),
        ("env-unique", {"file": "~/x.env"}, "~/x.env has duplicated keys: A"),
        ("env-secrets", {"file": "~/x.env", "keys": "A"}, "A in ~/x.env has about 4 bits, fewer than 256"),
    ],
)
def test_a_failing_check_names_the_file_it_checked(home: Path, tmp_path: Path, name: str, args: dict[str, str], detail: str) -> None:
    """`mode 644, expected 600` alone does not say which of a step's files is wrong."""
    (home / "x.env").write_text("A=0\nA=1\n")
    (home / "x.env").chmod(0o644)
    assert checks.run_check(name, args, home, tmp_path) == (False, detail)


@pytest.mark.parametrize(
    ("line", "want", "ok"),
    [
        ("FEATURE_REQUIRE_LOGIN=no", "false", True),  # the frontend: only "true" is true
        ("FEATURE_REQUIRE_LOGIN=True", "true", False),
        ("PUBLIC_MODE=1", "true", True),  # the backend: pydantic's bool
        ("PUBLIC_MODE=off", "false", True),
        ("PUBLIC_MODE=maybe", "false", False),
        ("AUTH_BACKEND=None", "none", False),  # a module name: exact
    ],
)
def test_env_has_compares_values_as_the_program_reads_them(home: Path, tmp_path: Path, line: str, want: str, ok: bool) -> None:
    """A correct spelling must pass (no false alarm); a value the program reads otherwise must not."""
    (home / ".env").write_text(line + "\n")
    key = line.split("=")[0]
    assert checks.run_check("env-has", {"file": "~/.env", key: want}, home, tmp_path)[0] is ok


def check_functions() -> dict[str, ast.FunctionDef]:
    """The functions registered with @check(NAME, ...) in scripts/world/checks.py, by NAME."""
    tree = ast.parse(Path(checks.__file__).read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "check" and isinstance(d.args[0], ast.Constant):
                    found[str(d.args[0].value)] = node
    return found


def test_every_import_a_check_makes_on_first_use_is_in_its_loads() -> None:
    """A world that waits loads each check's `loads` ahead (`prepare`); an import the declaration left out
    would cost its time at the step again, and a declared module that is not imported there is stale."""
    functions = check_functions()
    assert set(functions) == set(checks.CHECKS)
    for name, fn in functions.items():
        imported = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                imported |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert set(checks.LOADS[name]) == imported, name
        for module in imported:
            assert isinstance(importlib.import_module(module), ModuleType), f"{name} loads {module}, which is not a module"


def test_prepare_imports_the_modules_of_the_named_checks_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(checks.LOADS, "imports-a-module", ("json.tool",))
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    assert checks.prepare(["imports-a-module", "no-such-check"]) == ["json.tool"]
    assert "json.tool" in sys.modules
    assert checks.prepare(["imports-a-module"]) == []


def test_a_world_that_waits_loads_the_sign_in_client_ahead() -> None:
    """Through the executor's `prepare`: the sign-in check's client (requests and Authlib, about 0.5 s) loads
    while a world waits for its state, not when its step is due."""
    with World.start(REPO, boot=False) as world:
        assert world.prepare(["sign-in", "file-mode"]) == CheckResult(True, "loaded scripts.world.e2e")
        assert world.prepare(["sign-in"]) == CheckResult(True, "loaded nothing new")
