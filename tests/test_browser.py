"""The built site in headless Chromium: diagrams render in both themes, copy buttons copy what the tests run, nothing leaves 127.0.0.1, axe-core passes."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from scripts.tools import favicon

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OUT = ROOT / "_build" / "browser"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TESTING_PAGE = DOCS / "testing.md"
MODES = ("light", "dark")
# The fences scripts/snippets.py runs (its SHELL_LANGS); Sphinx marks each with div.highlight-<lang>.
SHELL_LANGS = ("bash", "console", "sh", "shell", "shell-session")
# Pages Sphinx (and sphinx-notfound-page) generate besides the guide's own; they must stay as clean as the guide's pages.
GENERATED = ("search", "404")
# Rendering waits on a condition, never a fixed sleep; this bounds a diagram that never renders.
RENDER_TIMEOUT_MS = 20_000
SENTINEL = "(the copy button put nothing on the clipboard)"


def guide_pages() -> list[str]:
    """The guide's docnames (docs/**/*.md without the suffix), as Sphinx names them."""
    return sorted(
        p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md") if not any(part.startswith((".", "_")) for part in p.relative_to(DOCS).parts)
    )


def source(page: str) -> Path:
    """The page's MyST file."""
    return DOCS / f"{page}.md"


PAGES = guide_pages()
ALL_PAGES = PAGES + list(GENERATED)
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@dataclass(frozen=True, slots=True)
class Block:
    """One highlighted code block: its language, its text as the copy button reads it, and what the button copied."""

    lang: str
    text: str
    copied: str | None  # None when the block has no copy button


@dataclass(frozen=True, slots=True)
class Diagram:
    """One mermaid block after rendering."""

    svg: bool
    error: bool  # mermaid's own "Syntax error in text" graphic
    text_luminance: float | None  # of the SVG's text colour, 0 (black) .. 1 (white)
    fullscreen_icon: str  # the button's ::before mask-image, "" when there is no button
    title: str  # the SVG's accessible name (accTitle), "" when it has none
    description: str  # the SVG's accessible description (accDescr), "" when it has none


@dataclass(frozen=True, slots=True)
class Violation:
    """One element that fails one axe-core rule."""

    rule: str
    impact: str  # minor, moderate, serious, critical
    help: str
    target: str  # axe's CSS selector for the element
    html: str  # the element's opening tag, as axe quotes it

    def __str__(self) -> str:
        return f"{self.impact} {self.rule} ({self.help}) at {self.target}: {self.html[:160]}"


@dataclass(frozen=True, slots=True)
class Visit:
    """What one page did in one theme: its requests, errors, diagrams and code blocks."""

    page: str
    mode: str
    requests: tuple[str, ...]
    failed: tuple[str, ...]  # requests that failed or answered >= 400
    errors: tuple[str, ...]  # console errors and uncaught exceptions
    diagrams: tuple[Diagram, ...]
    render_timeout: bool
    violations: tuple[Violation, ...]  # axe-core's findings, one per (rule, element)
    blocks: tuple[Block, ...]
    fullscreen_opens: bool | None  # None on pages without a diagram (and in dark mode, not tried)
    switches_to_light: bool | None  # diagrams re-rendered light after furo's toggle; None unless dark with diagrams


class Quiet(SimpleHTTPRequestHandler):
    """Serves the built site; `.mjs` as JavaScript, or the browser refuses mermaid's ES modules."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}  # noqa: RUF012 - the stdlib's own class attribute

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


class Pages(Quiet):
    """The built site as GitHub Pages serves it: under the site's path (/<repository>/), and 404.html, with status 404, for anything else."""

    prefix = "/"

    def translate_path(self, path: str) -> str:
        if not path.startswith(self.prefix):
            return str(Path(self.directory) / ".outside-the-site")  # missing on purpose: answered by send_error
        return super().translate_path("/" + path[len(self.prefix) :])

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code != 404:
            super().send_error(code, message, explain)
            return
        body = (Path(self.directory) / "404.html").read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def site_path(site_html: Path) -> str:
    """The URL path the site is published under (conf.py's SITE_URL), from the built index page's canonical link."""
    found = re.search(r'<link rel="canonical" href="([^"]+)"', (site_html / "index.html").read_text(encoding="utf-8"))
    assert found, "index.html has no canonical link (conf.py html_baseurl)"
    return urlsplit(found.group(1)).path.removesuffix("index.html")


