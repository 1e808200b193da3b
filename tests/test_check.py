"""The runner's own rules: output matching, shellcheck over a page, and the order of a page's verdicts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scripts import replay
from scripts import snippets as sn
from scripts.check import REPO, PageRun, find_shellcheck, load_page, match_output, shellcheck_page
from scripts.sandbox import RunResult, World
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


PUBLISHED = {
    "a.md": """\
        # A

        ```bash
        echo one > ~/one
        ```

        (mid)=
        ## Later

        ```bash
        echo two > ~/two
        ```
        """,
    "b.md": "% test: continues a.md until=mid\n\n# B\n",
    "c.md": "% test: continues a.md\n\n# C\n",
}


def published_root(tmp_path: Path, pages: dict[str, str]) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "conf.py").write_text((Path(__file__).parent.parent / "conf.py").read_text())
    for name, body in pages.items():
        (tmp_path / "docs" / name).write_text(textwrap.dedent(body))
    return tmp_path


def plain_run(root: Path, statuses: list[str], only: int | None = None) -> PageRun:
    """a.md's run as tests/test_docs.py makes it (publishing), all its steps or only step `only`; their statuses must be `statuses`."""
    run = PageRun(load_page(root / "docs" / "a.md", root), root=root, publish=True)
    try:
        run.start()
        steps = run.steps() if only is None else [run.steps()[only]]
        assert [run.step(s).status for s in steps] == statuses
    finally:
        run.close()
    return run


def stored_state(cache: replay.Cache, root: Path, stop: int | None) -> str | None:
    """What a world restored from the state a page continuing a.md (until `stop`) looks for holds: ~/one, ~/two."""
    name = replay.key([("docs/a.md", (root / "docs" / "a.md").read_text(), stop), ("begin", "None", None), ("mine", "null", None)])
    with cache.entry(name) as (found, _):
        if found is None:
            return None
        with World.start(REPO, boot=False) as world:
            replay.restore(world, found)
            return world.run("probe", "cat ~/one ~/two 2>&1", 20).output


def test_a_plain_run_stores_the_states_other_pages_continue_it_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walkthrough's own run gives the pages that continue it their start (its end, an `until` label), so
    they restore it instead of replaying it; only a run of every step in order, each passing, stores them."""
    root = published_root(tmp_path / "root", PUBLISHED)
    cache = replay.Cache(tmp_path / "cache")
    monkeypatch.setattr(replay, "CACHE", cache)
    run = plain_run(root, ["passed", "passed"])
    mid = dict(run.page.targets)["mid"]
    assert stored_state(cache, root, mid) == "one\ncat: /home/deployer/two: No such file or directory\n"
    assert stored_state(cache, root, None) == "one\ntwo\n"


def test_a_failing_or_partial_plain_run_stores_nothing_past_where_it_went_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed step, or steps run out of order (a -k selection), leave the states to the pages' own replay."""
    failing = {**PUBLISHED, "a.md": PUBLISHED["a.md"].replace("echo two > ~/two", "false")}
    root = published_root(tmp_path / "failing", failing)
    cache = replay.Cache(tmp_path / "cache")
    monkeypatch.setattr(replay, "CACHE", cache)
    run = plain_run(root, ["passed", "failed"])
    assert stored_state(cache, root, dict(run.page.targets)["mid"]) == "one\ncat: /home/deployer/two: No such file or directory\n"
    assert stored_state(cache, root, None) is None
    root = published_root(tmp_path / "partial", PUBLISHED)
    run = plain_run(root, ["passed"], only=1)  # the second step alone
    assert stored_state(cache, root, dict(run.page.targets)["mid"]) is None
    assert stored_state(cache, root, None) is None
