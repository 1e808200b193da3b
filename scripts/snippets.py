"""MyST page -> Page of Snippets: each fence's language, what the copy button copies from it, and its test annotations.

What a snippet runs is exactly what sphinx-copybutton puts on the clipboard. copybutton reads the
`innerText` of a clone of the highlighted `<pre>` with the `copybutton_exclude` nodes (default
`.linenos`) removed, then calls `formatCopyText` (copybutton_funcs.js) with the conf.py settings.
A detached clone has no layout, so its innerText is its textContent: the code exactly as Pygments
saw it after its input preprocessing (leading/trailing newlines stripped for most lexers, one
trailing newline ensured). For a fence that is the fence content; `rendered_text` models the
preprocessing and `copy_text` is a line-by-line port of `formatCopyText`, quirks included.
Parsing spawns no processes and touches no network; it reads the page and conf.py only.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import runpy
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from docutils.parsers.rst.states import MarkupError  # type: ignore[import-untyped]  # docutils ships no types
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.directives import DirectiveParsingResult, parse_directive_text
from myst_parser.parsers.mdit import create_md_parser
from pygments.lexers import get_lexer_by_name  # type: ignore[import-untyped]  # Pygments ships no types
from pygments.util import ClassNotFound  # type: ignore[import-untyped]  # Pygments ships no types
from sphinx.directives.code import CodeBlock, dedent_lines
from sphinx.directives.patches import Code
from sphinx.highlighting import lexer_classes
from sphinx.util.docutils import SphinxDirective

SHELL_LANGS = frozenset({"bash", "console", "sh", "shell", "shell-session"})
# Session languages: Pygments' BashSessionLexer shows `$ ` lines as commands and the rest as output.
SESSION_LANGS = frozenset({"console", "shell-session"})
CONFIG_LANGS = frozenset({"env", "yaml", "yml", "caddyfile", "json", "ini", "toml"})
DIAGRAM_LANGS = frozenset({"mermaid"})

# Languages a reader would take for a terminal but that we do not run: an error, never a silent "other".
_SHELLISH_NAMES = frozenset(
    {
        "zsh",
        "ksh",
        "csh",
        "tcsh",
        "fish",
        "bash-session",
        "bash_session",
        "shellsession",
        "sh-session",
        "shell-script",
        "shellscript",
        "ps1",
        "ps1con",
        "powershell",
        "pwsh",
        "posh",
        "pwsh-session",
        "cmd",
        "bat",
        "batch",
        "dos",
        "doscon",
        "terminal",
        "term",
        "tcshcon",
        "cli",
        "prompt",
        "command",
    }
)
_SHELLISH_PREFIXES = ("sh-", "sh_", "bash", "zsh", "shell", "console", "terminal", "powershell", "pwsh")

# Directives whose body is code (sphinx: code-block, its alias sourcecode, and the patched `code`).
_CODE_DIRECTIVES: dict[str, type[CodeBlock | Code]] = {"code-block": CodeBlock, "sourcecode": CodeBlock, "code": Code}
# Directives whose body is not MyST: nothing inside them can be a fence.
_OPAQUE_DIRECTIVES = frozenset({"math", "raw", "csv-table", "eval-rst", "literalinclude", "toctree", "include", "highlight"})

# JavaScript's String.prototype.trim() whitespace (WhiteSpace + LineTerminator), which differs from str.strip().
_JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# JavaScript's `.` without the s flag: anything but a line terminator.
_JS_DOT_STAR = "([^\n\r\u2028\u2029]*)"

_SC_CODE = re.compile(r"SC\d{4}")


@dataclass(frozen=True, slots=True)
class Annotation:
    """A `% test:` annotation: its keyword, how a page writes it, and what it means (the writers' page renders this table)."""

    keyword: str
    syntax: str
    meaning: str
    page_level: bool = False


ANNOTATIONS: tuple[Annotation, ...] = (
    Annotation(
        "continues",
        "continues PAGE [until=LABEL]",
        "The page starts from the state that `PAGE` (relative to `docs/`) leaves; with `until=LABEL`, only from the steps before the MyST target "
        "`(LABEL)=` on that page (`upto=LINE` also works, but breaks when lines move).",
        page_level=True,
    ),
    Annotation("exit", "exit=N", "The step is expected to exit with status `N` instead of 0."),
    Annotation(
        "before",
        "before NAME key=value …",
        "Before the step, the world does what the page asks the reader to do outside the terminal, such as creating an API key in the browser "
        "(the `before` entries in the table of checks below).",
    ),
    Annotation("timeout", "timeout=S", "The step may run for `S` seconds instead of the default 20."),
    Annotation("skip", 'skip reason="…"', "The step is not run; the reason is reported, shown under the block, and counted."),
    Annotation("shellcheck-disable", 'shellcheck-disable=SC2164 reason="…"', "shellcheck may report that code for this step; the reason is required."),
    Annotation(
        "output",
        "output=exact|ignore",
        "For a `console` block: compare the output lines shown with what the step prints (`exact`, the default), or only show them (`ignore`).",
    ),
    Annotation("check", "check NAME key=value …", "After the step, the named effect check runs inside the world (the table below)."),
    Annotation(
        "apply",
        "apply PATH mode=replace|merge|append",
        "A config block (env, YAML, Caddyfile) is written to `PATH` (relative to the home directory), keeping the file's inode, then validated with the real parser.",
    ),
    Annotation("verify", "verify PATH", "A config block shows what `PATH` already contains: every key, item or site it shows must be in the file."),
    Annotation(
        "values",
        "values",
        "The block where the reader sets their own values (`NAME=VALUE` lines): which strings are values comes from it, for the other-values run "
        'and for the site\'s "Your values" form (see "As readers use it" below). One per guide.',
    ),
    Annotation("new-terminal", "new-terminal", "The block a reader runs first in a new terminal (loading saved values and helpers)."),
    Annotation(
        "again",
        'again exit=N says="TEXT"',
        "Run twice in a row, the block fails on purpose the second time: with status `N`, printing `TEXT`, as the page tells the reader.",
    ),
    Annotation(
        "counter",
        "counter WORLD",
        "What the step shows must not show in `WORLD`, a world where it isn't true (several may be given; the worlds are listed below).",
    ),
    Annotation(
        "starts-from",
        "starts-from STATE",
        "The page's reader may start from `STATE` (`fresh-install`, `signed-in`); the first one given is the plain run's start.",
        page_level=True,
    ),
    Annotation(
        "returns-to",
        "returns-to PAGE from=LABEL",
        "After this page, the reader goes on in `PAGE` after its target `(LABEL)=`; the run continues there.",
        page_level=True,
    ),
    Annotation(
        "sections-independent",
        "sections-independent",
        "Each `##` section is a reader's whole visit (a troubleshooting entry): it runs in its own world, from the page's start, after the "
        "steps above the first section. No page may continue such a page.",
        page_level=True,
    ),
)
"""Every annotation the parser accepts: a keyword missing here is refused, so the writers' page lists exactly what works."""
KEYWORDS = frozenset(a.keyword for a in ANNOTATIONS)


class SnippetError(Exception):
    """A page problem that would make a snippet run differently from what the page shows, at `page:line`."""

    def __init__(self, page: str, line: int, message: str) -> None:
        super().__init__(page, line, message)
        self.page = page
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class CopyRules:
    """The conf.py settings that decide what a fence shows and what the copy button copies from it.

    Defaults are sphinx-copybutton's, Sphinx's and MyST's own defaults for a setting conf.py leaves out.
    """

    prompt_text: str = ""
    prompt_is_regexp: bool = False
    only_copy_prompt_lines: bool = True
    remove_prompts: bool = True
    copy_empty_lines: bool = True
    line_continuation_character: str = ""
    here_doc_delimiter: str = ""
    exclude: str = ".linenos"
    highlight_language: str = "default"
    # MyST parser settings (conf.py `myst_<field>` for each MdParserConfig field), as sorted pairs.
    myst: tuple[tuple[str, Any], ...] = ()

    def md_config(self) -> MdParserConfig:
        """The MyST parser configuration Sphinx would build from conf.py."""
        return MdParserConfig(**dict(self.myst))


@dataclass(frozen=True, slots=True)
class Check:
    """An effect check named by `% test: check NAME key=value ...`, run after its snippet."""

    name: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Apply:
    """`% test: apply PATH mode=...`: write a config fence into the world at PATH (relative to HOME)."""

    path: str
    mode: str


@dataclass(frozen=True, slots=True)
class Again:
    """`% test: again exit=N says=TEXT`: what a second run of the block in a row does (default: pass like the first)."""

    exit: int
    says: str


@dataclass(frozen=True, slots=True)
class Snippet:
    """One fence of a page: what it shows (`source`), what the copy button copies (`text`), and how to judge it."""

    page: str
    line: int
    lang: str
    kind: str  # "shell", "config", "diagram" or "other"
    source: str
    text: str
    expected_output: str | None
    exit: int
    timeout: float | None  # None means the executor's default
    skip_reason: str | None
    shellcheck_disable: tuple[str, ...]
    checks: tuple[Check, ...]
    apply: Apply | None
    verify: str | None
    output_mode: str  # "exact" or "ignore" when the page shows output, else "none"
    before: tuple[Check, ...] = ()  # what the reader does outside the terminal first (a browser step)
    sets_values: bool = False  # `% test: values`: the block where the reader sets their own values
    new_terminal: bool = False  # `% test: new-terminal`: what the reader runs first in a new terminal
    again: Again | None = None  # `% test: again ...`: a second run in a row fails this way, on purpose
    counters: tuple[Check, ...] = ()  # `% test: counter WORLD`: worlds where what this step shows must not hold

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def is_step(self) -> bool:
        """A step is what the reader does: a shell fence, or a config fence the page applies or verifies."""
        return self.kind == "shell" or self.apply is not None or self.verify is not None

    @property
    def digest(self) -> str:
        """sha256 of the block as the page shows it: a test run's verdict belongs to the block only while this is unchanged."""
        return hashlib.sha256(self.source.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Page:
    """A page's snippets in page order; `continues` (relative to docs/) is the page whose state it starts from."""

    path: str
    snippets: tuple[Snippet, ...]
    continues: str | None
    continues_upto: int | None
    continues_until: str | None = None  # a MyST target `(label)=` in the continued page: replay the steps before it
    targets: tuple[tuple[str, int], ...] = ()  # this page's MyST targets and their lines
    sections: tuple[tuple[str, int], ...] = ()  # this page's `##` headings and their lines
    starts_from: tuple[str, ...] = ()  # `% test: starts-from STATE`: the states its reader may be in (scripts/reader.py)
    returns_to: tuple[str, str] | None = None  # `% test: returns-to PAGE from=LABEL`: the reader goes on there
    sections_independent: bool = False  # `% test: sections-independent`: each `##` section is run on its own

    def section_of(self, line: int) -> int | None:
        """The line of the `##` heading that holds `line` (None: above the first one, the part every section shares)."""
        held = [start for _, start in self.sections if start < line]
        return held[-1] if held else None


# --------------------------------------------------------------------------- copy rules


_CONF_NAMES = {
    "copybutton_prompt_text": "prompt_text",
    "copybutton_prompt_is_regexp": "prompt_is_regexp",
    "copybutton_only_copy_prompt_lines": "only_copy_prompt_lines",
    "copybutton_remove_prompts": "remove_prompts",
    "copybutton_copy_empty_lines": "copy_empty_lines",
    "copybutton_line_continuation_character": "line_continuation_character",
    "copybutton_here_doc_delimiter": "here_doc_delimiter",
    "copybutton_exclude": "exclude",
    "highlight_language": "highlight_language",
}


def load_copy_rules(conf_py: Path) -> CopyRules:
    """Read the copybutton, highlighting and MyST settings by executing conf.py, as Sphinx does."""
    ns = runpy.run_path(str(conf_py))
    values: dict[str, Any] = {attr: ns[name] for name, attr in _CONF_NAMES.items() if name in ns}
    for name, attr in _CONF_NAMES.items():
        expected = type(getattr(CopyRules(), attr))
        if attr in values and not isinstance(values[attr], expected):
            raise ValueError(f"{conf_py}: {name} must be a {expected.__name__}, not {values[attr]!r}")
    if values.get("exclude", ".linenos") != ".linenos":
        # Another exclude selector removes highlighted nodes (e.g. `.gp` prompts) before formatCopyText
        # sees the text, which rendered_text does not model.
        raise ValueError(f"{conf_py}: copybutton_exclude={values['exclude']!r} is not supported, only '.linenos'")
    if ns.get("highlight_options"):
        raise ValueError(f"{conf_py}: highlight_options changes Pygments' input handling, which rendered_text does not model")
    myst = {f.name: ns[f"myst_{f.name}"] for f in fields(MdParserConfig) if f"myst_{f.name}" in ns}
    MdParserConfig(**myst)  # validates, as MyST does when Sphinx starts
    return CopyRules(**values, myst=tuple(sorted(myst.items())))


def command_lines(lines: list[str], rules: CopyRules) -> list[bool]:
    """For each line of a `<pre>`'s text, whether formatCopyText treats it as a command (a prompt line, or a continuation or here-document line after one)."""
    prompt = rules.prompt_text if rules.prompt_is_regexp else re.escape(rules.prompt_text)
    regexp = re.compile("^(" + prompt + ")" + _JS_DOT_STAR)
    use_line_cont = bool(rules.line_continuation_character)
    use_here_doc = bool(rules.here_doc_delimiter)
    flags: list[bool] = []
    got_line_cont = False
    got_here_doc = False
    for line in lines:
        is_command = regexp.search(line) is not None or got_line_cont or got_here_doc
        if is_command:
            got_line_cont = line.endswith(rules.line_continuation_character) and use_line_cont
            # The JS toggles on *any* line that contains the delimiter, e.g. `cat <<EOF` and `EOF`.
            if rules.here_doc_delimiter in line and use_here_doc:
                got_here_doc = not got_here_doc
        flags.append(is_command)
    return flags


def _format_copy_text(text: str, rules: CopyRules) -> tuple[str, list[str] | None]:
    """Port of copybutton_funcs.js `formatCopyText`; also returns the lines it did not treat as commands.

    The second value is None when no line had a prompt (then everything is copied).
    """
    prompt = rules.prompt_text if rules.prompt_is_regexp else re.escape(rules.prompt_text)
    regexp = re.compile("^(" + prompt + ")" + _JS_DOT_STAR)
    lines = text.split("\n")
    output_lines: list[str] = []
    not_commands: list[str] = []
    line_got_prompt: list[bool] = []
    for line, is_command in zip(lines, command_lines(lines, rules), strict=True):
        match = regexp.search(line)
        if is_command:
            line_got_prompt.append(match is not None)
            if rules.remove_prompts and match is not None:
                # JS pushes match[2]; an unmatched group is `undefined`, which join() renders as "".
                output_lines.append(match.group(2) or "")
            else:
                output_lines.append(line)
        else:
            not_commands.append(line)
            # `else if (!onlyCopyPromptLines)` and `else if (copyEmptyLines && line.trim() === '')` in the JS
            if not rules.only_copy_prompt_lines or (rules.copy_empty_lines and line.strip(_JS_WHITESPACE) == ""):
                output_lines.append(line)

    found = any(line_got_prompt)
    if found:
        text = "\n".join(output_lines)
    # "Remove a trailing newline to avoid auto-running when pasting": one only.
    text = text.removesuffix("\n")
    return text, (not_commands if found else None)


def copy_origins(snippet: Snippet, rules: CopyRules) -> list[int]:
    """For each line of the snippet's copy text, the index of the line of `source` it was copied from."""
    lead = len(snippet.source) - len(snippet.source.lstrip("\n"))  # Pygments strips leading newlines (stripnl)
    shown = rendered_text(snippet.source, snippet.lang or rules.highlight_language, rules).split("\n")
    flags = command_lines(shown, rules)
    kept = list(range(len(shown)))
    if any(flags):  # the lines formatCopyText keeps when the block has prompts
        blank_kept = rules.copy_empty_lines or not rules.only_copy_prompt_lines
        kept = [i for i in kept if flags[i] or not rules.only_copy_prompt_lines or (blank_kept and shown[i].strip(_JS_WHITESPACE) == "")]
    return [lead + i for i in kept[: len(snippet.text.split("\n"))]]


def copy_text(source: str, rules: CopyRules) -> str:
    """What the copy button puts on the clipboard for a `<pre>` whose innerText is `source`."""
    return _format_copy_text(source, rules)[0]


def rendered_text(code: str, lang: str, rules: CopyRules) -> str:
    """The highlighted `<pre>`'s text: Sphinx picks the lexer, Pygments preprocesses its input.

    Mirrors sphinx.highlighting.PygmentsBridge.get_lexer and pygments.lexer.Lexer._preprocess_lexer_input.
    """
    name = lang or rules.highlight_language
    if name in {"py", "python", "py3", "python3", "default"}:
        name = "pycon" if code.startswith(">>>") else "python"
    if name == "pycon3":
        name = "pycon"
    try:
        lexer = lexer_classes[name]() if name in lexer_classes else get_lexer_by_name(name)
    except ClassNotFound:
        lexer = lexer_classes["none"]()
    text = code.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if lexer.stripall:
        text = text.strip()
    elif lexer.stripnl:
        text = text.strip("\n")
    if lexer.tabsize > 0:
        text = text.expandtabs(lexer.tabsize)
    if lexer.ensurenl and not text.endswith("\n"):
        text += "\n"
    return text


def _expected_output(not_commands: list[str] | None, rules: CopyRules) -> str | None:
    """The output a session fence shows: the lines that are not commands, without surrounding blank lines."""
    if not_commands is None or not rules.only_copy_prompt_lines:
        return None
    lines = list(not_commands)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) if lines else None


# --------------------------------------------------------------------------- annotations


@dataclass(slots=True)
class _Pending:
    """Next-fence annotations collected so far (a builder, hence mutable)."""

    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)
    exit: int | None = None
    timeout: float | None = None
    skip_reason: str | None = None
    shellcheck_disable: tuple[str, ...] = ()
    checks: list[Check] = field(default_factory=list)
    before: list[Check] = field(default_factory=list)
    apply: Apply | None = None
    verify: str | None = None
    output_mode: str | None = None
    sets_values: bool = False
    new_terminal: bool = False
    again: Again | None = None
    counters: list[Check] = field(default_factory=list)

    def claim(self, key: str, page: str, line: int) -> None:
        if key in self.lines and key not in {"check", "before", "counter"}:
            raise SnippetError(page, line, f"test annotation {key!r} given twice for one fence (first at line {self.lines[key]})")
        if not self.lines:
            self.line = line
        self.lines.setdefault(key, line)


