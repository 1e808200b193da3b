"""The pages work as readers really use them (scripts/reader.py): a new terminal at each section, every block twice,
results that fail where they must, other values, other starting states; and each ability catches what it is for.

The first test runs every ability that a page's annotations call for and reports it in report.json beside the
plain run. The others run each ability on a small page written to fail it, so a broken ability cannot pass.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts import reader
from scripts import snippets as sn
from scripts.check import DOCS, REPO, load_page
from scripts.reader import Case, compare_worlds, run_ability, write_outcome

PAGES = [load_page(p) for p in sn.discover_pages(REPO)]
RUNS = [pytest.param(page, ability, id=f"{page.path}:{ability}") for page in PAGES for ability in reader.ABILITIES if reader.applies(ability, page)]


@pytest.mark.parametrize(("page", "ability"), RUNS)
def test_page_works_as_readers_use_it(page: sn.Page, ability: str) -> None:
    """Each ability a page calls for passes; its outcome goes into report.json beside the plain run."""
    outcome = run_ability(ability, page)
    write_outcome(outcome)
    assert outcome.status != "failed", f"{page.path} {ability}:\n{outcome.failures()}"


def test_every_walkthrough_page_is_run_in_a_new_terminal() -> None:
    """A page a reader runs over more than one sitting says what a new terminal runs first, so the harness can test it."""
    for path in ("docs/self-hosted-authentik.md", "docs/manual-provider.md", "docs/without-authentication.md", "docs/api-keys.md", "docs/troubleshooting.md"):
        assert (path, "new-terminal") in {(p.values[0].path, p.values[1]) for p in RUNS}, path


def test_shown_results_name_a_world_where_they_fail() -> None:
    """A console block that shows a result claims something works: it names a counter-world where it must not show it."""
    missing = [s.id for page in PAGES for s in page.snippets if s.lang == "console" and s.expected_output and not s.counters]
    assert not missing, f"console blocks that show a result without `% test: counter WORLD`: {missing}"


# ---------------------------------------------------------------------------------------------
# Each ability fails a page written to fail it
# ---------------------------------------------------------------------------------------------


def site(tmp_path: Path, name: str, text: str) -> tuple[sn.Page, Path]:
    """A copy of the site's sources with one more page, `docs/<name>`, holding `text`."""
    root = tmp_path / "site"
    shutil.copytree(DOCS, root / "docs")
    shutil.copy(REPO / "conf.py", root / "conf.py")
    (root / "docs" / name).write_text(text)
    return load_page(root / "docs" / name, root), root


def failed_cases(outcome: reader.Outcome) -> list[Case]:
    return [c for c in outcome.cases if c.status == "failed"]


SHELL_STATE_ACROSS_SECTIONS = """\
# A page that keeps a value only in the shell

## Save the helpers

% test: new-terminal
```bash
echo "A new terminal needs nothing loaded"
```

The audience, kept in a shell variable (as the walkthrough kept CLIENT_ID before):

```bash
AUDIENCE=reflector
```

## Use it later

% test: check env-has file=~/reflector/server/.env AUTH_JWT_AUDIENCE=reflector
```bash
sed -i "s/^AUTH_JWT_AUDIENCE=.*/AUTH_JWT_AUDIENCE=$AUDIENCE/" ~/reflector/server/.env
```
"""


def test_new_terminal_catches_a_value_kept_only_in_the_shell(tmp_path: Path) -> None:
    """In a new terminal the variable is gone, so the step writes an empty setting: the ability names the section and the check."""
    page, root = site(tmp_path, "shell-state.md", SHELL_STATE_ACROSS_SECTIONS)
    outcome = run_ability("new-terminal", page, root)
    failed = failed_cases(outcome)
    assert [c.at for c in failed] == ["section 'Use it later' (line 16)"], outcome.cases
    assert "AUTH_JWT_AUDIENCE is '' in ~/reflector/server/.env, which the program does not read as 'reflector'" in failed[0].reason, failed[0].reason


VALUE_RELOADED_MID_PAGE = """\
# A page whose new terminal reloads a value that is wrong only in the middle of the page

## Save the values

The mode is read from a file each time a terminal loads the values:

% test: shellcheck-disable=SC1090 reason="the file is the one the page writes; shellcheck cannot follow a path under ~"
```bash
echo stable > ~/mode
cat > ~/page-values.sh <<'EOF'
MODE=$(cat ~/mode)
EOF
. ~/page-values.sh
```

% test: new-terminal
% test: shellcheck-disable=SC1090 reason="the file is the one the page writes; shellcheck cannot follow a path under ~"
```bash
. ~/page-values.sh
```

## Enter maintenance

```bash
echo maintenance > ~/mode
```

## Leave maintenance

```bash
echo stable > ~/mode
```

## Look around

```bash
ls ~ > /dev/null
```

## Record the mode

```bash
mkdir -p ~/record && echo "MODE=$MODE" > ~/record/.env
```
"""


