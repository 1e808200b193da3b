"""Snippet extraction: copybutton's copy rules (checked against the real JavaScript), fences, annotations, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import sphinx_copybutton  # type: ignore[import-untyped]  # ships no types; only its file location is used

from scripts import snippets as sn

REPO = Path(__file__).resolve().parents[1]
COPYBUTTON_JS = Path(sphinx_copybutton.__file__).parent / "_static" / "copybutton_funcs.js"

# conf.py's copybutton section, as the contract fixes it; MyST settings as the site uses them.
CONF_PY = textwrap.dedent(
    r"""
    copybutton_prompt_text = r"\$ "
    copybutton_prompt_is_regexp = True
    copybutton_only_copy_prompt_lines = True
    copybutton_remove_prompts = True
    copybutton_copy_empty_lines = True
    copybutton_line_continuation_character = "\\"
    copybutton_here_doc_delimiter = "EOF"
    myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
    myst_fence_as_directive = ["mermaid"]
    """
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A throwaway repository root with conf.py and an empty docs/."""
    (tmp_path / "conf.py").write_text(CONF_PY)
    (tmp_path / "docs").mkdir()
    return tmp_path


@pytest.fixture
def rules(root: Path) -> sn.CopyRules:
    return sn.load_copy_rules(root / "conf.py")


def parse(root: Path, text: str, name: str = "page.md") -> sn.Page:
    path = root / "docs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return sn.parse_page(path, root, sn.load_copy_rules(root / "conf.py"))


def parse_error(root: Path, text: str) -> sn.SnippetError:
    with pytest.raises(sn.SnippetError) as info:
        parse(root, text)
    return info.value


def only(page: sn.Page) -> sn.Snippet:
    assert len(page.snippets) == 1, page.snippets
    return page.snippets[0]


# --------------------------------------------------------------------------- copy rules


def test_conf_py_settings_are_loaded(rules: sn.CopyRules) -> None:
    """The copy rules come from conf.py, so the harness runs what the published button copies."""
    assert (rules.prompt_text, rules.prompt_is_regexp, rules.line_continuation_character, rules.here_doc_delimiter) == (r"\$ ", True, "\\", "EOF")
    assert rules.md_config().fence_as_directive == {"mermaid"}


def test_absent_settings_take_copybuttons_defaults(tmp_path: Path) -> None:
    """A conf.py without a copybutton section means copybutton's defaults, not ours."""
    (tmp_path / "conf.py").write_text("project = 'x'\n")
    assert sn.load_copy_rules(tmp_path / "conf.py") == sn.CopyRules()


def test_an_exclude_selector_that_hides_prompts_is_refused(tmp_path: Path) -> None:
    """Excluding `.gp` changes the text formatCopyText sees, which the port does not model."""
    (tmp_path / "conf.py").write_text("copybutton_exclude = '.linenos, .gp'\n")
    with pytest.raises(ValueError, match="copybutton_exclude"):
        sn.load_copy_rules(tmp_path / "conf.py")


def test_repo_conf_py_has_the_contracted_copybutton_settings(rules: sn.CopyRules) -> None:
    """The repository's conf.py carries exactly the copybutton section the port is cross-checked with."""
    repo = sn.load_copy_rules(REPO / "conf.py")
    assert dataclasses.replace(repo, myst=(), highlight_language="default") == dataclasses.replace(rules, myst=())


def test_prompt_is_removed_and_output_lines_are_dropped(rules: sn.CopyRules) -> None:
    assert sn.copy_text("$ ls /etc\nhosts\npasswd\n$ pwd\n/root\n", rules) == "ls /etc\npwd"


def test_continuation_lines_after_a_prompt_are_copied(rules: sn.CopyRules) -> None:
    text = "$ docker run \\\n  --rm \\\n  alpine\nout\n"
    assert sn.copy_text(text, rules) == "docker run \\\n  --rm \\\n  alpine"


def test_here_doc_body_is_copied_up_to_the_delimiter(rules: sn.CopyRules) -> None:
    text = "$ cat > f <<EOF\nA=1\n\nB=2\nEOF\nnot copied\n"
    assert sn.copy_text(text, rules) == "cat > f <<EOF\nA=1\n\nB=2\nEOF"


