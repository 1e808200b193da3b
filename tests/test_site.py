"""The built site follows the conventions readers and search engines expect: canonical URL, descriptions, OpenGraph, 404 page, edit links, icons, licences."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docutils.core import publish_doctree

from scripts import snippets as sn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONF = ROOT / "conf.py"
# Shares the session's site build with the browser tests (one worker builds it once).
pytestmark = pytest.mark.xdist_group("browser")


PAGES = [p.relative_to(DOCS).with_suffix("").as_posix() for p in sn.discover_pages(ROOT)]
ENV_KEYS = ("SITE_URL", "READTHEDOCS_CANONICAL_URL", "GITHUB_REPOSITORY")


def conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """conf.py's settings, evaluated under exactly `env` for the variables it reads."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(CONF))


def meta(html: str, attr: str, name: str) -> list[str]:
    return re.findall(rf'<meta {attr}="{re.escape(name)}" content="([^"]*)"', html)


def page_html(site_html: Path, page: str) -> str:
    return (site_html / f"{page}.html").read_text(encoding="utf-8")


# -- where the site lives ------------------------------------------------------------------------


def test_site_url_defaults_to_the_repositorys_github_pages_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """No placeholder: without any variable the canonical root is the default repository's Pages URL, and edit links go to it."""
    c = conf(monkeypatch)
    owner, name = c["REPOSITORY"].split("/")
    assert c["html_baseurl"] == f"https://{owner.lower()}.github.io/{name}/"
    assert c["html_theme_options"]["source_repository"] == f"https://github.com/{c['REPOSITORY']}/"
    assert c["notfound_urls_prefix"] == f"/{name}/"


@pytest.mark.parametrize(
    ("env", "url", "prefix"),
    [
        ({"GITHUB_REPOSITORY": "Some-Org/guide"}, "https://some-org.github.io/guide/", "/guide/"),
        ({"GITHUB_REPOSITORY": "o/r", "READTHEDOCS_CANONICAL_URL": "https://x.readthedocs.io/en/latest/"}, "https://x.readthedocs.io/en/latest/", "/en/latest/"),
        (
            {"GITHUB_REPOSITORY": "o/r", "READTHEDOCS_CANONICAL_URL": "https://x.readthedocs.io/en/latest/", "SITE_URL": "https://docs.example.org"},
            "https://docs.example.org/",
            "/",
        ),
    ],
    ids=["github-actions", "read-the-docs", "site-url-wins"],
)
def test_site_url_follows_where_it_is_built(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, prefix: str) -> None:
    c = conf(monkeypatch, **env)
    assert (c["html_baseurl"], c["ogp_site_url"], c["notfound_urls_prefix"]) == (url, url, prefix)


# -- what every page carries ---------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_its_canonical_url_description_and_opengraph_tags(site_html: Path, page: str) -> None:
    """One canonical link to the published page; og:title, og:url, og:description and a meta description that agree."""
    html = page_html(site_html, page)
    canonical = re.findall(r'<link rel="canonical" href="([^"]+)"', html)
    assert len(canonical) == 1
    assert canonical[0].endswith(f"/{page}.html")
    assert meta(html, "property", "og:url") == canonical
    assert len(meta(html, "property", "og:title")) == 1
    description = meta(html, "name", "description")
    assert len(description) == 1, f"{page}.html has {len(description)} meta descriptions"
    assert meta(html, "property", "og:description") == description
    assert 20 <= len(description[0]) <= 320, description[0]
    whole = description[0][-1] in ".!?" and not description[0].endswith(("...", "\u2026"))
    assert whole, f"{page}.html: the description stops mid-sentence: {description[0]!r}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_links_to_its_source_for_editing(site_html: Path, page: str) -> None:
    html = page_html(site_html, page)
    edits = re.findall(r'<a [^>]*href="(https://github\.com/[^"]+/edit/main/docs/[^"]+)"[^>]*title="Edit this page"', html)
    assert len(edits) == 1
    assert edits[0].endswith(f"/edit/main/docs/{page}.md")


