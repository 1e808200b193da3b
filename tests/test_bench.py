"""The benchmark's own bookkeeping: page-weight accounting, budgets and verdicts, the Makefile's flags. Nothing here is timed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from scripts.tools import bench
from scripts.tools.bench import Metric, Resource, resource, weigh

BASE = "http://127.0.0.1:8000/"


def test_resource_counts_body_bytes_and_their_gzip_size() -> None:
    """A response weighs its body, raw and as gzip would send it; an empty body weighs nothing."""
    body = b"<html>" + b"a" * 5000 + b"</html>"
    r = resource(BASE + "index.html", 200, body)
    assert r.size == len(body)
    assert r.gzipped == len(gzip.compress(body, compresslevel=bench.GZIP_LEVEL, mtime=0))
    assert r.gzipped < r.size
    assert resource(BASE + "x", 200, b"") == Resource(BASE + "x", 200, 0, 0)


def test_weigh_sums_what_the_browser_loaded() -> None:
    w = weigh("index", [Resource(BASE + "index.html", 200, 1000, 300), Resource(BASE + "_static/furo.css", 200, 500, 100)])
    assert (w.requests, w.size, w.gzipped) == (2, 1500, 400)


def test_weigh_counts_a_url_once_however_often_it_was_seen() -> None:
    """A module imported twice, or a fragment of the same page, is one transfer."""
    css = Resource(BASE + "_static/furo.css", 200, 500, 100)
    w = weigh("index", [css, css, Resource(BASE + "_static/furo.css#x", 200, 500, 100)])
    assert (w.requests, w.size) == (1, 500)


def test_weigh_leaves_out_failed_and_inline_responses_but_names_the_failures() -> None:
    """A 404 or an aborted request transfers no page content; data: and blob: URLs transfer nothing at all."""
    w = weigh(
        "index",
        [
            Resource(BASE + "index.html", 200, 1000, 300),
            Resource(BASE + "missing.js", 404, 80, 60),
            Resource("https://cdn.example.org/x.js", 0, 0, 0),
            Resource("data:image/svg+xml,<svg/>", 200, 20, 30),
        ],
    )
    assert (w.requests, w.size, w.gzipped) == (1, 1000, 300)
    assert w.failed == (BASE + "missing.js (404)", "https://cdn.example.org/x.js (0)")


def test_weigh_reports_mermaids_share_and_whether_it_loaded() -> None:
    mermaid = [Resource(BASE + "_static/mermaid/mermaid.esm.min.mjs", 200, 9000, 3000), Resource(BASE + "_static/mermaid/chunks/mermaid.esm.min/a.mjs", 200, 1000, 400)]
    w = weigh("how", [Resource(BASE + "how.html", 200, 100, 50), *mermaid], diagrams=2)
    assert (w.mermaid_files, w.mermaid_size, w.mermaid_gzipped, w.diagrams) == (2, 10000, 3400, 2)
    assert w.loads_mermaid
    assert w.heaviest[0] == ("/_static/mermaid/mermaid.esm.min.mjs", 3000)
    assert not weigh("index", [Resource(BASE + "index.html", 200, 100, 50)]).loads_mermaid


def test_metric_reports_median_min_max_of_its_repeats() -> None:
    m = Metric("x", "s", (3.0, 1.0, 2.0, 10.0))
    assert (m.median, m.low, m.high) == (2.5, 1.0, 10.0)


@pytest.mark.parametrize(("values", "budget", "verdict"), [((1.0, 2.0, 9.0), 2.0, "meets"), ((2.5, 2.1, 1.0), 2.0, "misses"), ((5.0,), None, "")])
def test_verdict_judges_the_median_against_the_budget(values: tuple[float, ...], budget: float | None, verdict: str) -> None:
    """One slow outlier does not fail a budget the median meets; no budget, no verdict."""
    assert Metric("x", "s", values, budget).verdict == verdict


def test_metric_json_carries_every_repeat_and_the_verdict() -> None:
    data = json.loads(json.dumps(Metric("build", "s", (1.0, 1.5, 1.2), 2.0, "why", group="build").as_json()))
    assert data == {
        "cpu_median": None,
        "name": "build",
        "unit": "s",
        "median": 1.2,
        "min": 1.0,
        "max": 1.5,
        "repeats": 3,
        "values": [1.0, 1.5, 1.2],
        "budget": 2.0,
        "verdict": "meets",
        "note": "why",
        "group": "build",
    }


def test_table_has_a_row_per_metric_with_budget_and_verdict() -> None:
    table = bench.format_table([Metric("build: cold", "s", (1.0, 1.2, 1.1), 2.0), Metric("info", "ms", (5.0, 6.0, 7.0))])
    header, cold, info = table.splitlines()
    assert header.split()[:6] == ["metric", "median", "min", "max", "budget", "verdict"]
    assert cold.startswith("build: cold")
    assert "<= 2 s" in cold
    assert cold.split()[-2] == "meets"
    assert "<=" not in info
    assert "meets" not in info


def test_repeat_times_only_the_repeats_after_the_warmup() -> None:
    calls: list[str] = []
    values = bench.repeat(lambda: calls.append("run"), 3, warmup=2, before=lambda: calls.append("before"))
    assert len(values) == 3
    assert calls == ["before", "run"] * 5


def test_repeat_reports_the_cpu_each_repeat_used() -> None:
    """CPU seconds ride along with wall seconds, and a metric made from them keeps both."""
    timing = bench.repeat(lambda: sum(range(200_000)), 3, warmup=0)
    assert len(timing.cpu) == 3
    assert all(c >= 0 for c in timing.cpu)  # not > 0: tick-based CPU accounting may round a short repeat to nothing
    m = Metric("x", "s", timing)
    assert m.cpu == timing.cpu
    assert m.values == tuple(timing)
    assert m.as_json()["cpu_median"] is not None
    assert bench.repeat(lambda: None, 3, cpu_counts=False).cpu == ()


def test_interleaved_alternates_the_two_actions_after_warming_both() -> None:
    calls: list[str] = []
    a, b = bench.interleaved(lambda: calls.append("a"), lambda: calls.append("b"), 3)
    assert calls == ["a", "b"] * 4
    assert (len(a), len(b)) == (3, 3)


def test_sphinx_flags_come_from_the_makefile(tmp_path: Path) -> None:
    """The bench builds as `make html` does, so a flag added to the Makefile is benchmarked too."""
    makefile = tmp_path / "Makefile"
    makefile.write_text("BIN := .venv/bin\nSPHINXOPTS := -c . --nitpicky --fail-on-warning\nhtml:\n")
    assert bench.makefile_sphinxopts(makefile) == ["-c", ".", "--nitpicky", "--fail-on-warning"]
    makefile.write_text("html:\n")
    with pytest.raises(ValueError, match="no SPHINXOPTS"):
        bench.makefile_sphinxopts(makefile)


def test_the_real_makefile_builds_strictly() -> None:
    assert {"--nitpicky", "--fail-on-warning"} <= set(bench.makefile_sphinxopts(bench.REPO / "Makefile"))


def test_cli_refuses_fewer_than_three_repeats_and_unknown_groups(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--repeats", "2"], ["--only", "nonsense"]):
        with pytest.raises(SystemExit):
            bench.main(argv)
    assert "unknown group" in capsys.readouterr().err


def test_tree_bytes_counts_files_once_and_not_symlinks(tmp_path: Path) -> None:
    """A venv's bin/python is a symlink to the interpreter: counting it would add the interpreter's size to every venv."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 1000)
    (tmp_path / "g").write_bytes(b"y" * 24)
    (tmp_path / "link").symlink_to(tmp_path / "a" / "f")
    assert bench.tree_bytes(tmp_path) == 1024