def test_here_doc_toggles_on_any_line_mentioning_the_delimiter(rules: sn.CopyRules) -> None:
    """copybutton's quirk: a body line containing `EOF` ends the here-doc early, so the rest is dropped."""
    text = "$ cat > f <<'EOF'\necho EOF-marker\nkept? no\nEOF\n"
    assert sn.copy_text(text, rules) == "cat > f <<'EOF'\necho EOF-marker"


def test_block_without_any_prompt_is_copied_whole(rules: sn.CopyRules) -> None:
    assert sn.copy_text("ls\n# a comment\n\necho $HOME\n", rules) == "ls\n# a comment\n\necho $HOME"


def test_only_one_trailing_newline_is_removed(rules: sn.CopyRules) -> None:
    assert sn.copy_text("ls\n\n", rules) == "ls\n"
    assert sn.copy_text("$ ls\n\n", rules) == "ls\n"


def test_empty_lines_are_copied_between_prompt_lines(rules: sn.CopyRules) -> None:
    assert sn.copy_text("$ a\n\n$ b\n", rules) == "a\n\nb"


def test_prompt_needs_its_space(rules: sn.CopyRules) -> None:
    """`$HOME` at the start of a line is not a prompt: the regexp is `\\$ `."""
    assert sn.copy_text("$HOME/bin/x\n$ y\n", rules) == "y"


def test_pygments_strips_blank_lines_around_a_shell_fence(rules: sn.CopyRules) -> None:
    """The <pre> shows what Pygments kept: surrounding blank lines are gone, one newline is ensured."""
    assert sn.rendered_text("\n\nls\n\n", "bash", rules) == "ls\n"
    assert sn.rendered_text("\nx = 1\n", "python", rules) == "\nx = 1\n"  # Sphinx's python lexer keeps them


# The cross-check: the real copybutton_funcs.js under node, on blocks chosen to hit every branch and quirk.
CORPUS = [
    "",
    "\n",
    "ls",
    "ls\n",
    "ls\n\n",
    "\nls\n",
    "$ ls\n",
    "$ ls",
    "$ ls\nout\n",
    "$ ls\n\n\n$ pwd\n",
    "$ a \\\n  b \\\n  c\nout\n",
    "$ a \\\nb\nc\n",
    "$a\n$ b\n",
    " $ indented\n$ x\n",
    "$ cat <<EOF\nx\nEOF\nout\n",
    "$ cat <<'EOF' > f\nA=1\n\n  \nB=$HOME\nEOF\n$ wc -l f\n3 f\n",
    "$ cat <<EOF\necho EOF\nz\nEOF\n",
    "$ echo EOF\nout\n$ x\n",
    "out first\n$ x\n\t\n\u00a0\n\ufeff\n\x1c\nmore\n",
    "$ a\u2028b\nc\n",
    "$ \n$  two spaces\n",
    "# comment\n$ x # trailing\n",
    "$ x \\\n",
    "$ x \\",
    "\\\n$ y\n",
    "$ a\r\nb\r\n",
    "line one\nline two\n",
    "$ $ nested prompt\n",
    "$$ not a prompt\n$ yes\n",
    "$ a\\\\\nb\n",
]

RULE_SETS = {
    "conf.py": {},
    "literal prompt, keep prompts": {"prompt_text": "$ ", "prompt_is_regexp": False, "remove_prompts": False},
    "copy every line": {"only_copy_prompt_lines": False},
    "no empty lines, no continuation, no here-doc": {
        "copy_empty_lines": False,
        "line_continuation_character": "",
        "here_doc_delimiter": "",
    },
    "regexp alternatives": {"prompt_text": r"\$ |# |>>> "},
    # JS pushes match[2]: with a group inside the prompt that is the group, not the rest of the line.
    "regexp with its own group": {"prompt_text": r"(\$|#) "},
    "copybutton defaults": None,
}


