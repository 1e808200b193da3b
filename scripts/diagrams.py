"""Check mermaid diagrams with mermaid's own parser (node + the npm-pinned mermaid), naming page:line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from scripts import snippets as sn

REPO = Path(__file__).resolve().parent.parent
MERMAID = REPO / "node_modules" / "mermaid" / "dist" / "mermaid.core.mjs"
PURIFY = REPO / "node_modules" / "dompurify" / "dist" / "purify.es.mjs"

# Reads a JSON list of diagram sources on stdin, prints a JSON list of error messages (null when valid).
# Outside a browser DOMPurify has no window and exports no sanitize/addHook; parsing never needs
# them to do real work, so give mermaid's import of the same module instance no-op versions.
PARSE_JS = """
const purify = (await import(process.argv[2])).default;
purify.addHook ??= () => {};
purify.removeHook ??= () => {};
purify.removeHooks ??= () => {};
purify.sanitize ??= (text) => text;
const mermaid = (await import(process.argv[1])).default;
let src = "";
for await (const chunk of process.stdin) src += chunk;
const out = [];
for (const text of JSON.parse(src)) {
  try { await mermaid.parse(text); out.push(null); }
  catch (e) { out.push(String(e && e.message || e).split("\\n").slice(0, 4).join(" | ")); }
}
console.log(JSON.stringify(out));
"""


def parse_errors(sources: list[str]) -> list[str | None]:
    """mermaid.parse() each source; None where it parses."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: apt-get install nodejs npm (mermaid's parser runs on it)")
    if not MERMAID.exists():
        raise RuntimeError(f"{MERMAID.relative_to(REPO)} is missing: run `npm ci --ignore-scripts` (make html does)")
    proc = subprocess.run(
        [node, "--input-type=module", "-e", PARSE_JS, MERMAID.as_uri(), PURIFY.as_uri()],
        input=json.dumps(sources), capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"mermaid's parser failed to run: {proc.stderr.strip()[-500:]}")
    result: list[str | None] = json.loads(proc.stdout)
    return result


def diagram_errors(root: Path, page: str | None = None) -> list[str]:
    """`docs/page.md:LINE: message` for each diagram that mermaid cannot parse (all pages, or one)."""
    rules = sn.load_copy_rules(REPO / "conf.py")
    paths = [root / "docs" / page] if page else sn.discover_pages(root)
    diagrams = [s for p in paths for s in sn.parse_page(p, root, rules).snippets if s.kind == "diagram"]
    errors = parse_errors([d.source for d in diagrams]) if diagrams else []
    return [f"{d.id}: {e}" for d, e in zip(diagrams, errors, strict=True) if e]