@pytest.mark.parametrize("page", [*PAGES, "search", "404"])
def test_every_page_offers_the_png_icon_beside_the_svg(site_html: Path, page: str) -> None:
    html = page_html(site_html, page)
    assert re.search(r'<link rel="(shortcut )?icon" href="[^"]*_static/favicon\.svg"', html)
    assert re.search(r'<link rel="icon" type="image/png" sizes="180x180" href="[^"]*_static/favicon\.png"', html)
    assert re.search(r'<link rel="apple-touch-icon" href="[^"]*_static/favicon\.png"', html)
    assert (site_html / "_static" / "favicon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_there_is_no_empty_general_index_but_search_stays(site_html: Path) -> None:
    """The guide has no index entries, so genindex.html would be empty: it is not built, and nothing links to it."""
    assert not (site_html / "genindex.html").exists()
    linking = [p.name for p in site_html.glob("*.html") if "genindex.html" in p.read_text(encoding="utf-8")]
    assert linking == []
    assert (site_html / "search.html").is_file()
    assert (site_html / "searchindex.js").is_file()


def test_the_404_page_uses_absolute_links_under_the_sites_path(site_html: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served for a missing URL at any depth, the 404 page cannot use relative links."""
    prefix = conf(monkeypatch, **{k: os.environ[k] for k in ENV_KEYS if k in os.environ})["notfound_urls_prefix"]
    html = page_html(site_html, "404")
    assert "<h1>Page not found</h1>" in html
    assert f'href="{prefix}index.html"' in html
    stylesheets = re.findall(r'<link rel="stylesheet" type="text/css" href="([^"]+)"', html)
    assert stylesheets
    assert all(s.startswith(f"{prefix}_static/") for s in stylesheets), stylesheets


# -- licences ------------------------------------------------------------------------------------


def test_mermaid_ships_with_its_licence_and_its_bundled_packages_licences(site_html: Path) -> None:
    """The site redistributes mermaid's ESM build, which bundles its dependencies: their licences go with it; dev-only axe-core does not."""
    shipped = site_html / "_static" / "mermaid"
    assert (shipped / "LICENSE").read_text(encoding="utf-8") == (ROOT / "node_modules" / "mermaid" / "LICENSE").read_text(encoding="utf-8")
    notices = (shipped / "THIRD-PARTY-NOTICES.txt").read_text(encoding="utf-8")
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for path, info in lock.items():
        if not path or path == "node_modules/mermaid":
            continue
        header = f"{path.rsplit('node_modules/', 1)[1]} {info['version']} ("
        assert (header in notices) != bool(info.get("dev")), f"{header}: dev={bool(info.get('dev'))}"
    assert "Permission is hereby granted" in notices
    assert not (shipped / "axe.min.js").exists()


def test_the_repository_has_the_licence_package_json_names() -> None:
    licence = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["license"]
    assert licence == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


# -- descriptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two is here. Three.", "One. Two is here. Three."),
        ("A first sentence that is long enough. " + "x" * 150 + ".", "A first sentence that is long enough."),
        ("Only one sentence, and it runs on " + "and on " * 30 + "to the end.", "Only one sentence, and it runs on " + "and on " * 30 + "to the end."),
    ],
    ids=["fits", "stops-before-the-limit", "keeps-a-long-first-sentence-whole"],
)
def test_description_is_whole_sentences_of_the_first_paragraph(monkeypatch: pytest.MonkeyPatch, text: str, expected: str) -> None:
    """Search results cut a description themselves; ours never ends mid-sentence."""
    summary = conf(monkeypatch)["summary"]
    assert summary(publish_doctree(f"Title\n=====\n\n{text}\n\nAnother paragraph.\n")) == expected


def test_front_matter_description_wins_and_site_url_reaches_every_tag(tmp_path: Path) -> None:
    """A page's front-matter `description:` replaces the derived one; SITE_URL sets canonical, og:url and the 404 prefix."""
    src = tmp_path / "docs"
    src.mkdir()
    (src / "index.md").write_text("---\ndescription: Written for search results.\n---\n# Home\n\nThe first paragraph says something else.\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS} | {"SITE_URL": "https://docs.example.org/guide"}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-M", "html", str(src), str(out), "-c", str(ROOT), "--fail-on-warning", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    html = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert meta(html, "name", "description") == ["Written for search results."]
    assert meta(html, "property", "og:description") == ["Written for search results."]
    assert '<link rel="canonical" href="https://docs.example.org/guide/index.html"' in html
    assert meta(html, "property", "og:url") == ["https://docs.example.org/guide/index.html"]
    assert 'href="/guide/_static/' in (out / "html" / "404.html").read_text(encoding="utf-8")