def node_format(cases: list[str], rules: sn.CopyRules) -> list[str]:
    """formatCopyText from copybutton_funcs.js, run by node with the rules' settings."""
    script = (
        f"import {{ formatCopyText }} from {json.dumps(COPYBUTTON_JS.as_uri())};\n"
        "let data = '';\n"
        "process.stdin.on('data', (c) => { data += c; });\n"
        "process.stdin.on('end', () => {\n"
        "  const { cases, args } = JSON.parse(data);\n"
        "  process.stdout.write(JSON.stringify(cases.map((c) => formatCopyText(c, ...args))));\n"
        "});\n"
    )
    args = [
        rules.prompt_text,
        rules.prompt_is_regexp,
        rules.only_copy_prompt_lines,
        rules.remove_prompts,
        rules.copy_empty_lines,
        rules.line_continuation_character,
        rules.here_doc_delimiter,
    ]
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps({"cases": cases, "args": args}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[str] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def node_available() -> None:
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required in CI to cross-check the copy rules against copybutton_funcs.js")
        pytest.skip("node is not installed: cannot run copybutton_funcs.js to cross-check the Python port")


@pytest.mark.parametrize("changes", RULE_SETS.values(), ids=RULE_SETS.keys())
def test_port_matches_copybutton_javascript(node_available: None, rules: sn.CopyRules, changes: dict[str, object] | None) -> None:
    """The Python port and the shipped JavaScript give byte-identical clipboard text on every tricky block."""
    ruleset = sn.CopyRules() if changes is None else dataclasses.replace(rules, **changes)  # type: ignore[arg-type]
    expected = node_format(CORPUS, ruleset)
    got = [sn.copy_text(case, ruleset) for case in CORPUS]
    mismatches = [(case, js, py) for case, js, py in zip(CORPUS, expected, got, strict=True) if js != py]
    assert not mismatches, "\n".join(f"{c!r}: js={j!r} python={p!r}" for c, j, p in mismatches)


SITE_PAGE = """\
# Site

```bash


echo leading and trailing blank lines


```

```console
$ echo hi \\
  there
hi there

$ cat <<EOF
a EOF b
c
EOF
```

```{code-block} bash
:linenos:
:dedent:

    cd /tmp
      ls
```

```

x = 1

```

:::{note}
```sh
	echo tab
```
:::
"""


def test_built_page_copies_what_the_parser_says(node_available: None, root: Path, tmp_path: Path) -> None:
    """End to end: Sphinx renders the page, the real formatCopyText runs on each <pre>'s text, and the
    result is each snippet's `text`. This backs "the <pre> text is the fence content" in snippets.py."""
    from bs4 import BeautifulSoup
    from sphinx.cmd.build import build_main

    conf = root / "conf.py"
    conf.write_text(conf.read_text() + "extensions = ['myst_parser', 'sphinx_copybutton']\n")
    (root / "docs" / "index.md").write_text(SITE_PAGE)
    out = tmp_path / "_build"
    assert build_main(["-q", "-b", "html", "-c", str(root), str(root / "docs"), str(out)]) == 0
    soup = BeautifulSoup((out / "index.html").read_text(), "html.parser")
    shown = []
    for pre in soup.select("div.highlight pre"):
        for excluded in pre.select(".linenos"):  # copybutton_exclude's default
            excluded.decompose()
        shown.append(pre.get_text())
    rules = sn.load_copy_rules(conf)
    page = sn.parse_page(root / "docs" / "index.md", root, rules)
    assert [sn.rendered_text(s.source, s.lang or rules.highlight_language, rules) for s in page.snippets] == shown
    assert [s.text for s in page.snippets] == node_format(shown, rules)


# --------------------------------------------------------------------------- fences


def test_fences_are_classified_by_language(root: Path) -> None:
    page = parse(
        root,
        """
        ```bash
        ls
        ```
        ```console
        $ ls
        ```
        ```env
        A=1
        ```
        ```Caddyfile
        app.example.com
        ```
        ```
        plain
        ```
        ```python
        x = 1
        ```
        ```mermaid
        graph TD
        ```
        ```nginx
        server {}
        ```
        """,
    )
    assert [(s.lang, s.kind) for s in page.snippets] == [
        ("bash", "shell"),
        ("console", "shell"),
        ("env", "config"),
        ("Caddyfile", "config"),
        ("", "other"),
        ("python", "other"),
        ("mermaid", "diagram"),
        ("nginx", "other"),
    ]
    assert [s.line for s in page.snippets] == [1, 4, 7, 10, 13, 16, 19, 22]
    assert [s.id for s in sn.shell_snippets(page)] == ["docs/page.md:1", "docs/page.md:4"]


@pytest.mark.parametrize("lang", ["zsh", "fish", "bash-session", "shellsession", "ps1", "powershell", "cmd", "terminal", "Bash"])
def test_unknown_shellish_language_is_an_error(root: Path, lang: str) -> None:
    """A command in a fence we would not run must not pass as "other"."""
    error = parse_error(root, f"# T\n\n```{lang}\nls\n```\n")
    assert (error.page, error.line) == ("docs/page.md", 3)
    assert lang in error.message


def test_line_numbers_count_front_matter_lists_and_directives(root: Path) -> None:
    page = parse(
        root,
        """
        ---
        title: T
        ---
        # T

        1. First:

           ```bash
           one
           ```
        2. Second:
           - nested

             ```bash
             two
             ```

        :::{note}
        :class: tip

        ```bash
        three
        ```
        :::

        ::::{tip}
        :::{note}
        ```bash
        four
        ```
        :::
        ::::

        ````{admonition} Title
        ---
        class: x
        ---
        ```bash
        five
        ```
        ````
        """,
    )
    assert [(s.line, s.text) for s in page.snippets] == [(8, "one"), (14, "two"), (21, "three"), (28, "four"), (38, "five")]


@pytest.mark.parametrize(
    "head",
    [
        "{note}",
        "{note}\n",
        "{note}\n:class: x",
        "{note}\n:class: x\n",
        "{note}\n---\nclass: x\n---",
        "{note}\n---\nclass: x\n---\n",
        "{admonition} Title\n:class: x\n\n",
        "{note} First line of the body.\n",
        "{tab-item} Linux\n:sync: linux\n\nSome text.\n",
    ],
)
def test_fence_line_inside_a_directive_survives_its_options(root: Path, head: str) -> None:
    """The body offset MyST computes for options (field list or YAML block) gives the fence's real line."""
    source = f"# T\n\n:::{head}\n```bash\nls\n```\n:::\n"
    line = source.split("\n").index("```bash") + 1
    assert only(parse(root, source)).line == line


def test_code_block_directive_is_a_fence_of_its_argument(root: Path) -> None:
    page = parse(
        root,
        """
        ```{code-block} console
        :caption: Check it

        $ echo hi
        hi
        ```

        ```{code-block} bash
        :dedent: 4

            ls
        ```
        """,
    )
    first, second = page.snippets
    assert (first.line, first.lang, first.kind, first.text, first.expected_output) == (1, "console", "shell", "echo hi", "hi")
    assert (second.line, second.lang, second.text) == (8, "bash", "ls")


def test_a_block_with_a_prompt_hides_no_commands_in_a_bash_fence(root: Path) -> None:
    """A bash fence with `$ ` lines would silently drop its other lines: say console instead."""
    error = parse_error(root, "```bash\n$ ls\nout\n```\n")
    assert error.line == 1
    assert "console" in error.message


def test_console_fence_shows_its_expected_output(root: Path) -> None:
    snippet = only(parse(root, "```console\n$ echo a\na\n\nb\n$ true\n```\n"))
    assert (snippet.text, snippet.expected_output, snippet.output_mode) == ("echo a\n\ntrue", "a\n\nb", "exact")


def test_console_fence_without_output_has_none(root: Path) -> None:
    snippet = only(parse(root, "```console\n$ true\n```\n"))
    assert (snippet.expected_output, snippet.output_mode) == (None, "none")


def test_unterminated_fence_is_an_error(root: Path) -> None:
    """markdown-it runs an unclosed fence to the end of its block, swallowing the rest of the page."""
    error = parse_error(root, "# T\n\n```bash\nls\n\n## More\n")
    assert (error.line, "unterminated" in error.message) == (3, True)


def test_unterminated_fence_in_a_list_item_is_an_error(root: Path) -> None:
    error = parse_error(root, "- one\n  ```bash\n  ls\n- two\n")
    assert (error.line, "unterminated" in error.message) == (2, True)


def test_indented_code_block_is_an_error(root: Path) -> None:
    assert parse_error(root, "Text.\n\n    ls -l\n").line == 3


# --------------------------------------------------------------------------- annotations


def test_every_next_fence_annotation_reaches_its_fence(root: Path) -> None:
    page = parse(
        root,
        """
        % an ordinary comment
        % test: exit=3 timeout=2.5
        % test: shellcheck-disable=SC2086,SC2164 reason="word splitting is the point"
        % test: check file-exists path=~/x mode=600
        % test: check jwks-has-key
        ```bash
        exit 3
        ```

        % test: skip reason="needs a browser"
        ```bash
        xdg-open https://app.example.com
        ```

        % test: apply reflector/server/.env mode=merge
        ```env
        AUTH_BACKEND=jwt
        ```

        % test: verify reflector/www/.env
        ```env
        FEATURE_REQUIRE_LOGIN=true
        ```

        % test: output=ignore
        ```console
        $ date
        Thu Jan  1 00:00:00 UTC 1970
        ```
        """,
    )
    first, skipped, applied, verified, console = page.snippets
    assert (first.exit, first.timeout, first.shellcheck_disable) == (3, 2.5, ("SC2086", "SC2164"))
    assert first.checks == (sn.Check("file-exists", (("path", "~/x"), ("mode", "600"))), sn.Check("jwks-has-key", ()))
    assert skipped.skip_reason == "needs a browser"
    assert applied.apply == sn.Apply("reflector/server/.env", "merge")
    assert verified.verify == "reflector/www/.env"
    assert console.output_mode == "ignore"
    assert (first.skip_reason, applied.exit, verified.apply, console.timeout) == (None, 0, None, None)


def test_apply_mode_defaults_to_replace(root: Path) -> None:
    assert only(parse(root, "% test: apply Caddyfile\n```\nx\n```\n")).apply == sn.Apply("Caddyfile", "replace")


def test_continues_names_a_page_and_an_upto_line(root: Path) -> None:
    (root / "docs" / "first.md").write_text("# First\n")
    page = parse(root, "% test: continues first.md upto=12\n\n# Second\n")
    assert (page.continues, page.continues_upto, page.snippets) == ("first.md", 12, ())


def test_continues_needs_an_existing_page(root: Path) -> None:
    error = parse_error(root, "# T\n% test: continues nowhere.md\n")
    assert (error.line, "nowhere.md" in error.message) == (2, True)


@pytest.mark.parametrize(
    ("annotation", "cause"),
    [
        ("% test: retry=3", "unknown test annotation 'retry'"),
        ("% test: frobnicate", "unknown test annotation 'frobnicate'"),
        ("% test: skip", "reason"),
        ('% test: skip reason=""', "reason"),
        ('% test: skip because="x"', "unknown option 'because'"),
        ("% test: shellcheck-disable=SC2086", "reason"),
        ('% test: shellcheck-disable=2086 reason="x"', "SC2086"),
        ("% test: exit=one", "not an integer"),
        ("% test: exit=300", "0..255"),
        ("% test: timeout=-1", "positive"),
        ("% test: timeout=soon", "not a number"),
        ("% test: output=fuzzy", "exact or ignore"),
        ("% test: check", "NAME"),
        ("% test: check name novalue", "key=value"),
        ('% test: skip reason="unclosed', "quotation"),
        ("% test: exit=1\n% test: exit=2", "given twice"),
        ("% test exit=1", "looks like a test annotation"),
    ],
)
def test_bad_annotation_is_an_error_naming_its_line(root: Path, annotation: str, cause: str) -> None:
    error = parse_error(root, f"# T\n\n{annotation}\n```bash\nls\n```\n")
    assert (error.page, error.line) == ("docs/page.md", 3 + annotation.count("\n"))
    assert cause in error.message
    assert str(error).startswith(f"docs/page.md:{error.line}: ")


@pytest.mark.parametrize(
    ("annotation", "fence", "line", "cause"),
    [
        ("apply ~/x.env", "```bash\nls\n```", 3, "apply only applies to fences that show a file"),
        ("verify ~/x.env", "```console\n$ ls\n```", 3, "verify only applies to fences that show a file"),
        ("apply ~/x", "```mermaid\ngraph TD\n```", 3, "apply only applies to fences that show a file"),
        ("exit=1", "```env\nA=1\n```", 3, "exit only applies to shell fences"),
        ("timeout=5", "```yaml\na: 1\n```", 3, "timeout only applies to shell fences"),
        ('shellcheck-disable=SC2086 reason="x"', "```\nplain\n```", 3, "shellcheck-disable only applies to shell"),
        ("output=exact", "```bash\nls\n```", 3, "output only applies to console fences"),
        ("output=exact", "```console\n$ true\n```", 3, "no output lines"),
        ("apply a mode=merge\n% test: verify a", "```env\nA=1\n```", 4, "cannot be combined with apply"),
    ],
)
def test_annotation_that_does_not_fit_its_fence_is_an_error(root: Path, annotation: str, fence: str, line: int, cause: str) -> None:
    error = parse_error(root, f"# T\n\n% test: {annotation}\n{fence}\n")
    assert (error.line, cause in error.message) == (line, True), str(error)


@pytest.mark.parametrize(
    ("fence", "cause"),
    [
        ("```{code-block} bash extra\nls\n```", "argument"),
        ("```{code-block} bash\n:emphasise-lines: 1\n\nls\n```", "emphasise-lines"),
    ],
)
def test_malformed_code_directive_is_an_error(root: Path, fence: str, cause: str) -> None:
    """Sphinx would refuse these blocks, so they cannot be snippets."""
    error = parse_error(root, f"# T\n\n{fence}\n")
    assert (error.line, cause in error.message) == (3, True), str(error)


@pytest.mark.parametrize(
    ("between", "what"),
    [
        ("", "end of the page"),
        ("\n## Heading\n", "heading"),
        ("\nSome prose.\n", "paragraph"),
        ("\n:::{note}\nText.\n:::\n", "{note}"),
    ],
)
def test_dangling_annotation_is_an_error_naming_it(root: Path, between: str, what: str) -> None:
    tail = "" if what == "end of the page" else "\n```bash\nls\n```\n"
    error = parse_error(root, f"# T\n\n% test: exit=1\n{between}{tail}")
    assert (error.line, "dangling" in error.message, what in error.message) == (3, True, True)


def test_html_comment_annotation_is_refused(root: Path) -> None:
    """HTML comments leak into the page source and would be ignored: only `%` comments are annotations."""
    assert parse_error(root, '# T\n\n<!-- test: skip reason="x" -->\n```bash\nls\n```\n').line == 3


def test_annotations_inside_a_directive_bind_to_its_fence(root: Path) -> None:
    page = parse(root, ":::{note}\n% test: exit=2\n```bash\nfalse\n```\n:::\n")
    assert (only(page).exit, only(page).line) == (2, 3)


# --------------------------------------------------------------------------- pages


def test_discover_pages_lists_docs_markdown_sorted(root: Path) -> None:
    for name in ["b.md", "a.md", "sub/c.md", "_build/x.md", ".hidden/y.md", "notes.txt"]:
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# x\n")
    assert [p.relative_to(root).as_posix() for p in sn.discover_pages(root)] == ["docs/a.md", "docs/b.md", "docs/sub/c.md"]


def test_before_annotation_records_the_readers_browser_step(root: Path) -> None:
    page = parse(root, '% test: before ui-create-api-key name="Backup script" file=~/k\n% test: check file-mode file=~/k mode=600\n```bash\nchmod 600 ~/k\n```\n')
    (s,) = page.snippets
    assert s.before == (sn.Check("ui-create-api-key", (("name", "Backup script"), ("file", "~/k"))),)
    assert [c.name for c in s.checks] == ["file-mode"]


def test_before_annotation_only_fits_shell_fences(root: Path) -> None:
    err = parse_error(root, "% test: before ui-create-api-key name=x\n```yaml\na: 1\n```\n")
    assert "only applies to shell fences" in str(err)


def test_continues_until_a_label_records_the_target_and_the_labels(root: Path) -> None:
    (root / "docs" / "first.md").write_text("# First\n\n```bash\ntrue\n```\n\n(later)=\n## Later\n")
    page = parse(root, "% test: continues first.md until=later\n# Second\n")
    assert (page.continues, page.continues_until, page.continues_upto) == ("first.md", "later", None)
    first = sn.parse_page(root / "docs" / "first.md", root, sn.load_copy_rules(root / "conf.py"))
    assert first.targets == (("later", 7),)


def test_continues_takes_until_or_upto_not_both(root: Path) -> None:
    (root / "docs" / "first.md").write_text("# First\n")
    err = parse_error(root, "% test: continues first.md until=x upto=3\n# Second\n")
    assert "not both" in str(err)


# --------------------------------------------------------------------------- the reader's abilities' annotations


def test_reader_annotations_are_recorded_on_their_fence(root: Path) -> None:
    """values, new-terminal, again and counter belong to the next shell fence; starts-from and returns-to to the page."""
    (root / "docs" / "other.md").write_text("# Other\n\n(here)=\n## Here\n")
    page = parse(
        root,
        """
        % test: starts-from fresh-install
        % test: starts-from signed-in
        % test: returns-to other.md from=here

        # Page

        ## First

        % test: values
        ```bash
        APP_URL=https://app.example.com
        ```

        ## Second

        % test: new-terminal
        % test: again exit=1 says="cannot overwrite existing file"
        % test: counter sign-in-off
        % test: counter authentik-down
        ```bash
        . ~/file.sh
        ```
        """,
    )
    values, resume = page.snippets
    assert (values.sets_values, values.new_terminal, values.again, values.counters) == (True, False, None, ())
    assert (resume.new_terminal, resume.again) == (True, sn.Again(1, "cannot overwrite existing file"))
    assert [c.name for c in resume.counters] == ["sign-in-off", "authentik-down"]
    assert (page.starts_from, page.returns_to) == (("fresh-install", "signed-in"), ("other.md", "here"))
    assert page.sections == (("First", 7), ("Second", 14))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("% test: again exit=1\n```bash\ntrue\n```\n", "again needs exit=N and a non-empty says="),
        ("% test: counter\n```bash\ntrue\n```\n", "counter needs a WORLD"),
        ("% test: values now\n```bash\nA=1\n```\n", "values takes no arguments"),
        ("% test: values\n```bash\necho no assignment\n```\n", "the `values` block sets no NAME=VALUE line"),
        ("% test: values\n```yaml\nA: 1\n```\n", "values only applies to shell fences"),
        ("% test: returns-to nowhere.md from=x\n\n# P\n", "returns-to nowhere.md: no such page"),
        ("% test: starts-from a b\n\n# P\n", "starts-from takes exactly one STATE"),
    ],
)
def test_reader_annotations_are_checked(root: Path, text: str, message: str) -> None:
    """A malformed ability annotation is an error naming page:line, never silently ignored."""
    assert message in str(parse_error(root, text))


