"""When something breaks, the doc tests say where (page:line) and why, within the timeout, and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from scripts import sandbox
from scripts import snippets as sn
from scripts.check import REPO, PageRun, Verdict, load_page
from scripts.sandbox import MIB, SandboxUnavailable, World
from tests import proctree

GUIDE = "self-hosted-authentik.md"


# ---------------------------------------------------------------------------------------------
# Leftovers: every test here must leave no sandbox process and no world temp dir behind.
# ---------------------------------------------------------------------------------------------


def descendants(pid: int) -> dict[int, str]:
    """pid's descendants whose command line mentions bwrap or the executor."""
    return {p: c for p, c in proctree.descendants(pid).items() if "bwrap" in c or "scripts.world.executor" in c}


@pytest.fixture(autouse=True)
def leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Worlds of this test make their temp dirs under a private root; after the test it is empty and no sandbox process of ours runs."""
    root = tmp_path / "tmproot"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    before = descendants(os.getpid())
    yield root
    assert descendants(os.getpid()) == before, "a sandbox process outlived its world"
    assert sorted(p.name for p in root.iterdir()) == [], "a world left its temp dir behind"


# ---------------------------------------------------------------------------------------------
# Pages written for a test, run by the same runner as tests/test_docs.py
# ---------------------------------------------------------------------------------------------


def site(tmp_path: Path, pages: dict[str, str], *, with_guide: bool = False) -> Path:
    """A repo-like root holding conf.py and docs/ with `pages` (and the real walkthrough, to continue it)."""
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    shutil.copy(REPO / "conf.py", root / "conf.py")
    if with_guide:
        shutil.copy(REPO / "docs" / GUIDE, root / "docs" / GUIDE)
    for name, text in pages.items():
        (root / "docs" / name).write_text(text)
    return root


def guide_step(containing: str) -> sn.Snippet:
    """The walkthrough's step whose text contains `containing` (exactly one)."""
    found = [s for s in load_page(REPO / "docs" / GUIDE).snippets if s.kind == "shell" and containing in s.text]
    assert len(found) == 1, f"{len(found)} steps of {GUIDE} contain {containing!r}"
    return found[0]


def shell_page(script: str, *, annotations: str = "", continues: str = "") -> str:
    head = f"% test: continues {continues}\n\n" if continues else ""
    return f"{head}# Fault\n\nA step:\n\n{annotations}```bash\n{script.rstrip()}\n```\n"


def run_one(root: Path, page: str, fault: tuple[str, dict[str, object]] | None = None) -> Verdict:
    """Start the page's world (replaying what it continues), inject `fault`, then run its only step."""
    run = PageRun(load_page(root / "docs" / page, root), root=root)
    try:
        run.start()
        assert run.startup_error is None, run.startup_error
        assert run.world is not None
        if fault is not None:
            res = run.world.fault(*fault)
            assert res.ok, res.detail
        (step,) = run.steps()
        return run.step(step)
    finally:
        run.close()


def message(v: Verdict) -> str:
    """What the pytest front end shows for a failed step: `page:line: reason`, then the output."""
    return f"{v.snippet.id}: {v.reason}\n{v.output}"


def key_extraction_page(tmp_path: Path, annotations: str = "") -> tuple[Path, str]:
    """The walkthrough up to the key extraction, then that very step on a page of its own."""
    step = guide_step("/jwks/")
    page = shell_page(step.source, annotations=annotations, continues=f"{GUIDE} upto={step.line}")
    return site(tmp_path, {"fault.md": page}, with_guide=True), "fault.md"


# ---------------------------------------------------------------------------------------------
# Faults of the fakes, under real guide steps
# ---------------------------------------------------------------------------------------------


def test_authentik_down_fails_the_key_extraction_with_caddys_502(tmp_path: Path) -> None:
    """With Authentik's server unreachable, Caddy answers 502: the reader sees curl's error and the block's own message."""
    root, page = key_extraction_page(tmp_path)
    v = run_one(root, page, ("authentik-down", {}))
    assert v.status == "failed"
    assert message(v).startswith("docs/fault.md:7: exit status 1, the page implies 0")
    assert "The requested URL returned error: 502" in v.output
    assert "Could not extract the public key; authentik_public.pem is unchanged" in v.output


def test_authentik_slower_than_the_step_timeout_is_a_timeout_not_a_hang(tmp_path: Path) -> None:
    """A fake that answers after 30 s under a 3 s step timeout: the step is killed at 3 s and reported as timed out."""
    root, page = key_extraction_page(tmp_path, annotations="% test: timeout=3\n")
    started = time.monotonic()
    v = run_one(root, page, ("authentik-slow", {"seconds": 30}))
    assert time.monotonic() - started < 3 + sandbox.GRACE + 25  # not the fake's 30 s; world start and the replayed walkthrough included
    assert v.status == "failed"
    assert message(v).startswith("docs/fault.md:8: timed out after 3 s; its whole process group was killed")


