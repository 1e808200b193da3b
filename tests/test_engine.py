"""The simulated engine answers Docker's own CLIs as a real daemon would, and the images behave as their upstream programs do."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.world import checks
from scripts.world import state as worldmod
from tests.hostworld import AUTHENTIK_BLOCK, PROD, HostWorld, host_world

LITERAL_ENV = """\
PG_PASS=$(openssl rand -base64 36 | tr -d '\\n')
AUTHENTIK_SECRET_KEY=$(openssl rand -base64 60 | tr -d '\\n')
AUTHENTIK_BOOTSTRAP_PASSWORD=first-password
AUTHENTIK_BOOTSTRAP_TOKEN=first-token
"""

ONE_LINER = """\
from authentik.core.models import Token, TokenIntents, User
user = User.objects.get(username='akadmin')
token, _ = Token.objects.update_or_create(identifier='reflector-setup', defaults={'user': user, 'intent': TokenIntents.INTENT_API, 'expiring': False})
print(f'TOKEN:{token.key}')
"""

# Reflector 0.34.0's scripts/setup-authentik-oauth.sh, the program it feeds `python -m manage shell`.
UPSTREAM_PROGRAM = """\
from authentik.core.models import User, Token, TokenIntents

user = User.objects.get(username='akadmin')
token, created = Token.objects.update_or_create(
    identifier='reflector-setup',
    defaults={
        'user': user,
        'intent': TokenIntents.INTENT_API,
        'description': 'Reflector setup token',
        'expiring': False
    }
)
print(f"TOKEN:{token.key}")
"""

RELOAD = (*PROD, "exec", "caddy", "caddy", "reload", "--config", "/etc/caddy/Caddyfile")


@pytest.fixture
def w(tmp_path: Path) -> Iterator[HostWorld]:
    """A fresh booted world per test: the fixture stack up, brought there by the real compose."""
    yield from host_world(tmp_path)


def authentik_up(w: HostWorld, env: str = LITERAL_ENV) -> Path:
    d = w.authentik_dir(env)
    r = w.docker("compose", "up", "-d", cwd=d)
    assert r.rc == 0, r.err
    return d


def ids(w: HostWorld) -> dict[str, str]:
    return {c.name: c.id for c in w.engine().containers.values()}


# ---------------------------------------------------------------- the stack and the daemon's answers


def test_fixture_stack_is_up_through_real_compose(w: HostWorld) -> None:
    """The boot ran the deployer's `up`; compose lists every service running, aged two hours."""
    r = w.docker(*PROD, "ps", "--format", "json")
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert {row["Name"] for row in rows} == {f"reflector-{s}-1" for s in ("web", "server", "worker", "beat", "redis", "postgres", "caddy", "docs")}
    assert {row["State"] for row in rows} == {"running"}
    assert {row["RunningFor"] for row in rows} == {"2 hours ago"}


def test_unmodelled_call_fails_loudly(w: HostWorld) -> None:
    """A valid Docker command whose API call the engine does not serve says so, through the CLI's own error path."""
    r = w.docker("system", "df")
    assert r.rc == 1
    assert "Error response from daemon: GET /system/df is not modelled in this world" in r.err


def test_unmodelled_image_is_refused_at_pull(w: HostWorld) -> None:
    r = w.docker("pull", "nginx")
    assert r.rc == 1
    assert "the image nginx:latest is not modelled in this world" in r.err


def test_unmodelled_exec_fails_with_125(w: HostWorld) -> None:
    r = w.docker("exec", "reflector-server-1", "ls", "/")
    assert (r.rc, r.err) == (125, "'ls /' in reflector-server-1 (monadicalsas/reflector-backend:latest): not modelled in this world\n")


def test_engine_down_gives_the_clis_own_message(w: HostWorld) -> None:
    w.handle.fault("engine-down")
    r = w.docker("ps")
    assert (r.rc, r.err) == (1, f"Cannot connect to the Docker daemon at unix://{w.socket}. Is the docker daemon running?\n")
    w.handle.fault("clear")
    assert w.docker("ps").rc == 0


def test_inspect_format_is_the_clis_template_engine(w: HostWorld) -> None:
    r = w.docker("inspect", "reflector-web-1", "--format", '{{.Config.Image}} {{.State.Health.Status}} {{index .Config.Labels "com.docker.compose.service"}}')
    assert r.out == "monadicalsas/reflector-frontend:latest healthy web\n"


def test_pull_policy_always_pulls_offline(w: HostWorld) -> None:
    """web has `pull_policy: always`; the pull succeeds with the registry's "up to date" answer."""
    r = w.docker(*PROD, "up", "-d", "web")
    assert r.rc == 0, r.err
    assert " web Pulled" in r.err


