"""Each correction of the upstream page fails when the step is written upstream's way, and passes as the guide writes it.

A variant is a copy of docs/ (and conf.py) with one step replaced by upstream's wording, taken from
tests/upstream/steps.yaml; it runs in a fresh world like any page. The assertions name the step that
fails and the reason, so a variant that fails somewhere else, for another reason, does not count.
tests/test_docs.py proves that our own wording passes; some tests here check that directly too.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from scripts import snippets as sn
from scripts.check import DOCS, REPO, PageRun, Verdict, load_page
from scripts.sandbox import CheckResult, RunResult

UPSTREAM: dict[str, dict[str, str]] = yaml.safe_load((Path(__file__).parent / "upstream" / "steps.yaml").read_text())
WALKTHROUGH = "self-hosted-authentik.md"
REASONS = "why-each-step.md"  # the reasons behind the walkthrough's steps, moved out of its command flow
KEY_FILE = "~/reflector/server/reflector/auth/jwt/keys/authentik_public.pem"


# ---------------------------------------------------------------------------------------------
# Variants and sessions
# ---------------------------------------------------------------------------------------------


def make_root(tmp_path: Path) -> Path:
    """A copy of the site's sources to edit: docs/ and conf.py (the copybutton rules)."""
    root = tmp_path / "site"
    shutil.copytree(DOCS, root / "docs")
    shutil.copy(REPO / "conf.py", root / "conf.py")
    return root


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    count = text.count(old)
    assert count == 1, f"{path.name}: the text to replace occurs {count} times, not once:\n{old}"
    path.write_text(text.replace(old, new))


def variant(tmp_path: Path, name: str, *extra: tuple[str, str]) -> Path:
    """The page of steps.yaml entry `name` with our step replaced by upstream's; `extra` are further replacements."""
    entry: dict[str, str] = UPSTREAM[name]
    page = make_root(tmp_path) / "docs" / entry["page"]
    for old, new in [(entry["ours"], entry["upstream"]), *extra]:
        replace_once(page, old, new)
    return page


def ours(tmp_path: Path, page: str) -> Path:
    return make_root(tmp_path) / "docs" / page


@dataclass
class Session:
    """A page run in its world, stopped at its first failure (or before a chosen step), for the test to probe."""

    run: PageRun
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def failure(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.status == "failed"), None)

    def sh(self, script: str, timeout: float = 20.0) -> RunResult:
        """A command typed into the same terminal, after the page's steps."""
        assert self.run.world is not None
        return self.run.world.run("test", script, timeout)

    def check(self, check_name: str, /, **args: str) -> CheckResult:
        assert self.run.world is not None
        return self.run.world.check(check_name, args)


def snippet_with(page: sn.Page, text: str) -> sn.Snippet:
    """The one step of `page` whose text contains `text`."""
    found = [s for s in page.snippets if text in s.source]
    assert len(found) == 1, f"{len(found)} snippets of {page.path} contain {text!r}"
    return found[0]


@contextmanager
def session(page_path: Path, *, before: str | None = None, setup: str | None = None) -> Iterator[Session]:
    """Run the page's steps in a fresh world until one fails, or up to (not including) the step containing `before`.

    `setup` runs in the terminal after the world starts, before the first step (the state the reader starts from).
    """
    root = page_path.parent.parent
    run = PageRun(load_page(page_path, root), root=root)
    s = Session(run)
    try:
        run.start()
        assert run.startup_error is None, run.startup_error
        # A variant's shellcheck findings (e.g. a variable that upstream's step leaves unused) are not what
        # these tests judge; tests/test_docs.py holds our own wording to shellcheck.
        run.findings = {}
        if setup is not None:
            r = s.sh(setup)
            assert r.rc == 0, r.output
        stop = snippet_with(run.page, before) if before else None
        for step in run.steps():
            if step is stop:
                break
            v = run.step(step)
            s.verdicts.append(v)
            if v.status == "failed":
                break
        yield s
    finally:
        run.close()


def assert_fails_at(s: Session, step_text: str, *reasons: str) -> Verdict:
    """The first failure is the step containing `step_text`, and its reason (or output) says each of `reasons`."""
    v = s.failure
    assert v is not None, "the variant passed every step"
    want = snippet_with(s.run.page, step_text)
    assert v.snippet.id == want.id, f"failed at {v.snippet.id}, expected {want.id}: {v.reason}"
    for reason in reasons:
        assert reason in v.reason or reason in v.output, f"{reason!r} not in the failure:\n{v.reason}\n{v.output}"
    return v


def assert_passed(s: Session) -> None:
    failure = s.failure
    assert failure is None, f"{failure.snippet.id}: {failure.reason}"


def compose_values(s: Session, directory: str, *keys: str) -> dict[str, str]:
    """What Docker Compose passes to the containers: `docker compose config` of that project, interpolated.

    Its output is a compose file again, so a literal `$` in a value is written `$$` there."""
    r = s.sh(f"cd {directory} && docker compose config 2>/dev/null")
    assert r.rc == 0, r.output
    config = yaml.safe_load(r.output)
    env: dict[str, str] = {}
    for svc in config["services"].values():
        env |= {k: str(v).replace("$$", "$") for k, v in (svc.get("environment") or {}).items()}
    return {k: env[k] for k in keys}