def test_jwks_without_x5c_fails_the_key_extraction_and_keeps_the_old_key(tmp_path: Path) -> None:
    """A JWKS whose key has no certificate chain: jq -e finds null, and the block says the key file is unchanged."""
    root, page = key_extraction_page(tmp_path)
    v = run_one(root, page, ("jwks-without-x5c", {}))
    assert v.status == "failed"
    assert message(v).startswith("docs/fault.md:7: exit status 1, the page implies 0")
    assert "Could not extract the public key; authentik_public.pem is unchanged" in v.output


def test_untrusted_certificate_fails_with_curls_certificate_error(tmp_path: Path) -> None:
    """A certificate the world's CA did not sign: curl refuses it (exit 60), so no key is taken from an impostor."""
    root, page = key_extraction_page(tmp_path)
    v = run_one(root, page, ("untrusted-cert", {"host": "authentik.example.com"}))
    assert v.status == "failed"
    assert message(v).startswith("docs/fault.md:7: exit status 1, the page implies 0")
    assert "curl: (60) SSL certificate problem" in v.output


def test_clearing_faults_lets_the_same_step_pass(tmp_path: Path) -> None:
    """The control: after `clear`, the step that failed under a fault passes, so the failures above come from the faults."""
    root, page = key_extraction_page(tmp_path)
    run = PageRun(load_page(root / "docs" / page, root), root=root)
    try:
        run.start()
        assert run.world is not None
        assert run.world.fault("authentik-down", {}).ok
        assert run.world.fault("clear", {}).detail == "faults in force: none"
        (step,) = run.steps()
        v = run.step(step)
    finally:
        run.close()
    assert v.status == "passed", message(v)


def test_unknown_fault_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    """A misspelt fault name is an error listing the real ones, not a silently healthy world."""
    with World.start(REPO) as world:
        res = world.fault("authentik-dwn", {})
    assert not res.ok
    assert "unknown fault 'authentik-dwn'" in res.detail
    assert "authentik-down" in res.detail


# ---------------------------------------------------------------------------------------------
# Snippets that misbehave
# ---------------------------------------------------------------------------------------------


def test_hanging_snippet_is_killed_at_its_timeout(tmp_path: Path) -> None:
    """`sleep 600` under timeout=2: the whole group is killed after 2 s (plus the grace period), and the report says so."""
    root = site(tmp_path, {"hang.md": shell_page("echo started\nsleep 600", annotations="% test: timeout=2\n")})
    started = time.monotonic()
    v = run_one(root, "hang.md")
    assert time.monotonic() - started < 2 + sandbox.GRACE + 25  # not the 600 s sleep; world start included
    assert v.status == "failed"
    assert message(v).startswith("docs/hang.md:6: timed out after 2 s; its whole process group was killed")
    assert "started" in v.output


