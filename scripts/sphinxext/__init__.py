"""The project's Sphinx extension: the test report on the site, the reader's own values, and the writers' generated tables (docs dependencies only)."""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

from scripts.sphinxext import pages, values, verified, writers


def setup(app: Sphinx) -> dict[str, Any]:
    # values first: its note then sits under the report's summary, which verified puts right under the title.
    app.connect("builder-inited", pages.restore_parses)
    app.connect("env-updated", pages.keep_parses)
    values.setup(app)
    verified.setup(app)
    writers.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
