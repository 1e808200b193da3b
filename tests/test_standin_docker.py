"""The docker stand-in answers and fails as docker / compose v2 would, against the world's state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.world import state as worldmod
from scripts.world.fixtures import AUTHENTIK_COMPOSE, install

REPO = Path(__file__).resolve().parent.parent

LITERAL_ENV = """\
PG_PASS=$(openssl rand -base64 36 | tr -d '\\n')
AUTHENTIK_SECRET_KEY=$(openssl rand -base64 60 | tr -d '\\n')
AUTHENTIK_ERROR_REPORTING__ENABLED=true
"""

AUTHENTIK_BLOCK = "{$AUTHENTIK_DOMAIN:authentik.example.com} {\n\treverse_proxy authentik-server-1:9000\n}\n"

TOKEN_SCRIPT = """\
from authentik.core.models import Token, TokenIntents, User
user = User.objects.get(username='akadmin')
token, _ = Token.objects.update_or_create(identifier='reflector-setup', defaults={'user': user, 'intent': TokenIntents.INTENT_API, 'expiring': False})
print(f'TOKEN:{token.key}')
"""


@dataclass(frozen=True, slots=True)
class Result:
    rc: int
    out: str
    err: str


@dataclass(frozen=True, slots=True)
class World:
    """A world dir and HOME laid out by scripts.world.fixtures (the Reflector stack already up)."""

    world: Path
    home: Path

    def docker(self, *args: str, cwd: Path | None = None, stdin: str = "") -> Result:
        """Run the stand-in as the sandbox's wrapper does: `python -m scripts.world.standins.docker`."""
        env = {
            "WORLD": str(self.world),
            "HOME": str(self.home),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "LANG": "C.UTF-8",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.world.standins.docker", *args],
            cwd=cwd or self.home / "reflector",
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def state(self) -> dict:
        return worldmod.read_state(self.world)

    @property
    def reflector(self) -> Path:
        return self.home / "reflector"

    def authentik_dir(self, env: str = LITERAL_ENV) -> Path:
        d = self.home / "authentik"
        d.mkdir(exist_ok=True)
        (d / "compose.yml").write_text(AUTHENTIK_COMPOSE.read_text())
        (d / ".env").write_text(env)
        return d

    def authentik_up(self) -> Path:
        d = self.authentik_dir()
        r = self.docker("compose", "up", "-d", cwd=d)
        assert r.rc == 0, r.err
        return d

    def edit_caddyfile_in_place(self, text: str) -> None:
        """What nano does: truncate and rewrite the same inode."""
        with open(self.reflector / "Caddyfile", "r+") as fh:
            fh.truncate(0)
            fh.write(text)


@pytest.fixture
def w(tmp_path: Path) -> World:
    """A fresh world per test, built by the project's own fixture installer."""
    home, world = tmp_path / "home", tmp_path / "world"
    home.mkdir()
    world.mkdir()
    install(home, world)
    return World(world, home)


PROD = ("compose", "-f", "docker-compose.prod.yml")


def test_unknown_subcommand_is_refused_like_docker(w: World) -> None:
    r = w.docker("frobnicate")
    assert (r.rc, r.err) == (1, "docker: 'frobnicate' is not a docker command.\nSee 'docker --help'\n")


def test_compose_without_a_compose_file_in_reach_fails(w: World) -> None:
    r = w.docker("compose", "ps")  # ~/reflector only has docker-compose.prod.yml
    assert (r.rc, r.err) == (1, "no configuration file provided: not found\n")


def test_compose_finds_the_file_in_a_parent_directory(w: World) -> None:
    d = w.authentik_up()
    (d / "sub").mkdir()
    r = w.docker("compose", "ps", "--format", "{{.Name}}", cwd=d / "sub")
    assert r.rc == 0, r.err
    assert r.out.split() == ["authentik-postgresql-1", "authentik-server-1", "authentik-worker-1"]


def test_project_name_is_the_normalised_directory_name(w: World) -> None:
    d = w.home / "My.Authentik"
    d.mkdir()
    (d / "compose.yml").write_text("services:\n  app:\n    image: nginx\n")
    assert w.docker("compose", "up", "-d", cwd=d).rc == 0
    assert "myauthentik-app-1" in w.state()["containers"]
    assert "myauthentik_default" in w.state()["networks"]


def test_fixture_stack_is_listed_by_compose_ps(w: World) -> None:
    r = w.docker(*PROD, "ps", "--format", "json")
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert {row["Name"] for row in rows} >= {f"reflector-{s}-1" for s in ("web", "server", "worker", "beat", "redis", "postgres", "caddy")}
    assert all(row["State"] == "running" for row in rows)


def test_unknown_service_is_refused(w: World) -> None:
    r = w.docker(*PROD, "up", "-d", "frontend")
    assert (r.rc, r.err) == (1, "no such service: frontend\n")


def test_network_connect_before_authentik_is_up_fails(w: World) -> None:
    r = w.docker("network", "connect", "reflector_default", "authentik-server-1")
    assert (r.rc, r.err) == (1, "Error response from daemon: No such container: authentik-server-1\n")


def test_network_connect_to_a_missing_network_fails(w: World) -> None:
    w.authentik_up()
    r = w.docker("network", "connect", "reflektor_default", "authentik-server-1")
    assert (r.rc, r.err) == (1, "Error response from daemon: network reflektor_default not found\n")


def test_network_connect_twice_reports_the_existing_endpoint(w: World) -> None:
    w.authentik_up()
    assert w.docker("network", "connect", "reflector_default", "authentik-server-1").rc == 0
    r = w.docker("network", "connect", "reflector_default", "authentik-server-1")
    assert (r.rc, r.err) == (
        1,
        "Error response from daemon: endpoint with name authentik-server-1 already exists in network reflector_default\n",
    )


def test_network_inspect_lists_the_connected_container(w: World) -> None:
    w.authentik_up()
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    r = w.docker("network", "inspect", "reflector_default", "-f", "{{range .Containers}}{{.Name}} {{end}}")
    assert "authentik-server-1" in r.out.split()
    doc = json.loads(w.docker("network", "inspect", "reflector_default").out)
    assert doc[0]["Name"] == "reflector_default"
    assert doc[0]["Attachable"] is True
    assert {c["Name"] for c in doc[0]["Containers"].values()} >= {"authentik-server-1", "reflector-caddy-1"}


def test_literal_command_substitution_in_dotenv_stays_literal(w: World) -> None:
    """A quoted heredoc writes `$(openssl ...)`; compose keeps it as text (facts §8.1)."""
    w.authentik_up()
    env = w.state()["containers"]["authentik-postgresql-1"]["env"]
    assert env["POSTGRES_PASSWORD"] == "$(openssl rand -base64 36 | tr -d '\\n')"


def test_missing_required_variable_fails_with_compose_message(w: World) -> None:
    d = w.authentik_dir(env="AUTHENTIK_SECRET_KEY=x\n")
    r = w.docker("compose", "up", "-d", cwd=d)
    assert r.rc == 1
    assert r.err.endswith("required variable PG_PASS is missing a value: database password required\n")
    assert "authentik-server-1" not in w.state()["containers"]


def test_up_creates_containers_and_prints_plain_progress(w: World) -> None:
    d = w.authentik_dir()
    r = w.docker("compose", "up", "-d", cwd=d)
    assert r.rc == 0
    assert " Network authentik_default  Created\n" in r.err
    assert " Container authentik-server-1  Started\n" in r.err
    c = w.state()["containers"]["authentik-server-1"]
    assert (c["status"], c["networks"]) == ("running", ["authentik_default"])
    health = w.docker("inspect", "-f", "{{.State.Health.Status}}", "authentik-server-1")
    assert health.out == "healthy\n"


def test_unchanged_up_keeps_containers_and_manual_links(w: World) -> None:
    d = w.authentik_up()
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    r = w.docker("compose", "up", "-d", cwd=d)
    assert " Container authentik-server-1  Running\n" in r.err
    assert "reflector_default" in w.state()["containers"]["authentik-server-1"]["networks"]


def test_recreate_after_env_change_drops_the_manual_network_link(w: World) -> None:
    d = w.authentik_up()
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    with open(d / ".env", "a") as fh:
        fh.write("AUTHENTIK_LOG_LEVEL=debug\n")
    r = w.docker("compose", "up", "-d", cwd=d)
    assert " Container authentik-server-1  Recreated\n" in r.err
    assert w.state()["containers"]["authentik-server-1"]["networks"] == ["authentik_default"]


def test_force_recreate_drops_the_manual_network_link(w: World) -> None:
    d = w.authentik_up()
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    w.docker("compose", "up", "-d", "--force-recreate", cwd=d)
    assert w.state()["containers"]["authentik-server-1"]["networks"] == ["authentik_default"]


def test_environment_key_wins_over_env_file_and_last_duplicate_wins(w: World) -> None:
    with open(w.reflector / "www" / ".env", "a") as fh:
        fh.write("KV_URL=redis://elsewhere:6379\nFEATURE_REQUIRE_LOGIN=true\nFEATURE_REQUIRE_LOGIN=false\n")
    assert w.docker(*PROD, "up", "-d", "web").rc == 0
    env = w.state()["containers"]["reflector-web-1"]["env"]
    assert (env["KV_URL"], env["FEATURE_REQUIRE_LOGIN"]) == ("redis://redis:6379", "false")


def test_caddy_reload_with_a_typo_fails_with_caddys_error(w: World) -> None:
    before = w.state()["caddy_routes"]
    w.edit_caddyfile_in_place("app.example.com {\n\treverse_prxy web:3000\n}\n")
    r = w.docker(*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile")
    assert r.rc == 1
    assert "/etc/caddy/Caddyfile:2: unrecognized directive: reverse_prxy" in r.err
    assert w.state()["caddy_routes"] == before


def test_caddy_reload_after_in_place_edit_routes_authentik(w: World) -> None:
    text = (w.reflector / "Caddyfile").read_text()
    w.edit_caddyfile_in_place(text + AUTHENTIK_BLOCK)
    r = w.docker(*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile")
    assert r.rc == 0, r.err
    assert w.state()["caddy_routes"]["authentik.example.com"] == "authentik-server-1:9000"


def test_replaced_caddyfile_inode_is_not_seen_by_the_container(w: World) -> None:
    """`sed -i` writes a new file; the single-file bind mount still shows the old one (§8.4)."""
    path = w.reflector / "Caddyfile"
    old = path.read_text()
    new = w.reflector / "Caddyfile.new"
    new.write_text(old + AUTHENTIK_BLOCK)
    os.replace(new, path)
    r = w.docker(*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile")
    assert r.rc == 0, r.err
    assert "authentik.example.com" not in w.state()["caddy_routes"]
    assert w.docker(*PROD, "exec", "caddy", "cat", "/etc/caddy/Caddyfile").out == old


def test_caddy_sees_no_host_environment(w: World) -> None:
    """The caddy service has no env: `{$FRONTEND_DOMAIN:...}` keeps its default."""
    env_before = w.state()["caddy_routes"]
    r = subprocess.run(
        [sys.executable, "-m", "scripts.world.standins.docker", *PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile"],
        cwd=w.reflector,
        capture_output=True,
        text=True,
        check=False,
        env={"WORLD": str(w.world), "HOME": str(w.home), "PYTHONPATH": str(REPO), "FRONTEND_DOMAIN": "x.example.org"},
    )
    assert r.returncode == 0, r.stderr
    assert w.state()["caddy_routes"] == env_before


def test_exec_into_a_stopped_service_fails(w: World) -> None:
    assert w.docker(*PROD, "stop", "caddy").rc == 0
    r = w.docker(*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile")
    assert (r.rc, r.err) == (1, 'service "caddy" is not running\n')


def test_naming_a_profiled_service_enables_its_profile(w: World) -> None:
    w.docker(*PROD, "stop", "caddy")
    r = w.docker(*PROD, "up", "-d", "caddy")
    assert r.rc == 0, r.err
    assert w.state()["containers"]["reflector-caddy-1"]["status"] == "running"


def test_manage_shell_prints_a_token_and_records_it(w: World) -> None:
    d = w.authentik_up()
    r = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin=TOKEN_SCRIPT)
    assert r.rc == 0, r.err
    key = r.out.strip().removeprefix("TOKEN:")
    assert len(key) == 60
    assert key in w.state()["authentik"]["api_tokens"]


def test_manage_shell_needs_authentik_running(w: World) -> None:
    d = w.authentik_dir()
    r = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin=TOKEN_SCRIPT)
    assert (r.rc, r.err) == (1, 'service "server" is not running\n')


def test_missing_jwt_key_crash_loops_until_the_key_appears(w: World) -> None:
    with open(w.reflector / "server" / ".env", "a") as fh:
        fh.write("AUTH_BACKEND=jwt\nAUTH_JWT_PUBLIC_KEY=authentik_public.pem\n")
    w.docker(*PROD, "up", "-d", "server", "worker", "web")
    assert w.state()["containers"]["reflector-server-1"]["status"] == "restarting"
    assert "FileNotFoundError" in w.docker("logs", "reflector-server-1").out
    (w.reflector / "server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    r = w.docker("inspect", "-f", "{{.State.Status}}", "reflector-server-1")
    assert w.docker("ps", "--format", "{{.Names}} {{.State}}").rc == 0
    assert w.docker("inspect", "-f", "{{.State.Status}}", "reflector-server-1").out == "running\n", r.out


def test_beat_has_no_keys_volume_and_crash_loops_with_a_custom_key(w: World) -> None:
    """facts §8.11: recreating beat with a non-default key file name makes it crash."""
    with open(w.reflector / "server" / ".env", "a") as fh:
        fh.write("AUTH_BACKEND=jwt\nAUTH_JWT_PUBLIC_KEY=authentik_public.pem\n")
    (w.reflector / "server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    w.docker(*PROD, "up", "-d", "--force-recreate", "server", "worker", "web")
    assert w.state()["containers"]["reflector-beat-1"]["status"] == "running"  # not recreated
    w.docker(*PROD, "up", "-d")
    assert w.state()["containers"]["reflector-server-1"]["status"] == "running"
    assert w.state()["containers"]["reflector-beat-1"]["status"] == "restarting"


def test_down_cannot_remove_a_network_with_foreign_endpoints(w: World) -> None:
    w.authentik_up()
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    r = w.docker(*PROD, "--profile", "caddy", "down")
    assert r.rc == 1
    assert "network reflector_default id" in r.err
    assert r.err.endswith("has active endpoints\n")
    assert "reflector-web-1" not in w.state()["containers"]


def test_compose_logs_prefix_lines_with_the_service(w: World) -> None:
    (w.world / "log" / "reflector-server-1.log").write_text("Uvicorn running\n")
    r = w.docker(*PROD, "logs", "server")
    assert r.out == "server-1  | Uvicorn running\n"


def test_yaml_errors_are_reported_with_a_line(w: World) -> None:
    (w.reflector / "docker-compose.prod.yml").write_text("services:\n  web:\n\timage: x\n")
    r = w.docker(*PROD, "ps")
    assert r.rc == 1
    assert r.err.startswith("yaml: line 3:")


def test_every_call_is_recorded(w: World) -> None:
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    calls = [json.loads(line) for line in (w.world / "calls.jsonl").read_text().splitlines()]
    assert calls[-1]["tool"] == "docker"
    assert calls[-1]["argv"] == ["network", "connect", "reflector_default", "authentik-server-1"]
    assert calls[-1]["rc"] == 1
    assert "No such container" in calls[-1]["stderr_tail"]
    assert calls[-1]["cwd"] == str(w.reflector)


def test_resolve_follows_the_guide_through_caddy(w: World) -> None:
    """End to end: authentik up, linked, Caddyfile edited and reloaded -> Proxied."""
    assert isinstance(worldmod.resolve(w.world, "authentik.example.com"), worldmod.Unreachable)
    w.authentik_up()
    w.edit_caddyfile_in_place((w.reflector / "Caddyfile").read_text() + AUTHENTIK_BLOCK)
    w.docker(*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile")
    unlinked = worldmod.resolve(w.world, "authentik.example.com")
    assert unlinked == worldmod.Unreachable(502, "dial tcp: lookup authentik-server-1 on 127.0.0.11:53: no such host")
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    linked = worldmod.resolve(w.world, "authentik.example.com")
    assert isinstance(linked, worldmod.Proxied)
    assert linked.app == "authentik"


def test_restart_keeps_the_old_environment(w: World) -> None:
    """`restart` reuses the container: an edited .env only applies after `up -d` recreates it."""
    with open(w.reflector / "www" / ".env", "a") as fh:
        fh.write("FEATURE_REQUIRE_LOGIN=true\n")
    assert w.docker(*PROD, "restart", "web").rc == 0
    assert w.state()["containers"]["reflector-web-1"]["env"].get("FEATURE_REQUIRE_LOGIN") != "true"
    assert w.docker(*PROD, "up", "-d", "web").rc == 0
    assert w.state()["containers"]["reflector-web-1"]["env"]["FEATURE_REQUIRE_LOGIN"] == "true"