def test_background_process_is_reported_as_leftover_and_killed(tmp_path: Path) -> None:
    """A step that leaves a daemon running fails even though it exited 0, and the daemon is gone before the next step."""
    script = "nohup sleep 600 > /dev/null 2>&1 &\necho launched"
    root = site(tmp_path, {"bg.md": shell_page(script)})
    run = PageRun(load_page(root / "docs" / "bg.md", root), root=root)
    try:
        run.start()
        assert run.world is not None
        (step,) = run.steps()
        v = run.step(step)
        # The job is named by a whole command line, whatever it was doing when the step ended: still the
        # step's forked bash (before it ran nohup), nohup, or sleep. Never a blank one ("[bash]"): the
        # executor stops leftovers before it reads them, and a stopped process is never mid-exec.
        text = message(v)
        assert text.startswith("docs/bg.md:5: left processes running (killed): "), text
        assert v.reason.removeprefix("left processes running (killed): ") in {
            "sleep 600",
            "nohup sleep 600",
            "bash /run/world/snippets/docs_bg.md_5.sh (a background subshell of this step)",
        }, v.reason
        after = run.world.run("docs/bg.md:99", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '", 10)
    finally:
        run.close()
    assert "sleep 600" not in after.output


def test_unbounded_write_hits_the_small_home_and_reports_no_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`yes > file` in a 1 MiB HOME stops with ENOSPC within the timeout instead of filling the host's disk."""
    monkeypatch.setattr("scripts.check.World.start", partial(World.start, home_size=1 * MIB))
    root = site(tmp_path, {"fill.md": shell_page("yes > ~/filler", annotations="% test: timeout=10\n")})
    v = run_one(root, "fill.md")
    assert v.status == "failed"
    assert message(v).startswith("docs/fill.md:6: exit status 1, the page implies 0")
    assert "No space left on device" in v.output


# ---------------------------------------------------------------------------------------------
# The host cannot run the world
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """check_prerequisites() probes once per process; these tests need it to probe again, and later tests need a clean cache."""
    sandbox.check_prerequisites.cache_clear()
    yield
    sandbox.check_prerequisites.cache_clear()


@pytest.mark.parametrize(("tool", "package"), [("jq", "jq"), ("openssl", "openssl"), ("curl", "curl")])
def test_missing_host_tool_says_which_package_to_install(tool: str, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    """Without jq (or openssl, curl) on the host, no world starts and the message names the apt package."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for t in sandbox.HOST_TOOLS:
        real = shutil.which(t, path="/usr/bin:/bin")
        assert real is not None, f"{t} is needed on this host to run the test suite"
        if t != tool:
            (bin_dir / t).symlink_to(real)
    real_which = shutil.which
    # The host check looks in the sandbox's PATH (/usr/bin:/bin); point it at a PATH without the tool.
    monkeypatch.setattr("scripts.sandbox.shutil.which", lambda cmd, mode=os.F_OK | os.X_OK, path=None: real_which(cmd, mode, str(bin_dir)))
    root = site(tmp_path, {"p.md": shell_page("echo hi")})
    run = PageRun(load_page(root / "docs" / "p.md", root), root=root)
    with pytest.raises(SandboxUnavailable) as e:
        run.start()
    run.close()
    assert str(e.value) == f"the guide's commands need {tool} on the host: `sudo apt-get install {package}`"


def test_no_user_namespaces_is_reported_with_how_to_enable_them(monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    """When the kernel refuses the namespace call, the probe says so and how to enable user namespaces; nothing runs unsandboxed."""
    # An invalid flag makes the real unshare(2) in the real preexec fail, as a disabled userns would.
    monkeypatch.setattr(sandbox, "CLONE_NEWUSER", sandbox.CLONE_NEWUSER | 0x1)
    with pytest.raises(SandboxUnavailable) as e:
        sandbox.check_prerequisites()
    text = str(e.value)
    assert text.startswith("cannot create a user and network namespace (")
    assert "unshare(CLONE_NEWUSER|CLONE_NEWNET): Invalid argument" in text
    assert "user namespaces may be disabled or restricted; enable them with `sudo sysctl -w kernel.unprivileged_userns_clone=1`" in text


def test_no_user_namespaces_after_a_good_probe_still_fails_world_start_with_the_hint(monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    """If namespaces go away after the (cached) probe, World.start fails the same clear way instead of hanging."""
    sandbox.check_prerequisites()
    monkeypatch.setattr(sandbox, "CLONE_NEWUSER", sandbox.CLONE_NEWUSER | 0x1)
    with pytest.raises(SandboxUnavailable) as e:
        World.start(REPO)
    assert "cannot enter the sandbox's namespaces" in str(e.value)
    assert "unshare(CLONE_NEWUSER|CLONE_NEWNET): Invalid argument" in str(e.value)
    assert "sudo sysctl -w kernel.unprivileged_userns_clone=1" in str(e.value)


# ---------------------------------------------------------------------------------------------
# Pages that don't parse: the error names page:line, before any world starts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("# P\n\n```bash\necho never closed\n", "docs/bad.md:3: unterminated '```' fence", id="unterminated-fence"),
        pytest.param("# P\n\n% test: chek env-has\n```bash\ntrue\n```\n", "docs/bad.md:3: ", id="unknown-annotation"),
        pytest.param("# P\n\ntext\n\n% test: exit=1\n", "docs/bad.md:5: ", id="dangling-annotation"),
        pytest.param("# P\n\n% tests: exit=1\n```bash\ntrue\n```\n", "docs/bad.md:3: comment 'tests: exit=1' looks like a test annotation", id="misspelt-prefix"),
        pytest.param("# P\n\n    echo indented\n", "docs/bad.md:3: indented code block", id="indented-code"),
        pytest.param("# P\n\n```zsh\necho hi\n```\n", "docs/bad.md:3: ", id="unknown-shell-language"),
    ],
)
def test_malformed_page_is_an_error_naming_page_and_line(text: str, expected: str, tmp_path: Path) -> None:
    """A malformed page never yields a silently shorter list of steps."""
    root = site(tmp_path, {"bad.md": text})
    with pytest.raises(sn.SnippetError) as e:
        load_page(root / "docs" / "bad.md", root)
    assert str(e.value).startswith(expected), str(e.value)


def test_continuing_a_missing_page_names_the_page(tmp_path: Path) -> None:
    """`continues` to a page that does not exist is an error naming the continuing page, before any world starts."""
    root = site(tmp_path, {"c.md": shell_page("true", continues="nowhere.md")})
    with pytest.raises(sn.SnippetError) as e:
        load_page(root / "docs" / "c.md", root)
    assert str(e.value).startswith("docs/c.md:1: "), str(e.value)
    assert "nowhere.md" in str(e.value)