def test_one_values_block_per_page(root: Path) -> None:
    """The reader sets their values once; a second `values` block would make the extraction ambiguous."""
    err = parse_error(root, "% test: values\n```bash\nA=1\n```\n\n% test: values\n```bash\nB=2\n```\n")
    assert "a second `values` block (the first is at line 2)" in str(err)


# --------------------------------------------------------------------------- the reader's values

VALUES = (
    sn.PageValue("AUTHENTIK_URL", "https://authentik.example.com"),
    sn.PageValue("APP_URL", "https://app.example.com"),
    sn.PageValue("API_URL", "https://api.example.com"),
    sn.PageValue("ADMIN_EMAIL", "admin@example.com"),
)
MINE = {"AUTHENTIK_URL": "https://id.corp.test", "APP_URL": "https://notes.corp.test", "API_URL": "https://notes-api.corp.test:8443", "ADMIN_EMAIL": "ops@corp.test"}


def test_values_come_from_the_values_block(root: Path) -> None:
    """The block's NAME=VALUE lines (even inside a heredoc, where the reader edits them) are the page's values."""
    page = parse(root, "% test: values\n```bash\ncat > f <<'EOF'\nAPP_URL=https://app.example.com\nADMIN_EMAIL=admin@example.com\n  local x=1\nEOF\n```\n")
    assert sn.declared_values([page]) == (sn.PageValue("APP_URL", "https://app.example.com"), sn.PageValue("ADMIN_EMAIL", "admin@example.com"))