@pytest.fixture(scope="session")
def server(site_html: Path) -> Iterator[str]:
    """The built site on 127.0.0.1 at an ephemeral port, under the path it is published at, bound before it is handed out."""
    handler = type("SitePages", (Pages,), {"prefix": site_path(site_html)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(site_html)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{handler.prefix}"
    httpd.shutdown()
    httpd.server_close()


class Visits:
    """Each (page, theme) is opened once; the tests below each judge one aspect of the same visit."""

    def __init__(self, browser: Any, base: str) -> None:
        self.browser = browser
        self.base = base
        self.cache: dict[tuple[str, str], Visit] = {}

    def get(self, page: str, mode: str) -> Visit:
        if (page, mode) not in self.cache:
            self.cache[page, mode] = self.visit(page, mode)
        return self.cache[page, mode]

    def visit(self, page: str, mode: str) -> Visit:
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            return self._visit(context, page, mode)
        finally:
            context.close()

    def _visit(self, context: Any, page: str, mode: str) -> Visit:
        # furo keeps the reader's choice in localStorage "theme" and applies it before any other script.
        context.add_init_script(f"localStorage.setItem('theme', {json.dumps(mode)})")
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base))
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        # Anything not from the site is recorded (below) and refused, so a regression fails fast and offline.
        context.route(lambda url: not url.startswith(self.base), lambda route: route.abort())
        tab = context.new_page()
        requests: list[str] = []
        failed: list[str] = []
        errors: list[str] = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
        tab.on("response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{self.base}{page}.html", wait_until="load")

        render_timeout = False
        if tab.locator(".mermaid").count():
            # sphinxcontrib-mermaid adds the fullscreen buttons once every diagram has rendered.
            try:
                tab.wait_for_function(
                    "() => [...document.querySelectorAll('.mermaid')].every("
                    "  el => el.querySelector('svg') && el.parentElement.querySelector('.mermaid-fullscreen-btn'))",
                    timeout=RENDER_TIMEOUT_MS,
                )
            except PlaywrightTimeout:
                render_timeout = True  # the unrendered diagrams are reported by test_every_diagram_renders
        diagrams = tuple(Diagram(**d) for d in tab.evaluate(DIAGRAMS_JS))
        OUT.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=OUT / f"{page.replace('/', '_')}-{mode}.png", full_page=True)
        # axe-core from node_modules, injected as an inline script: nothing is fetched.
        tab.add_script_tag(path=str(AXE))
        violations = tuple(Violation(**v) for v in tab.evaluate(AXE_JS))

        switches = None
        if mode == "dark" and diagrams and not render_timeout:
            # furo's toggle goes dark -> light (the context prefers light) by setting body[data-theme].
            tab.locator("button.theme-toggle:visible").first.click()
            try:
                tab.wait_for_function(f"() => ({LUMINANCES_JS})().every(lum => lum !== null && lum < 0.5)", timeout=RENDER_TIMEOUT_MS)
                switches = True
            except PlaywrightTimeout:
                switches = False
        opens = None
        if mode == "light" and diagrams and not render_timeout:
            tab.locator(".mermaid-fullscreen-btn").first.click()
            opens = tab.locator(".mermaid-fullscreen-modal.active svg").count() == 1
            tab.keyboard.press("Escape")
        blocks = copy_blocks(tab) if mode == "light" else ()
        return Visit(page, mode, tuple(requests), tuple(failed), tuple(errors), diagrams, render_timeout, violations, blocks, opens, switches)