# ---------------------------------------------------------------- networks


def test_network_connect_before_authentik_is_up_fails(w: HostWorld) -> None:
    r = w.docker("network", "connect", "reflector_default", "authentik-server-1")
    assert (r.rc, r.err) == (1, "Error response from daemon: No such container: authentik-server-1\n")


def test_network_connect_to_a_missing_network_fails(w: HostWorld) -> None:
    authentik_up(w)
    r = w.docker("network", "connect", "reflektor_default", "authentik-server-1")
    assert (r.rc, r.err) == (1, "Error response from daemon: network reflektor_default not found\n")


def test_network_connect_twice_reports_the_existing_endpoint(w: HostWorld) -> None:
    authentik_up(w)
    assert w.docker("network", "connect", "reflector_default", "authentik-server-1").rc == 0
    r = w.docker("network", "connect", "reflector_default", "authentik-server-1")
    assert (r.rc, r.err) == (1, "Error response from daemon: endpoint with name authentik-server-1 already exists in network reflector_default\n")


def test_network_inspect_lists_the_connected_container(w: HostWorld) -> None:
    authentik_up(w)
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    names = w.docker("network", "inspect", "reflector_default", "-f", "{{range .Containers}}{{.Name}} {{end}}").out.split()
    assert "authentik-server-1" in names
    doc = json.loads(w.docker("network", "inspect", "reflector_default").out)
    assert (doc[0]["Name"], doc[0]["Attachable"]) == ("reflector_default", True)


def test_down_leaves_a_network_with_foreign_endpoints_in_use(w: HostWorld) -> None:
    """Compose 2.40 does not fail: it warns that the network is still in use and exits 0 (pkg/compose/down.go)."""
    authentik_up(w)
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    r = w.docker(*PROD, "--profile", "caddy", "down")
    assert r.rc == 0, r.err
    assert " Network reflector_default  Resource is still in use" in r.err
    assert w.engine().container_named("reflector-web-1") is None
    assert w.engine().network_named("reflector_default") is not None
    removed = w.docker("network", "rm", "reflector_default")
    assert removed.rc == 1
    assert 'network reflector_default has active endpoints (name:"authentik-server-1"' in removed.err


# ---------------------------------------------------------------- compose's decisions, now its own


def test_unchanged_up_keeps_containers_and_manual_links(w: HostWorld) -> None:
    d = authentik_up(w)
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    r = w.docker("compose", "up", "-d", cwd=d)
    assert " Container authentik-server-1  Running" in r.err
    assert "reflector_default" in w.container("authentik-server-1").endpoints


def test_recreate_after_env_change_drops_the_manual_network_link(w: HostWorld) -> None:
    d = authentik_up(w)
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    with open(d / ".env", "a") as fh:
        fh.write("AUTHENTIK_LOG_LEVEL=debug\n")
    r = w.docker("compose", "up", "-d", cwd=d)
    assert " Container authentik-server-1  Recreated" in r.err
    assert sorted(w.container("authentik-server-1").endpoints) == ["authentik_default"]


def test_force_recreate_of_named_services_leaves_their_dependencies(w: HostWorld) -> None:
    """Audit finding: `up --force-recreate server` recreates server only; postgres and redis (its depends_on) keep their containers."""
    before = ids(w)
    r = w.docker(*PROD, "up", "-d", "--force-recreate", "server")
    assert r.rc == 0, r.err
    after = ids(w)
    assert after["reflector-server-1"] != before["reflector-server-1"]
    assert (after["reflector-postgres-1"], after["reflector-redis-1"]) == (before["reflector-postgres-1"], before["reflector-redis-1"])
    assert "Recreate" not in "".join(line for line in r.err.splitlines() if "postgres" in line or "redis" in line)


def test_wait_without_a_healthcheck_waits_for_running_only(w: HostWorld) -> None:
    """Audit finding: compose's --wait takes a service without a healthcheck as ready once its container runs
    (pkg/compose/convergence.go isServiceHealthy, fallbackRunning), and fails when it has exited."""
    r = w.docker(*PROD, "up", "-d", "--wait", "--force-recreate", "server")
    assert r.rc == 0, r.err
    assert " Container reflector-server-1  Healthy" in r.err
    assert w.container("reflector-server-1").run.health is None  # the backend image has no HEALTHCHECK
    once = w.home / "once"
    once.mkdir()
    (once / "compose.yml").write_text(
        "services:\n  app:\n    image: monadicalsas/reflector-backend:latest\n    environment:\n      ENTRYPOINT: server\n      PUBLIC_MODE: maybe\n"
    )
    failed = w.docker("compose", "up", "-d", "--wait", cwd=once)
    assert failed.rc == 1
    assert "container once-app-1 exited (1)" in failed.err


