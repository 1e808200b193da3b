"""The reader's own values on the site: a form on the walkthrough, and every block showing (and copying) them.

Which strings are the reader's values is decided at build time by the same model the tests use
(scripts/snippets.py: declared_values, value_spans). For each code block the build emits the spans of
its text that hold a value (start, end, variable, form), and your-values.js replaces exactly those in
the reader's browser, after checking that each still holds the example. The form is hidden until the
script shows it, so without JavaScript the pages keep the example values. The values stay in the
browser (localStorage); nothing is sent anywhere.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # docutils ships no types
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

from scripts import snippets as sn
from scripts.sphinxext import pages
from scripts.sphinxext.doctree import insert_after_title, outermost

BLOCK_CLASS = "your-values-block"
DATA_ID = "your-values-data"
FORM_ID = "your-values"
# The form's label for each of the walkthrough's values; another value is labelled with its variable's name.
LABELS = {"APP_URL": "App hostname", "API_URL": "API hostname", "AUTHENTIK_URL": "Authentik hostname", "ADMIN_EMAIL": "Admin's email address"}


def spans(text: str, values: Sequence[sn.PageValue]) -> list[list[Any]]:
    """The value spans of `text` as the browser script takes them: [start, end, variable, form]."""
    return [[span.start, span.end, span.name, span.form] for span in sn.value_spans(text, values)]


def block_spans(page: sn.Page, values: Sequence[sn.PageValue], rules: sn.CopyRules) -> dict[int, list[list[Any]]]:
    """For each of the page's blocks that holds a value, by its fence line: the spans in the text its `<pre>` shows."""
    found = {}
    for s in page.snippets:
        if s.kind == "diagram":
            continue
        shown = sn.rendered_text(s.source, s.lang or rules.highlight_language, rules)
        found_here = spans(shown, values)
        if found_here:
            found[s.line] = found_here
    return found


def field_html(value: sn.PageValue) -> str:
    """One labelled input: a hostname for a URL value (the page keeps its scheme), else the value itself."""
    label = html.escape(LABELS.get(value.name, value.name))
    ident = f"{FORM_ID}-{value.name}"
    if value.host is not None:
        attrs = f'type="text" inputmode="url" placeholder="{html.escape(value.host)}"'
    elif "@" in value.example:
        attrs = f'type="email" placeholder="{html.escape(value.example)}"'
    else:
        attrs = f'type="text" placeholder="{html.escape(value.example)}"'
    return (
        f'<div class="your-values-field"><label for="{ident}">{label}</label>'
        f'<input id="{ident}" name="{html.escape(value.name)}" {attrs} autocomplete="off" spellcheck="false" '
        f'aria-describedby="{ident}-var"><code id="{ident}-var" class="your-values-var">{html.escape(value.name)}</code></div>'
    )


def form_html(values: Sequence[sn.PageValue]) -> str:
    """The form, hidden until your-values.js runs (without JavaScript there is nothing it could change)."""
    fields = "".join(field_html(v) for v in values)
    return (
        f'<form id="{FORM_ID}" class="your-values" hidden aria-labelledby="{FORM_ID}-title">'
        f'<p id="{FORM_ID}-title" class="your-values-title"><strong>Your values.</strong> '
        "Type your hostnames and the admin's email address: the command and configuration blocks of this guide then show them, "
        "and their copy buttons and the page scripts use them. They stay in this browser; leave a field empty to keep its example.</p>"
        f'<div class="your-values-fields">{fields}</div>'
        '<p class="your-values-actions"><button type="submit">Show my values</button> '
        '<button type="button" class="your-values-reset">Back to the examples</button></p>'
        f'<p class="your-values-status" role="status" aria-live="polite"></p></form>\n'
    )


def note_html(app: Sphinx, docname: str, home: str) -> str:
    """On the other pages: a line, shown only while the reader's values are in use, that leads back to the form."""
    href = html.escape(app.builder.get_relative_uri(docname, home))
    return (
        f'<p class="your-values-note" hidden>The blocks on this page show your own values. <a href="{href}#{FORM_ID}">Change them, or go back to the examples</a>.</p>\n'
    )


def data_html(values: Sequence[sn.PageValue], blocks: list[list[list[Any]]]) -> str:
    """The page's data for your-values.js: the examples, and the spans of each marked block in document order."""
    data = {"values": [{"name": v.name, "example": v.example, "host": v.host} for v in values], "blocks": blocks}
    # `</` would end the script element; JSON allows the escaped slash.
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{DATA_ID}">{text}</script>\n'


def add_values(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Mark the page's blocks that hold a value, put the form before the `values` block, and the page's data at its end."""
    if app.builder.format != "html" or doctree.next_node(nodes.literal_block) is None:
        return
    declared = pages.reader_values(app)
    page = pages.page_of(app, docname)
    if page is None or not declared.values or declared.docname is None:
        return
    spans_by_line = block_spans(page, declared.values, pages.copy_rules(Path(app.confdir) / "conf.py"))
    setter = next((s for s in page.snippets if s.sets_values), None)
    emitted: list[list[list[Any]]] = []
    for block in list(doctree.findall(nodes.literal_block)):
        line = block.line or 0
        if setter is not None and line == setter.line:
            anchor = outermost(block)
            anchor.parent.insert(anchor.parent.index(anchor), nodes.raw("", form_html(declared.values), format="html"))
        if line in spans_by_line:
            block["classes"].append(BLOCK_CLASS)
            emitted.append(spans_by_line[line])
    if not emitted and setter is None:
        return
    if setter is None:
        insert_after_title(doctree, nodes.raw("", note_html(app, docname, declared.docname), format="html"))
    doctree.append(nodes.raw("", data_html(declared.values, emitted), format="html"))


def add_assets(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: nodes.document | None) -> None:
    """The script and its stylesheet, on the pages that hold values (the others load nothing more)."""
    if doctree is not None and any(f'id="{DATA_ID}"' in n.astext() for n in doctree.findall(nodes.raw)):
        app.add_css_file("your-values.css")
        app.add_js_file("your-values.js", defer="defer")


def values_digest(app: Sphinx) -> str:
    declared = pages.reader_values(app)
    return hashlib.sha256(json.dumps([(v.name, v.example) for v in declared.values]).encode()).hexdigest()


def reread_when_the_values_change(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """A new example value in the `values` block changes the spans of every page, though no other page changed."""
    digest = values_digest(app)
    if getattr(env, "your_values_digest", None) == digest:
        return []
    env.your_values_digest = digest  # type: ignore[attr-defined]  # pickled with the environment
    return sorted(env.found_docs - added - changed - removed)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", reread_when_the_values_change)
    app.connect("doctree-resolved", add_values)
    app.connect("html-page-context", add_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
