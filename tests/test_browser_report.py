"""The test report, the reader's values and the page scripts in headless Chromium: readable and accessible in both themes,
copy buttons that copy exactly the tested (or the reader's) snippets, scripts that download and run as the page does."""

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
from test_browser import AXE, AXE_JS, MODES, OUT, SERIOUS, SHELL_LANGS, Violation, copy_blocks, upstream

from scripts import reader, replay
from scripts import snippets as sn
from scripts.check import PageRun, load_page, merge_report, write_page_report
from scripts.tools.bench import serve

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# The pages that offer their commands as a script (scripts/pagescript.py): two that start on their own
# or from a starting state, two that continue the walkthrough in a new terminal (one of them returns to it).
SCRIPTED = ("self-hosted-authentik", "without-authentication", "manual-provider", "rotate-client-secret")
WALKTHROUGH = "self-hosted-authentik"
SCRIPT_TIMEOUT = 180.0
# Mark and summary text must stay readable: WCAG AA for normal text.
MIN_CONTRAST = 4.5
VALUES_KEY = "reflector-docs:your-values"  # your-values.js keeps the reader's values under this localStorage key
# The other values of the deployer's "other values" run: what a reader types into the form.
MINE = dict(reader.OTHER_VALUES)

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
    holding: dict[str, list[str]]  # page -> its effect checks that hold when the run ends (a later step may undo an earlier one's)


def holding_checks(run: PageRun, page: sn.Page) -> list[str]:
    """The page's own effect checks that hold in the run's world now, as `name args`."""
    assert run.world is not None
    checks = [c for s in run.steps() if s.page == page.path for c in s.checks]
    return [f"{c.name} {dict(c.args)}" for c in checks if run.world.check(c.name, dict(c.args)).ok]


@pytest.fixture(scope="session")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """Run the scripted pages as `python -m scripts.check` does, keep their worlds, and build the site with their report."""
    base = tmp_path_factory.mktemp("reported")
    kept, holding = {}, {}
    for name in SCRIPTED:
        kept[name] = base / "kept" / name
        page = load_page(DOCS / f"{name}.md")
        run = PageRun(page, keep=kept[name])
        try:
            run.start()
            # A page that returns to another runs that page's rest too: the script stops with the page.
            verdicts = [run.step(s) for s in run.steps() if s.page == page.path]
            assert [v.status for v in verdicts if v.status != "passed"] == [], f"{name} fails on its own; test_docs.py says why"
            holding[name] = holding_checks(run, page)
        finally:
            run.close()
        write_page_report(page.path, verdicts, base / "reports")
    merge_report(base / "reports")
    return Reported(build_site(base / "site", base / "reports" / "report.json"), kept, holding)


@pytest.fixture(scope="session")
def reported_base(reported: Reported) -> Iterator[str]:
    with serve(reported.html) as base:
        yield base


def open_page(browser: Any, base: str, page: str, mode: str, mine: dict[str, str] | None = None, *, javascript: bool = True) -> tuple[Any, Any, list[str]]:
    """A fresh context in `mode` (with the reader's values `mine` already stored) with clipboard access and nothing from other hosts."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True, java_script_enabled=javascript)
    context.add_init_script(f"localStorage.setItem('theme', {json.dumps(mode)})")
    if mine is not None:
        context.add_init_script(f"localStorage.setItem({json.dumps(VALUES_KEY)}, {json.dumps(json.dumps(mine))})")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base.rstrip("/"))
    context.route(lambda url: not url.startswith(base), lambda route: route.abort())
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("response", lambda r: errors.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
    tab.goto(f"{base}{page}.html", wait_until="load")
    return context, tab, errors


def the_guides_values() -> tuple[sn.PageValue, ...]:
    return sn.declared_values([load_page(p) for p in sn.discover_pages(ROOT)])


def what_blocks_copy(page: str, mine: dict[str, str] | None = None) -> list[str]:
    """What each block's copy button must copy, in page order: the extraction's text, with the reader's values substituted."""
    values = the_guides_values()
    out = []
    for s in load_page(DOCS / f"{page}.md").snippets:
        if s.kind == "diagram":
            continue
        text = s.text if s.kind == "shell" else s.source.removesuffix("\n")
        out.append(sn.substitute(text, values, mine) if mine else text)
    return out