# ---------------------------------------------------------------------------------------------
# Deploy Authentik
# ---------------------------------------------------------------------------------------------


def test_authentik_secrets_are_generated(tmp_path: Path) -> None:
    """A quoted heredoc writes `$(openssl …)` literally: Compose passes the fixed text on as the secrets."""
    with session(variant(tmp_path / "up", "quoted-heredoc")) as s:
        literal = "PG_PASS in ~/authentik/.env holds the literal text"
        assert_fails_at(s, "cat > ~/authentik/.env", "check env-secrets failed", literal, "$(openssl rand -base64 36 | tr -d")
        # Compose reads the literal text too: a database password anyone can look up in the guide.
        assert compose_values(s, "~/authentik", "POSTGRES_PASSWORD") == {"POSTGRES_PASSWORD": "$(openssl rand -base64 36 | tr -d '\\n')"}


def test_generated_secrets_differ_between_runs_and_carry_256_bits(tmp_path: Path) -> None:
    """Our block generates fresh secrets each time, and Compose passes them on unchanged, with >= 256 bits each."""
    page = ours(tmp_path, WALKTHROUGH)
    block = snippet_with(load_page(page, page.parent.parent), "cat > ~/authentik/.env").text
    with session(page, before="docker compose up -d --wait\n") as s:
        assert_passed(s)
        first = compose_values(s, "~/authentik", "POSTGRES_PASSWORD", "AUTHENTIK_SECRET_KEY")
        assert s.sh(block).rc != 0, "a second run must refuse to overwrite .env"
        assert s.sh("rm ~/authentik/.env").rc == 0
        assert s.sh(block).rc == 0
        second = compose_values(s, "~/authentik", "POSTGRES_PASSWORD", "AUTHENTIK_SECRET_KEY")
    for key in first:
        assert first[key] != second[key], f"{key} came out the same twice"
        for value in (first[key], second[key]):
            assert re.fullmatch(r"[A-Za-z0-9+/]+=*", value), f"{key}={value!r} is not base64"
            assert len(value.rstrip("=")) * 6 >= 256, f"{key} has fewer than 256 bits"


def test_compose_download_follows_redirect(tmp_path: Path) -> None:
    """`curl -O` of the old address saves the 301 page, not the compose file."""
    with session(variant(tmp_path, "compose-download")) as s:
        assert_fails_at(s, "goauthentik.io/docker-compose.yml", "check compose-file failed", "has services []")
        assert "301 Moved Permanently" in s.sh("cat ~/authentik/docker-compose.yml").output


def test_bootstrap_credentials_are_generated(tmp_path: Path) -> None:
    """Upstream's printed admin password is no secret: it fails the same entropy bar as the generated ones."""
    with session(variant(tmp_path, "bootstrap-password")) as s:
        assert_fails_at(s, "cat > ~/authentik/.env", "check env-secrets failed", "AUTHENTIK_BOOTSTRAP_PASSWORD in ~/authentik/.env has about 126 bits, fewer than 256")


BROKEN_SERVER = """\
cat > ~/authentik/docker-compose.override.yml <<'EOF'
# A server that exits at start (here: an image whose program cannot start with this setting).
# Without restart it stays exited, which `--wait` reports; under `unless-stopped` it would restart
# forever, and real Compose's --wait would wait forever (the page says so).
services:
  server:
    image: monadicalsas/reflector-backend:latest
    command: ./runserver.sh
    restart: "no"
    environment:
      ENTRYPOINT: server
      AUTH_BACKEND: broken
EOF
"""


@pytest.mark.parametrize("wording", ["upstream", "ours"])
def test_authentik_start_waits_for_health(tmp_path: Path, wording: str) -> None:
    """With a server that cannot start, upstream's `up -d` reports success; our `up -d --wait` fails at that step."""
    page = variant(tmp_path, "start-without-wait") if wording == "upstream" else ours(tmp_path, WALKTHROUGH)
    setup = "mkdir -p ~/authentik\n" + BROKEN_SERVER
    with session(page, before="cat > ~/authentik/join-reflector-network.sh", setup=setup) as s:
        if wording == "upstream":
            assert_passed(s)  # the reader is told nothing, and goes on
            assert "Exited (1)" in s.sh("cd ~/authentik && docker compose ps -a").output
        else:
            assert_fails_at(s, "docker compose up -d --wait\n", "exit status 1", "container authentik-server-1 exited (1)")


# ---------------------------------------------------------------------------------------------
# Network and Caddy
# ---------------------------------------------------------------------------------------------

RELOAD = "exec caddy caddy reload"
FIRST_API_CALL = 'ak_api "flows/instances/'
STATUS = "curl -s -o /dev/null -w '%{http_code}' https://authentik.example.com/-/health/live/"


