"""CI output: shards keep pages whole and join into the report one run writes; GitHub error lines land at page:line; the summary is a table."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.check import build_report
from scripts.tools import ci

ROOT = Path(__file__).resolve().parent.parent


def entry(page: str, line: int, status: str = "passed", reason: str = "", output_tail: str = "") -> dict[str, Any]:
    return {
        "id": f"{page}:{line}",
        "page": page,
        "line": line,
        "language": "bash",
        "status": status,
        "reason": reason,
        "seconds": 0.5,
        "standins": [],
        "checks": [],
        "output_tail": output_tail,
    }


def report(*entries: dict[str, Any], wall: float | None = 1.0) -> dict[str, Any]:
    return build_report(list(entries), [], sandbox="bubblewrap", wall_seconds=wall)


# -- shards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2", "0/2", "3/2", "a/b", "1/2/3", ""])
def test_a_malformed_shard_is_refused_with_the_form(text: str) -> None:
    """`--shard` takes K/N with 1 <= K <= N; anything else says so instead of running some other part."""
    with pytest.raises(argparse.ArgumentTypeError, match="K"):
        ci.parse_shard(text)


def test_units_are_dealt_largest_first_to_the_lightest_shard() -> None:
    """Deterministic: every shard computes the same deal from the same collection, so each unit runs exactly once."""
    units = {"group:docs/a.md": 30, "group:browser": 20, "file:tests/test_x.py": 12, "group:docs/b.md": 9, "file:tests/test_y.py": 1}
    assert ci.deal(units, 2) == [["group:docs/a.md", "group:docs/b.md"], ["group:browser", "file:tests/test_x.py", "file:tests/test_y.py"]]
    assert ci.deal(units, 1) == [sorted(units, key=lambda u: (-units[u], u))]
    assert ci.deal({"a": 1}, 3) == [["a"], [], []]


def collected(*args: str) -> list[str]:
    """Node ids pytest collects here with `args` (a subprocess: collection only, nothing runs)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


# Grouped tests (every page's steps, the browser tests) and ungrouped files; the whole suite takes 4x longer to collect.
SAMPLE = ("tests/test_docs.py", "tests/test_browser.py", "tests/test_bench.py", "tests/test_snippets.py", "tests/test_requirements.py")


def test_three_shards_split_the_suite_keeping_pages_and_files_whole() -> None:
    """Every test lands in exactly one shard; a page's steps, the browser tests and each file stay together."""
    everything = collected(*SAMPLE)
    shards = [collected(*SAMPLE, f"--shard={k}/3") for k in (1, 2, 3)]
    flat = [t for s in shards for t in s]
    assert sorted(flat) == sorted(everything)
    assert all(shards), [len(s) for s in shards]

    def owner(test: str) -> int:
        return next(k for k, s in enumerate(shards) if test in s)

    pages: dict[str, set[int]] = {}
    files: dict[str, set[int]] = {}
    for t in everything:
        if m := re.search(r"test_snippet\[(docs/[^:\]]+):\d+\]", t):
            pages.setdefault(m.group(1), set()).add(owner(t))
        elif "xdist_group" not in (ROOT / t.split("::")[0]).read_text(encoding="utf-8"):
            files.setdefault(t.split("::")[0], set()).add(owner(t))  # a file without groups is one unit
    assert pages, "no doc steps collected"
    assert files, "no ungrouped test files collected"
    assert {p: o for p, o in pages.items() if len(o) > 1} == {}
    assert {f: o for f, o in files.items() if len(o) > 1} == {}
    assert len({owner(t) for t in everything if t.startswith("tests/test_browser.py")}) == 1


PAGES = {
    # a.md goes to one shard and b.md, which continues it, to the other: b replays a in its own world.
    "a.md": "# A\n\n```bash\necho first > ~/a.txt\n```\n\n```bash\necho second >> ~/a.txt\n```\n",
    "b.md": "% test: continues a.md\n\n# B\n\n```console\n$ cat ~/a.txt\nfirst\nsecond\n```\n",
    "c.md": "# C\n\n```bash\ntest -f ~/a.txt\n```\n",
}