def test_a_url_value_also_stands_for_its_hostname() -> None:
    """`https://app.example.com` appears as itself in commands and as `app.example.com` in a Caddyfile or a check's argument."""
    assert VALUES[1].forms() == (("value", "https://app.example.com"), ("host", "app.example.com"))
    assert VALUES[3].forms() == (("value", "admin@example.com"),)


def test_value_spans_find_whole_names_only() -> None:
    """A value is found before a path, a port, a quote or a full stop, never inside a longer name."""
    text = 'curl "https://api.example.com/v1" app.example.com. myapp.example.com api.example.com.au admin@example.com:9000'
    spans = sn.value_spans(text, VALUES)
    assert [(s.name, s.form, text[s.start : s.end]) for s in spans] == [
        ("API_URL", "value", "https://api.example.com"),
        ("APP_URL", "host", "app.example.com"),
        ("ADMIN_EMAIL", "value", "admin@example.com"),
    ]


def test_substitute_keeps_each_values_form() -> None:
    """The reader's own values replace the examples, URL for URL and hostname for hostname (a port comes along)."""
    text = "authentik.example.com {\n\treverse_proxy authentik-server-1:9000\n}\nNEXTAUTH_URL=https://app.example.com\nAPI=https://api.example.com/v1 admin@example.com"
    assert sn.substitute(text, VALUES, MINE) == (
        "id.corp.test {\n\treverse_proxy authentik-server-1:9000\n}\nNEXTAUTH_URL=https://notes.corp.test\nAPI=https://notes-api.corp.test:8443/v1 ops@corp.test"
    )
    assert sn.substitute(text, VALUES, {}) == text


