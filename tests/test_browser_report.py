"""The test report and the page scripts in headless Chromium: marks readable in both themes, copy buttons unchanged, scripts that download and run."""

from __future__ import annotations

import json
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from conftest import DOCS, ROOT, build_site
from dotenv.parser import parse_stream
from test_browser import MODES, OUT, SHELL_LANGS, copy_blocks

from scripts import snippets as sn
from scripts.check import check_page, load_page, merge_report, write_page_report
from scripts.sandbox import World
from scripts.tools.bench import serve

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# The pages a reader runs on their own, top to bottom: each gets a script (scripts/pagescript.py).
WALKTHROUGHS = ("self-hosted-authentik", "without-authentication")
SCRIPT_TIMEOUT = 180.0
# Mark and summary text must stay readable: WCAG AA for normal text.
MIN_CONTRAST = 4.5

CONTRAST_JS = """
el => {
  const rgba = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255];
  for (let n = el; n; n = n.parentElement) {
    const c = rgba(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) { bg = c; break; }
  }
  const [hi, lo] = [lum(rgba(getComputedStyle(el).color)), lum(bg)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}
"""


@dataclass(frozen=True, slots=True)
class Reported:
    """The site built with the report of a real run, and each page run's world as it ended."""

    html: Path
    kept: dict[str, Path]  # page -> the kept world (home/, world/)


@pytest.fixture(scope="session")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """Run the walkthrough pages as `python -m scripts.check` does, keep their worlds, and build the site with their report."""
    base = tmp_path_factory.mktemp("reported")
    kept = {}
    for page in WALKTHROUGHS:
        kept[page] = base / "kept" / page
        verdicts = check_page(DOCS / f"{page}.md", keep=kept[page])
        assert [v.status for v in verdicts if v.status != "passed"] == [], f"{page} fails on its own; test_docs.py says why"
        write_page_report(verdicts[0].snippet.page, verdicts, base / "reports")
    merge_report(base / "reports")
    return Reported(build_site(base / "site", base / "reports" / "report.json"), kept)


@pytest.fixture(scope="session")
def reported_base(reported: Reported) -> Iterator[str]:
    with serve(reported.html) as base:
        yield base


def open_page(browser: Any, base: str, page: str, mode: str) -> tuple[Any, Any, list[str]]:
    """A fresh context in `mode` with clipboard access and nothing from other hosts; the tab and its console errors."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    context.add_init_script(f"localStorage.setItem('theme', {json.dumps(mode)})")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base.rstrip("/"))
    context.route(lambda url: not url.startswith(base), lambda route: route.abort())
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("response", lambda r: errors.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
    tab.goto(f"{base}{page}.html", wait_until="load")
    return context, tab, errors


@pytest.mark.parametrize("page", WALKTHROUGHS)
def test_with_marks_the_copy_buttons_still_copy_exactly_the_tested_snippets(browser: Any, reported_base: str, page: str) -> None:
    """Marks sit outside the code block, so what a reader copies is still Snippet.text, and every shell block is marked."""
    context, tab, errors = open_page(browser, reported_base, page, "light")
    try:
        copied = [b.copied for b in copy_blocks(tab) if b.lang in SHELL_LANGS]
        marks = tab.eval_on_selector_all("div[class*=highlight-] + p.verified-mark", "els => els.map(e => e.className)")
    finally:
        context.close()
    expected = [s.text for s in sn.shell_snippets(load_page(DOCS / f"{page}.md"))]
    assert copied == expected
    assert len(marks) >= len(expected)
    assert set(marks) == {"verified-mark verified-passed"}
    assert errors == []


@pytest.mark.parametrize("mode", MODES)
def test_marks_and_the_summary_are_readable_in_both_themes(browser: Any, reported_base: str, mode: str) -> None:
    """Small text in the theme's muted colour must still reach 4.5:1 on its background, light or dark."""
    context, tab, errors = open_page(browser, reported_base, "self-hosted-authentik", mode)
    try:
        ratios = tab.eval_on_selector_all(".verified-mark, .page-tests p", f"els => els.map({CONTRAST_JS})")
        screenshot_around(tab, ".page-tests", OUT / f"summary-{mode}.png", before=140, height=300)
        screenshot_around(tab, "p.verified-mark >> nth=4", OUT / f"marks-{mode}.png", before=300, height=360)
    finally:
        context.close()
    assert ratios, "no marks found"
    low = [round(r, 2) for r in ratios if r < MIN_CONTRAST]
    assert not low, f"{mode}: contrast below {MIN_CONTRAST}:1: {low}"
    assert errors == []