def copy_blocks(tab: Any) -> tuple[Block, ...]:
    """Click every copy button, as a reader does, and read what landed on the clipboard."""
    blocks = []
    for pre in tab.locator("div.highlight pre").all():
        lang = pre.evaluate("el => (el.closest('div[class*=\"highlight-\"]').className.match(/highlight-(\\S+)/) || [, ''])[1]")
        text = pre.evaluate("el => el.cloneNode(true).innerText")
        button = pre.locator("xpath=following-sibling::button[contains(@class, 'copybtn')]")
        copied = None
        if button.count():
            tab.evaluate("t => navigator.clipboard.writeText(t)", SENTINEL)
            button.click()
            copied = tab.evaluate("() => navigator.clipboard.readText()")
        blocks.append(Block(lang, text, copied))
    return tuple(blocks)


# Mermaid's theme sets the SVG root's `fill` to its text colour: dark text on light, light on dark.
LUMINANCE_JS = """
svg => {
  const m = svg ? getComputedStyle(svg).fill.match(/\\d+(\\.\\d+)?/g) : null;
  return m ? (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255 : null;
}
"""
LUMINANCES_JS = f"() => [...document.querySelectorAll('.mermaid')].map(el => ({LUMINANCE_JS})(el.querySelector('svg')))"
DIAGRAMS_JS = f"""
() => [...document.querySelectorAll('.mermaid')].map(el => {{
  const svg = el.querySelector('svg');
  const btn = el.parentElement.querySelector('.mermaid-fullscreen-btn');
  return {{
    svg: !!svg,
    error: !!svg && (svg.getAttribute('aria-roledescription') === 'error' || svg.textContent.includes('Syntax error in text')),
    text_luminance: ({LUMINANCE_JS})(svg),
    fullscreen_icon: btn ? getComputedStyle(btn, '::before').maskImage || getComputedStyle(btn, '::before').webkitMaskImage : '',
    title: svg ? (svg.querySelector(':scope > title') || {{textContent: ''}}).textContent.trim() : '',
    description: svg ? (svg.querySelector(':scope > desc') || {{textContent: ''}}).textContent.trim() : '',
  }};
}})
"""
# Every rule axe-core runs by default (WCAG 2.0-2.2 A and AA, best practices), one record per failing element.
AXE_JS = """
async () => (await axe.run(document, {resultTypes: ['violations']})).violations.flatMap(v => v.nodes.map(n => ({
  rule: v.id, impact: v.impact || n.impact || '', help: v.help, target: n.target.join(' '), html: n.html,
})))
"""


@pytest.fixture(scope="session")
def visits(browser: Any, server: str) -> Iterator[Visits]:
    """The session's page visits; at the end, what every shell block's copy button copied goes to _build/browser/copied.json."""
    v = Visits(browser, server)
    yield v
    copied = {
        source(page).relative_to(ROOT).as_posix(): [b.copied for b in visit.blocks if b.lang in SHELL_LANGS]
        for (page, mode), visit in sorted(v.cache.items())
        if mode == "light" and page in PAGES
    }
    if copied:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "copied.json").write_text(json.dumps(copied, indent=2) + "\n", encoding="utf-8")