def test_substitute_refuses_what_it_cannot_place() -> None:
    """An unknown name, or a non-URL where the page needs a hostname, is an error rather than a silently wrong command."""
    with pytest.raises(ValueError, match="no such value on the page: HOST"):
        sn.substitute("x", VALUES, {"HOST": "a"})
    with pytest.raises(ValueError, match="is not a URL"):
        sn.substitute("authentik.example.com {", VALUES, {"AUTHENTIK_URL": "id.corp.test"})


def test_value_renames_map_every_example_string_a_world_holds() -> None:
    """What a world with the reader's values renames: each URL and its hostname, and the email."""
    assert sn.value_renames(VALUES, MINE) == {
        "https://authentik.example.com": "https://id.corp.test",
        "authentik.example.com": "id.corp.test",
        "https://app.example.com": "https://notes.corp.test",
        "app.example.com": "notes.corp.test",
        "https://api.example.com": "https://notes-api.corp.test:8443",
        "api.example.com": "notes-api.corp.test",
        "admin@example.com": "ops@corp.test",
    }


def test_substitute_page_covers_blocks_output_and_check_arguments(root: Path) -> None:
    """Every place a page holds a value: the copied text, the shown output, and the checks' arguments."""
    page = parse(root, "% test: check caddy-route host=authentik.example.com upstream=x:1\n```console\n$ echo https://app.example.com\nhttps://app.example.com\n```\n")
    (s,) = sn.substitute_page(page, VALUES, MINE).snippets
    assert (s.text, s.expected_output, s.checks[0].args) == ("echo https://notes.corp.test", "https://notes.corp.test", (("host", "id.corp.test"), ("upstream", "x:1")))


