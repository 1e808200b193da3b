"""The deployer's starting server: the fixture checkout, its configs, and the setup script."""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dotenv import dotenv_values

from scripts import sandbox
from scripts.world import boot, fixtures

VENV_BIN = Path(sys.executable).parent
CADDY = VENV_BIN / "caddy"
SHELLCHECK = VENV_BIN / "shellcheck"
SCRIPT = "scripts/setup-authentik-oauth.sh"

EXPECTED_FILES = {
    "docker-compose.prod.yml",
    "Caddyfile",
    "Caddyfile.example",
    "docs/Dockerfile",
    "server/.env",
    "server/.env.example",
    "server/reflector/auth/jwt/keys/authentik.monadical.com_public.pem",
    "www/.env",
    "www/.env.example",
    SCRIPT,
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A fresh ~/reflector in a temporary HOME."""
    return fixtures.copy_checkout(tmp_path / "home")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((fixtures.REFLECTOR_CHECKOUT / "docker-compose.prod.yml").read_text())
    return data


def caddy_adapt(path: Path) -> dict[str, str]:
    """Host -> upstream dial address, from the real `caddy adapt`."""
    done = subprocess.run(
        [CADDY, "adapt", "--config", path, "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    routes = json.loads(done.stdout)["apps"]["http"]["servers"]["srv0"]["routes"]
    return {route["match"][0]["host"][0]: route["handle"][0]["routes"][0]["handle"][0]["upstreams"][0]["dial"] for route in routes}


# ---------------------------------------------------------------- the checkout as installed


def test_checkout_holds_exactly_the_expected_files(checkout: Path) -> None:
    """The guide's commands rely on these paths; stray files would hide a wrong assumption."""
    found = {str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file()}
    assert found == EXPECTED_FILES


def test_only_the_setup_script_is_executable(checkout: Path) -> None:
    """`./scripts/setup-authentik-oauth.sh` must run as the guide shows; data files must not."""
    for path in checkout.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        rel = str(path.relative_to(checkout))
        if path.is_dir():
            assert mode == 0o755, rel
        else:
            assert mode == (0o755 if rel == SCRIPT else 0o644), rel


def test_boot_without_a_docker_cli_says_what_to_install(tmp_path: Path) -> None:
    """The world runs the host's docker CLI; a machine without one gets the package to install, not a traceback."""
    with pytest.raises(boot.BootError, match=r"apt-get install docker\.io"):
        boot.boot(tmp_path / "home", tmp_path / "world", {"PATH": str(tmp_path / "empty")})


def test_boot_reports_composes_own_error(tmp_path: Path) -> None:
    """If the deployer's `up` fails (here: no engine listens), the world does not start, and says why."""
    (tmp_path / "home").mkdir()
    env = {"PATH": sandbox.HOST_PATH, "HOME": str(tmp_path / "home"), "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "DOCKER_CONFIG": str(tmp_path / "cfg")}
    (tmp_path / "cfg" / "cli-plugins").mkdir(parents=True)
    (tmp_path / "cfg" / "cli-plugins" / "docker-compose").symlink_to(sandbox.compose_plugin())
    with pytest.raises(boot.BootError, match="Cannot connect to the Docker daemon"):
        boot.boot(tmp_path / "home", tmp_path / "world", env)


# ---------------------------------------------------------------- docker-compose.prod.yml


def test_prod_compose_has_the_real_services_and_images() -> None:
    services = compose()["services"]
    images = {name: svc.get("image") for name, svc in services.items()}
    assert images == {
        "web": "monadicalsas/reflector-frontend:latest",
        "server": "monadicalsas/reflector-backend:latest",
        "worker": "monadicalsas/reflector-backend:latest",
        "beat": "monadicalsas/reflector-backend:latest",
        "redis": "redis:7.2-alpine",
        "postgres": "postgres:17-alpine",
        "caddy": "caddy:2-alpine",
        "docs": None,
    }
    assert services["docs"]["build"] == "./docs"
    assert all(svc["restart"] == "unless-stopped" for svc in services.values())


def test_prod_compose_wires_env_files_and_entrypoints() -> None:
    services = compose()["services"]
    assert services["web"]["env_file"] == ["./www/.env"]
    assert services["web"]["environment"] == ["KV_URL=redis://redis:6379"]
    assert services["web"]["pull_policy"] == "always"
    for name in ("server", "worker", "beat"):
        assert services[name]["env_file"] == ["./server/.env"]
        assert services[name]["environment"] == {"ENTRYPOINT": name}
    assert services["postgres"]["environment"] == {
        "POSTGRES_USER": "reflector",
        "POSTGRES_PASSWORD": "reflector",
        "POSTGRES_DB": "reflector",
    }


def test_prod_compose_mounts_the_keys_folder_in_server_and_worker_only() -> None:
    """Facts §6 and §8.11: the guide's volume listing, and beat without the keys mount."""
    services = compose()["services"]
    keys = ["server_data:/app/data", "./server/reflector/auth/jwt/keys:/app/reflector/auth/jwt/keys:ro"]
    assert services["server"]["volumes"] == keys
    assert services["worker"]["volumes"] == keys
    assert "volumes" not in services["beat"]


def test_prod_compose_puts_caddy_behind_its_profile_with_a_single_file_mount() -> None:
    data = compose()
    caddy = data["services"]["caddy"]
    assert caddy["profiles"] == ["caddy"]
    assert [s for s, svc in data["services"].items() if "profiles" in svc] == ["caddy"]
    assert caddy["volumes"] == [
        "./Caddyfile:/etc/caddy/Caddyfile:ro",
        "caddy_data:/data",
        "caddy_config:/config",
    ]
    assert caddy["ports"] == ["80:80", "443:443"]
    assert caddy["depends_on"] == ["web", "server"]
    assert "environment" not in caddy
    assert "env_file" not in caddy
    header = (fixtures.REFLECTOR_CHECKOUT / "docker-compose.prod.yml").read_text().split("\n\n")[0]
    assert "--profile caddy" in header


def test_prod_compose_network_is_attachable_and_volumes_are_named() -> None:
    data = compose()
    assert data["networks"] == {"default": {"attachable": True}}
    assert "name" not in data
    assert set(data["volumes"]) == {
        "redis_data",
        "postgres_data",
        "server_data",
        "caddy_data",
        "caddy_config",
    }


# ---------------------------------------------------------------- Caddyfile


@pytest.mark.parametrize("name", ["Caddyfile", "Caddyfile.example"])
def test_caddyfile_adapts_with_real_caddy_to_app_and_api_only(name: str) -> None:
    routes = caddy_adapt(fixtures.REFLECTOR_CHECKOUT / name)
    assert routes == {"app.example.com": "web:3000", "api.example.com": "server:1250"}


def test_uncommenting_the_authentik_block_adds_its_route(tmp_path: Path) -> None:
    """The guide's edit: drop the `# ` in front of the three lines; real caddy must accept it."""
    text = (fixtures.REFLECTOR_CHECKOUT / "Caddyfile").read_text()
    block = "# {$AUTHENTIK_DOMAIN:authentik.example.com} {\n# \treverse_proxy authentik-server-1:9000\n# }\n"
    assert text.endswith(block)
    edited = tmp_path / "Caddyfile"
    edited.write_text(text.replace(block, block.replace("# ", "")))
    routes = caddy_adapt(edited)
    assert routes["authentik.example.com"] == "authentik-server-1:9000"


def test_caddyfile_example_is_tab_indented_with_the_documented_header() -> None:
    text = (fixtures.REFLECTOR_CHECKOUT / "Caddyfile.example").read_text()
    assert "\treverse_proxy web:3000\n" in text
    assert "\treverse_proxy server:1250\n" in text
    assert "    " not in text
    assert "# Uncomment if using Authentik for authentication (see auth-setup.md)\n" in text
    header = text.split("\n\n")[0]
    for needle in ("--profile caddy", "FRONTEND_DOMAIN", "API_DOMAIN", "AUTHENTIK_DOMAIN"):
        assert needle in header


def test_deployer_caddyfile_is_the_example_unchanged() -> None:
    example = (fixtures.REFLECTOR_CHECKOUT / "Caddyfile.example").read_bytes()
    assert (fixtures.REFLECTOR_CHECKOUT / "Caddyfile").read_bytes() == example


# ---------------------------------------------------------------- env files and key


def env(rel: str) -> dict[str, str | None]:
    return dict(dotenv_values(fixtures.REFLECTOR_CHECKOUT / rel))


def test_server_env_example_ships_jwt_with_an_empty_audience() -> None:
    values = env("server/.env.example")
    assert values["AUTH_BACKEND"] == "jwt"
    assert values["AUTH_JWT_AUDIENCE"] == ""
    assert "DATABASE_URL" in values
    text = (fixtures.REFLECTOR_CHECKOUT / "server/.env.example").read_text()
    assert "\n#CORS_ORIGIN=" in text
    assert "\n#CORS_ALLOW_CREDENTIALS=true\n" in text


def test_deployer_server_env_starts_with_auth_off() -> None:
    values = env("server/.env")
    assert values["AUTH_BACKEND"] == "none"
    assert "AUTH_JWT_PUBLIC_KEY" not in values
    assert "CORS_ALLOW_CREDENTIALS" not in values


def test_www_env_example_lists_the_frontend_settings() -> None:
    values = env("www/.env.example")
    assert values["AUTHENTIK_ISSUER"] == "https://authentik.example.com/application/o/reflector"
    assert values["AUTHENTIK_REFRESH_TOKEN_URL"] == "https://authentik.example.com/application/o/token/"
    for key in ("SITE_URL", "NEXTAUTH_URL", "NEXTAUTH_SECRET", "AUTHENTIK_CLIENT_ID"):
        assert key in values
    for key in ("AUTHENTIK_CLIENT_SECRET", "API_URL", "SERVER_API_URL", "WEBSOCKET_URL"):
        assert key in values
    assert "AUTH_CALLBACK_URL" in values
    assert "\n#FEATURE_REQUIRE_LOGIN=true\n" in (fixtures.REFLECTOR_CHECKOUT / "www/.env.example").read_text()


def test_deployer_www_env_starts_without_login_or_nextauth_secret() -> None:
    values = env("www/.env")
    assert values["FEATURE_REQUIRE_LOGIN"] == "false"
    assert values["NEXTAUTH_URL"] == "https://app.example.com"
    assert "NEXTAUTH_SECRET" not in values
    assert not any(k.startswith("AUTHENTIK_") for k in values)
    for key in ("SITE_URL", "API_URL", "SERVER_API_URL", "WEBSOCKET_URL"):
        assert values[key]


def test_default_backend_key_is_a_loadable_rsa_public_key() -> None:
    pem = (fixtures.REFLECTOR_CHECKOUT / "server/reflector/auth/jwt/keys/authentik.monadical.com_public.pem").read_bytes()
    assert isinstance(serialization.load_pem_public_key(pem), rsa.RSAPublicKey)


# ---------------------------------------------------------------- Authentik's compose file


def test_authentik_compose_has_postgresql_server_worker_and_no_redis() -> None:
    text = fixtures.AUTHENTIK_COMPOSE.read_text()
    services = yaml.safe_load(text)["services"]
    assert set(services) == {"postgresql", "server", "worker"}
    assert all(svc["env_file"] == [".env"] for svc in services.values())
    assert "healthcheck" in services["postgresql"]
    assert services["server"]["ports"] == [
        "${COMPOSE_PORT_HTTP:-9000}:9000",
        "${COMPOSE_PORT_HTTPS:-9443}:9443",
    ]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["worker"]["volumes"]
    image = "${AUTHENTIK_IMAGE:-ghcr.io/goauthentik/server}:${AUTHENTIK_TAG:-2026.2.1}"
    assert services["server"]["image"] == services["worker"]["image"] == image


def test_authentik_compose_requires_both_secrets() -> None:
    """`:?` makes compose refuse to start without them, which the guide's .env must provide."""
    services = yaml.safe_load(fixtures.AUTHENTIK_COMPOSE.read_text())["services"]
    required_pg = "${PG_PASS:?database password required}"
    assert services["postgresql"]["environment"]["POSTGRES_PASSWORD"] == required_pg
    required_key = "${AUTHENTIK_SECRET_KEY:?secret key required}"
    for name in ("server", "worker"):
        assert services[name]["environment"]["AUTHENTIK_SECRET_KEY"] == required_key


# ---------------------------------------------------------------- the setup script


def test_setup_script_passes_shellcheck_without_exclusions() -> None:
    done = subprocess.run([SHELLCHECK, fixtures.REFLECTOR_CHECKOUT / SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["https://authentik.example.com", "pw"], ["https://authentik.example.com", "", "x"], ["/", "pw", "x"]],
)
def test_setup_script_prints_usage_when_an_argument_is_empty(checkout: Path, args: list[str]) -> None:
    done = run_script(checkout, args, home=checkout.parent)
    assert done.returncode == 1
    assert done.stdout.startswith(f"Usage: ./{SCRIPT} <authentik-url> <admin-password> <frontend-url>\n")


def test_setup_script_needs_the_authentik_directory(checkout: Path) -> None:
    done = run_script(checkout, ARGS, home=checkout.parent)
    assert done.returncode == 1
    assert "Error: ~/authentik directory not found" in done.stdout
    assert "No such file or directory" in done.stderr  # bash's own cd error comes first


ARGS = ["https://authentik.example.com/", "YourSecurePassword123", "https://app.example.com/"]
AK = "https://authentik.example.com"
MAPPING = "authentik default OAuth Mapping: OpenID '{}'"


def run_script(checkout: Path, args: list[str], home: Path, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [f"./{SCRIPT}", *args],
        cwd=checkout,
        env={"HOME": str(home), "PATH": path, "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def signing_cert() -> x509.Certificate:
    """A self-signed certificate like Authentik's default signing key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "authentik Self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


FAKE_CURL = """\
import json, os, sys
args = sys.argv[1:]
method, data, url = "GET", None, None
i = 0
while i < len(args):
    a = args[i]
    if a == "-X": method = args[i + 1]; i += 1
    elif a == "-d": data = args[i + 1]; i += 1
    elif a == "-H": i += 1
    elif a == "-s": pass
    else: url = a
    i += 1
if data is not None and method == "GET": method = "POST"
path = url.split("://", 1)[1].split("/", 1)[1]
key = f"{method} /{path}"
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"call": key, "data": json.loads(data) if data else None}) + "\\n")
routes = json.load(open(os.environ["FAKE_ROUTES"]))
sys.stdout.write(routes.get(key, "<html><body>Not Found</body></html>"))
"""

FAKE_SUDO = """\
#!/bin/bash
echo "$PWD|$*" >> "$FAKE_LOG.sudo"
input=$(cat)
case "$input" in
  *"update_or_create(identifier='reflector-setup'"*) echo "27 objects imported automatically"; echo "TOKEN:tok-123";;
