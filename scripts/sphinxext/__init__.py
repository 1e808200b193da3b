"""The project's Sphinx extension: the test report on the site and the writers' generated tables (docs dependencies only)."""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

from scripts.sphinxext import verified, writers


def setup(app: Sphinx) -> dict[str, Any]:
    verified.setup(app)
    writers.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
