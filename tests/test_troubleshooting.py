"""Every troubleshooting entry, reproduced: inject the cause, see the symptom the page names, run the page's fix, see it gone.

One world for the module: the walkthrough and the troubleshooting page run to their end (the healthy
state), then each test breaks one thing, observes what the entry says the reader sees, word for word
as the entry prints it (the strings come from the entry's own inline code and fences), runs the
entry's Check and Fix fences, and ends healthy again (the sign-in check passes). The tests run in file
order on one xdist worker; each one starts by asserting the world is healthy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from markdown_it import MarkdownIt

from scripts import snippets as sn
from scripts.check import DOCS, PageRun, load_page
from scripts.sandbox import CheckResult, RunResult

pytestmark = pytest.mark.xdist_group("troubleshooting")

PAGE = DOCS / "troubleshooting.md"
WALKTHROUGH = load_page(DOCS / "self-hosted-authentik.md")
COMPOSE = "cd ~/reflector && docker compose -f docker-compose.prod.yml"


# ---------------------------------------------------------------------------------------------
# The page, by entry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One `##` section of the troubleshooting page: its title, inline code, bold text, and Check and Fix fences."""

    title: str
    code: tuple[str, ...]
    bold: tuple[str, ...]
    checks: tuple[sn.Snippet, ...]
    fixes: tuple[sn.Snippet, ...]

    def span(self, pattern: str) -> str:
        """The one inline code span of the entry that matches `pattern` (a regex), as the page writes it."""
        found = sorted({c for c in self.code if re.search(pattern, c)})
        assert len(found) == 1, f"{self.title}: {len(found)} code spans match {pattern!r}: {found}"
        return found[0]


def entries() -> dict[str, Entry]:
    text = PAGE.read_text()
    tokens = MarkdownIt("commonmark").parse(text)
    page = load_page(PAGE)
    sections: list[tuple[str, int]] = []
    for i, t in enumerate(tokens):
        if t.type == "heading_open" and t.tag == "h2" and t.map:
            sections.append((tokens[i + 1].content, t.map[0] + 1))
    found: dict[str, Entry] = {}
    for k, (title, start) in enumerate(sections):
        end = sections[k + 1][1] if k + 1 < len(sections) else len(text.split("\n")) + 1
        code: list[str] = []
        bold: list[str] = []
        fix_line = None
        for t in tokens:
            if t.type != "inline" or not t.map or not start <= t.map[0] + 1 < end:
                continue
            if t.content.startswith("**Fix.**"):
                fix_line = t.map[0] + 1
            children = t.children or []
            code += [c.content for c in children if c.type == "code_inline"]
            bold += [children[j + 1].content for j, c in enumerate(children) if c.type == "strong_open"]
        assert fix_line is not None, f"{title}: no **Fix.** paragraph"
        fences = [s for s in page.snippets if s.kind == "shell" and start <= s.line < end]
        found[title] = Entry(
            title,
            tuple(code),
            tuple(bold),
            tuple(s for s in fences if s.line < fix_line),
            tuple(s for s in fences if s.line > fix_line),
        )
    return found


ENTRIES = entries()


def entry(title_part: str) -> Entry:
    found = [e for t, e in ENTRIES.items() if title_part in t]
    assert len(found) == 1, f"{len(found)} entries titled like {title_part!r}: {list(ENTRIES)}"
    return found[0]


def walkthrough_step(text: str) -> sn.Snippet:
    found = [s for s in WALKTHROUGH.snippets if s.kind == "shell" and text in s.source]
    assert len(found) == 1, f"{len(found)} walkthrough steps contain {text!r}"
    return found[0]


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


@dataclass
class Terminal:
    """The reader's terminal after the troubleshooting page: type commands, run fences, ask checks."""

    run: PageRun

    clean: bool = False  # the last test ended with a passing sign-in

    def sh(self, script: str, timeout: float = 20.0) -> RunResult:
        """Run text in the reader's terminal (a fence: its variables and cwd carry on to the next)."""
        assert self.run.world is not None
        return self.run.world.run("test", script, timeout)

    def ok(self, script: str) -> str:
        """The test's own command, in a subshell so that its `cd` and variables don't leak into the page's session."""
        r = self.sh(f"(\n{script}\n)")
        assert r.rc == 0, f"{script}\n{r.output}"
        return r.output

    def fences(self, snippets: tuple[sn.Snippet, ...]) -> str:
        """Run the entry's fences as the page shows them; each must pass as the page implies."""
        out = []
        for s in snippets:
            v = self.run.execute(s)
            assert v.status == "passed", f"{s.id}: {v.reason}\n{v.output}"
            out.append(v.output)
        return "".join(out)

    def show(self, snippets: tuple[sn.Snippet, ...]) -> str:
        """Run diagnostic fences in a broken world: their output is the point, not the healthy output the page shows."""
        return "".join(self.sh(s.text).output for s in snippets)

    def check(self, check_name: str, /, **args: str) -> CheckResult:
        assert self.run.world is not None
        return self.run.world.check(check_name, args)

    def healthy(self) -> None:
        """Sign-in works end to end: the state every test starts from and returns to."""
        r = self.check("sign-in")
        assert r.ok, f"the world is not healthy: {r.detail}"
        self.clean = True

    def starts_healthy(self) -> None:
        """Trust the previous test's final sign-in; after a test that failed midway, check again."""
        if not self.clean:
            self.healthy()
        self.clean = False