def test_network_link_is_lost_on_recreate(tmp_path: Path) -> None:
    """After an .env change, upstream's `up -d` recreates authentik-server-1 off reflector_default (Caddy: 502); our reconnect fixes it."""
    page = ours(tmp_path, WALKTHROUGH)
    reconnect = snippet_with(load_page(page, page.parent.parent), "docker compose up -d --wait && ./join-reflector-network.sh").text
    with session(page, before=FIRST_API_CALL) as s:
        assert_passed(s)
        assert s.sh(STATUS).output == "204"
        # Restarting keeps the link, as the page says.
        assert s.sh("cd ~/authentik && docker compose restart server").rc == 0
        assert s.check("network-attached", container="authentik-server-1", network="reflector_default").ok
        # Upstream's advice: `docker compose up -d` "preserves containers". Not after an .env change.
        assert s.sh("echo AUTHENTIK_LOG_LEVEL=info >> ~/authentik/.env && cd ~/authentik && docker compose up -d").rc == 0
        lost = s.check("network-attached", container="authentik-server-1", network="reflector_default")
        assert not lost.ok, lost.detail
        assert s.sh(STATUS).output == "502"
        # Our durable step, exactly as the page gives it.
        r = s.sh(reconnect)
        assert r.rc == 0, r.output
        assert "Connected authentik-server-1 to reflector_default" in r.output
        assert s.sh(STATUS).output == "204"
        again = s.sh(reconnect)
        assert again.rc == 0, again.output
        assert "already on reflector_default" in again.output, again.output
        # Upstream's one-off connect is not safe to repeat.
        twice = s.sh(UPSTREAM["network-connect"]["upstream"])
        assert twice.rc != 0, twice.output
        # While Authentik is attached, Reflector's `down` cannot remove its network (the page's side effect):
        # Compose 2.40 warns and goes on (pkg/compose/down.go), and the network stays.
        down = s.sh("cd ~/reflector && docker compose -f docker-compose.prod.yml down")
        assert down.rc == 0, down.output
        assert "Network reflector_default  Resource is still in use" in down.output, down.output
        assert s.sh("docker network inspect reflector_default >/dev/null").rc == 0


def test_caddy_runs_only_with_profile(tmp_path: Path) -> None:
    """Reflector started without `--profile caddy` has no Caddy: the first check says so, and the reload would fail
    (upstream never mentions the profile)."""
    without_profile = "cd ~/reflector && docker compose -f docker-compose.prod.yml --profile caddy down && docker compose -f docker-compose.prod.yml up -d"
    with session(ours(tmp_path, WALKTHROUGH), setup=without_profile) as s:
        v = assert_fails_at(s, "docker network inspect reflector_default", "output differs")
        assert "reflector-caddy-1" not in v.output, v.output
        r = s.sh("cd ~/reflector && " + snippet_with(s.run.page, RELOAD).text)
        assert r.rc == 1, r.output
        assert 'service "caddy" is not running' in r.output, r.output


def test_caddyfile_edit_keeps_inode_and_host(tmp_path: Path) -> None:
    """`sed -i` writes a new Caddyfile; the single-file mount keeps the old one, so the reload loads no Authentik site."""
    with session(variant(tmp_path, "caddyfile-sed-in-place")) as s:
        assert_fails_at(s, RELOAD, "check caddy-route failed", "Caddy routes authentik.example.com to None")
        # The host file has the site; the container does not see it.
        assert "reverse_proxy authentik-server-1:9000" in s.sh("grep -v '^#' ~/reflector/Caddyfile").output
        seen = s.sh("cd ~/reflector && docker compose -f docker-compose.prod.yml exec caddy cat /etc/caddy/Caddyfile | grep -v '^#'").output
        assert "authentik-server-1" not in seen, seen


def test_authentik_domain_on_the_host_is_ignored(tmp_path: Path) -> None:
    """The caddy service gets no environment: an exported AUTHENTIK_DOMAIN never reaches the placeholder."""
    with session(variant(tmp_path, "caddyfile-placeholder"), before=FIRST_API_CALL) as s:
        assert_passed(s)  # the site is served, but under the placeholder's default
        wanted = s.check("caddy-route", host="login.example.com", upstream="authentik-server-1:9000")
        assert not wanted.ok, wanted.detail
        assert "Caddy routes login.example.com to None" in wanted.detail, wanted.detail
        assert s.check("caddy-route", host="authentik.example.com", upstream="authentik-server-1:9000").ok
        # Our way, the hostname written into the file (in place), does reach Caddy.
        literal = "printf 'login.example.com {\\n\\treverse_proxy authentik-server-1:9000\\n}\\n' >> ~/reflector/Caddyfile"
        assert s.sh(f"{literal} && cd ~/reflector && {snippet_with(s.run.page, RELOAD).text}").rc == 0
        assert s.check("caddy-route", host="login.example.com", upstream="authentik-server-1:9000").ok


def test_caddy_step_runs_in_the_checkout(tmp_path: Path) -> None:
    """Upstream leaves the reader in ~/authentik for the Caddy step: the edit lands in a new file there, and the reload finds no compose file."""
    with session(variant(tmp_path, "caddy-step-outside-checkout")) as s:
        # The edit step itself catches it: its grep prints an error the page doesn't show.
        assert_fails_at(s, "AUTHENTIK_HOST=${AUTHENTIK_HOST#https://}", "grep: Caddyfile: No such file or directory")
        assert s.sh("test -f ~/authentik/Caddyfile").rc == 0
        reload = snippet_with(s.run.page, RELOAD).text
        r = s.sh(reload)
        assert r.rc != 0, r.output
        assert "docker-compose.prod.yml: no such file or directory" in r.output, r.output


