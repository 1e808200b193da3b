"""A page as one script (scripts/pagescript.py): which pages get one, and that it stops where the page run would fail."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from scripts import pagescript
from scripts import snippets as sn
from scripts.check import REPO


def page(tmp_path: Path, body: str, name: str = "p.md") -> sn.Page:
    (tmp_path / "docs").mkdir(exist_ok=True)
    shutil.copy(REPO / "conf.py", tmp_path / "conf.py")
    (tmp_path / "docs" / "first.md").write_text("# First\n\n(there)=\n## There\n")
    (tmp_path / "docs" / name).write_text(textwrap.dedent(body))
    return sn.parse_page(tmp_path / "docs" / name, tmp_path, sn.load_copy_rules(tmp_path / "conf.py"))


def script(p: sn.Page, **options: str) -> str:
    steps = [pagescript.Step(s, ()) for s in p.snippets if s.kind == "shell" or s.apply is not None]
    return pagescript.page_script("P", p.path, steps, resume=pagescript.resume_block(p) if p.continues else None, **options)


def run(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "p.sh"
    path.write_text(text)
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False, cwd=tmp_path, timeout=30)


def test_a_command_that_fails_inside_an_and_list_stops_the_script(tmp_path: Path) -> None:
    """bash's errexit lets `false && true` pass; the page run fails that step by its status, so the script stops there too."""
    p = page(tmp_path, "# P\n\n```bash\necho first\nfalse &&\necho never\n```\n\n```bash\necho second\n```\n")
    r = run(tmp_path, script(p))
    assert (r.returncode, r.stdout, r.stderr.strip().rsplit(": ", 1)[-1]) == (1, "first\n", "the step at docs/p.md:3 exited with status 1")


@pytest.mark.parametrize(("status", "goes_on"), [(3, True), (0, False)])
def test_a_step_the_page_expects_to_fail_must_fail_with_its_status(tmp_path: Path, status: int, goes_on: bool) -> None:
    p = page(tmp_path, f"# P\n\n% test: exit=3\n```bash\n(exit {status})\n```\n\n```bash\necho after\n```\n")
    r = run(tmp_path, script(p))
    assert (r.returncode == 0, "after" in r.stdout) == (goes_on, goes_on), r.stderr


def test_a_page_that_continues_another_starts_as_a_new_terminal_does(tmp_path: Path) -> None:
    """The script is a new shell: it runs the page's new-terminal block first, once, even when the page shows it later."""
    p = page(
        tmp_path,
        """\
        % test: continues first.md

        # P

        ```bash
        echo "$GREETING"
        ```

        % test: new-terminal
        ```bash
        GREETING=hello
        ```
        """,
    )
    assert pagescript.unscriptable(p) is None
    r = run(tmp_path, script(p))
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    first = page(tmp_path, "% test: continues first.md\n\n# P\n\n% test: new-terminal\n```bash\nGREETING=hi\n```\n", "q.md")
    assert script(first).count("GREETING=hi") == 1


def test_a_page_that_continues_another_without_a_new_terminal_block_gets_no_script(tmp_path: Path) -> None:
    """Without that block nothing says how a new shell gets the other page's variables and functions."""
    p = page(tmp_path, '% test: continues first.md\n\n# P\n\n```bash\necho "$GREETING"\n```\n')
    assert "names no block that a new terminal runs first" in (pagescript.unscriptable(p) or "")


def test_the_script_ends_saying_where_the_reader_goes_on(tmp_path: Path) -> None:
    p = page(tmp_path, "# P\n\n```bash\ntrue\n```\n")
    assert script(p, goes_on="The page goes on in first.html#there").rstrip().split("\n")[-2] == "# The page goes on in first.html#there"