def test_new_terminal_runs_the_rest_of_the_page_and_catches_a_later_use(tmp_path: Path) -> None:
    """A terminal opened at 'Leave maintenance' loads MODE=maintenance; that section itself ends as the plain run does,
    and a terminal opened at any later section loads MODE=stable, but two sections later this reader records the
    wrong mode. Only running the rest of the page after the break shows it."""
    page, root = site(tmp_path, "reloaded.md", VALUE_RELOADED_MID_PAGE)
    outcome = run_ability("new-terminal", page, root)
    failed = failed_cases(outcome)
    assert [c.at for c in failed] == ["section 'Leave maintenance' (line 28)"], outcome.cases
    assert "./record/.env:MODE: 'stable' in the plain run, 'maintenance' here" in failed[0].reason, failed[0].reason
    assert [c.status for c in outcome.cases] == ["passed", "failed", "passed", "passed"], outcome.cases


def test_stopping_at_a_later_break_changes_what_runs_never_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that stops where it has become a later break's run is judged as if it had run to the end: with the
    stopping off, every case has the same status; with it on, the terminal opened at 'Enter maintenance' (back to
    MODE=stable by 'Look around') stopped there, and the one opened at 'Leave maintenance' did not (its MODE differs)."""
    page, root = site(tmp_path, "reloaded.md", VALUE_RELOADED_MID_PAGE)
    stopping = run_ability("new-terminal", page, root)
    monkeypatch.setenv("REFLECTOR_NEW_TERMINAL_MEMO", "0")
    to_the_end = run_ability("new-terminal", page, root)
    assert [(c.at, c.status) for c in stopping.cases] == [(c.at, c.status) for c in to_the_end.cases]
    assert not any("stopped at" in c.reason for c in to_the_end.cases), to_the_end.cases
    assert stopping.cases[0].reason == "stopped at section 'Look around' (line 34): from there on, it is the new terminal opened there"
    assert "(from" not in stopping.cases[1].reason, stopping.cases[1].reason


SECRET_REPLACED_ON_RERUN = """\
# A page whose block replaces a secret when run again

```bash
cd ~/reflector && sed -i '/^NEXTAUTH_SECRET=/d' www/.env && echo "NEXTAUTH_SECRET=$(openssl rand -hex 32)" >> www/.env
```
"""


def test_run_twice_catches_a_block_that_replaces_a_secret(tmp_path: Path) -> None:
    """The block passes twice, but its second run signs everyone out: the ability names the secret it changed."""
    page, root = site(tmp_path, "rerun.md", SECRET_REPLACED_ON_RERUN)
    failed = failed_cases(run_ability("run-twice", page, root))
    assert [c.at for c in failed] == ["docs/rerun.md:3"], failed
    assert "changed secrets or keys already in use: ./reflector/www/.env:NEXTAUTH_SECRET" in failed[0].reason


UPSTREAM_FINAL_CHECK = """\
% test: continues self-hosted-authentik.md

# The walkthrough's old last check

% test: counter sign-in-off
```console
$ curl -s -w '\\n' "$API_URL/v1/transcripts"
{"detail":"Not authenticated"}
```
"""


def test_counter_world_catches_a_check_that_passes_with_sign_in_off(tmp_path: Path) -> None:
    """The old last check (no credentials: Not authenticated) shows the same answer when sign-in is off: the suite fails."""
    page, root = site(tmp_path, "old-check.md", UPSTREAM_FINAL_CHECK)
    failed = failed_cases(run_ability("counter-worlds", page, root))
    assert [c.at for c in failed] == ["docs/old-check.md:6 sign-in-off"], failed
    assert "shows the same result when the backend has sign-in off" in failed[0].reason


EXAMPLE_HOST_BUILT_IN_PIECES = """\
% test: continues self-hosted-authentik.md

# A block that builds the example hostname from pieces