@pytest.fixture(scope="module")
def term() -> Iterator[Terminal]:
    """The walkthrough run to its end, then the troubleshooting page's first step (its diagnostics run in tests/test_docs.py)."""
    run = PageRun(load_page(PAGE))
    try:
        run.start()
        assert run.startup_error is None, run.startup_error
        start = run.steps()[0]  # load the helpers, `cd ~/reflector`: the entries' fences use paths relative to the checkout
        assert start.text.strip() == ". ~/reflector-auth.sh\ncd ~/reflector", start.text
        v = run.step(start)
        assert v.status == "passed", v.reason
        t = Terminal(run)
        t.healthy()
        yield t
    finally:
        run.close()


def server_log_lines(t: Terminal) -> list[str]:
    return t.sh(f"{COMPOSE} logs server").output.splitlines()


# ---------------------------------------------------------------------------------------------
# The entries
# ---------------------------------------------------------------------------------------------


def test_redirect_uri_error(term: Terminal) -> None:
    """A redirect URI on the provider with a trailing slash: Authentik's "Redirect URI Error" page; the entry's PATCH fixes it."""
    e = entry("Redirect URI Error")
    title = re.search(r'"(.+)"', e.title)
    assert title is not None
    assert title[1] in e.bold
    term.starts_healthy()
    term.ok(
        """pk=$(ak_api "providers/oauth2/?name=Reflector" | jq -er '.results[0].pk') && """
        """ak_api "providers/oauth2/$pk/" -X PATCH """
        """-d '{"redirect_uris": [{"matching_mode": "strict", "url": "https://app.example.com/api/auth/callback/authentik/"}]}' > /dev/null"""
    )
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"<h1>{title[1]}</h1>" in r.detail, r.detail
    seen = term.show(e.checks)
    assert "Reflector sends:   https://app.example.com/api/auth/callback/authentik\n" in seen
    assert "Authentik allows: https://app.example.com/api/auth/callback/authentik/ (strict)" in seen
    assert term.fences(e.fixes).strip() == "https://app.example.com/api/auth/callback/authentik"
    term.healthy()


def test_redirect_uri_error_from_nextauth_url(term: Terminal) -> None:
    """A wrong NEXTAUTH_URL sends another redirect URI; the entry's inline set_env plus recreating web fixes it."""
    e = entry("Redirect URI Error")
    title = re.search(r'"(.+)"', e.title)
    assert title is not None
    term.starts_healthy()
    term.ok(f"set_env ~/reflector/www/.env NEXTAUTH_URL https://app.example.com:8443 && {COMPOSE} up -d --wait --force-recreate web")
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"<h1>{title[1]}</h1>" in r.detail, r.detail
    assert "Reflector sends:   https://app.example.com:8443/api/auth/callback/authentik" in term.show(e.checks)
    term.ok(e.span(r"^set_env .* NEXTAUTH_URL "))
    term.ok(f"{COMPOSE} up -d --wait --force-recreate web")
    term.healthy()


def test_invalid_audience(term: Terminal) -> None:
    """Another client ID in AUTH_JWT_AUDIENCE: 401 Invalid authentication and `JWT error: Invalid audience`; the entry's fix copies the ID back."""
    e = entry("Invalid audience")
    body, message = e.span(r'^\{"detail"'), e.span(r"^JWT error: ")
    term.starts_healthy()
    term.ok(f"set_env ~/reflector/server/.env AUTH_JWT_AUDIENCE another-client && {COMPOSE} up -d --wait --force-recreate server")
    before = len(server_log_lines(term))
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"HTTP 401 {body}" in r.detail, r.detail
    assert any(line.endswith(message) for line in server_log_lines(term)[before:])
    seen = term.show(e.checks)
    assert message in seen
    assert "AUTH_JWT_AUDIENCE=another-client" in seen
    assert "AUTHENTIK_CLIENT_ID=reflector" in seen
    term.fences(e.fixes)
    before = len(server_log_lines(term))
    term.healthy()
    assert not [line for line in server_log_lines(term)[before:] if "JWT error" in line]