def test_a_reader_who_edits_only_the_values_block_copies_other_commands_with_the_examples(root: Path) -> None:
    """The page tells the reader to edit the values block, not every command: a command that kept an
    example hostname must run with it in the other-values run, so that run can catch it; what the page
    shows as the result (output, checks) still follows the reader's values."""
    page = parse(
        root,
        "% test: values\n```bash\nAPP_URL=https://app.example.com\n```\n\n"
        "% test: check caddy-route host=app.example.com upstream=x:1\n```console\n$ echo https://app.example.com\nhttps://app.example.com\n```\n",
    )
    values_block, command = sn.substitute_page(page, VALUES, MINE, everywhere=False).snippets
    assert values_block.text == "APP_URL=https://notes.corp.test"
    assert (command.text, command.expected_output, command.checks[0].args[0]) == ("echo https://app.example.com", "https://notes.corp.test", ("host", "notes.corp.test"))


def test_the_guides_values_are_declared_once() -> None:
    """The walkthrough's values block holds the four values every page uses."""
    rules = sn.load_copy_rules(REPO / "conf.py")
    pages = [sn.parse_page(p, REPO, rules) for p in sn.discover_pages(REPO)]
    assert [v.name for v in sn.declared_values(pages)] == ["AUTHENTIK_URL", "APP_URL", "API_URL", "ADMIN_EMAIL"]