```bash
HOST=api
curl -fsS -o /dev/null "https://$HOST.example.com/health"
```
"""


def test_other_values_catch_a_command_that_depends_on_the_example(tmp_path: Path) -> None:
    """With other hostnames, the reader's server has no name api.example.com: the block fails there, and only there."""
    page, root = site(tmp_path, "example-host.md", EXAMPLE_HOST_BUILT_IN_PIECES)
    assert run_ability("run-twice", page, root).status == "passed"  # with the example values it works
    failed = failed_cases(run_ability("other-values", page, root))
    assert [c.at for c in failed] == ["docs/example-host.md:5"], failed
    assert "exited with status 6" in failed[0].reason, failed[0].reason  # curl's "Could not resolve host": no such name there


def test_starts_from_catches_a_check_that_holds_before_its_step(tmp_path: Path) -> None:
    """An effect check that already passes before its step proves nothing about it (REDIS_HOST is set by every install)."""
    text = (DOCS / "without-authentication.md").read_text()
    weak = text.replace(
        "% test: check env-has file=~/reflector/www/.env FEATURE_REQUIRE_LOGIN=false\n",
        "% test: check env-has file=~/reflector/www/.env FEATURE_REQUIRE_LOGIN=false\n% test: check env-has file=~/reflector/server/.env REDIS_HOST=redis\n",
    )
    assert weak != text
    page, root = site(tmp_path, "option2-weak.md", weak)
    failed = failed_cases(run_ability("starts-from", page, root))
    assert failed, "the weak check went unnoticed"
    assert all("already pass before the step" in c.reason for c in failed), failed


def test_starts_from_catches_a_misspelt_setting(tmp_path: Path) -> None:
    """From a fresh install, a misspelt FEATURE_REQUIRE_LOGN leaves the frontend's sign-in on: the step's check fails."""
    text = (DOCS / "without-authentication.md").read_text()
    text = text.replace("set_env www/.env FEATURE_REQUIRE_LOGIN false", "set_env www/.env FEATURE_REQUIRE_LOGN false")
    page, root = site(tmp_path, "option2-typo.md", text)
    failed = failed_cases(run_ability("starts-from", page, root))
    assert {c.at.split(" from ")[1] for c in failed} == {"fresh-install", "signed-in"}, failed
    assert all("FEATURE_REQUIRE_LOGIN is " in c.reason for c in failed), failed


# ---------------------------------------------------------------------------------------------
# Comparing the end of an interrupted run with the plain run (no world needed)
# ---------------------------------------------------------------------------------------------


def test_compare_keeps_secrets_made_before_the_break() -> None:
    """A secret that existed at the break must be the very same at the end; one made after it may differ in value, not in shape."""
    at_break = {"./authentik/.env:PG_PASS": "a" * 48}
    plain = {"./authentik/.env:PG_PASS": "a" * 48, "./reflector/www/.env:NEXTAUTH_SECRET": "ab" * 32}
    assert compare_worlds(plain, at_break, {"./authentik/.env:PG_PASS": "a" * 48, "./reflector/www/.env:NEXTAUTH_SECRET": "cd" * 32}) == []
    replaced = compare_worlds(plain, at_break, {"./authentik/.env:PG_PASS": "b" * 48, "./reflector/www/.env:NEXTAUTH_SECRET": "ab" * 32})
    assert replaced == ["./authentik/.env:PG_PASS: (differs)"]
    short = compare_worlds(plain, at_break, {"./authentik/.env:PG_PASS": "a" * 48, "./reflector/www/.env:NEXTAUTH_SECRET": ""})
    assert short == ["./reflector/www/.env:NEXTAUTH_SECRET: (differs)"]


def test_compare_wants_the_same_settings() -> None:
    """A setting is not random: written after the break or not, it must be the plain run's, and it must be there."""
    plain = {"./reflector/server/.env:AUTH_BACKEND": "jwt", "./reflector/Caddyfile": "1" * 64}
    assert compare_worlds(plain, {}, {"./reflector/server/.env:AUTH_BACKEND": "none", "./reflector/Caddyfile": "1" * 64}) == [
        "./reflector/server/.env:AUTH_BACKEND: 'jwt' in the plain run, 'none' here"
    ]
    assert compare_worlds(plain, {}, {"./reflector/Caddyfile": "2" * 64, "./reflector/server/.env:AUTH_BACKEND": "jwt"}) == [
        "./reflector/Caddyfile: '" + "1" * 64 + "' in the plain run, '" + "2" * 64 + "' here"
    ]
    assert compare_worlds(plain, {}, {"./reflector/Caddyfile": "1" * 64}) == ["./reflector/server/.env:AUTH_BACKEND: missing in the interrupted run"]
