"""Shared fixtures: the guide built once per session, exactly as `make html` builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="session")
def site_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The strict HTML build of docs/ in a temp dir, so tests never read a stale _build/."""
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-M", "html", str(DOCS), str(out), "-c", str(ROOT), "--nitpicky", "--fail-on-warning", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"the site does not build (make html fails the same way):\n{proc.stderr}", pytrace=False)
    return out / "html"
