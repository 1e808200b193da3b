"""The runner's own rules: output matching, shellcheck over a page, and the order of a page's verdicts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scripts import snippets as sn
from scripts.check import PageRun, find_shellcheck, load_page, match_output, shellcheck_page
from scripts.sandbox import RunResult
from scripts.world.fakes import Exchange, Request, Response


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("a\nb\n", "a\nb\n", True),
        ("a\nb\n", "a\nc\n", False),
        ("a\n...\nz\n", "a\nb\nc\nz\n", True),
        ("a\n...\nz\n", "a\nz\n", True),
        ("a\n...\n", "a\n", True),
        ("a\n...\nz\n", "a\nb\n", False),
        ("a  \n", "a\n", True),
        ("a\n", "a\nextra\n", False),
        ("...\n", "", True),
    ],
)
def test_shown_output_matches_exactly_except_for_ellipsis_lines(expected: str, actual: str, ok: bool) -> None:
    assert match_output(expected, actual) is ok


def write_page(tmp_path: Path, body: str) -> sn.Page:
    root = tmp_path
    (root / "docs").mkdir(exist_ok=True)
    (root / "conf.py").write_text((Path(__file__).parent.parent / "conf.py").read_text())
    (root / "docs" / "p.md").write_text(textwrap.dedent(body))
    return load_page(root / "docs" / "p.md", root)


def test_shellcheck_sees_the_page_as_one_session_and_names_page_lines(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """\
        # P

        ```bash
        name=$(cat /etc/hostname)
        ```

        ```bash
        echo $name
        ```
        """,
    )
    found = shellcheck_page(list(page.snippets), find_shellcheck())
    # The variable set in the first fence is known in the second (no SC2154), but the unquoted use is reported.
    assert list(found) == ["docs/p.md:7"]
    (f,) = found["docs/p.md:7"]
    assert (f.code, f.line) == ("SC2086", 8)


def test_a_justified_exclusion_silences_only_its_code(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """\
        # P

        % test: shellcheck-disable=SC2086 reason="word splitting wanted"
        ```bash
        x="a b"; echo $x
        ```
        """,
    )
    assert shellcheck_page(list(page.snippets), find_shellcheck()) == {}


def test_after_a_failure_the_rest_of_the_page_is_skipped_with_its_cause(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """\
        # P

        ```bash
        echo one
        ```

        ```console
        $ echo two
        three
        ```

        ```bash
        echo never
        ```
        """,
    )
    run = PageRun(page, root=tmp_path)
    try:
        run.start()
        verdicts = [run.step(s) for s in run.steps()]
    finally:
        run.close()
    assert [v.status for v in verdicts] == ["passed", "failed", "skipped"]
    assert "output differs" in verdicts[1].reason
    assert "three" in verdicts[1].reason
    assert verdicts[2].reason == "earlier step failed at docs/p.md:7"


class TrafficWorld:
    """A world whose fakes answered one step with a token response that lacks token_type (a broken fake)."""

    def run(self, id: str, script: str, timeout: float) -> RunResult:  # noqa: A002 - World.run's signature
        request = Request("POST", "/application/o/token/", "authentik.example.com", {}, b"grant_type=authorization_code")
        body = b'{"access_token":"a","id_token":"b"}'
        response = Response(200, body, (("Content-Type", "application/json"), ("Cache-Control", "no-store")))
        return RunResult(id, 0, False, "", 0.01, (), (), (Exchange("authentik", request, response).as_json(),))


def test_a_step_whose_traffic_breaks_the_contract_fails_naming_the_step(tmp_path: Path) -> None:
    """The doc tests check every exchange a step causes: a passing command in a lying world is not a pass."""
    page = write_page(tmp_path, "# P\n\n```bash\ntrue\n```\n")
    run = PageRun(page, root=tmp_path)
    run.world = TrafficWorld()  # type: ignore[assignment]  # only run() is used by a plain shell step
    (step,) = run.steps()
    verdict = run.step(step)
    assert (verdict.status, verdict.reason.splitlines()[0]) == (
        "failed",
        "contract: token endpoint: response.token_type: Field required (TokenSuccess) (traffic of docs/p.md:3)",
    )

def test_report_lists_each_reader_ability_beside_the_plain_run(tmp_path: Path) -> None:
    """report.json has the per-step verdicts, every ability's outcome per page, and counts per ability in its summary."""
    import json

    from scripts.check import merge_report, pages_dir
    from scripts.reader import Case, Outcome, write_outcome

    (pages_dir(tmp_path)).mkdir(parents=True)
    (pages_dir(tmp_path) / "docs__p.md.json").write_text(json.dumps([{"id": "docs/p.md:3", "page": "docs/p.md", "line": 3, "status": "passed", "reason": ""}]))
    write_outcome(Outcome("new-terminal", "docs/p.md", (Case("section 'Two' (line 9)", "passed"),)), pages_dir(tmp_path))
    write_outcome(Outcome("run-twice", "docs/p.md", (Case("docs/p.md:3", "failed", "the second run failed"),)), pages_dir(tmp_path))
    report = merge_report(tmp_path)
    assert [(a["ability"], a["status"]) for a in report["abilities"]] == [("new-terminal", "passed"), ("run-twice", "failed")]
    assert report["summary"]["abilities"] == {"new-terminal": {"passed": 1, "failed": 0, "skipped": 0}, "run-twice": {"passed": 0, "failed": 1, "skipped": 0}}
    assert json.loads((tmp_path / "report.json").read_text())["abilities"][1]["cases"][0]["reason"] == "the second run failed"
