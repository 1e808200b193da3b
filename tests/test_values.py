"""The reader's values on the built site (scripts/sphinxext/values.py): the spans the browser may replace are the extraction's, and nothing else changes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, build_site
from test_verified import site

from scripts import snippets as sn
from scripts.check import load_page
from scripts.sphinxext import pages

VALUES_PAGE = """\
# Set up

% test: values
```bash
cat > ~/values.sh <<'EOF'
APP_URL=https://app.example.com
ADMIN_EMAIL=admin@example.com
EOF
```

```{toctree}
testing
other
```
"""

OTHER_PAGE = """\
# Other

Nothing here names a value:

```bash
echo "$APP_URL"
```

This one shows one in its output:

```console
$ curl -s "$APP_URL/health" | jq -r .url
https://app.example.com/health
```
"""


def soup_of(html: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((html / f"{page}.html").read_text(encoding="utf-8"), "html.parser")


def data_of(soup: BeautifulSoup) -> dict[str, Any]:
    element = soup.select_one("script#your-values-data")
    assert element is not None, "the page has no values data"
    loaded: dict[str, Any] = json.loads(element.string or "")
    return loaded


def test_each_block_carries_exactly_the_spans_the_extraction_finds_in_its_text(site_html: Path) -> None:
    """The browser replaces what value_spans finds in the text the block shows, no more: the same model as the other-values run."""
    soup = soup_of(site_html, "self-hosted-authentik")
    data = data_of(soup)
    values = sn.declared_values([load_page(p) for p in sn.discover_pages(ROOT)])
    assert [(v["name"], v["example"]) for v in data["values"]] == [(v.name, v.example) for v in values]
    shown = [pre.get_text() for pre in soup.select(".your-values-block pre")]
    assert len(shown) == len(data["blocks"]) > 0
    for text, spans in zip(shown, data["blocks"], strict=True):
        assert spans == [[s.start, s.end, s.name, s.form] for s in sn.value_spans(text, values)]
    holding = [s for s in load_page(ROOT / "docs" / "self-hosted-authentik.md").snippets if s.kind != "diagram" and sn.value_spans(s.source, values)]
    assert len(holding) == len(shown), "every block whose text holds a value is marked, and only those"


def test_the_form_is_hidden_until_the_script_shows_it_and_labels_every_value(site_html: Path) -> None:
    """Without JavaScript the form could change nothing, so it starts hidden; each input has a label and names its variable."""
    form = soup_of(site_html, "self-hosted-authentik").select_one("form#your-values")
    assert form is not None
    assert form.has_attr("hidden")
    labels = {label["for"]: label.get_text() for label in form.select("label")}
    inputs = [(i["name"], i["id"], i["type"]) for i in form.select("input")]
    assert inputs == [
        ("AUTHENTIK_URL", "your-values-AUTHENTIK_URL", "text"),
        ("APP_URL", "your-values-APP_URL", "text"),
        ("API_URL", "your-values-API_URL", "text"),
        ("ADMIN_EMAIL", "your-values-ADMIN_EMAIL", "email"),
    ]
    assert [labels[ident] for _, ident, _ in inputs] == ["Authentik hostname", "App hostname", "API hostname", "Admin's email address"]


def test_pages_without_a_value_in_their_blocks_load_nothing_more(site_html: Path) -> None:
    """Only a page whose blocks hold a value gets the script, its stylesheet and its data."""
    loading = sorted(p.stem for p in site_html.glob("*.html") if "your-values.js" in p.read_text(encoding="utf-8"))
    assert loading == ["self-hosted-authentik"]


def test_a_page_with_values_but_not_the_form_leads_back_to_it(tmp_path: Path) -> None:
    """The form lives on the page with the `values` block; another page whose blocks hold a value says, while the
    reader's values are in use, where to change them, and marks only its block that holds one (in its shown output)."""
    root = site(tmp_path, VALUES_PAGE)
    (root / "docs" / "other.md").write_text(OTHER_PAGE)
    html = build_site(root / "out", root / "no-report.json", docs=root / "docs", conf=root)
    index, other = soup_of(html, "index"), soup_of(html, "other")
    assert index.select_one("form#your-values") is not None
    assert other.select_one("form#your-values") is None
    note = other.select_one("p.your-values-note")
    assert note is not None
    assert note.has_attr("hidden")
    assert note.select_one("a")["href"] == "index.html#your-values"
    marked = [pre.get_text() for pre in other.select(".your-values-block pre")]
    assert [text.splitlines()[-1] for text in marked] == ["https://app.example.com/health"]
    start = marked[0].index("https://app.example.com/health")
    assert data_of(other)["blocks"] == [[[start, start + len("https://app.example.com"), "APP_URL", "value"]]]


def test_the_page_scripts_link_says_where_the_script_holds_the_values(site_html: Path) -> None:
    """The download gets the reader's values in the places value_spans finds in the script's text."""
    link = soup_of(site_html, "self-hosted-authentik").select_one(".page-tests-script a[download]")
    assert link is not None
    script = (site_html / link["href"]).read_text(encoding="utf-8")
    values = sn.declared_values([load_page(p) for p in sn.discover_pages(ROOT)])
    spans = json.loads(link["data-your-values"])
    assert spans == [[s.start, s.end, s.name, s.form] for s in sn.value_spans(script, values)]
    assert {script[start:end] for start, end, _, _ in spans} == {v.example for v in values}


def test_a_rebuild_reuses_the_last_builds_parses_until_the_parser_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing every page costs about 0.5 s of a one-page rebuild's 1 s budget: the parses travel in the pickled
    environment, and are dropped when the parser's code or conf.py is no longer the one that made them."""
    app: Any = SimpleNamespace(confdir=str(ROOT), env=SimpleNamespace())
    monkeypatch.setattr(pages, "_PARSED", {})
    paths = sn.discover_pages(ROOT)
    for path in paths:
        pages.parse(path, ROOT)
    pages.keep_parses(app, app.env)
    assert len(app.env.verified_parses[1]) == len(paths)

    calls: list[Path] = []
    real = sn.parse_page
    monkeypatch.setattr(sn, "parse_page", lambda path, root, rules: calls.append(path) or real(path, root, rules))
    monkeypatch.setattr(pages, "_PARSED", {})  # the next build's process
    pages.restore_parses(app)
    pages.parse(paths[0], ROOT)
    assert calls == []

    app.env.verified_parses = ("another parser", app.env.verified_parses[1])
    monkeypatch.setattr(pages, "_PARSED", {})
    pages.restore_parses(app)
    pages.parse(paths[0], ROOT)
    assert calls == [paths[0]]
