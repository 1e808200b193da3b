"""Rewrite the output a `console` block shows from what its step printed (`python -m scripts.check --update`).

Only the output lines change: the prompt lines, their continuations and here-documents, the fence
and its indentation stay as written. A `...` line stays where it is and goes on standing for the
lines it matches; every other shown line is kept when the step printed it, replaced when the step
printed something else in its place, and dropped when the step no longer prints it. Pure: text in,
text out.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

from scripts import snippets as sn

ELLIPSIS = "..."


class UpdateError(ValueError):
    """The block cannot be rewritten in place; the message names the block and why."""


@dataclass(frozen=True, slots=True)
class Shown:
    """One output line the block shows: its index among the fence's content lines, and its text."""

    index: int
    text: str


def shown_output(snippet: sn.Snippet, rules: sn.CopyRules) -> list[Shown]:
    """The output lines of a session block, as the test compares them (blank lines at either end left out)."""
    lead = len(snippet.source) - len(snippet.source.lstrip("\n"))  # Pygments strips leading newlines before copybutton sees the text
    shown = sn.rendered_text(snippet.source, snippet.lang, rules).removesuffix("\n").split("\n")
    output = [Shown(lead + i, line) for i, (line, command) in enumerate(zip(shown, sn.command_lines(shown, rules), strict=True)) if not command]
    while output and not output[0].text.strip():
        output.pop(0)
    while output and not output[-1].text.strip():
        output.pop()
    return output


def align(expected: list[str], actual: list[str]) -> list[tuple[int | None, str]]:
    """The new shown lines, each with the index of the shown line it stands in for (None: a line the step now prints in addition).

    An edit-distance alignment in which `...` matches any run of printed lines for free, a kept
    line costs nothing, and a replaced, dropped or added line costs one.
    """
    n, m = len(expected), len(actual)

    @cache
    def cost(i: int, j: int) -> int:
        if i == n:
            return m - j
        if expected[i] == ELLIPSIS:
            return min(cost(i + 1, j), cost(i, j + 1) if j < m else n + m)
        best = 1 + cost(i + 1, j)  # the shown line is no longer printed
        if j < m:
            same = expected[i].rstrip() == actual[j].rstrip()
            best = min(best, (0 if same else 1) + cost(i + 1, j + 1), 1 + cost(i, j + 1))
        return best

    out: list[tuple[int | None, str]] = []
    i = j = 0
    while i < n or j < m:
        if i == n:
            out.append((None, actual[j].rstrip()))
            j += 1
        elif expected[i] == ELLIPSIS:
            if cost(i, j) == cost(i + 1, j):
                out.append((i, ELLIPSIS))  # the lines after it take over from here
                i += 1
            else:
                j += 1  # the ellipsis stands for this printed line too
        elif j < m and cost(i, j) == (0 if expected[i].rstrip() == actual[j].rstrip() else 1) + cost(i + 1, j + 1):
            out.append((i, expected[i] if expected[i].rstrip() == actual[j].rstrip() else actual[j].rstrip()))
            i, j = i + 1, j + 1
        elif cost(i, j) == 1 + cost(i + 1, j):
            i += 1
        else:
            out.append((None, actual[j].rstrip()))
            j += 1
    cost.cache_clear()
    return out


def fence_start(page_lines: list[str], snippet: sn.Snippet) -> tuple[int, str]:
    """Where the block's content starts in the page (0-based line) and the indentation its lines carry there (inside a list, say)."""
    content = snippet.source.removesuffix("\n").split("\n")
    first = next((k for k, line in enumerate(content) if line), None)
    for start in range(snippet.line, min(snippet.line + 20, len(page_lines))):
        window = page_lines[start : start + len(content)]
        if first is None or len(window) != len(content) or not window[first].endswith(content[first]):
            continue
        indent = window[first][: len(window[first]) - len(content[first])]
        if not indent.strip() and all(line == indent + want if want else not line.strip() for line, want in zip(window, content, strict=True)):
            return start, indent
    raise UpdateError(f"{snippet.id}: cannot find the block's lines in the page (was it edited while it ran?)")


def rewrite(page_text: str, snippet: sn.Snippet, printed: str, rules: sn.CopyRules) -> str:
    """The page with this block's shown output replaced by what the step `printed`."""
    shown = shown_output(snippet, rules)
    if not shown:
        raise UpdateError(f"{snippet.id}: the block shows no output to update")
    actual = printed.rstrip("\n").split("\n") if printed.strip() else []
    new = align([s.text for s in shown], actual)
    # Each shown line's place in the page takes the new lines aligned with it; lines the step now
    # prints in addition go after the shown line before them (or before the first).
    replacement: dict[int, list[str]] = {k: [] for k in range(len(shown))}
    last = 0
    for anchor, text in new:
        if anchor is not None:
            last = anchor
        replacement[last].append(text)
    lines = page_text.split("\n")
    start, indent = fence_start(lines, snippet)
    for k in sorted(replacement, reverse=True):
        at = start + shown[k].index
        lines[at : at + 1] = [indent + text if text else "" for text in replacement[k]]
    return "\n".join(lines)


def diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))
