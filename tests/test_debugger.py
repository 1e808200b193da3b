"""The writer's page runner (`python -m scripts.check`): failures that name their command, --update, --shell, PAGE:LINE, -k, its report."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scripts import update
from scripts.check import REPO, check_page, main

PAGE = """\
# P

Set things up:

% test: shellcheck-disable=SC2164 reason="a failed cd shows in the next step"
```bash
X=hello
cd /tmp
greet() { echo "hi $1"; }
```

Show them:

```console
$ echo "$X from $(pwd)"
hello from /tmp
$ greet you
hi you
```

Then break:

```bash
X=changed
echo first
ls /nonexistent-dir
```
"""


def site(tmp_path: Path, pages: dict[str, str]) -> Path:
    """A copy of the site with these pages; returns the folder holding conf.py."""
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    shutil.copy(REPO / "conf.py", root / "conf.py")
    for name, text in pages.items():
        (root / "docs" / name).write_text(textwrap.dedent(text))
    return root


def run_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str, dict[str, object]]:
    """main() with the report going to a temp dir: its exit status, what it printed, and the report it wrote."""
    reports = tmp_path / "reports"
    rc = main([*args, "--report-dir", str(reports)])
    out = capsys.readouterr().out
    path = reports / "report.json"
    return rc, out, json.loads(path.read_text()) if path.exists() else {}


# ---------------------------------------------------------------------------------------------
# Failures name their command and subject
# ---------------------------------------------------------------------------------------------


def test_a_failing_step_names_the_command_and_its_page_line(tmp_path: Path) -> None:
    """`exit status 2` alone does not say which of three commands failed; the executor's ERR trap does, at its page line."""
    root = site(tmp_path, {"p.md": PAGE})
    verdicts = check_page(root / "docs" / "p.md", root=root)
    assert [v.status for v in verdicts] == ["passed", "passed", "failed"]
    assert verdicts[2].reason == "exit status 2, the page implies 0; `ls /nonexistent-dir` exited with status 2 at docs/p.md:26 (line 3 of the step)"
    assert verdicts[2].output.startswith("first\nls: cannot access '/nonexistent-dir'"), "recording the command changes nothing the step prints"


def test_a_command_that_fails_inside_an_and_list_is_named_too(tmp_path: Path) -> None:
    """bash runs no ERR trap for a command inside a `&&` list, which the guide's blocks use to stop at the first
    failure; the command that ended the step is still the one named, not the ones the list skipped."""
    page = '# P\n\n```bash\ncd /tmp &&\nVALUE=$(cat /nonexistent-file) &&\necho "$VALUE"\n```\n'
    root = site(tmp_path, {"p.md": page})
    (v,) = check_page(root / "docs" / "p.md", root=root)
    assert v.reason == "exit status 1, the page implies 0; `VALUE=$(cat /nonexistent-file)` exited with status 1 at docs/p.md:5 (line 2 of the step)"


def test_the_failing_command_of_a_console_block_is_found_at_its_prompt_line(tmp_path: Path) -> None:
    root = site(tmp_path, {"p.md": "# P\n\n```console\n$ echo a\na\n$ false\n$ echo b\nb\n```\n"})
    (v,) = check_page(root / "docs" / "p.md", root=root)
    assert v.status == "passed"  # the block's last command succeeds: a step is judged by its status, as in a terminal
    root = site(tmp_path / "2", {"p.md": "# P\n\n```console\n$ echo a\na\n$ cat /nonexistent-file\n```\n"})
    (v,) = check_page(root / "docs" / "p.md", root=root)
    assert v.reason.startswith("exit status 1, the page implies 0; `cat /nonexistent-file` exited with status 1 at docs/p.md:6 (line 2 of the step)")


# ---------------------------------------------------------------------------------------------
# --update
# ---------------------------------------------------------------------------------------------

UPDATED = """\
# U

1. Count:

   ```console
   $ printf 'a\\nb\\nc\\nd\\n'
   a
   ...
   x
   ```

2. Greet, twice:

   ```console
   $ echo hello
   helo
   $ echo world
   world
   ```

```bash
echo unchanged
```
"""


def test_update_rewrites_only_the_shown_output_keeping_ellipses_and_indentation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Behaviour changed on purpose: the writer gets the new output in place, sees the diff, and the next run passes."""
    root = site(tmp_path, {"u.md": UPDATED})
    page = root / "docs" / "u.md"
    rc, out, report = run_cli(capsys, tmp_path, "--update", str(page))
    assert rc == 0, out
    assert page.read_text() == UPDATED.replace("   x\n", "   d\n").replace("   helo\n", "   hello\n")
    assert "-   x\n+   d\n" in out
    assert "-   helo\n+   hello\n" in out
    rc, out, report = run_cli(capsys, tmp_path, str(page))
    assert rc == 0, out
    assert [e["status"] for e in report["snippets"]] == ["passed"] * 3  # type: ignore[index]


def test_update_leaves_a_step_that_fails_for_another_reason_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a difference in shown output is rewritten; a wrong exit status is still a failure, and the page is not touched."""
    text = "# F\n\n```console\n$ echo out; false\nwrong\n```\n"
    root = site(tmp_path, {"f.md": text})
    rc, out, _ = run_cli(capsys, tmp_path, "--update", str(root / "docs" / "f.md"))
    assert rc == 1
    assert "exit status 1, the page implies 0" in out
    assert (root / "docs" / "f.md").read_text() == text