def screenshot_around(tab: Any, selector: str, path: Path, *, before: int, height: int) -> None:
    """A picture of the content column around the element: the block above a mark, and the mark."""
    element = tab.locator(selector).first
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    top = box["y"] + tab.evaluate("scrollY")
    column = tab.locator("article").bounding_box()
    path.parent.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=path, full_page=True, clip={"x": column["x"] - 16, "y": max(0, top - before), "width": column["width"] + 32, "height": height})


# ---------------------------------------------------------------------------------------------
# The page as a script
# ---------------------------------------------------------------------------------------------

# A value that looks generated (a secret, a key): it differs between any two runs, so it is compared by shape.
GENERATED = re.compile(r"^[A-Za-z0-9+/=_-]{24,}$")


def shape(value: str) -> str:
    return "<generated>" if GENERATED.match(value) else value


def effects(kept: Path) -> dict[str, Any]:
    """What a run left in its world: every file in the home folder with its mode and content (generated values by shape), and the world's services."""
    home = kept / "home"
    files: dict[str, Any] = {}
    for path in sorted(home.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(home).as_posix()
        mode = oct(stat.S_IMODE(path.stat().st_mode))
        data = path.read_text(errors="replace")
        if path.name.endswith(".env"):
            content: Any = [(b.key, shape(b.value or "")) for b in parse_stream(StringIO(data)) if b.key]
        elif data.startswith("-----BEGIN "):
            content = data.split("\n", 1)[0]  # each world has its own Authentik signing key
        else:
            content = data
        files[rel] = (mode, content)
    state = json.loads((kept / "world" / "state.json").read_text())
    containers = {
        name: (c.get("status"), sorted(c.get("networks", [])), {k: shape(str(v)) for k, v in sorted(c.get("env", {}).items())})
        for name, c in sorted(state.get("containers", {}).items())
    }
    authentik = state.get("authentik", {})
    return {
        "files": files,
        "containers": containers,
        "caddy_routes": state.get("caddy_routes"),
        "applications": sorted(authentik.get("applications", {})),
        "providers": sorted(p.get("name", "") for p in authentik.get("providers", {}).values()),
    }


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two effect records differ, as paths into them (readable when the test fails)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}/{k}")]
    return [] if a == b else [f"{where}: page run {a!r} != script {b!r}"]


@pytest.mark.parametrize("page", WALKTHROUGHS)
def test_the_downloaded_script_leaves_a_fresh_world_as_the_page_run_does(browser: Any, reported: Reported, reported_base: str, page: str, tmp_path: Path) -> None:
    """The reader's download, run with bash in a fresh world, exits 0 and leaves the same files, settings and services as the page run."""
    context, tab, _ = open_page(browser, reported_base, page, "light")
    try:
        with tab.expect_download() as download:
            tab.locator(".page-tests-script a[download]").click()
        script = Path(download.value.path()).read_text()
        name = download.value.suggested_filename
    finally:
        context.close()
    assert name == f"{page}.sh"
    kept = tmp_path / "script-world"
    with World.start(ROOT, keep_dir=kept) as world:
        # /tmp, so the script itself is not one of the home folder's files that are compared.
        world.run("setup", f"cat > /tmp/{name} <<'SCRIPT_END'\n{script}SCRIPT_END\n", 10)
        result = world.run("script", f"bash /tmp/{name}", SCRIPT_TIMEOUT)
        assert (result.rc, result.timed_out) == (0, False), result.output[-3000:]
        checks = [c for s in load_page(DOCS / f"{page}.md").snippets for c in s.checks]
        failed = [(c.name, r.detail) for c in checks if not (r := world.check(c.name, dict(c.args))).ok]
    assert failed == [], "the page's effect checks fail in the script's world"
    assert differences(effects(reported.kept[page]), effects(kept)) == []
    shutil.rmtree(kept, ignore_errors=True)
