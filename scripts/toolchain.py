"""Say which pins of the test set (requirements-test.txt) this venv lacks, so a docs-only install fails with how to fix it.

`make html` installs only requirements.txt; the tests, `python -m scripts.check` and the tools need
the test set too. Run straight from a docs-only venv, they would otherwise fail on a bare
ImportError or a missing bwrap binary deep inside the sandbox.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
TEST_SET = REPO / "requirements-test.txt"


class ToolchainMissing(RuntimeError):
    """The venv lacks (or has other versions of) pins of the test set; the message says how to install them."""


def pins(path: Path = TEST_SET) -> list[Requirement]:
    """The file's own requirements: comments, blank lines and `-r` includes left out (the included file is the docs set)."""
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def unmet(path: Path = TEST_SET) -> list[str]:
    """Each pin the running interpreter does not satisfy, as `name==pin (installed: version or none)`."""
    problems = []
    for req in pins(path):
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req} (installed: {version})")
    return problems


def require(what: str, path: Path = TEST_SET) -> None:
    """Raise ToolchainMissing naming `what` needs the test set, what is missing, and the command that installs it."""
    problems = unmet(path)
    if problems:
        shown = ", ".join(problems[:6]) + (f" and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ToolchainMissing(
            f"{what} needs the test toolchain ({path.name}), and this venv lacks: {shown}. "
            f"It looks like a docs-only install (`make html` installs requirements.txt alone). "
            f"Run `make test` or `make check PAGE=docs/PAGE.md`, which install it, or `.venv/bin/pip install -r {path.name}` (Linux only)."
        )