@pytest.mark.parametrize(
    ("shown", "printed", "new"),
    [
        ("a\n...\nz", "a\nb\nc\nz", "a\n...\nz"),  # nothing to change
        ("a\n...\nz", "a\nb\nc\ny", "a\n...\ny"),  # the line after the ellipsis changed
        ("200", "401", "401"),
        ("a\nb", "a\nx\nb", "a\nx\nb"),  # a line printed in addition
        ("a\nb\nc", "a\nc", "a\nc"),  # a line no longer printed
        ("...\nlast", "1\n2\nlast", "...\nlast"),
    ],
)
def test_the_new_output_keeps_every_ellipsis_and_matches_what_ran(shown: str, printed: str, new: str) -> None:
    from scripts.check import match_output

    lines = [text for _, text in update.align(shown.split("\n"), printed.split("\n"))]
    assert "\n".join(lines) == new
    assert match_output("\n".join(lines), printed)


# ---------------------------------------------------------------------------------------------
# Selecting pages and steps; the report; the catalogue
# ---------------------------------------------------------------------------------------------


def test_page_line_runs_the_steps_up_to_that_line_and_reports_only_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    rc, out, report = run_cli(capsys, tmp_path, f"{root / 'docs' / 'p.md'}:14")
    assert rc == 0, out
    assert [(e["line"], e["status"]) for e in report["snippets"]] == [(6, "passed"), (14, "passed")]  # type: ignore[index]
    assert report["run"]["commit"]  # type: ignore[index]


def test_k_selects_pages_by_their_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = site(tmp_path, {"one.md": "# One\n\n```bash\ntrue\n```\n", "two.md": "# Two\n\n```bash\ntrue\n```\n"})
    rc, _, report = run_cli(capsys, tmp_path, "-k", "two", str(root / "docs" / "one.md"), str(root / "docs" / "two.md"))
    assert rc == 0
    assert [e["id"] for e in report["snippets"]] == ["docs/two.md:3"]  # type: ignore[index]


def test_the_runner_tells_the_writer_what_the_mutation_catalogue_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make test` requires mutations for every tested page; the runner says so first, naming the page and where to read."""
    root = site(tmp_path, {"new.md": "# New\n\n```bash\ntrue\n```\n"})
    rc, out, _ = run_cli(capsys, tmp_path, str(root / "docs" / "new.md"))
    assert rc == 0
    assert "note: docs/new.md has no entry in scripts/tools/mutations.yaml; make test requires at least one per tested page" in out


# ---------------------------------------------------------------------------------------------
# --shell, driven through a real pseudo-terminal
# ---------------------------------------------------------------------------------------------


class Terminal:
    """The writer's side of a pseudo-terminal: type, and wait for what the screen shows."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.screen = ""

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.screen)
            if found:
                self.screen = self.screen[found.end() :]
                return found
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"waited {timeout} s for {pattern!r}; the terminal shows:\n{self.screen}")
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"the terminal closed while waiting for {pattern!r}; it showed:\n{self.screen}")
            self.screen += data.decode(errors="replace")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())


@pytest.fixture
def terminal(tmp_path: Path) -> object:
    """Start `python -m scripts.check ARGS` on a fresh pseudo-terminal; yields (start, Terminal)."""
    procs: list[subprocess.Popen[bytes]] = []
    fds: list[int] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], Terminal]:
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.check", *args, "--report-dir", str(tmp_path / "reports")],
            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        procs.append(proc)
        fds.append(master)
        return proc, Terminal(master)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    for fd in fds:
        os.close(fd)


def test_shell_opens_at_the_failing_step_with_the_session_it_saw(tmp_path: Path, terminal: object) -> None:
    """Variables, functions and cwd as the failing step found them; the step's text in $STEP; fakes and stand-ins running."""
    root = site(tmp_path, {"p.md": PAGE})
    proc, term = terminal(str(root / "docs" / "p.md"), "--shell")  # type: ignore[operator]
    term.expect(r"FAIL docs/p\.md:23")
    term.expect(r"A shell inside the world of docs/p\.md, at the step that failed, docs/p\.md:23:")
    term.expect(r"`ls /nonexistent-dir` exited with status 2 at docs/p\.md:26")
    term.expect(r"\[world docs/p\.md:23\] /tmp\$ ")
    term.type('echo "X=[$X] cwd=[$PWD]"; greet there; cat "$STEP"\n')
    term.expect(r"X=\[hello\] cwd=\[/tmp\]")
    term.expect(r"hi there")
    term.expect(r"X=changed\r\necho first\r\nls /nonexistent-dir")
    term.type("curl -s -o /dev/null -w 'api=%{http_code}\\n' https://api.example.com/v1/transcripts; docker ps --format '{{.Names}}' | grep -c reflector-\n")
    term.expect(r"api=(?!000)\d{3}")
    term.expect(r"\r\n[1-9]\d*\r\n")
    term.type("sleep 30\n")
    time.sleep(0.5)  # let sleep start before the interrupt; the prompt below proves Ctrl-C reached it
    term.type("\x03")
    term.expect(r"\[world docs/p\.md:23\] /tmp\$ ", timeout=10)
    term.type("exit\n")
    term.expect(r"steps: 2 passed, 1 failed, 0 skipped")
    assert proc.wait(timeout=30) == 1


def test_shell_at_page_line_opens_after_that_step(tmp_path: Path, terminal: object) -> None:
    root = site(tmp_path, {"p.md": PAGE})
    proc, term = terminal(f"{root / 'docs' / 'p.md'}:6", "--shell")  # type: ignore[operator]
    term.expect(r"A shell inside the world of docs/p\.md, after the step docs/p\.md:6")
    term.expect(r"\$ ")
    term.type('echo "X=[$X]"; exit 3\n')
    term.expect(r"X=\[hello\]")
    term.expect(r"steps: 1 passed, 0 failed, 0 skipped")
    assert proc.wait(timeout=30) == 0