@pytest.mark.parametrize("page", SCRIPTED)
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
    context, tab, errors = open_page(browser, reported_base, WALKTHROUGH, mode)
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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", SCRIPTED)
def test_axe_finds_nothing_serious_in_the_marks_the_script_link_and_the_values_form(browser: Any, reported_base: str, page: str, mode: str) -> None:
    """The report's additions and the reader's values (form open, values in the blocks) pass axe-core in both themes."""
    context, tab, errors = open_page(browser, reported_base, page, mode, MINE)
    try:
        tab.add_script_tag(path=str(AXE))
        violations = [Violation(**v) for v in tab.evaluate(AXE_JS)]
        shown = tab.locator(".page-tests, .verified-mark").count(), tab.locator("#your-values:visible").count()
    finally:
        context.close()
    assert shown[0] > 0, "no marks or summary to check"
    assert shown[1] == (page == WALKTHROUGH), "the values form shows on the walkthrough only"
    ours = [str(v) for v in violations if v.impact in SERIOUS and not upstream(v)]
    assert not ours, f"{page}.html ({mode}):\n" + "\n".join(ours)
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
# Your values
# ---------------------------------------------------------------------------------------------


def type_values(tab: Any, mine: dict[str, str]) -> None:
    """What a reader does: type each hostname (a URL value's host) and the email into the form, and submit it."""
    for name, value in mine.items():
        shown = sn.PageValue(name, value).host or value
        tab.fill(f"#your-values-{name}", shown)
    tab.click("#your-values button[type=submit]")


@pytest.mark.parametrize("mode", MODES)
def test_the_readers_values_are_what_every_block_shows_and_copies(browser: Any, reported_base: str, mode: str) -> None:
    """Typed into the form, the values replace exactly the spans the extraction finds (scripts/snippets.py substitute),
    in what each block shows and what its copy button copies; they survive a reload, and reset brings the examples back."""
    context, tab, errors = open_page(browser, reported_base, WALKTHROUGH, mode)
    try:
        type_values(tab, MINE)
        status = tab.locator(".your-values-status").inner_text()
        skipped = tab.evaluate("document.getElementById('your-values-data').dataset.skipped")
        mine_copied = [b.copied for b in copy_blocks(tab) if b.copied is not None]
        shown = tab.locator(".your-value").all_inner_texts()
        screenshot_around(tab, "#your-values", OUT / f"values-{mode}.png", before=60, height=620)
        tab.reload(wait_until="load")
        kept = [tab.input_value(f"#your-values-{name}") for name in MINE]
        after_reload = [b.copied for b in copy_blocks(tab) if b.copied is not None]
        tab.click("#your-values .your-values-reset")
        reset = [b.copied for b in copy_blocks(tab) if b.copied is not None]
        stored = tab.evaluate(f"localStorage.getItem({json.dumps(VALUES_KEY)})")
    finally:
        context.close()
    assert (status, skipped) == ("The blocks of this guide now show your values.", "0")
    assert mine_copied == what_blocks_copy(WALKTHROUGH, MINE)
    assert mine_copied != what_blocks_copy(WALKTHROUGH), "the values changed no block: the comparison proves nothing"
    typed = set(MINE.values()) | {host for n, v in MINE.items() if (host := sn.PageValue(n, v).host)}
    assert shown
    assert set(shown) <= typed, "each replaced span is marked as the reader's own"
    assert kept == [sn.PageValue(n, v).host or v for n, v in MINE.items()]
    assert after_reload == mine_copied
    assert (reset, stored) == (what_blocks_copy(WALKTHROUGH), None)
    assert errors == []


def test_a_value_that_is_no_hostname_is_refused_and_changes_nothing(browser: Any, reported_base: str) -> None:
    context, tab, errors = open_page(browser, reported_base, WALKTHROUGH, "light")
    try:
        tab.fill("#your-values-APP_URL", "not a host/with space")
        tab.click("#your-values button[type=submit]")
        status = tab.locator(".your-values-status").inner_text()
        copied = [b.copied for b in copy_blocks(tab) if b.copied is not None]
        stored = tab.evaluate(f"localStorage.getItem({json.dumps(VALUES_KEY)})")
    finally:
        context.close()
    assert status.startswith("Not changed: A hostname like app.example.com")
    assert (copied, stored) == (what_blocks_copy(WALKTHROUGH), None)
    assert errors == []


