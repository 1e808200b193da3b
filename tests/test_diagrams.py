"""Every mermaid diagram in the guide parses with mermaid's own parser; a broken one is named by page:line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scripts.diagrams import REPO, diagram_errors

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None and os.environ.get("CI") != "true",
    reason="node is not installed (apt-get install nodejs npm); CI=true makes this a failure",
)


def test_every_diagram_parses() -> None:
    assert diagram_errors(REPO) == []


def test_a_syntax_error_names_page_and_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "p.md").write_text("# P\n\n```mermaid\nflowchart LR\n  a -- > b\n```\n\n```mermaid\nsequenceDiagram\n  A->>B: ok\n```\n")
    errors = diagram_errors(tmp_path)
    assert len(errors) == 1
    assert errors[0].startswith("docs/p.md:3: Parse error")