def test_environment_key_wins_over_env_file_and_last_duplicate_wins(w: HostWorld) -> None:
    with open(w.reflector / "www" / ".env", "a") as fh:
        fh.write("KV_URL=redis://elsewhere:6379\nFEATURE_REQUIRE_LOGIN=true\nFEATURE_REQUIRE_LOGIN=false\n")
    assert w.docker(*PROD, "up", "-d", "web").rc == 0
    env = w.container("reflector-web-1").env
    assert (env["KV_URL"], env["FEATURE_REQUIRE_LOGIN"]) == ("redis://redis:6379", "false")


def test_restart_keeps_the_old_environment(w: HostWorld) -> None:
    """`restart` reuses the container: an edited .env only applies after `up -d` recreates it."""
    with open(w.reflector / "www" / ".env", "a") as fh:
        fh.write("FEATURE_REQUIRE_LOGIN=true\n")
    assert w.docker(*PROD, "restart", "web").rc == 0
    assert w.container("reflector-web-1").env.get("FEATURE_REQUIRE_LOGIN") != "true"
    assert w.docker(*PROD, "up", "-d", "web").rc == 0
    assert w.container("reflector-web-1").env["FEATURE_REQUIRE_LOGIN"] == "true"


def test_literal_command_substitution_in_dotenv_stays_literal(w: HostWorld) -> None:
    """A quoted heredoc writes `$(openssl ...)`; compose keeps it as text (facts §8.1)."""
    authentik_up(w)
    assert w.container("authentik-postgresql-1").env["POSTGRES_PASSWORD"] == "$(openssl rand -base64 36 | tr -d '\\n')"


# ---------------------------------------------------------------- Caddy and its single-file mount


def test_caddy_reload_with_a_typo_fails_with_caddys_error(w: HostWorld) -> None:
    before = dict(w.container(worldmod.CADDY_CONTAINER).routes)
    w.edit_in_place(w.reflector / "Caddyfile", "app.example.com {\n\treverse_prxy web:3000\n}\n")
    r = w.docker(*RELOAD)
    assert r.rc == 1
    assert "/etc/caddy/Caddyfile:2: unrecognized directive: reverse_prxy" in r.err
    assert w.container(worldmod.CADDY_CONTAINER).routes == before


def test_caddy_reload_after_in_place_edit_routes_authentik(w: HostWorld) -> None:
    caddyfile = w.reflector / "Caddyfile"
    w.edit_in_place(caddyfile, caddyfile.read_text() + AUTHENTIK_BLOCK)
    r = w.docker(*RELOAD, "--adapter", "caddyfile")
    assert r.rc == 0, r.err
    assert w.container(worldmod.CADDY_CONTAINER).routes["authentik.example.com"] == "authentik-server-1:9000"


def test_replaced_caddyfile_is_seen_only_after_a_restart(w: HostWorld) -> None:
    """Audit finding: the single-file mount holds the inode of its start; `sed -i` makes a new one, which a restart binds."""
    caddyfile = w.reflector / "Caddyfile"
    old = caddyfile.read_text()
    w.replace_file(caddyfile, old + AUTHENTIK_BLOCK)
    assert w.docker(*RELOAD).rc == 0
    assert "authentik.example.com" not in w.container(worldmod.CADDY_CONTAINER).routes
    assert w.docker(*PROD, "exec", "caddy", "cat", "/etc/caddy/Caddyfile").out == old
    assert w.docker(*PROD, "restart", "caddy").rc == 0
    assert w.docker(*PROD, "exec", "caddy", "cat", "/etc/caddy/Caddyfile").out == old + AUTHENTIK_BLOCK
    assert w.container(worldmod.CADDY_CONTAINER).routes["authentik.example.com"] == "authentik-server-1:9000"


def test_caddy_sees_no_host_environment(w: HostWorld) -> None:
    """The caddy service has no env: `{$FRONTEND_DOMAIN:...}` keeps its default whatever the deployer exports."""
    before = dict(w.container(worldmod.CADDY_CONTAINER).routes)
    r = w.docker(*RELOAD, env={"FRONTEND_DOMAIN": "x.example.org"})
    assert r.rc == 0, r.err
    assert w.container(worldmod.CADDY_CONTAINER).routes == before


def test_exec_into_a_stopped_service_fails(w: HostWorld) -> None:
    assert w.docker(*PROD, "stop", "caddy").rc == 0
    r = w.docker(*RELOAD)
    assert (r.rc, r.err) == (1, 'service "caddy" is not running\n')