def is_local(url: str, base: str) -> bool:
    return url.startswith(base) or urlsplit(url).scheme in {"data", "blob"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", ALL_PAGES)
def test_page_loads_nothing_from_other_hosts(visits: Visits, page: str, mode: str) -> None:
    """The site is self-contained: mermaid, fonts and scripts all come from the site itself."""
    foreign = [u for u in visits.get(page, mode).requests if not is_local(u, visits.base)]
    assert not foreign, f"{page}.html ({mode}) requested other hosts:\n" + "\n".join(foreign)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", ALL_PAGES)
def test_page_loads_without_errors(visits: Visits, page: str, mode: str) -> None:
    """No console error, no uncaught exception, no failed or 4xx/5xx request (a missing mermaid chunk shows here)."""
    v = visits.get(page, mode)
    problems = [f"console: {e}" for e in v.errors] + [f"request: {f}" for f in v.failed]
    assert not problems, f"{page}.html ({mode}):\n" + "\n".join(problems)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", PAGES)
def test_every_diagram_renders(visits: Visits, page: str, mode: str) -> None:
    """Each mermaid block becomes an SVG diagram, not mermaid's syntax-error graphic."""
    v = visits.get(page, mode)
    states = [("syntax error" if d.error else "ok") if d.svg else "no svg" for d in v.diagrams]
    assert not v.render_timeout, f"{page}.html ({mode}): diagrams did not finish rendering in {RENDER_TIMEOUT_MS} ms: {states}"
    assert all(s == "ok" for s in states), f"{page}.html ({mode}): diagrams, in page order: {states}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", PAGES)
def test_diagrams_follow_the_theme(visits: Visits, page: str, mode: str) -> None:
    """Furo's dark theme gets mermaid's dark theme (light text), the light one light (dark text)."""
    v = visits.get(page, mode)
    wrong = [d.text_luminance for d in v.diagrams if d.text_luminance is None or (d.text_luminance > 0.5) != (mode == "dark")]
    assert not wrong, f"{page}.html ({mode}): diagram text luminance {wrong} does not suit the {mode} theme"


@pytest.mark.parametrize("page", PAGES)
def test_diagrams_follow_a_theme_switch(visits: Visits, page: str) -> None:
    """Switching furo from dark to light re-renders the diagrams light, without a reload."""
    assert visits.get(page, "dark").switches_to_light is not False, f"{page}.html: diagrams stayed dark after switching to light"


@pytest.mark.parametrize("page", PAGES)
def test_fullscreen_button_shows_an_icon_and_opens(visits: Visits, page: str) -> None:
    """The fullscreen control draws its icon (no font glyph to miss) and opens the diagram in a modal."""
    v = visits.get(page, "light")
    missing = [i for i, d in enumerate(v.diagrams, 1) if "data:image/svg+xml" not in d.fullscreen_icon]
    assert not missing, f"{page}.html: diagram(s) {missing} of {len(v.diagrams)} have no drawn fullscreen icon"
    assert v.fullscreen_opens is not False, f"{page}.html: the fullscreen button did not open the diagram"


@pytest.mark.parametrize("page", ALL_PAGES)
def test_only_pages_with_diagrams_load_mermaid(visits: Visits, page: str) -> None:
    """Mermaid (about 3 MB of chunks) is fetched only where a diagram needs it."""
    v = visits.get(page, "light")
    fetched = [u for u in v.requests if "/_static/mermaid/" in u]
    if v.diagrams:
        assert fetched, f"{page}.html has {len(v.diagrams)} diagram(s) but fetched no mermaid"
    else:
        assert not fetched, f"{page}.html has no diagram but fetched {fetched[:3]}"


@pytest.mark.parametrize("page", PAGES)
def test_every_shell_block_has_a_copy_button_that_copies(visits: Visits, page: str) -> None:
    """A reader can copy every command block, and the click really puts text on the clipboard."""
    shell = [b for b in visits.get(page, "light").blocks if b.lang in SHELL_LANGS]
    broken = [b.text[:60] for b in shell if b.copied is None or b.copied == SENTINEL]
    assert not broken, f"{page}.html: shell blocks without a working copy button: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_config_blocks_copy_verbatim(visits: Visits, page: str) -> None:
    """Env, YAML and Caddyfile blocks (no `$ ` prompts) copy whole, so a reader can paste them into the file."""
    other = [b for b in visits.get(page, "light").blocks if b.lang not in SHELL_LANGS]
    changed = [b.text[:60] for b in other if b.copied != b.text.removesuffix("\n")]
    assert not changed, f"{page}.html: these blocks did not copy verbatim: {changed}"