def test_docker_runs_without_sudo_throughout() -> None:
    """One way to run docker: no page mixes `sudo docker` in (upstream does, and its script runs docker without sudo)."""
    offenders = [s.id for path in sn.discover_pages(REPO) for s in load_page(path).snippets if s.kind == "shell" and re.search(r"\bsudo\s+docker\b", s.text)]
    assert not offenders, offenders
    upstream_steps = [e["upstream"] for e in UPSTREAM.values() if "docker" in e["upstream"]]
    assert any(re.search(r"\bsudo\s+docker\b", u) for u in upstream_steps)  # the test can tell the two apart


# ---------------------------------------------------------------------------------------------
# The provider, the key, the settings
# ---------------------------------------------------------------------------------------------

SCRIPT = "./scripts/setup-authentik-oauth.sh"
OFFLINE_ACCESS_STEP = 'OFFLINE_ACCESS=$(ak_api "propertymappings/provider/scope/?scope_name=offline_access"'
PUBLIC_KEY_STEP = "Could not extract the public key"
BACKEND_STEP = "set_env server/.env AUTH_BACKEND jwt"
FRONTEND_STEP = "set_env www/.env FEATURE_REQUIRE_LOGIN true"
SIGN_IN_STEP = "curl -s -w '\\n' -H 'Authorization: Bearer not-a-token' \"$API_URL/v1/transcripts\""


def test_settings_stay_unique_after_script(tmp_path: Path) -> None:
    """The script already appended the settings: adding upstream's block again duplicates every key."""
    with session(variant(tmp_path, "backend-settings-appended")) as s:
        assert_fails_at(s, "cat >> server/.env", "check env-unique failed", "duplicated keys: AUTH_BACKEND, AUTH_JWT_AUDIENCE, AUTH_JWT_PUBLIC_KEY")


def test_script_leaves_nextauth_secret_unset(tmp_path: Path) -> None:
    """The script never sets NEXTAUTH_SECRET, and upstream presents its output as complete: without our line, sign-in fails."""
    with session(variant(tmp_path, "nextauth-secret-unset")) as s:
        assert_fails_at(s, SIGN_IN_STEP, "check sign-in failed", "lacks ['NEXTAUTH_SECRET']")
        assert s.sh("grep -c '^NEXTAUTH_SECRET=' ~/reflector/www/.env").output.strip() == "0"


def test_refresh_token_needs_offline_access(tmp_path: Path) -> None:
    """Without the offline_access mapping (upstream's three scopes, and the script's), Authentik issues no refresh token."""
    page = ours(tmp_path, WALKTHROUGH)
    step = snippet_with(load_page(page, tmp_path / "site"), OFFLINE_ACCESS_STEP)
    lines = page.read_text().split("\n")
    # Drop the step and its annotation, as upstream has no such step.
    start = step.line - 2
    end = lines.index("```", step.line)
    assert lines[start].startswith("% test: check provider-scopes"), lines[start]
    page.write_text("\n".join(lines[:start] + lines[end + 1 :]))
    with session(page) as s:
        assert_fails_at(s, SIGN_IN_STEP, "check sign-in failed", "Authentik issued no refresh token")


SET_SIGNING_KEY = (  # sets the Reflector provider's signing_key to the JSON value $1
    """pk=$(ak_api "providers/oauth2/?name=Reflector" | jq -er '.results[0].pk') && """
    """ak_api "providers/oauth2/$pk/" -X PATCH -d "{\\"signing_key\\": $1}" > /dev/null"""
)
SIGNING_KEY_PK = """$(ak_api "crypto/certificatekeypairs/" | jq -c '.results[0].pk')"""  # a JSON string


def test_key_extraction_keeps_old_key_on_failure(tmp_path: Path) -> None:
    """When JWKS has no certificate, upstream's pipeline leaves a 0-byte .pem and exits 1; ours fails loudly and keeps the old file.

    Two causes, one after the other in one world: a provider without signing key (upstream's manual
    steps never mention the field), and a JWKS entry without `x5c` (the world's fault hook).
    """
    page = ours(tmp_path, WALKTHROUGH)
    ours_step = snippet_with(load_page(page, tmp_path / "site"), PUBLIC_KEY_STEP).text
    with session(page, before=PUBLIC_KEY_STEP) as s:
        assert_passed(s)
        assert s.run.world is not None
        for cause in ("no signing key", "certificate missing from JWKS"):
            assert s.check("public-key", file=KEY_FILE, fresh="no").ok, cause
            if cause == "no signing key":
                assert s.sh(f"set -- null; {SET_SIGNING_KEY}").rc == 0
                # Authentik then signs with HS256 and publishes no key; the page's provider check says so.
                assert s.sh('curl -fsS "$AUTHENTIK_URL/application/o/reflector/jwks/"').output == "{}"
                conf = s.sh('curl -fsS "$AUTHENTIK_URL/application/o/reflector/.well-known/openid-configuration" | jq -c .id_token_signing_alg_values_supported')
                assert conf.output.strip() == '["HS256"]', conf.output
                scopes = s.check("provider-scopes", slug="reflector", scopes="openid")
                assert not scopes.ok, scopes.detail
                assert "no signing key" in scopes.detail, scopes.detail
            else:
                assert s.run.world.fault("jwks-without-x5c", {}).ok
            r = s.sh(ours_step)
            assert r.rc == 1, (cause, r.output)
            assert "Could not extract the public key; authentik_public.pem is unchanged" in r.output, cause
            assert s.check("public-key", file=KEY_FILE, fresh="no").ok, cause
            left = s.sh("ls -A ~/reflector/server/reflector/auth/jwt/keys/").output.split()
            assert sorted(left) == ["authentik.monadical.com_public.pem", "authentik_public.pem"], (cause, left)
            r = s.sh(UPSTREAM["public-key-pipeline"]["upstream"])
            assert r.rc == 1, (cause, r.output)
            assert s.sh("stat -c %s " + KEY_FILE).output.strip() == "0", cause
            empty = s.check("public-key", file=KEY_FILE, fresh="no")
            assert not empty.ok, cause
            assert "missing or empty" in empty.detail, cause
            # Put things back, and save the key again with our block.
            if cause == "no signing key":
                assert s.sh(f'set -- "{SIGNING_KEY_PK}"; {SET_SIGNING_KEY}').rc == 0
            else:
                assert s.run.world.fault("clear", {}).ok
            assert s.sh(ours_step).rc == 0, cause