def copy_of_the_harness(tmp_path: Path) -> Path:
    """A repo-like root: the real harness, conftest and test_docs.py, with PAGES as its docs/."""
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "docs").mkdir()
    for name in ("conf.py", "pyproject.toml", "requirements.txt", "requirements-test.txt"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "test_docs.py"):
        shutil.copy(ROOT / "tests" / name, root / "tests" / name)
    for name, text in PAGES.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    return root


def run_docs(root: Path, *args: str) -> dict[str, Any]:
    """One pytest run of the copy's doc steps; its report.json."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_", "REFLECTOR_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_docs.py", "-k", "test_snippet", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads((root / "_build" / "snippets" / "report.json").read_text(encoding="utf-8"))
    return data


def comparable(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in entries]


def test_two_shards_join_into_the_report_of_one_run(tmp_path: Path) -> None:
    """Sharded CI reports the same steps, verdicts and reasons as one run, including a page whose prerequisite ran elsewhere."""
    root = copy_of_the_harness(tmp_path)
    whole = run_docs(root)
    parts = [run_docs(root, f"--shard={k}/2") for k in (1, 2)]
    pages_per_shard = [{e["page"] for e in p["snippets"]} for p in parts]
    assert pages_per_shard == [{"docs/a.md"}, {"docs/b.md", "docs/c.md"}]
    merged = ci.merge(parts)
    assert comparable(merged["snippets"]) == comparable(whole["snippets"])
    assert {k: v for k, v in merged["summary"].items() if k not in ("wall_seconds", "shards")} == {k: v for k, v in whole["summary"].items() if k != "wall_seconds"}
    # Not vacuous: every step ran, and b.md passed only because its shard replayed a.md first.
    assert [(e["id"], e["status"]) for e in whole["snippets"]] == [
        ("docs/a.md:3", "passed"),
        ("docs/a.md:7", "passed"),
        ("docs/b.md:5", "passed"),
        ("docs/c.md:3", "failed"),
    ]


def test_merge_refuses_a_step_reported_by_two_shards() -> None:
    """Two jobs given the same K/N would double-count; the merge says which steps instead."""
    with pytest.raises(ValueError, match=r"more than one shard.*docs/a\.md:3"):
        ci.merge([report(entry("docs/a.md", 3)), report(entry("docs/a.md", 3))])


def test_merge_keeps_a_step_that_another_pages_run_reached_too() -> None:
    """A page that returns to another (`returns-to`) reports that page's later steps with `via`: not a shard's duplicate."""
    own, again = entry("docs/a.md", 9), {**entry("docs/a.md", 9), "via": "docs/b.md"}
    merged = ci.merge([report(own), report(entry("docs/b.md", 3), again)])
    assert [(e["id"], e.get("via", "")) for e in merged["snippets"]] == [("docs/a.md:9", ""), ("docs/a.md:9", "docs/b.md"), ("docs/b.md:3", "")]


def test_merge_orders_by_page_and_line_and_takes_the_longest_wall() -> None:
    merged = ci.merge([report(entry("docs/b.md", 9), wall=3.0), report(entry("docs/a.md", 40), entry("docs/a.md", 7, "failed", "x"), wall=5.0)])
    assert [e["id"] for e in merged["snippets"]] == ["docs/a.md:7", "docs/a.md:40", "docs/b.md:9"]
    assert (merged["summary"]["wall_seconds"], merged["summary"]["shards"], merged["summary"]["failed"]) == (5.0, 2, 1)


# -- GitHub output -----------------------------------------------------------------------------


def test_a_failed_step_becomes_an_error_line_at_its_page_and_line() -> None:
    """GitHub reads `::error file=...,line=...` from stdout and shows it on that line; newlines, `:` and `,` are escaped as its toolkit does."""
    r = report(
        entry("docs/api-keys.md", 12),
        entry("docs/api-keys.md", 30, "failed", "exit status 1, the page implies 0\nmore: 100%", "curl: (6) Could not resolve host"),
        entry("docs/api-keys.md", 44, "skipped", "earlier step failed at docs/api-keys.md:30"),
    )
    assert ci.report_annotations(r) == [
        "::error file=docs/api-keys.md,line=30,title=docs/api-keys.md%3A30%3A exit status 1%2C the page implies 0"
        "::exit status 1, the page implies 0%0Amore: 100%25%0A%0Aoutput (tail):%0Acurl: (6) Could not resolve host"
    ]


def test_a_very_long_reason_is_cut_with_a_pointer_to_the_report() -> None:
    line = ci.annotation("docs/p.md", 3, "t", "x" * (ci.MAX_REASON + 500))
    assert line.endswith("%0A[cut; the full reason is in the log and _build/snippets/report.json]")
    assert line.count("x") == ci.MAX_REASON


def test_summary_tabulates_pages_and_failures_with_cells_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reason with a pipe or a newline stays in its cell; a failure links to its line of the commit on GitHub."""
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    md = ci.summary_markdown(
        report(entry("docs/a.md", 3), entry("docs/a.md", 9, "failed", "jq: error | here\nsecond line", "out <b>|</b>"), entry("docs/b.md", 4, "skipped", "why")),
        "Doc tests",
    )
    assert "**1 passed, 1 failed, 1 skipped** of 3 steps in 1.0 s." in md
    assert "| `docs/a.md` | 1 | 1 | 0 | 1.00 |" in md
    assert "| `docs/b.md` | 0 | 0 | 1 | 0.50 |" in md
    assert "| [`docs/a.md:9`](https://github.com/o/r/blob/abc123/docs/a.md#L9) | jq: error \\| here<br>second line | <pre>out &lt;b&gt;&#124;&lt;/b&gt;</pre> |" in md


