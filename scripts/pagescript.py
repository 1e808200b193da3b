"""A walkthrough page's tested steps as one bash script that a reader can download and run. Pure: text in, text out.

The script is made from the same extraction the tests run (scripts/snippets.py): each shell step's
copy text, in page order, under the page's section titles. The page run judges a step by its exit
status, one step at a time; the script keeps that rule and makes it stricter for a reader who runs
many steps unattended: `set -euo pipefail` stops at the first failing command, an unset variable
is an error, and a step that the page expects to fail (`% test: exit=N`) runs with errexit off
and must fail with exactly that status, or the script stops. A reader must not `source` it: the
options would stay in their shell, and the first failure would close their terminal.

A page that continues another gets a script when it names the block a new terminal runs first
(`% test: new-terminal`, which loads the one file the reader's values and helpers live in): the
script is a new shell, so it starts with that block, which the new-terminal runs prove enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scripts import snippets as sn

RULE = "# " + "-" * 98
# The status variable of a step that must fail; a name no page would use.
STATUS = "page_script_status"
# Called after each step with its exit status: errexit lets a command that fails inside a `&&` list pass
# (bash only exits for the list's last command), and the page run judges the whole step by its status.
STEP_DONE = "page_script_step_done"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the page and the titles of the sections that hold it, outermost first (the page title left out)."""

    snippet: sn.Snippet
    sections: tuple[str, ...]


def resume_block(page: sn.Page) -> sn.Snippet | None:
    """The block a new terminal runs first on this page (`% test: new-terminal`), if it has one."""
    return next((s for s in page.snippets if s.new_terminal), None)


def unscriptable(page: sn.Page) -> str | None:
    """Why the page gets no script, or None when it does."""
    if page.continues and resume_block(page) is None:
        return (
            f"it continues {page.continues} and names no block that a new terminal runs first (`% test: new-terminal`): "
            "a script runs in a new shell, without that page's variables and functions"
        )
    steps = [s for s in page.snippets if s.kind == "shell" or s.apply is not None]
    if not any(s.kind == "shell" for s in steps):
        return "it has no commands"
    for s in steps:
        if s.before:
            return f"the step at line {s.line} needs the reader's browser first ({s.before[0].name})"
        if s.apply is not None and s.apply.mode == "merge":
            return f"the block at line {s.line} is merged into {s.apply.path} by hand"
    return None


def heredoc_marker(content: str) -> str:
    """A here-document delimiter that no line of `content` equals."""
    marker = "PAGE_SCRIPT_EOF"
    lines = set(content.split("\n"))
    while marker in lines:
        marker += "_"
    return marker


def step_text(s: sn.Snippet) -> list[str]:
    """The lines the script runs for one step."""
    where = f"# {s.id}"
    if s.skip_reason:
        return [f"{where}: not run by the tests ({s.skip_reason}), so left out here", ""]
    if s.apply is not None:
        marker = heredoc_marker(s.source)
        redirect = ">>" if s.apply.mode == "append" else ">"
        body = s.source if s.source.endswith("\n") else s.source + "\n"
        return [f"{where}: the page has you put this block into ~/{s.apply.path}", f"cat {redirect} ~/{s.apply.path} <<'{marker}'", body + marker, ""]
    body = s.text if s.text.endswith("\n") or not s.text else s.text + "\n"
    if s.exit == 0:
        return [where, body + f'{STEP_DONE} "$?" {s.id}', ""]
    return [
        f"{where}: the page expects this step to fail with exit status {s.exit}",
        "if {",
        body + f"}}; then {STATUS}=0; else {STATUS}=$?; fi",
        f'if [ "${STATUS}" -ne {s.exit} ]; then',
        f'  echo "$0: the step at {s.id} exited with status ${STATUS}, the page expects {s.exit}" >&2',
        "  exit 1",
        "fi",
        "",
    ]


def page_script(title: str, page: str, steps: Sequence[Step], url: str = "", *, resume: sn.Snippet | None = None, goes_on: str = "") -> str:
    """The script for `page` (docs/x.md) with its `title`: a header, then each step under its section titles.

    `resume` is the page's new-terminal block, for a page that continues another: a script runs in a new
    shell, so it runs that block first (unless the page's first step is that block), as the reader does
    in a new terminal. `goes_on` says where the reader goes on after the page (`returns-to`).
    """
    name = page.rsplit("/", 1)[-1].removesuffix(".md") + ".sh"
    out = [
        "#!/usr/bin/env bash",
        f"# {title}",
        "#",
        f"# The commands of {url or page}, in page order, exactly as its copy buttons copy them",
        "# and as the test suite runs them. The site build makes this file from the page: edit the page, not this file.",
        "#",
        f"# Read it, then run it in a terminal on your server: bash {name}",
        "# It stops at the first command that fails (set -e), treats an unset variable as an error (set -u)",
        "# and fails a pipeline when any command in it fails (set -o pipefail).",
        'if [ "${BASH_SOURCE[0]}" != "$0" ]; then',
        f'  echo "Run this script with bash {name}, not with source: its shell options would stay in your terminal" >&2',
        "  return 1",
        "fi",
        "set -euo pipefail",
        # The reader learns which command stopped the script; each step's comment names its page line.
        'trap \'printf "%s: stopped at line %s: %s exited with status %s\\n" "$0" "$LINENO" "$BASH_COMMAND" "$?" >&2\' ERR',
        "# After each step: stop unless it exited 0, also when a command inside a && list failed (set -e lets those pass).",
        f'{STEP_DONE}() {{ [ "$1" -eq 0 ] || {{ echo "$0: the step at $2 exited with status $1" >&2; exit "$1"; }}; }}',
        "",
    ]
    first_shell = next((step.snippet for step in steps if step.snippet.kind == "shell"), None)
    if resume is not None and resume != first_shell:
        out += [
            RULE,
            "# A new terminal: the page continues another one, so first load what that one saved, as the page says",
            RULE,
            *step_text(resume),
        ]
    current: tuple[str, ...] = ()
    for step in steps:
        if step.sections != current:
            current = step.sections
            out += [RULE, "# " + " > ".join(current) if current else "# " + title, RULE]
        out += step_text(step.snippet)
    if goes_on:
        out += [RULE, f"# {goes_on}", RULE]
    return "\n".join(out).rstrip("\n") + "\n"