def test_restart_recreates_beat_with_keys(tmp_path: Path) -> None:
    """Upstream's restart leaves beat on the old settings (containers-current catches it); recreated without the keys mount, beat crash-loops."""
    page = ours(tmp_path, WALKTHROUGH)
    site = load_page(page, tmp_path / "site")
    our_restart = snippet_with(site, "--force-recreate server worker beat web").text
    our_mount = snippet_with(site, "BEAT=$(sed -n").text
    # Upstream: no keys mount for beat, and a restart without beat.
    lines = page.read_text().split("\n")
    mount = snippet_with(site, "BEAT=$(sed -n")
    end = lines.index("```", mount.line)
    assert lines[mount.line - 2].startswith("% test: shellcheck-disable"), lines[mount.line - 2]
    page.write_text("\n".join(lines[: mount.line - 2] + lines[end + 1 :]))
    verify_beat = "% test: verify reflector/docker-compose.prod.yml\n```yaml\nservices:\n  beat:\n"
    replace_once(page, verify_beat, "```yaml\nservices:\n  beat:\n")  # that fence now shows what upstream lacks
    replace_once(page, UPSTREAM["restart-without-beat"]["ours"], UPSTREAM["restart-without-beat"]["upstream"])
    with session(page) as s:
        assert_fails_at(s, "--force-recreate server worker web", "check containers-current failed", "reflector-beat-1")
        stale = s.sh("cd ~/reflector && docker compose -f docker-compose.prod.yml exec beat printenv AUTH_BACKEND")
        assert stale.output.strip() == "none", stale.output
        # The next time beat is recreated (here by our restart), it cannot open the key file.
        crash = s.sh(our_restart)
        assert crash.rc != 0, crash.output
        assert "reflector-beat-1" in crash.output, crash.output
        logs = s.sh("cd ~/reflector && docker compose -f docker-compose.prod.yml logs beat").output
        assert "FileNotFoundError: [Errno 2] No such file or directory: 'reflector/auth/jwt/keys/authentik_public.pem'" in logs, logs
        # Our two steps fix both.
        assert s.sh(our_mount).rc == 0
        fixed = s.sh(our_restart)
        assert fixed.rc == 0, fixed.output
        assert s.sh("cd ~/reflector && docker compose -f docker-compose.prod.yml exec beat printenv AUTH_BACKEND").output.strip() == "jwt"


def test_frontend_env_is_private(tmp_path: Path) -> None:
    """Without our chmod, www/.env with the client secret and NEXTAUTH_SECRET stays world-readable (0644)."""
    with session(variant(tmp_path, "frontend-env-mode")) as s:
        assert_fails_at(s, FRONTEND_STEP, "check file-mode failed", "~/reflector/www/.env has mode 644, expected 600")


def test_no_auth_lists_need_public_mode(tmp_path: Path) -> None:
    """Upstream's Option 2 (AUTH_BACKEND=none, no PUBLIC_MODE): every request is anonymous, and the transcript list refuses it."""
    page = variant(
        tmp_path,
        "no-public-mode",
        ("AUTH_BACKEND=none PUBLIC_MODE=true PUBLIC_DATA_RETENTION_DAYS=36500\n", "AUTH_BACKEND=none\n"),  # our annotation that asserts the corrected value
        ("% test: check public-data-retention days=36500\n", ""),  # and ours that public mode runs with the chosen retention
    )
    with session(page) as s:
        assert_fails_at(s, "/v1/transcripts", "output differs", "--- actual\n401")


# ---------------------------------------------------------------------------------------------
# Text: names as the apps show them
# ---------------------------------------------------------------------------------------------


def test_api_key_labels_match_the_app() -> None:
    """The app's labels: the Settings link, "Create API Key" (upstream: "Generate New Key")."""
    text = (DOCS / "api-keys.md").read_text()
    assert "**Settings**" in text
    assert "**Create API Key**" in text
    assert "Generate New Key" not in text


def test_no_upstream_typos() -> None:
    """Upstream's "Authentic" (twice) and "backends verify JWT signature" are gone (the differences page only quotes them)."""
    for path in sn.discover_pages(REPO):
        if path.name == "differences-from-upstream.md":
            continue
        text = path.read_text()
        assert not re.search(r"\bAuthentic\b", text), path.name
        assert "backends verify JWT signature" not in text, path.name