@pytest.fixture
def key_entry(term: Terminal) -> Iterator[Entry]:
    """The public-key entry; each test ends with the entry's fix: extract the key again, then its fence."""
    term.starts_healthy()
    yield entry("Signature verification failed")
    term.fences((walkthrough_step("Could not extract the public key"),))
    term.fences(entry("Signature verification failed").fixes)
    term.healthy()


def test_wrong_key_is_signature_verification_failed(term: Terminal, key_entry: Entry) -> None:
    """A valid key of another signing key: 401 and `JWT error: Signature verification failed.` in the log."""
    message, body = key_entry.span(r"Signature verification failed"), entry("Invalid audience").span(r'^\{"detail"')
    assert f"HTTP 401 `{body}`" in PAGE.read_text()  # the entry says so about this symptom
    term.ok(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout "
        f"> ~/reflector/server/reflector/auth/jwt/keys/authentik_public.pem && {COMPOSE} up -d --wait --force-recreate server"
    )
    before = len(server_log_lines(term))
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"HTTP 401 {body}" in r.detail, r.detail
    assert any(line.endswith(message) for line in server_log_lines(term)[before:])
    seen = term.show(key_entry.checks)
    assert "matches Authentik's signing key" not in seen


def test_unsigned_tokens_are_alg_not_allowed(term: Terminal, key_entry: Entry) -> None:
    """A provider without signing key signs HS256: `JWT error: The specified alg value is not allowed`."""
    message = key_entry.span(r"alg value is not allowed")
    set_key = (  # sets the provider's signing_key to the JSON value $1
        """pk=$(ak_api "providers/oauth2/?name=Reflector" | jq -er '.results[0].pk') && """
        """ak_api "providers/oauth2/$pk/" -X PATCH -d "{\\"signing_key\\": $1}" > /dev/null"""
    )
    term.ok(f"set -- null; {set_key}")
    before = len(server_log_lines(term))
    assert not term.check("sign-in").ok
    assert any(line.endswith(message) for line in server_log_lines(term)[before:])
    # The entry's fix starts with selecting the Signing Key in the admin interface; here through the API.
    term.ok(f"""set -- "\\"$(ak_api "crypto/certificatekeypairs/" | jq -er '.results[0].pk')\\""; {set_key}""")


def test_empty_key_is_http_500(term: Terminal, key_entry: Entry) -> None:
    """An empty authentik_public.pem (what upstream's pipeline leaves): signed-in requests get HTTP 500."""
    body = key_entry.span(r"^Internal Server Error$")
    term.ok(f": > ~/reflector/server/reflector/auth/jwt/keys/authentik_public.pem && {COMPOSE} up -d --wait --force-recreate server")
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"HTTP 500 {body}" in r.detail, r.detail


def test_missing_key_file_is_restarting(term: Terminal, key_entry: Entry) -> None:
    """No key file at all: the server cannot start, and `docker compose ps` lists it as Restarting."""
    state = key_entry.span(r"^Restarting$")
    term.ok(f"rm ~/reflector/server/reflector/auth/jwt/keys/authentik_public.pem && {COMPOSE} up -d --force-recreate server")
    seen = term.show(key_entry.checks)
    assert re.search(rf"reflector-server-1 .*{state}", seen), seen


def test_caddy_502_when_authentik_leaves_the_network(term: Terminal) -> None:
    """Authentik recreated after an .env change drops off reflector_default: Caddy answers 502 and logs `dial tcp`; the script fixes it."""
    e = entry("Caddy returns")
    status = re.search(r"\b(\d{3})\b", e.title)
    assert status is not None
    dial = e.span(r"^dial tcp$")
    container = e.span(r"^authentik-server-1$")
    term.starts_healthy()
    term.ok("echo AUTHENTIK_LOG_LEVEL=info >> ~/authentik/.env && cd ~/authentik && docker compose up -d")
    seen = term.show(e.checks)
    assert seen.split("\n")[0] == status[1], seen
    assert container not in seen.split("\n", 1)[1].split("NAME")[0], seen  # not on reflector_default
    caddy_log = term.ok(f"{COMPOSE} logs caddy")
    assert any(dial in line and container in line for line in caddy_log.splitlines()), caddy_log
    term.fences(e.fixes)
    assert term.show(e.checks).split("\n")[0] == "200"
    term.healthy()