def test_the_command_line_merges_shards_and_says_what_it_joined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, out = tmp_path / "1.json", tmp_path / "2.json", tmp_path / "merged" / "report.json"
    a.write_text(json.dumps(report(entry("docs/a.md", 3))))
    b.write_text(json.dumps(report(entry("docs/b.md", 4, "failed", "boom"))))
    assert ci.main(["merge", str(a), str(b), "--out", str(out)]) == 1  # a failed step fails the merge job too
    assert capsys.readouterr().out == f"2 shards: 1 passed, 1 failed, 0 skipped -> {out}\n"
    assert [e["id"] for e in json.loads(out.read_text())["snippets"]] == ["docs/a.md:3", "docs/b.md:4"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a snippet report"):
        ci.main(["summary", str(tmp_path / "bad.json")])


# -- the workflow ------------------------------------------------------------------------------

WORKFLOW = ROOT / ".github" / "workflows" / "docs.yml"


def workflow() -> dict[Any, Any]:
    import yaml

    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data


def run_steps() -> list[tuple[str, str]]:
    """(job, script) for every `run:` step."""
    return [(name, step["run"]) for name, job in workflow()["jobs"].items() for step in job["steps"] if "run" in step]


def test_the_workflow_calls_only_targets_and_commands_that_exist() -> None:
    """Renaming a make target, the CI entry point or a ci subcommand breaks CI silently on GitHub; here it fails first."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_./-]+):", makefile, re.MULTILINE)) | {".venv/.installed-test"}
    called = {t for _, script in run_steps() for t in re.findall(r"(?:^|\s)(?:make|\.ci/run)\s+([A-Za-z0-9_./-]+)", script)}
    assert called, "no make targets found in the workflow"
    assert sorted(called - targets) == []
    assert "make lint" in dict(run_steps())["lint"]
    subcommands = {m for _, script in run_steps() for m in re.findall(r"-m scripts\.tools\.ci (\w+)", script)}
    assert subcommands == {"merge", "summary"}
    for sub in subcommands:
        with pytest.raises(SystemExit) as done:
            ci.main([sub, "--help"])
        assert done.value.code == 0


def test_the_matrix_has_as_many_shards_as_it_names() -> None:
    w = workflow()
    assert w["jobs"]["test"]["strategy"]["matrix"]["shard"] == list(range(1, int(w["env"]["SHARDS"]) + 1))


def test_the_workflows_shell_steps_pass_shellcheck() -> None:
    """Each `run:` script, with the workflow's ${{ }} expressions replaced by a word, is clean bash."""
    shellcheck = Path(sys.executable).with_name("shellcheck")
    for job, script in run_steps():
        text = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script)
        proc = subprocess.run([str(shellcheck), "--shell=bash", "-"], input=text, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"job {job}:\n{script}\n{proc.stdout}"