# ---------------------------------------------------------------------------------------------
# From the walkthrough's end state: one world, shared by the tests below in file order. Each puts
# the world back as it found it, except the last (Option 2 turns sign-in off).
# ---------------------------------------------------------------------------------------------

FINISHED = pytest.mark.xdist_group("corrections-finished")
COMPOSE = "cd ~/reflector && docker compose -f docker-compose.prod.yml"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """The walkthrough, run to its end with our wording."""
    with session(ours(tmp_path_factory.mktemp("finished"), WALKTHROUGH)) as s:
        assert_passed(s)
        yield s


@FINISHED
def test_empty_audience_is_invalid_audience(finished: Session) -> None:
    """`AUTH_JWT_AUDIENCE=` as server/.env.example ships it rejects every token: 401, and `JWT error: Invalid audience` in the log."""
    s = finished
    # As server/.env.example ships it (set_env refuses to write an empty value, so sed does it here).
    assert s.sh(f"sed -i 's/^AUTH_JWT_AUDIENCE=.*/AUTH_JWT_AUDIENCE=/' ~/reflector/server/.env && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    r = s.check("sign-in")
    assert not r.ok, r.detail
    assert 'HTTP 401 {"detail":"Invalid authentication"}' in r.detail, r.detail
    assert "JWT error: Invalid audience" in s.sh(f"{COMPOSE} logs server").output
    assert s.sh(f"set_env ~/reflector/server/.env AUTH_JWT_AUDIENCE reflector && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    assert s.check("sign-in").ok


@FINISHED
def test_kv_url_comes_from_compose(finished: Session) -> None:
    """A KV_URL in www/.env never reaches web: docker-compose.prod.yml's `environment:` wins."""
    s = finished
    assert s.sh(f"echo KV_URL=redis://elsewhere:6379 >> ~/reflector/www/.env && {COMPOSE} up -d --wait --force-recreate web").rc == 0
    assert s.sh(f"{COMPOSE} exec web printenv KV_URL").output.strip() == "redis://redis:6379"
    assert s.sh(f"sed -i '/^KV_URL=/d' ~/reflector/www/.env && {COMPOSE} up -d --wait --force-recreate web").rc == 0


@FINISHED
def test_api_keys_need_jwt_backend(finished: Session) -> None:
    """A key created while sign-in is on stops working with AUTH_BACKEND=none: the backend ignores X-API-Key."""
    s = finished
    assert s.check("ui-create-api-key", name="probe", file="~/probe-key").ok
    listing = 'curl -s -o /dev/null -w "%{http_code}" -H "X-API-Key: $(cat ~/probe-key)" https://api.example.com/v1/user/api-keys'
    assert s.sh(listing).output == "200"
    assert s.sh(f"set_env ~/reflector/server/.env AUTH_BACKEND none && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    assert s.sh(listing).output != "200"
    assert s.sh(f"set_env ~/reflector/server/.env AUTH_BACKEND jwt && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    assert s.sh(listing).output == "200"


@FINISHED
def test_frontend_secret_is_generated_and_hidden(finished: Session) -> None:
    """NEXTAUTH_SECRET (upstream: `<generate-with-openssl-rand-hex-32>`) is generated with >= 256 bits, and no step prints a secret."""
    s = finished
    r = s.check("env-secrets", file="~/reflector/www/.env", keys="NEXTAUTH_SECRET,AUTHENTIK_CLIENT_SECRET")
    assert r.ok, r.detail
    secrets = s.sh("grep -hE '^(NEXTAUTH_SECRET|AUTHENTIK_CLIENT_SECRET)=' ~/reflector/www/.env | cut -d= -f2-").output.split()
    assert len(secrets) == 2
    for v in s.verdicts:
        assert not any(secret in v.output for secret in secrets), f"{v.snippet.id} prints a secret"
    placeholder = s.sh("f=$(mktemp) && echo 'NEXTAUTH_SECRET=<generate-with-openssl-rand-hex-32>' > $f && echo $f").output.strip()
    upstream = s.check("env-secrets", file=placeholder, keys="NEXTAUTH_SECRET")
    assert not upstream.ok, upstream.detail


@FINISHED
def test_final_check_tells_sign_in_on_from_off(finished: Session) -> None:
    """Only the JWT backend rejects an invalid token (`Invalid authentication`, auth_jwt.py); the old check (no token:
    `Not authenticated`) gives the same answer with sign-in off, because PUBLIC_MODE defaults to false."""
    s = finished
    final = snippet_with(s.run.page, SIGN_IN_STEP).text
    old = "curl -s -w '\\n' \"$API_URL/v1/transcripts\""
    on = (s.sh(final).output.strip(), s.sh(old).output.strip())
    assert on == ('{"detail":"Invalid authentication"}', '{"detail":"Not authenticated"}')
    assert s.sh(f"set_env ~/reflector/server/.env AUTH_BACKEND none && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    off = (s.sh(final).output.strip(), s.sh(old).output.strip())
    assert s.sh(f"set_env ~/reflector/server/.env AUTH_BACKEND jwt && {COMPOSE} up -d --wait --force-recreate server").rc == 0
    assert off == ('{"detail":"Not authenticated"}', '{"detail":"Not authenticated"}')  # the old check cannot tell


OLD_SET_ENV = """\
set_env() {
  local file=$1 key=$2 value=$3 line found='' tmp
  [ -f "$file" ] || { echo "set_env: $file not found" >&2; return 1; }
  tmp=$(mktemp) || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line == "$key="* ]]; then
      [ -n "$found" ] && continue
      line="$key=$value"
      found=1
    fi
    printf '%s\\n' "$line"
  done < "$file" > "$tmp"
  [ -n "$found" ] || printf '%s=%s\\n' "$key" "$value" >> "$tmp"
  cat "$tmp" > "$file"
  rm -f "$tmp"
}
"""  # the first version's helper, defined in the terminal only


@FINISHED
def test_settings_come_from_files_and_stop_when_a_value_is_missing(finished: Session) -> None:
    """In a new terminal the first version's $CLIENT_ID was empty and its set_env wrote `AUTH_JWT_AUDIENCE=` without an error;
    ours reads the ID back from www/.env, refuses an empty value, and stops with a message, leaving server/.env as it was."""
    s = finished
    ours_block = snippet_with(s.run.page, "set_env server/.env AUTH_JWT_AUDIENCE").text
    before = s.sh("cat ~/reflector/server/.env").output
    fresh = s.sh(f"env -i HOME=$HOME PATH=$PATH bash -c {shlex.quote('. ~/reflector-auth.sh && ' + ours_block)}")
    assert fresh.rc == 0, fresh.output
    assert s.sh("cat ~/reflector/server/.env").output == before  # a new terminal writes the same values
    r = s.sh(f"cp ~/reflector/www/.env ~/www.env && sed -i '/^AUTHENTIK_CLIENT_ID=/d' ~/reflector/www/.env && {ours_block}")
    assert s.sh("cp ~/www.env ~/reflector/www/.env && rm ~/www.env").rc == 0
    assert r.rc != 0, r.output
    assert "env_value: AUTHENTIK_CLIENT_ID is missing or empty in www/.env" in r.output, r.output
    assert s.sh("cat ~/reflector/server/.env").output == before
    refused = s.sh('(cd ~/reflector && set_env server/.env AUTH_JWT_AUDIENCE "")')
    assert (refused.rc, refused.output.strip()) == (1, "set_env: no value for AUTH_JWT_AUDIENCE, so server/.env is unchanged")
    assert s.sh("cat ~/reflector/server/.env").output == before
    # The first version, in a new terminal: no error, and an empty audience that rejects every token.
    old_line = 'cd ~/reflector && set_env server/.env AUTH_JWT_AUDIENCE "$CLIENT_ID"'
    old = s.sh(f"env -i HOME=$HOME PATH=$PATH bash -c {shlex.quote(OLD_SET_ENV + old_line)}")
    emptied = s.sh("grep '^AUTH_JWT_AUDIENCE=' ~/reflector/server/.env").output.strip()
    assert s.sh(f"cd ~/reflector && {ours_block}").rc == 0  # put the audience back
    assert (old.rc, emptied) == (0, "AUTH_JWT_AUDIENCE="), old.output


@FINISHED
def test_feature_flags_are_read_at_run_time(finished: Session) -> None:
    """Option 2 needs no rebuild: editing www/.env changes nothing until web is recreated, and then sign-in is gone, same image."""
    s = finished
    home = 'curl -fsS https://app.example.com/ | grep -c "Log in"'
    image = "docker inspect reflector-web-1 --format '{{.Config.Image}}'"
    before = s.sh(image).output
    assert s.sh(home).output.strip() == "1"
    option2 = load_page(DOCS / "without-authentication.md")
    steps = [st for st in option2.snippets if st.kind == "shell"]
    run = PageRun(option2, world=s.run.world)
    settings, recreate = snippet_with(option2, "set_env www/.env FEATURE_REQUIRE_LOGIN false"), snippet_with(option2, "--force-recreate")
    for st in steps[: steps.index(settings) + 1]:
        v = run.execute(st)
        assert v.status == "passed", v.reason
    # Upstream's reader stops here and concludes the flag is baked in: the running container still has sign-in.
    assert s.sh(home).output.strip() == "1"
    rest = steps[steps.index(settings) + 1 :]
    assert recreate in rest
    for st in rest:
        v = run.execute(st)
        assert v.status == "passed", f"{st.id}: {v.reason}"
    assert s.sh(home).output.strip() == "0"
    assert s.sh(image).output == before
    # A missing flag is not "off": the default is true.
    assert s.sh(f"sed -i '/^FEATURE_REQUIRE_LOGIN=/d' ~/reflector/www/.env && {COMPOSE} up -d --wait --force-recreate web").rc == 0
    assert s.sh(home).output.strip() == "1"


def test_differences_page_names_real_tests() -> None:
    """Every "Pinned by" on the differences page names a test that exists, and every correction has one."""
    import ast

    page = (DOCS / "differences-from-upstream.md").read_text()
    items = re.findall(r"(?m)^\d+\. \*\*", page)
    pins = re.findall(r"(?m)^\s+- Pinned by: (.+)$", page)
    assert len(pins) == len(items), f"{len(items)} corrections, {len(pins)} with a test"
    named = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", page)
    assert named
    for file, name in named:
        tree = ast.parse((REPO / file).read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in defined, f"{file}::{name} does not exist"


# ---------------------------------------------------------------------------------------------
# Corrections of this guide's own first version, found against Reflector 0.34.0's and Authentik's source
# ---------------------------------------------------------------------------------------------


def published_ports(s: Session) -> list[str]:
    """Where Compose publishes Authentik's server ports, as `HOST_IP:PORT` (short or long syntax, as `docker compose config` gives it)."""
    r = s.sh("cd ~/authentik && docker compose config 2>/dev/null")
    assert r.rc == 0, r.output
    ports = yaml.safe_load(r.output)["services"]["server"]["ports"]
    found = []
    for p in ports:
        if isinstance(p, dict):
            found.append(f"{p.get('host_ip') or '0.0.0.0'}:{p['published']}")
        else:
            host, _, _ = str(p).rpartition(":")
            found.append(host if ":" in host else f"0.0.0.0:{host}")
    return found


@pytest.mark.parametrize("wording", ["upstream", "ours"])
def test_authentik_ports_stay_on_the_server(tmp_path: Path, wording: str) -> None:
    """Authentik's compose file publishes 9000 (plain HTTP) and 9443 on every interface, past ufw; our .env binds them to 127.0.0.1."""
    page = variant(tmp_path, "published-ports") if wording == "upstream" else ours(tmp_path, WALKTHROUGH)
    with session(page, before="cat > ~/authentik/join-reflector-network.sh") as s:
        if wording == "upstream":
            assert_fails_at(s, "cat > ~/authentik/.env", "check env-has failed", "COMPOSE_PORT_HTTP is None")
            assert s.sh("cd ~/authentik && docker compose up -d --wait").rc == 0
            assert published_ports(s) == ["0.0.0.0:9000", "0.0.0.0:9443"]
        else:
            assert_passed(s)
            assert published_ports(s) == ["127.0.0.1:9000", "127.0.0.1:9443"]


def test_public_mode_warns_that_it_deletes_data() -> None:
    """PUBLIC_MODE=true schedules a nightly deletion of ownerless transcripts older than PUBLIC_DATA_RETENTION_DAYS
    (worker/app.py, worker/cleanup.py, settings.py: PositiveInt, default 7): the page says so and sets the retention."""
    page = load_page(DOCS / "without-authentication.md")
    text = (DOCS / "without-authentication.md").read_text()
    assert ("{warning}" in text, "PUBLIC_DATA_RETENTION_DAYS" in text, "03:00 UTC" in text) == (True, True, True)
    assert "no value turns this off" in text  # PositiveInt: 0 is rejected, so only PUBLIC_MODE=false prevents deletion
    settings = snippet_with(page, "set_env server/.env PUBLIC_MODE true")
    assert "set_env server/.env PUBLIC_DATA_RETENTION_DAYS 36500" in settings.text
    assert any(dict(c.args).get("PUBLIC_DATA_RETENTION_DAYS") == "36500" for c in settings.checks)


def test_cors_credentials_are_not_called_required() -> None:
    """The frontend sends its token in an Authorization header and fetches without credentials (www/app/lib/apiClient.tsx),
    so no page may present CORS_ALLOW_CREDENTIALS as needed (the first version listed it as one of three required settings)."""
    for path in sn.discover_pages(REPO):
        if path.name == "differences-from-upstream.md":
            continue
        text = path.read_text()
        for line in text.splitlines():
            if "CORS_ALLOW_CREDENTIALS" in line:
                assert "doesn't need" in line or "not" in line.split("CORS_ALLOW_CREDENTIALS")[0][-40:], f"{path.name}: {line}"
        assert "set_env server/.env CORS_ALLOW_CREDENTIALS" not in text, path.name


def test_compose_override_alternative_warns_of_the_server_alias() -> None:
    """An external reflector_default on Authentik's `server` service would give it the alias `server` there, the name
    Reflector's Caddy and containers use for the backend: the reasons page warns instead of recommending it, and no page
    recommends it any more (the first version did, in the walkthrough)."""
    pages = {p.name: p.read_text() for p in sn.discover_pages(REPO)}
    recommending = [name for name, text in pages.items() if "Docker Compose then attaches the container each time it creates it" in text]
    assert recommending == [], recommending
    assert "alias on each network it joins" in pages[REASONS]


def test_prose_claims_match_the_sources() -> None:
    """Claims the first version got wrong, each checked against the source named in the assertion message."""
    pages = {p.name: p.read_text() for p in sn.discover_pages(REPO)}
    assert "leaves the signing key empty" not in pages["manual-provider.md"], "ak-crypto-certificate-search `singleton` pre-selects a lone key pair"
    assert "when Authentik has exactly one key pair" in pages["manual-provider.md"]
    assert "the right to use `sudo`" in pages[WALKTHROUGH], "setup-authentik-oauth.sh runs `sudo docker compose exec -T server`"
    how = pages["how-sign-in-works.md"]
    assert "five minutes by default in Authentik" not in how, "OAuth2Provider.access_token_validity defaults to hours=1; only the admin form fills minutes=5"
    assert "five minutes when it was created in Authentik's admin interface" in how
    assert "one hour when it was created through the API" in how
    index = pages["index.md"]
    assert "simulated Authentik and Reflector services" in index
    assert "skip its first three sections" not in index
    assert [name for name, text in pages.items() if "start or update Authentik" in text] == [], "the compose file pins AUTHENTIK_TAG: `up -d` never upgrades"
    assert "pins Authentik's version" in pages[REASONS]