esac
"""

FAKE_DOCKER = """\
#!/bin/bash
echo "$PWD|$*" >> "$FAKE_LOG.docker"
"""


@pytest.fixture
def world(checkout: Path, signing_cert: x509.Certificate) -> Callable[..., Any]:
    """Run the script with fake curl/sudo/docker answering as Authentik would; returns a runner."""
    home = checkout.parent
    (home / "authentik").mkdir()
    bin_dir = home.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(f"#!{sys.executable}\n{FAKE_CURL}")
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = home.parent / "calls.jsonl"
    x5c = base64.b64encode(signing_cert.public_bytes(serialization.Encoding.DER)).decode()
    routes = {
        "GET /api/v3/flows/instances/?slug=default-provider-authorization-implicit-consent": {
            "results": [{"pk": "flow-authz", "slug": "default-provider-authorization-implicit-consent"}]
        },
        "GET /api/v3/flows/instances/?slug=default-provider-invalidation-flow": {"results": [{"pk": "flow-inval"}]},
        "GET /api/v3/propertymappings/all/": {"results": [{"pk": f"map-{s}", "name": MAPPING.format(s)} for s in ("profile", "offline_access", "email", "openid")]},
        "GET /api/v3/crypto/certificatekeypairs/": {"results": [{"pk": "kp-1"}]},
        "POST /api/v3/providers/oauth2/": {"pk": 4, "client_id": "reflector"},
        "POST /api/v3/core/applications/": {"slug": "reflector", "provider": 4},
        "GET /application/o/reflector/jwks/": {"keys": [{"kty": "RSA", "x5c": [x5c]}]},
    }

    def run(**overrides: Any) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        merged = routes | overrides
        (home.parent / "routes.json").write_text(json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in merged.items()}))
        done = subprocess.run(
            [f"./{SCRIPT}", *ARGS],
            cwd=checkout,
            env={
                "HOME": str(home),
                "PATH": f"{bin_dir}:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "FAKE_LOG": str(log),
                "FAKE_ROUTES": str(home.parent / "routes.json"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return done, calls

    return run


def test_setup_script_configures_authentik_and_reflector(world: Callable[..., Any], checkout: Path, signing_cert: x509.Certificate) -> None:
    """The happy path of facts §5, call by call, file by file."""
    before_server = (checkout / "server/.env").read_text()
    before_www = (checkout / "www/.env").read_text()
    done, calls = world()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c["call"] for c in calls] == [
        "GET /api/v3/flows/instances/?slug=default-provider-authorization-implicit-consent",
        "GET /api/v3/flows/instances/?slug=default-provider-invalidation-flow",
        "GET /api/v3/propertymappings/all/",
        "GET /api/v3/crypto/certificatekeypairs/",
        "POST /api/v3/providers/oauth2/",
        "POST /api/v3/core/applications/",
        "GET /application/o/reflector/jwks/",
    ]
    provider = calls[4]["data"]
    secret = provider.pop("client_secret")
    assert len(secret) == 64
    assert int(secret, 16) >= 0
    assert provider == {
        "name": "Reflector",
        "authorization_flow": "flow-authz",
        "invalidation_flow": "flow-inval",
        "client_type": "confidential",
        "client_id": "reflector",
        "redirect_uris": [{"matching_mode": "strict", "url": "https://app.example.com/api/auth/callback/authentik"}],
        "property_mappings": ["map-email", "map-openid", "map-profile"],
        "signing_key": "kp-1",
        "access_token_validity": "hours=1",
        "refresh_token_validity": "days=30",
    }
    assert calls[5]["data"] == {"name": "Reflector", "slug": "reflector", "provider": 4}

    pem = (checkout / "server/reflector/auth/jwt/keys/authentik_public.pem").read_bytes()
    expected = signing_cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pem == expected

    assert (checkout / "server/.env").read_text() == before_server + textwrap.dedent("""
        # --- Authentik OAuth (added by setup script) ---
        AUTH_BACKEND=jwt
        AUTH_JWT_AUDIENCE=reflector
        AUTH_JWT_PUBLIC_KEY=authentik_public.pem
        """)
    assert (checkout / "www/.env").read_text() == before_www + textwrap.dedent(f"""
        # --- Authentik OAuth (added by setup script) ---
        FEATURE_REQUIRE_LOGIN=true
        AUTHENTIK_ISSUER={AK}/application/o/reflector
        AUTHENTIK_REFRESH_TOKEN_URL={AK}/application/o/token/
        AUTHENTIK_CLIENT_ID=reflector
        AUTHENTIK_CLIENT_SECRET={secret}
        """)

    home = checkout.parent
    log = home.parent / "calls.jsonl"
    sudo_calls = Path(f"{log}.sudo").read_text().splitlines()
    assert sudo_calls == [f"{home}/authentik|docker compose exec -T server python -m manage shell"]
    docker_calls = Path(f"{log}.docker").read_text().splitlines()
    assert docker_calls == [f"{checkout}|compose -f docker-compose.prod.yml up -d server worker web"]
    assert "Setup complete!" in done.stdout
    assert f"AUTHENTIK_CLIENT_SECRET={secret}\n" in done.stdout


def test_setup_script_updates_an_existing_provider(world: Callable[..., Any], checkout: Path) -> None:
    """A second run: POST says "already exists", so it looks the provider up and PATCHes it."""
    exists = {"name": ["o auth2 provider with this name already exists."]}
    done, calls = world(
        **{
            "POST /api/v3/providers/oauth2/": exists,
            "GET /api/v3/providers/oauth2/?name=Reflector": {"results": [{"pk": 9, "client_id": "older-id"}]},
            "POST /api/v3/core/applications/": {"slug": ["application with this slug already exists."]},
        }
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c["call"] for c in calls][4:] == [
        "POST /api/v3/providers/oauth2/",
        "GET /api/v3/providers/oauth2/?name=Reflector",
        "PATCH /api/v3/providers/oauth2/9/",
        "POST /api/v3/core/applications/",
        "GET /application/o/reflector/jwks/",
    ]
    patch = calls[6]["data"]
    assert set(patch) == {"client_secret", "property_mappings", "signing_key"}
    assert calls[7]["data"]["provider"] == 9
    assert "AUTH_JWT_AUDIENCE=older-id\n" in (checkout / "server/.env").read_text()
    assert f"AUTHENTIK_CLIENT_SECRET={patch['client_secret']}\n" in (checkout / "www/.env").read_text()


def test_setup_script_leaves_an_empty_key_when_jwks_has_no_keys(world: Callable[..., Any], checkout: Path) -> None:
    """Facts §7/§8.7: no signing key means JWKS `{}`; without pipefail the .pem ends up empty."""
    before = (checkout / "server/.env").read_text()
    done, _ = world(**{"GET /application/o/reflector/jwks/": {}})
    assert done.returncode == 1
    assert (checkout / "server/reflector/auth/jwt/keys/authentik_public.pem").read_bytes() == b""
    assert (checkout / "server/.env").read_text() == before
    assert "Setup complete!" not in done.stdout


def test_setup_script_stops_when_no_token_comes_back(world: Callable[..., Any], checkout: Path) -> None:
    sudo = checkout.parent.parent / "bin" / "sudo"
    sudo.write_text("#!/bin/bash\ncat > /dev/null\necho 'Traceback: User matching query does not exist.'\n")
    done, calls = world()
    assert done.returncode == 1
    assert "Error: Failed to create API token" in done.stdout
    assert calls == []


def test_setup_script_stops_without_the_authorization_flow(world: Callable[..., Any]) -> None:
    slug = "default-provider-authorization-implicit-consent"
    done, calls = world(**{f"GET /api/v3/flows/instances/?slug={slug}": {"results": []}})
    assert done.returncode == 1
    assert "Error: Could not find authorization flow" in done.stdout
    assert len(calls) == 1


def test_setup_script_host_tools_exist_for_real() -> None:
    """The script's host tools must exist for real here: the sandbox binds the host's /usr."""
    for tool in ("jq", "curl", "openssl", "base64", "grep", "cut"):
        assert shutil.which(tool, path="/usr/bin:/bin"), tool
