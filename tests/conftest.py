"""Shared fixtures: the guide built once per session, exactly as `make html` builds it, the browser that opens it; every world's traffic contract-checked."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import toolchain

# --shard K/N, and on GitHub Actions the error lines at page:line and the job summary.
CI_PLUGIN = "scripts.tools.ci"
pytest_plugins = [CI_PLUGIN]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def build_site(out: Path, report: Path, docs: Path = DOCS, conf: Path = ROOT) -> Path:
    """A strict HTML build of `docs` into `out`, showing the test report at `report` (a missing file: none)."""
    cmd = [sys.executable, "-m", "sphinx", "-M", "html", str(docs), str(out), "-c", str(conf), "--nitpicky", "--fail-on-warning", "--quiet"]
    proc = subprocess.run([*cmd, "-D", f"verified_report={report}"], capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        pytest.fail(f"the site does not build (make html fails the same way):\n{proc.stderr}", pytrace=False)
    return out / "html"


@pytest.fixture(scope="session")
def site_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The strict HTML build of docs/ in a temp dir, so tests never read a stale _build/ (nor a report left there)."""
    out = tmp_path_factory.mktemp("site")
    return build_site(out, out / "no-report.json")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium via Playwright (never a downloaded browser); skipped where there is none, except in CI."""
    chromium = shutil.which("chromium")
    if chromium is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    # Imported here, not at the top: Playwright is in the test set, and a docs-only venv must reach
    # pytest_configure's refusal, which names the install command, instead of an ImportError.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.fixture(autouse=True)
def contract_checked_traffic(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test makes a world's fakes answer (a correction's upstream variant, a troubleshooting
    reproduction, a fault) is held to the real services' contracts too, not only the doc tests' steps."""
    # Imported here, not at the top: scripts.contract needs pydantic (the test set), and a docs-only venv
    # must reach pytest_configure's refusal, which names the install command, instead of an ImportError.
    from scripts.contract import check_traffic
    from scripts.sandbox import World

    seen: list[dict[str, Any]] = []

    def recording(name: str) -> Any:
        original = getattr(World, name)

        def call(self: World, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            seen.extend(result.traffic)
            return result

        return call

    for name in ("run", "check", "apply"):
        monkeypatch.setattr(World, name, recording(name))
    yield
    if not request.node.nodeid.startswith("tests/test_docs.py"):  # PageRun already judges each doc step's traffic
        found = check_traffic(seen, request.node.nodeid)
        assert not found, "\n".join(found)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a docs-only venv with the fix; name this run, before xdist starts its workers (they inherit the environment), for its report folder."""
    try:
        toolchain.require("the test suite")
    except toolchain.ToolchainMissing as e:
        raise pytest.UsageError(str(e)) from None
    if not hasattr(config, "workerinput"):
        os.environ["REFLECTOR_DOCS_RUN"] = f"{os.getpid()}-{time.time_ns()}"
        config.stash[_STARTED] = time.monotonic()
    if runs_only_the_doc_tests_here(config):
        # The walkthrough's world boots while pytest imports and collects (about a second); scripts/lanes.py takes it.
        from scripts import replay

        replay.prestart(ROOT)


def runs_only_the_doc_tests_here(config: pytest.Config) -> bool:
    """This process will run the doc steps and nothing else: only tests/test_docs.py is named, nothing is only
    collected, and no xdist controller hands the tests to workers (a worker cannot know it gets the doc steps)."""
    doc_tests = ROOT / "tests" / "test_docs.py"
    named = [Path(config.invocation_params.dir, str(a).split("::", 1)[0]).resolve() for a in config.args]
    distributed = bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")
    return bool(named) and all(p == doc_tests for p in named) and not config.option.collectonly and not distributed


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported and collected lives until the run ends: moved out of the collector's reach, it is not walked
    again by each full collection while the pages run, nor by the five that pytest makes at exit (unraisableexception)."""
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Join the per-page verdicts (written by whichever worker ran each page) into report.json."""
    if hasattr(session.config, "workerinput"):
        return
    import shutil

    from scripts import replay
    from scripts.check import REPORT_DIR, merge_report, pages_dir

    replay.remove_run(os.environ["REFLECTOR_DOCS_RUN"])

    if pages_dir().is_dir():
        started = session.config.stash.get(_STARTED, None)
        wall = round(time.monotonic() - started, 2) if started is not None else None
        report = merge_report(sandbox="bubblewrap (user, pid, ipc, uts and network namespaces)", wall_seconds=wall)
        session.config.stash[session.config.pluginmanager.get_plugin(CI_PLUGIN).REPORT_KEY] = report
        shutil.rmtree(pages_dir())
        s = report["summary"]
        session.config.stash[_SUMMARY] = f"snippets: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped -> {REPORT_DIR / 'report.json'}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    line = config.stash.get(_SUMMARY, None)
    if line:
        terminalreporter.write_line(line)


_STARTED = pytest.StashKey[float]()
_SUMMARY = pytest.StashKey[str]()