def test_resolve_follows_the_guide_through_caddy(w: HostWorld) -> None:
    """End to end: authentik up, linked, Caddyfile edited and reloaded -> Proxied."""
    assert isinstance(worldmod.resolve(w.world, "authentik.example.com"), worldmod.Unreachable)
    authentik_up(w)
    w.edit_in_place(w.reflector / "Caddyfile", (w.reflector / "Caddyfile").read_text() + AUTHENTIK_BLOCK)
    w.docker(*RELOAD)
    assert worldmod.resolve(w.world, "authentik.example.com") == worldmod.Unreachable(502, "dial tcp: lookup authentik-server-1 on 127.0.0.11:53: no such host")
    w.docker("network", "connect", "reflector_default", "authentik-server-1")
    linked = worldmod.resolve(w.world, "authentik.example.com")
    assert isinstance(linked, worldmod.Proxied)
    assert linked.app == "authentik"


# ---------------------------------------------------------------- Authentik


def test_manage_shell_runs_the_fixtures_one_liner(w: HostWorld) -> None:
    d = authentik_up(w)
    r = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin=ONE_LINER)
    assert r.rc == 0, r.err
    key = r.out.strip().removeprefix("TOKEN:")
    assert len(key) == 60
    assert key in [t["key"] for t in w.apps()["authentik"]["api_tokens"]]


def test_manage_shell_runs_reflectors_multi_line_program(w: HostWorld) -> None:
    """Audit finding: Reflector 0.34.0's own program (the same call over several lines) is accepted, and an update keeps the key."""
    d = authentik_up(w)
    first = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin=UPSTREAM_PROGRAM)
    assert first.rc == 0, first.err
    again = w.docker("compose", "exec", "-T", "server", "ak", "shell", cwd=d, stdin=ONE_LINER)
    assert (again.rc, again.out) == (0, first.out)
    tokens = w.apps()["authentik"]["api_tokens"]
    assert [(t["identifier"], t["description"]) for t in tokens] == [("reflector-setup", "")]


def test_manage_shell_refuses_a_program_it_does_not_model(w: HostWorld) -> None:
    d = authentik_up(w)
    r = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin="import os\nos.system('id')\n")
    assert r.rc == 125
    assert "Django shell: line 1: import os: not modelled in this world" in r.err


def test_manage_shell_needs_authentik_running(w: HostWorld) -> None:
    d = w.authentik_dir(LITERAL_ENV)
    r = w.docker("compose", "exec", "-T", "server", "python", "-m", "manage", "shell", cwd=d, stdin=ONE_LINER)
    assert (r.rc, r.err) == (1, 'service "server" is not running\n')


def test_bootstrap_is_applied_once_and_lost_with_the_volume(w: HostWorld) -> None:
    """Audit finding: the bootstrap settings are read on the first start only; `down -v` deletes the database, and the next start bootstraps from the .env of then."""
    d = authentik_up(w)
    assert w.apps()["authentik"]["bootstrap"]["AUTHENTIK_BOOTSTRAP_PASSWORD"] == "first-password"
    (d / ".env").write_text(LITERAL_ENV.replace("first-password", "second-password"))
    assert w.docker("compose", "up", "-d", "--force-recreate", cwd=d).rc == 0
    assert w.apps()["authentik"]["bootstrap"]["AUTHENTIK_BOOTSTRAP_PASSWORD"] == "first-password"
    w.docker("compose", "exec", "-T", "server", "ak", "shell", cwd=d, stdin=ONE_LINER)
    assert w.apps()["authentik"]["api_tokens"]
    assert w.docker("compose", "down", "-v", cwd=d).rc == 0
    assert w.engine().volumes.get("authentik_database") is None
    assert w.docker("compose", "up", "-d", cwd=d).rc == 0
    ak = w.apps()["authentik"]
    assert (ak["bootstrap"]["AUTHENTIK_BOOTSTRAP_PASSWORD"], ak["api_tokens"]) == ("second-password", [])


# ---------------------------------------------------------------- Reflector's backend


def backend_env(w: HostWorld, text: str) -> None:
    with open(w.reflector / "server" / ".env", "a") as fh:
        fh.write(text)