@pytest.mark.parametrize("page", PAGES)
def test_copy_button_copies_what_the_snippet_tests_run(visits: Visits, page: str) -> None:
    """The clipboard text of each shell block is exactly scripts/snippets.py's Snippet.text, in page order."""
    from scripts import snippets as sn

    rules = sn.load_copy_rules(ROOT / "conf.py")
    expected = [s.text for s in sn.shell_snippets(sn.parse_page(source(page), ROOT, rules))]
    copied = [b.copied for b in visits.get(page, "light").blocks if b.lang in SHELL_LANGS]
    assert copied == expected


def test_mermaid_pin_is_the_extensions_default() -> None:
    """package.json and its lock pin the mermaid that sphinxcontrib-mermaid was released against."""
    from sphinxcontrib.mermaid import setup

    defaults: dict[str, Any] = {}

    class Recorder:
        """Just enough of a Sphinx app for the extension's setup() to declare its config defaults."""

        def add_config_value(self, name: str, default: Any, *args: Any, **kwargs: Any) -> None:
            defaults[name] = default

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    setup(Recorder())
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]["mermaid"]
    locked = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]["node_modules/mermaid"]["version"]
    assert pinned == locked == defaults["mermaid_version"]


def test_pages_are_found() -> None:
    """The browser tests see the guide's pages (guards against a glob that finds nothing)."""
    assert "index" in PAGES, f"no index page among {PAGES} under {DOCS}"


def test_shell_languages_are_the_extractions() -> None:
    """The blocks judged as shell here are the fences scripts/snippets.py runs."""
    from scripts import snippets as sn

    assert set(SHELL_LANGS) == sn.SHELL_LANGS


@pytest.mark.parametrize(
    ("query", "expected"),
    [("offline_access", "self-hosted-authentik.html"), ("X-API-Key", "api-keys.html"), ("Redirect URI Error", "troubleshooting.html")],
)
def test_search_finds_the_page_that_answers(browser: Any, server: str, query: str, expected: str) -> None:
    """Sphinx's client-side search works offline: a reader's query lists the page that answers it."""
    page = browser.new_page()
    try:
        page.route(lambda url: not is_local(url, server), lambda route: route.abort())
        page.goto(f"{server}search.html?q={query}")
        page.wait_for_selector("#search-results ul.search li, #search-results p", timeout=RENDER_TIMEOUT_MS)
        links = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    finally:
        page.close()
    assert any(href and href.split("?")[0].split("#")[0].endswith(expected) for href in links), links


# -- accessibility (axe-core) ------------------------------------------------------------------

# Serious or critical findings that Sphinx or furo cause, not our templates, CSS or JavaScript: the rule,
# a fragment of the element's HTML that identifies the source, and the source. docs/testing.md lists
# them (and the milder ones) for writers; test_axe_findings_are_all_listed_for_writers keeps the two in step.
UPSTREAM = {
    "aria-required-attr": ('class="caption" role="heading"', "Sphinx's toctree captions: role=heading without aria-level (furo's sidebar shows them)"),
}
SERIOUS = ("serious", "critical")


def upstream(v: Violation) -> bool:
    known = UPSTREAM.get(v.rule)
    return known is not None and known[0] in v.html


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", ALL_PAGES)
def test_axe_finds_nothing_serious_of_ours(visits: Visits, page: str, mode: str) -> None:
    """No serious or critical axe-core finding on any page, in either theme, except the listed ones Sphinx or furo cause."""
    ours = [str(v) for v in visits.get(page, mode).violations if v.impact in SERIOUS and not upstream(v)]
    assert not ours, f"{page}.html ({mode}):\n" + "\n".join(ours)