def test_protected_pages_without_require_login(term: Terminal) -> None:
    """FEATURE_REQUIRE_LOGIN=false in the running web: no Log in link; the walkthrough's frontend block and the entry's recreate fix it."""
    e = entry("protected pages")
    link = "Log in"
    assert link in e.bold
    home = f'curl -fsS https://app.example.com/ | grep -c "{link}" || true'
    term.starts_healthy()
    assert term.ok(home).strip() == "1"
    term.ok(f"set_env ~/reflector/www/.env FEATURE_REQUIRE_LOGIN false && {COMPOSE} up -d --wait --force-recreate web")
    assert term.ok(home).strip() == "0"
    seen = term.show(e.checks)
    assert "FEATURE_REQUIRE_LOGIN=false\n" in seen
    term.fences((walkthrough_step("set_env www/.env FEATURE_REQUIRE_LOGIN true"),))
    term.fences(e.fixes)
    assert term.ok(home).strip() == "1"
    term.healthy()


def test_protected_pages_without_jwt_backend(term: Terminal) -> None:
    """AUTH_BACKEND=none in the running server: the backend ignores tokens (no `Invalid authentication`), sign-in lands signed out."""
    e = entry("protected pages")
    mode_probe = walkthrough_step("Bearer not-a-token")  # the entry points at the walkthrough's last check
    term.starts_healthy()
    term.ok(f"set_env ~/reflector/server/.env AUTH_BACKEND none && {COMPOSE} up -d --wait --force-recreate server")
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert "/v1/me with the access token gave HTTP 200 null" in r.detail, r.detail
    assert "Invalid authentication" not in term.ok(mode_probe.text)
    assert "AUTH_BACKEND=none" in term.show(e.checks)
    term.fences((walkthrough_step("set_env server/.env AUTH_BACKEND jwt"),))
    term.fences(e.fixes)
    assert term.ok(mode_probe.text).strip() == '{"detail":"Invalid authentication"}'
    term.healthy()


def test_token_refresh_without_offline_access(term: Terminal) -> None:
    """A provider without offline_access issues no refresh token; the entry's Check shows it missing and its Fix adds it."""
    e = entry("Token refresh")
    scope = e.span(r"^offline_access$")
    term.starts_healthy()
    term.ok(
        """pk=$(ak_api "providers/oauth2/?name=Reflector" | jq -er '.results[0].pk') && """
        f"""m=$(ak_api "propertymappings/provider/scope/?scope_name={scope}" | jq -er '.results[0].pk') && """
        """p=$(ak_api "providers/oauth2/$pk/") && """
        """ak_api "providers/oauth2/$pk/" -X PATCH -d "$(jq -c --arg m "$m" '{property_mappings: (.property_mappings - [$m])}' <<< "$p")" > /dev/null"""
    )
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert "no refresh token" in r.detail, r.detail
    assert scope not in term.show(e.checks).split()
    assert not e.fixes, "the fix is the walkthrough's block, linked from the entry, not a copy"
    assert term.fences((walkthrough_step("OFFLINE_ACCESS=$(ak_api"),)).strip() == "Reflector: 4 scope mappings"
    assert scope in term.show(e.checks).split()
    term.healthy()


def test_token_refresh_with_wrong_url(term: Terminal) -> None:
    """A wrong AUTHENTIK_REFRESH_TOKEN_URL: the entry's empty POST answers 404 instead of 400, and its inline set_env fixes it."""
    e = entry("Token refresh")
    term.starts_healthy()
    wrong = "https://authentik.example.com/application/o/refresh/"
    term.ok(f"set_env ~/reflector/www/.env AUTHENTIK_REFRESH_TOKEN_URL {wrong} && {COMPOSE} up -d --wait --force-recreate web")
    r = term.check("sign-in")
    assert not r.ok, r.detail
    assert f"404 from {wrong}" in term.show(e.checks)
    term.ok(e.span(r"^set_env .* AUTHENTIK_REFRESH_TOKEN_URL "))
    term.ok(f"{COMPOSE} up -d --wait --force-recreate web")
    assert "400 from https://authentik.example.com/application/o/token/" in term.show(e.checks)
    error = e.span(r"^invalid_")
    assert term.ok("curl -s -X POST https://authentik.example.com/application/o/token/ | jq -r .error").strip() == error
    term.healthy()


def test_every_entry_has_a_test() -> None:
    """A new entry on the page needs a reproduction here."""
    covered = ("Redirect URI Error", "Invalid audience", "Signature verification failed", "Caddy returns", "protected pages", "Token refresh")
    for title in ENTRIES:
        assert any(c in title for c in covered), f"no test reproduces the entry {title!r}"
    assert len(ENTRIES) == len(covered)