def _key_value(word: str, page: str, line: int) -> tuple[str, str]:
    key, eq, value = word.partition("=")
    if not eq or not key:
        raise SnippetError(page, line, f"test annotation: expected key=value, got {word!r}")
    return key, value


def _reason(words: list[str], what: str, page: str, line: int) -> str:
    pairs = [_key_value(w, page, line) for w in words]
    unknown = [k for k, _ in pairs if k != "reason"]
    if unknown:
        raise SnippetError(page, line, f"test annotation {what}: unknown option {unknown[0]!r} (only reason=...)")
    reasons = [v.strip() for _, v in pairs]
    if len(reasons) != 1 or not reasons[0]:
        raise SnippetError(page, line, f'test annotation {what} needs exactly one non-empty reason="..."')
    return reasons[0]


def _parse_int(value: str, what: str, page: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise SnippetError(page, line, f"test annotation {what}={value!r}: not an integer") from None


class _PageState:
    """What parsing one page accumulates: snippets, page-level annotations, pending next-fence ones."""

    def __init__(self, page: str, root: Path, rules: CopyRules) -> None:
        self.page = page
        self.root = root
        self.rules = rules
        self.md: MarkdownIt = create_md_parser(rules.md_config(), RendererHTML)
        self.fence_as_directive = frozenset(rules.md_config().fence_as_directive)
        self.highlight_language = rules.highlight_language
        self.snippets: list[Snippet] = []
        self.continues: str | None = None
        self.continues_upto: int | None = None
        self.continues_until: str | None = None
        self.targets: list[tuple[str, int]] = []
        self.continues_line = 0
        self.pending: _Pending | None = None
        self.sections: list[tuple[str, int]] = []
        self.starts_from: list[str] = []
        self.returns_to: tuple[str, str] | None = None
        self.sections_independent_line = 0

    # -- annotations

    def annotate(self, text: str, line: int) -> None:
        """Record one `% test: ...` comment line."""
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise SnippetError(self.page, line, f"test annotation: {e}") from None
        if not words:
            raise SnippetError(self.page, line, "empty test annotation")
        head, rest = words[0], words[1:]
        if head.partition("=")[0] not in KEYWORDS | {"reason"}:
            raise SnippetError(self.page, line, f"unknown test annotation {head.partition('=')[0]!r}")
        if head == "continues":
            self._continues(rest, line)
            return
        if head == "starts-from":
            if len(rest) != 1 or "=" in rest[0]:
                raise SnippetError(self.page, line, "test annotation starts-from takes exactly one STATE")
            if rest[0] in self.starts_from:
                raise SnippetError(self.page, line, f"test annotation starts-from {rest[0]} given twice")
            self.starts_from.append(rest[0])
            return
        if head == "returns-to":
            self._returns_to(rest, line)
            return
        if head == "sections-independent":
            if rest:
                raise SnippetError(self.page, line, "test annotation sections-independent takes no arguments")
            if self.sections_independent_line:
                raise SnippetError(self.page, line, "test annotation sections-independent given twice")
            self.sections_independent_line = line
            return
        p = self.pending if self.pending is not None else _Pending()
        if head in {"values", "new-terminal"}:
            if rest:
                raise SnippetError(self.page, line, f"test annotation {head} takes no arguments")
            p.claim(head, self.page, line)
            if head == "values":
                p.sets_values = True
            else:
                p.new_terminal = True
        elif head == "again":
            options = dict(_key_value(w, self.page, line) for w in rest)
            if set(options) != {"exit", "says"} or not options["says"]:
                raise SnippetError(self.page, line, 'test annotation again needs exit=N and a non-empty says="TEXT" (the message the page tells the reader to expect)')
            p.claim("again", self.page, line)
            p.again = Again(_parse_int(options["exit"], "exit", self.page, line), options["says"])
        elif head == "counter":
            if not rest or "=" in rest[0]:
                raise SnippetError(self.page, line, "test annotation counter needs a WORLD (scripts/reader.py COUNTER_WORLDS)")
            p.claim("counter", self.page, line)
            p.counters.append(Check(rest[0], tuple(_key_value(w, self.page, line) for w in rest[1:])))
        elif head == "skip":
            p.claim("skip", self.page, line)
            p.skip_reason = _reason(rest, "skip", self.page, line)
        elif head in {"check", "before"}:
            if not rest or "=" in rest[0]:
                raise SnippetError(self.page, line, f"test annotation {head} needs a NAME before its key=value arguments")
            args = tuple(_key_value(w, self.page, line) for w in rest[1:])
            keys = [k for k, _ in args]
            if len(set(keys)) != len(keys):
                raise SnippetError(self.page, line, f"test annotation {head} {rest[0]}: an argument is given twice")
            p.claim(head, self.page, line)
            (p.checks if head == "check" else p.before).append(Check(rest[0], args))
        elif head == "apply":
            if not rest or "=" in rest[0]:
                raise SnippetError(self.page, line, "test annotation apply needs a PATH")
            mode = "replace"
            for k, v in (_key_value(w, self.page, line) for w in rest[1:]):
                if k != "mode" or v not in {"replace", "merge", "append"}:
                    raise SnippetError(self.page, line, f"test annotation apply: {k}={v!r} (only mode=replace|merge|append)")
                mode = v
            p.claim("apply", self.page, line)
            p.apply = Apply(rest[0], mode)
        elif head == "verify":
            if len(rest) != 1 or "=" in rest[0]:
                raise SnippetError(self.page, line, "test annotation verify takes exactly one PATH")
            p.claim("verify", self.page, line)
            p.verify = rest[0]
        elif "=" in head:
            self._options(words, p, line)
        else:
            raise SnippetError(self.page, line, f"unknown test annotation {head!r}")
        self.pending = p

    def _continues(self, rest: list[str], line: int) -> None:
        if self.continues is not None:
            raise SnippetError(self.page, line, f"test annotation continues given twice (first at line {self.continues_line})")
        if not rest or "=" in rest[0]:
            raise SnippetError(self.page, line, "test annotation continues needs a PAGE (relative to docs/)")
        target, upto, until = rest[0], None, None
        for k, v in (_key_value(w, self.page, line) for w in rest[1:]):
            if k == "until":
                until = v
                continue
            if k != "upto":
                raise SnippetError(self.page, line, f"test annotation continues: unknown option {k!r} (until=LABEL or upto=LINE)")
            upto = _parse_int(v, "upto", self.page, line)
            if upto < 1:
                raise SnippetError(self.page, line, f"test annotation continues upto={upto}: must be a line number")
        if upto is not None and until is not None:
            raise SnippetError(self.page, line, "test annotation continues: give until=LABEL or upto=LINE, not both")
        self.continues_until = until
        path = (self.root / "docs" / target).resolve()
        if not path.is_file():
            raise SnippetError(self.page, line, f"test annotation continues {target}: no such page under docs/")
        if path == (self.root / self.page).resolve():
            raise SnippetError(self.page, line, "test annotation continues names the page itself")
        self.continues, self.continues_upto, self.continues_line = target, upto, line

    def _returns_to(self, rest: list[str], line: int) -> None:
        if self.returns_to is not None:
            raise SnippetError(self.page, line, "test annotation returns-to given twice")
        options = [_key_value(w, self.page, line) for w in rest[1:]]
        if not rest or "=" in rest[0] or [k for k, _ in options] != ["from"]:
            raise SnippetError(self.page, line, "test annotation returns-to needs a PAGE and from=LABEL")
        if not (self.root / "docs" / rest[0]).is_file():
            raise SnippetError(self.page, line, f"test annotation returns-to {rest[0]}: no such page under docs/")
        self.returns_to = (rest[0], options[0][1])

    def _options(self, words: list[str], p: _Pending, line: int) -> None:
        pairs = [_key_value(w, self.page, line) for w in words]
        if pairs[0][0] == "shellcheck-disable":
            codes = tuple(pairs[0][1].split(","))
            bad = [c for c in codes if not _SC_CODE.fullmatch(c)]
            if bad:
                raise SnippetError(self.page, line, f"test annotation shellcheck-disable: {bad[0]!r} is not a code like SC2086")
            p.claim("shellcheck-disable", self.page, line)
            p.shellcheck_disable = codes
            _reason(words[1:], "shellcheck-disable", self.page, line)
            return
        for key, value in pairs:
            if key not in KEYWORDS | {"reason"}:
                raise SnippetError(self.page, line, f"unknown test annotation {key!r}")
            if key == "exit":
                p.claim("exit", self.page, line)
                p.exit = _parse_int(value, "exit", self.page, line)
                if not 0 <= p.exit <= 255:
                    raise SnippetError(self.page, line, f"test annotation exit={p.exit}: an exit status is 0..255")
            elif key == "timeout":
                p.claim("timeout", self.page, line)
                try:
                    p.timeout = float(value)
                except ValueError:
                    raise SnippetError(self.page, line, f"test annotation timeout={value!r}: not a number of seconds") from None
                if not (math.isfinite(p.timeout) and p.timeout > 0):
                    raise SnippetError(self.page, line, f"test annotation timeout={value}: must be a positive number of seconds")
            elif key == "output":
                if value not in {"exact", "ignore"}:
                    raise SnippetError(self.page, line, f"test annotation output={value!r}: only exact or ignore")
                p.claim("output", self.page, line)
                p.output_mode = value
            elif key in {"shellcheck-disable", "reason"}:
                raise SnippetError(self.page, line, f"test annotation {key}= must start its own line (shellcheck-disable=... reason=...)")
            else:
                raise SnippetError(self.page, line, f"unknown test annotation {key!r}")

    def dangle(self, what: str) -> None:
        """Something other than a fence follows pending annotations: they would silently apply to nothing."""
        if self.pending is not None:
            raise SnippetError(self.page, self.pending.line, f"dangling test annotation: {what} follows it, not a code fence")

    # -- fences

    def add(self, line: int, lang: str, code: str) -> None:
        """Turn one code block (fence or code directive) into a Snippet, consuming pending annotations."""
        p, self.pending = self.pending if self.pending is not None else _Pending(), None
        kind = _classify(lang, self.page, line)
        # A plain fence is highlighted with the language of the last {highlight} directive, if any.
        shown = rendered_text(code, lang or self.highlight_language, self.rules)
        text, not_commands = _format_copy_text(shown, self.rules)
        expected = None
        if kind == "shell":
            dropped = [s for s in (not_commands or []) if s.strip(_JS_WHITESPACE)]
            if lang in SESSION_LANGS:
                expected = _expected_output(not_commands, self.rules)
            elif dropped and self.rules.only_copy_prompt_lines:
                raise SnippetError(self.page, line, f"the copy button drops {dropped[0]!r} from this {lang} fence; show output in a console fence")
        self._check_fits(p, kind, lang, expected, line)
        output_mode = p.output_mode or ("exact" if expected is not None else "none")
        self.snippets.append(
            Snippet(
                page=self.page,
                line=line,
                lang=lang,
                kind=kind,
                source=code,
                text=text,
                expected_output=expected,
                exit=p.exit or 0,
                timeout=p.timeout,
                skip_reason=p.skip_reason,
                shellcheck_disable=p.shellcheck_disable,
                checks=tuple(p.checks),
                before=tuple(p.before),
                apply=p.apply,
                verify=p.verify,
                output_mode=output_mode,
                sets_values=p.sets_values,
                new_terminal=p.new_terminal,
                again=p.again,
                counters=tuple(p.counters),
            )
        )

    def _check_fits(self, p: _Pending, kind: str, lang: str, expected: str | None, line: int) -> None:
        def bad(key: str, why: str) -> SnippetError:
            return SnippetError(self.page, p.lines[key], f"test annotation {key} {why} (the fence at line {line} is {lang or 'plain'})")

        for key in ("exit", "timeout", "shellcheck-disable", "before", "values", "new-terminal", "again", "counter"):
            if key in p.lines and kind != "shell":
                raise bad(key, "only applies to shell fences")
        if "output" in p.lines:
            if lang not in SESSION_LANGS:
                raise bad("output", "only applies to console fences")
            if expected is None:
                raise bad("output", "has no output lines to compare")
        for key in ("apply", "verify"):
            if key in p.lines and kind in {"shell", "diagram"}:
                raise bad(key, "only applies to fences that show a file (not shell or diagram)")
        if "apply" in p.lines and "verify" in p.lines:
            raise bad("verify", "cannot be combined with apply")

    # -- the walk

    def walk(self, src: str, offset: int) -> None:
        """Visit the blocks of `src`, whose first line is line `offset` (0-based) of the page."""
        tokens = self.md.parse(src)
        for i, tok in enumerate(tokens):
            start = offset + (tok.map[0] if tok.map else 0)
            if tok.type == "myst_line_comment":
                for i, text in enumerate(tok.content.split("\n")):
                    stripped = text.strip()
                    if stripped.startswith("test:"):
                        self.annotate(stripped.removeprefix("test:"), start + i + 1)
                    elif re.match(r"(?i)tests?\b", stripped):
                        # A misspelt annotation would otherwise be an ordinary comment, silently ignored.
                        raise SnippetError(self.page, start + i + 1, f"comment {stripped!r} looks like a test annotation; write `% test: ...`")
            elif tok.type == "myst_target":
                self.targets.append((tok.content, start + 1))
            elif tok.type == "heading_open" and tok.tag == "h2":
                self.dangle(f"'heading' at line {start + 1}")
                self.sections.append((tokens[i + 1].content, start + 1))  # the heading's inline token
            elif tok.type in {"fence", "colon_fence"}:
                self._fence(tok, start)
            elif tok.type == "code_block":
                raise SnippetError(self.page, start + 1, "indented code block: use a fence with a language, so it is tested or classified")
            elif tok.type == "html_block" and tok.content.lstrip().startswith("<!--") and "test:" in tok.content:
                raise SnippetError(self.page, start + 1, "HTML comment holding a test annotation: write it as a `% test: ...` line")
            elif tok.nesting == 0 or tok.type in {"paragraph_open", "heading_open"}:
                self.dangle(f"{tok.type.removesuffix('_open')!r} at line {start + 1}")

    def _fence(self, tok: Token, start: int) -> None:
        assert tok.map is not None  # block tokens always carry a map
        content = tok.content
        n_content = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
        if tok.map[1] - tok.map[0] == n_content + 1:
            raise SnippetError(self.page, start + 1, f"unterminated {tok.markup!r} fence: it runs to the end of its block")
        parts = tok.info.strip().split(maxsplit=1)
        name = parts[0] if parts else ""
        arguments = parts[1] if len(parts) > 1 else ""
        line = start + 1
        if name.startswith("{") and name.endswith("}"):
            self._directive(name[1:-1], arguments, content, line, tok)
        elif tok.type == "colon_fence":
            self.dangle(f"a ::: block at line {line}")
            self.walk(content, start + 1)  # a plain ::: block is a div of nested MyST
        elif name in self.fence_as_directive:
            self._directive(name, arguments, content, line, tok)
        else:
            self.add(line, name, content)

    def _directive(self, name: str, arguments: str, content: str, line: int, tok: Token) -> None:
        shift = 0
        if tok.type == "colon_fence" and content.startswith(":::"):
            content, shift = "\n" + content, -1  # as MyST does, so a nested fence is not read as options
        if name in _CODE_DIRECTIVES:
            parsed = self._parse_directive(name, _CODE_DIRECTIVES[name], arguments, content, line, validate=True)
            if parsed.warnings:
                raise SnippetError(self.page, line, f"{{{name}}}: {parsed.warnings[0].msg}")
            code = "\n".join(parsed.body)
            if "dedent" in parsed.options:
                code = "".join(dedent_lines(code.splitlines(True), parsed.options["dedent"]))
            lang = parsed.arguments[0] if parsed.arguments else ""
            self.add(line, lang, code)
        elif name in DIAGRAM_LANGS:
            self.add(line, name, content)
        elif name == "highlight":
            self.dangle(f"{{highlight}} at line {line}")
            self.highlight_language = arguments.strip() or self.highlight_language
        elif name in _OPAQUE_DIRECTIVES:
            self.dangle(f"{{{name}}} at line {line}")
        else:
            self.dangle(f"{{{name}}} at line {line}")
            parsed = self._parse_directive(name, _Container, arguments, content, line, validate=False)
            # body_offset counts body lines from the first line after the opening fence.
            self.walk("\n".join(parsed.body) + "\n", line + parsed.body_offset + shift)
            self.dangle(f"the end of {{{name}}}")

    def _parse_directive(self, name: str, cls: type[SphinxDirective], arguments: str, content: str, line: int, *, validate: bool) -> DirectiveParsingResult:
        """Split a directive into arguments, options and body exactly as MyST does."""
        try:
            return parse_directive_text(cls, arguments, content, line=line, validate_options=validate)
        except MarkupError as e:
            raise SnippetError(self.page, line, f"{{{name}}}: {e}") from None


class _Container(SphinxDirective):
    """Stand-in directive class for reading a container directive's options and body (admonitions, tabs...)."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {"class": str}  # any options: with validate_options=False they are read as YAML


def _classify(lang: str, page: str, line: int) -> str:
    """Shell, config, diagram or other; a shell-ish language we would not run is an error."""
    low = lang.lower()
    if lang in SHELL_LANGS:
        return "shell"
    if low in CONFIG_LANGS:
        return "config"
    if low in DIAGRAM_LANGS:
        return "diagram"
    shellish = low in _SHELLISH_NAMES or low.startswith(_SHELLISH_PREFIXES) or low.endswith(("sh", "-session"))
    if not shellish and low:
        with contextlib.suppress(ClassNotFound):
            shellish = get_lexer_by_name(low).__module__ == "pygments.lexers.shell"
    if shellish:
        raise SnippetError(page, line, f"fence language {lang!r} looks like a shell but is not one we run; use one of {', '.join(sorted(SHELL_LANGS))}")
    return "other"


# --------------------------------------------------------------------------- pages


def parse_page(path: Path, root: Path, rules: CopyRules) -> Page:
    """Every code block of a MyST page, in page order, with its copy text and annotations."""
    page = path.resolve().relative_to(root.resolve()).as_posix()
    state = _PageState(page, root, rules)
    src = path.read_text(encoding="utf-8")
    state.walk(src, 0)
    state.dangle("the end of the page")
    values = [s for s in state.snippets if s.sets_values]
    if len(values) > 1:
        raise SnippetError(page, values[1].line, f"a second `values` block (the first is at line {values[0].line}): the reader sets their values once")
    for s in values:
        reader_values(s)  # a values block without NAME=VALUE lines is an error now, not when a run needs it
    result = Page(
        page, tuple(state.snippets), state.continues, state.continues_upto, state.continues_until, tuple(state.targets),
        tuple(state.sections), tuple(state.starts_from), state.returns_to, bool(state.sections_independent_line),
    )  # fmt: skip
    if result.sections_independent:
        line = state.sections_independent_line
        if result.returns_to is not None:
            raise SnippetError(page, line, "test annotation sections-independent: the page also has returns-to, so its sections are not a reader's whole visit")
        if not any(s.is_step and result.section_of(s.line) is not None for s in result.snippets):
            raise SnippetError(page, line, "test annotation sections-independent: no `##` section of the page has a step to run on its own")
    return result


def discover_pages(root: Path) -> list[Path]:
    """The guide's pages: docs/**/*.md, sorted, skipping hidden and build directories."""
    docs = root / "docs"
    return sorted(p for p in docs.rglob("*.md") if not any(part.startswith((".", "_build")) for part in p.relative_to(docs).parts))


def shell_snippets(page: Page) -> list[Snippet]:
    """The page's shell fences, in order: the ones a reader pastes into a terminal."""
    return [s for s in page.snippets if s.kind == "shell"]


# --------------------------------------------------------------------------- the reader's values
#
# The guide's commands use example values (authentik.example.com, admin@example.com) that every
# reader replaces with their own. One fence, annotated `% test: values`, is where the reader sets
# them as shell variables; every later block reads the variables. Some strings still carry an
# example value: a config file shown as it ends up, the output a command prints, a check's
# arguments. This model says which strings those are, so that a test can run the guide with other
# values and the site can show a reader's own values (issue 12) from the same extraction.

_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PageValue:
    """One of the reader's values: the shell variable that holds it and the example value the guide shows."""

    name: str
    example: str

    @property
    def host(self) -> str | None:
        """The hostname inside a URL value (`https://app.example.com` -> `app.example.com`), else None."""
        m = re.fullmatch(r"https?://([^/:]+)(:\d+)?/?", self.example)
        return m.group(1) if m else None

    def forms(self) -> tuple[tuple[str, str], ...]:
        """(form, text) pairs that stand for this value in a block: the value itself and, for a URL, its hostname."""
        host = self.host
        return (("value", self.example), ("host", host)) if host else (("value", self.example),)


@dataclass(frozen=True, slots=True)
class ValueSpan:
    """Where one of the reader's values occurs in a text: `text[start:end]` is the `form` of the value `name`."""

    name: str
    form: str  # "value" (the whole example) or "host" (the hostname of a URL value)
    start: int
    end: int


def reader_values(snippet: Snippet) -> tuple[PageValue, ...]:
    """The values a `% test: values` fence sets: its `NAME=VALUE` lines, in order."""
    found = tuple(PageValue(name, value) for name, value in _ASSIGNMENT.findall(snippet.source))
    if not found:
        raise SnippetError(snippet.page, snippet.line, "the `values` block sets no NAME=VALUE line: nothing tells which strings are the reader's values")
    return found


def declared_values(pages: Sequence[Page]) -> tuple[PageValue, ...]:
    """The reader's values across the guide: every page's `values` fence; one example per name."""
    seen: dict[str, PageValue] = {}
    for page in pages:
        for snippet in page.snippets:
            if not snippet.sets_values:
                continue
            for value in reader_values(snippet):
                other = seen.setdefault(value.name, value)
                if other.example != value.example:
                    raise SnippetError(snippet.page, snippet.line, f"{value.name}={value.example} here, but {other.example} elsewhere: one example per value")
    return tuple(seen.values())


def value_spans(text: str, values: Sequence[PageValue]) -> tuple[ValueSpan, ...]:
    """Every occurrence of a value in `text`, left to right, never overlapping; at one place the longest form wins.

    A form matches only as a whole name: `api.example.com` is not found inside `myapi.example.com`
    or `api.example.com.au`, but is found before a path, a port, quotes or a sentence's full stop.
    """
    candidates = sorted(((len(form), v.name, kind, form) for v in values for kind, form in v.forms()), reverse=True)
    found: list[ValueSpan] = []
    taken = [False] * len(text)
    for _, name, kind, form in candidates:
        for m in re.finditer(r"(?<![\w.@-])" + re.escape(form) + r"(?![\w@-]|\.\w)", text):
            if not any(taken[m.start() : m.end()]):
                found.append(ValueSpan(name, kind, m.start(), m.end()))
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
    return tuple(sorted(found, key=lambda span: span.start))


def substitute(text: str, values: Sequence[PageValue], mine: Mapping[str, str]) -> str:
    """`text` with each value replaced by the reader's own (`mine`: variable name -> value), in the same form."""
    by_name = {v.name: v for v in values}
    unknown = sorted(set(mine) - set(by_name))
    if unknown:
        raise ValueError(f"no such value on the page: {', '.join(unknown)} (known: {', '.join(by_name)})")
    out: list[str] = []
    last = 0
    for span in value_spans(text, values):
        if span.name not in mine:
            continue
        theirs = PageValue(span.name, mine[span.name])
        replacement = theirs.example if span.form == "value" else theirs.host
        if replacement is None:
            raise ValueError(f"{span.name}={mine[span.name]!r} is not a URL, but the page uses the hostname of its example {by_name[span.name].example!r}")
        out += [text[last : span.start], replacement]
        last = span.end
    return "".join([*out, text[last:]])


def value_renames(values: Sequence[PageValue], mine: Mapping[str, str]) -> dict[str, str]:
    """Each example string a world holds (a value, or a URL value's hostname) -> the reader's own, for `mine`."""
    out: dict[str, str] = {}
    for v in values:
        if v.name in mine:
            theirs = PageValue(v.name, mine[v.name])
            for (kind, old), (_, new) in zip(v.forms(), theirs.forms(), strict=False):
                out[old] = new
                if kind == "host" and theirs.host is None:
                    raise ValueError(f"{v.name}={mine[v.name]!r} is not a URL like its example {v.example!r}")
    return out


def substitute_page(page: Page, values: Sequence[PageValue], mine: Mapping[str, str], *, everywhere: bool = True) -> Page:
    """The page as a reader with values `mine` would copy it: every block, shown output and check argument.

    `everywhere=False` is the reader who edits only the `values` block, as the page tells them to: the
    commands and applied files they copy keep the examples, and only what the page shows as a result
    (shown output, `verify` blocks, check arguments) follows their values. A command that holds an
    example value then runs with it, as it would on their server."""

    def sub(text: str) -> str:
        return substitute(text, values, mine)

    def copied(s: Snippet, text: str) -> str:
        keeps_examples = not everywhere and not s.sets_values and (s.kind == "shell" or s.apply is not None)
        return text if keeps_examples else sub(text)

    def sub_checks(checks: tuple[Check, ...]) -> tuple[Check, ...]:
        return tuple(Check(c.name, tuple((k, sub(v)) for k, v in c.args)) for c in checks)

    snippets = tuple(
        replace(
            s,
            source=copied(s, s.source),
            text=copied(s, s.text),
            expected_output=None if s.expected_output is None else sub(s.expected_output),
            checks=sub_checks(s.checks),
            before=sub_checks(s.before),
        )
        for s in page.snippets
    )
    return replace(page, snippets=snippets)