def test_without_javascript_the_examples_stay_and_no_form_shows(browser: Any, reported_base: str) -> None:
    """The form can do nothing without the script, so it stays hidden; the blocks show the guide's examples."""
    context, tab, _ = open_page(browser, reported_base, WALKTHROUGH, "light", MINE, javascript=False)
    try:
        visible = tab.locator("#your-values").is_visible()
        texts = tab.locator(".your-values-block pre").all_inner_texts()
    finally:
        context.close()
    examples = [v.example for v in the_guides_values()]
    assert visible is False
    assert texts
    assert all(not any(v in t for v in MINE.values()) for t in texts)
    assert any(e in t for t in texts for e in examples)


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


def download_script(browser: Any, base: str, page: str, mine: dict[str, str] | None = None) -> tuple[str, str]:
    """The script a reader downloads from the page's link (with their values stored, when given): its name and text."""
    context, tab, _ = open_page(browser, base, page, "light", mine)
    try:
        with tab.expect_download() as download:
            tab.locator(".page-tests-script a[download]").click()
        return download.value.suggested_filename, Path(download.value.path()).read_text()
    finally:
        context.close()


def run_script(page: sn.Page, name: str, script: str, kept: Path, mine: dict[str, str] | None = None) -> list[str]:
    """Run the script with bash where the page's reader starts (after the pages it continues, in a new terminal), keeping
    the world; the page's effect checks that hold at its end."""
    run = PageRun(page, keep=kept, mine=mine)
    try:
        run.start()
        assert run.startup_error is None, run.startup_error
        assert run.world is not None
        if page.continues:
            replay.fresh_shell(run.world)
        # /tmp, so the script itself is not one of the home folder's files that are compared.
        run.world.run("setup", f"cat > /tmp/{name} <<'SCRIPT_END'\n{script}SCRIPT_END\n", 10)
        result = run.world.run("script", f"bash /tmp/{name}", SCRIPT_TIMEOUT)
        assert (result.rc, result.timed_out) == (0, False), result.output[-3000:]
        return holding_checks(run, run.page)
    finally:
        run.close()


@pytest.mark.parametrize("page", SCRIPTED)
def test_the_downloaded_script_leaves_the_world_as_the_page_run_does(browser: Any, reported: Reported, reported_base: str, page: str, tmp_path: Path) -> None:
    """The reader's download, run with bash where the page starts, exits 0 and leaves the same files, settings and services as the page run."""
    name, script = download_script(browser, reported_base, page)
    assert name == f"{page}.sh"
    kept = tmp_path / "script-world"
    holding = run_script(load_page(DOCS / f"{page}.md"), name, script, kept)
    # Checks that run earlier change what a later one finds (a key written "by this step", an API key's name taken),
    # so the script's world, checked once, may pass more: it must pass every one that held after the page run.
    assert reported.holding[page], "no effect check holds after the page run: the comparison proves little"
    assert [c for c in reported.holding[page] if c not in holding] == []
    assert differences(effects(reported.kept[page]), effects(kept)) == []
    shutil.rmtree(kept, ignore_errors=True)


def test_the_downloaded_script_carries_the_readers_values(browser: Any, reported_base: str, tmp_path: Path) -> None:
    """With values in the form, the download holds them where the page's blocks do, and runs in a world that serves those
    names as the page does with the same values (the "other values" run)."""
    name, script = download_script(browser, reported_base, WALKTHROUGH, MINE)
    _, examples = download_script(browser, reported_base, WALKTHROUGH)
    values = the_guides_values()
    assert script == sn.substitute(examples, values, MINE)
    assert script != examples
    page = load_page(DOCS / f"{WALKTHROUGH}.md")
    page_run, script_run = tmp_path / "page-run", tmp_path / "script-run"
    run = PageRun(page, keep=page_run, mine=MINE)
    try:
        run.start()
        failed = [v for v in (run.step(s) for s in run.steps()) if v.status == "failed"]
        assert failed == [], failed[0].reason if failed else ""
        holding = holding_checks(run, run.page)
    finally:
        run.close()
    assert holding, "no effect check holds after the page run: the comparison proves little"
    assert [c for c in holding if c not in run_script(page, name, script, script_run, MINE)] == []
    assert differences(effects(page_run), effects(script_run)) == []
