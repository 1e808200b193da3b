"""Render docs/_static/favicon.svg to the PNG beside it (180 px, transparent) with the system Chromium; run after editing the SVG.

The PNG is committed rather than made at build time: rasterising SVG in the build would put a
renderer (cairo, a browser) into the docs set, which must install anywhere with pip alone.
tests/test_browser.py renders the SVG again and fails when the committed PNG no longer matches it.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
SVG = REPO / "docs" / "_static" / "favicon.svg"
PNG = REPO / "docs" / "_static" / "favicon.png"
SIZE = 180  # Apple's touch-icon size; browsers scale it down for tabs
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def render(page: Any, svg: Path = SVG, size: int = SIZE) -> bytes:
    """The SVG drawn at size x size on a transparent page, as PNG bytes (Chromium's own rasteriser)."""
    page.set_viewport_size({"width": size, "height": size})
    img = f'<img src="{data_url(svg, "image/svg+xml")}" width="{size}" height="{size}" style="display:block">'
    page.set_content(f'<html><body style="margin:0;background:transparent">{img}</body></html>')
    page.wait_for_function("() => document.images[0].complete && document.images[0].naturalWidth > 0")
    png: bytes = page.screenshot(omit_background=True, clip={"x": 0, "y": 0, "width": size, "height": size})
    return png


def launch(pw: Any) -> Any:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    return pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tools.favicon", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=PNG, help=f"where the PNG goes (default {PNG.relative_to(REPO)})")
    ns = parser.parse_args(argv)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ns.out.write_bytes(render(browser.new_page()))
        finally:
            browser.close()
    print(f"wrote {ns.out} ({SIZE}x{SIZE}) from {SVG.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