def test_axe_findings_are_all_listed_for_writers(visits: Visits) -> None:
    """Every rule axe-core still reports (upstream ones, and milder ones) is named on the writers' page; every listed serious one still occurs."""
    seen: dict[str, set[str]] = {}
    for page in ALL_PAGES:
        for mode in MODES:
            for v in visits.get(page, mode).violations:
                seen.setdefault(v.rule, set()).add(f"{page} ({mode})")
    text = TESTING_PAGE.read_text(encoding="utf-8")
    unlisted = {rule: sorted(where)[:3] for rule, where in seen.items() if f"`{rule}`" not in text}
    assert not unlisted, f"axe-core rules not listed in {TESTING_PAGE.relative_to(ROOT)}: {unlisted}"
    stale = sorted(set(UPSTREAM) - set(seen))
    assert not stale, f"listed upstream findings that no longer occur (remove them here and in docs/testing.md): {stale}"


@pytest.mark.parametrize("page", PAGES)
def test_every_diagram_has_an_accessible_title_and_description(visits: Visits, page: str) -> None:
    """A screen reader announces each diagram by its accTitle and reads its accDescr: the diagram's content in words."""
    bare = [i for i, d in enumerate(visits.get(page, "light").diagrams, 1) if not (d.title and d.description)]
    assert not bare, f"{page}.html: diagram(s) {bare} lack accTitle or accDescr"


def test_a_missing_page_answers_404_with_the_styled_404_page(browser: Any, server: str) -> None:
    """A wrong link, at any depth, lands on the guide's 404 page, whose styles and links work there too (absolute URLs)."""
    tab = browser.new_page()
    failed: list[str] = []
    try:
        tab.route(lambda url: not is_local(url, server), lambda route: route.abort())
        tab.on("response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 and "no-such" not in r.url else None)
        answer = tab.goto(f"{server}no-such/page.html")
        assert answer is not None
        assert answer.status == 404
        assert tab.locator("h1").first.inner_text() == "Page not found"
        assert tab.evaluate("() => [...document.styleSheets].some(s => (s.href || '').includes('furo.css') && s.cssRules.length > 0)")
        tab.get_by_role("link", name="the guide's first page").click()
        tab.wait_for_load_state()
        assert tab.url == f"{server}index.html"
    finally:
        tab.close()
    assert not failed, failed


def test_png_favicon_is_the_svg_rendered(browser: Any) -> None:
    """The committed PNG icon still shows what favicon.svg draws: run `python -m scripts.tools.favicon` after editing the SVG."""
    tab = browser.new_page()
    try:
        fresh = favicon.render(tab)
        diff = tab.evaluate(
            """async ([a, b]) => {
              const load = src => new Promise((ok, bad) => { const i = new Image(); i.onload = () => ok(i); i.onerror = bad; i.src = src; });
              const [x, y] = await Promise.all([load(a), load(b)]);
              if (x.width !== y.width || x.height !== y.height) return {size: [x.width, x.height, y.width, y.height]};
              const pixels = img => { const c = new OffscreenCanvas(img.width, img.height); const g = c.getContext('2d');
                                      g.drawImage(img, 0, 0); return g.getImageData(0, 0, img.width, img.height).data; };
              const p = pixels(x), q = pixels(y);
              let worst = 0, total = 0;
              for (let k = 0; k < p.length; k++) { const d = Math.abs(p[k] - q[k]); worst = Math.max(worst, d); total += d; }
              return {worst, mean: total / p.length};
            }""",
            [f"data:image/png;base64,{base64.b64encode(fresh).decode()}", favicon.data_url(favicon.PNG, "image/png")],
        )
    finally:
        tab.close()
    # Anti-aliasing may differ by a few levels between Chromium versions; a changed drawing moves whole shapes.
    assert "size" not in diff, f"{favicon.PNG.name} is not {favicon.SIZE} px square: {diff}"
    assert diff["mean"] < 1.0, f"{favicon.PNG.name} differs from favicon.svg (mean channel difference {diff['mean']:.2f}): run python -m scripts.tools.favicon"