def test_missing_jwt_key_crash_loops_until_the_key_appears(w: HostWorld) -> None:
    backend_env(w, "AUTH_BACKEND=jwt\nAUTH_JWT_PUBLIC_KEY=authentik_public.pem\n")
    w.docker(*PROD, "up", "-d", "server", "worker", "web")
    assert w.container("reflector-server-1").run.status == "restarting"
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'reflector/auth/jwt/keys/authentik_public.pem'" in w.docker("logs", "reflector-server-1").err
    (w.reflector / "server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    assert w.docker("inspect", "-f", "{{.State.Status}}", "reflector-server-1").out == "running\n"


def test_beat_has_no_keys_volume_and_crash_loops_with_a_custom_key(w: HostWorld) -> None:
    """facts §8.11: recreating beat with a key file name the image lacks makes it crash."""
    backend_env(w, "AUTH_BACKEND=jwt\nAUTH_JWT_PUBLIC_KEY=authentik_public.pem\n")
    (w.reflector / "server/reflector/auth/jwt/keys/authentik_public.pem").write_text("pem")
    w.docker(*PROD, "up", "-d", "--force-recreate", "server", "worker", "web")
    assert w.container("reflector-beat-1").run.status == "running"  # not recreated
    w.docker(*PROD, "up", "-d")
    assert w.container("reflector-server-1").run.status == "running"
    assert w.container("reflector-beat-1").run.status == "restarting"


def test_invalid_boolean_setting_fails_the_start_with_pydantics_error(w: HostWorld) -> None:
    """Audit finding: PUBLIC_MODE=maybe is not a bool to pydantic-settings; the server dies at import and its log says why."""
    backend_env(w, "PUBLIC_MODE=maybe\n")
    w.docker(*PROD, "up", "-d", "server")
    assert w.container("reflector-server-1").run.status == "restarting"
    log = w.docker(*PROD, "logs", "server").out
    assert "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings" in log
    assert "server-1  | PUBLIC_MODE\n" in log
    assert "Input should be a valid boolean, unable to interpret input [type=bool_parsing, input_value='maybe', input_type=str]" in log


def test_public_mode_makes_beat_log_the_cleanup_retention(w: HostWorld) -> None:
    """Audit finding: with PUBLIC_MODE=true, worker/app.py schedules cleanup_old_public_data and logs its retention (default 7 days)."""
    backend_env(w, "PUBLIC_MODE=true\n")
    w.docker(*PROD, "up", "-d", "beat")
    assert "Public mode cleanup enabled    retention_days=7" in w.docker(*PROD, "logs", "beat").out
    backend_env(w, "PUBLIC_DATA_RETENTION_DAYS=30\n")
    w.docker(*PROD, "up", "-d", "beat")
    assert "retention_days=30" in w.docker(*PROD, "logs", "beat").out


def test_compose_logs_prefix_lines_with_the_service(w: HostWorld) -> None:
    r = w.docker(*PROD, "logs", "--tail", "1", "server")
    assert r.out == "server-1  | INFO:     Uvicorn running on http://0.0.0.0:1250 (Press CTRL+C to quit)\n"


def test_naming_a_profiled_service_enables_its_profile(w: HostWorld) -> None:
    w.docker(*PROD, "stop", "caddy")
    r = w.docker(*PROD, "up", "-d", "caddy")
    assert r.rc == 0, r.err
    assert w.container(worldmod.CADDY_CONTAINER).run.status == "running"


def test_state_holds_no_stale_socket_after_stop(tmp_path: Path) -> None:
    """The engine removes its socket when it stops, so a client fails at once instead of hanging."""
    gen = host_world(tmp_path, booted=False)
    w = next(gen)
    assert w.socket.exists()
    with pytest.raises(StopIteration):
        next(gen)
    assert not os.path.lexists(w.socket)


def test_retention_check_tells_public_mode_without_a_chosen_retention(w: HostWorld) -> None:
    """`check public-data-retention days=N` fails before public mode is on and when it is on with the 7-day default, and passes once N is set."""
    assert checks.run_check("public-data-retention", {"days": "30"}, w.home, w.world) == (
        False,
        "public mode is off in reflector-beat-1: it schedules no clean-up of public data, so the 30 days are not in force",
    )
    backend_env(w, "PUBLIC_MODE=true\n")
    w.docker(*PROD, "up", "-d", "beat")
    ok, detail = checks.run_check("public-data-retention", {"days": "30"}, w.home, w.world)
    assert not ok
    assert "older than 7 days, the default, which the page never chose; set PUBLIC_DATA_RETENTION_DAYS=30" in detail
    backend_env(w, "PUBLIC_DATA_RETENTION_DAYS=30\n")
    w.docker(*PROD, "up", "-d", "beat")
    assert checks.run_check("public-data-retention", {"days": "30"}, w.home, w.world)[0]
    assert not checks.run_check("public-data-retention", {"days": "14"}, w.home, w.world)[0]
