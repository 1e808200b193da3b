"""Replay snapshots: a restored world is the replayed one (files and shell session), and a run replays each prerequisite once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts import replay
from scripts.replay import Cache, Snapshot
from scripts.sandbox import CheckResult, SandboxUnavailable, World
from tests.conftest import runs_only_the_doc_tests_here

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def worlds() -> Iterator[list[World]]:
    started: list[World] = []
    yield started
    for w in started:
        w.close()


def start(worlds: list[World], *, boot: bool = True) -> World:
    try:
        w = World.start(REPO, boot=boot)
    except SandboxUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no sandbox on this host: {e}; CI must run the replay tests", pytrace=False)
        pytest.skip(f"no sandbox on this host: {e}")
    worlds.append(w)
    return w


def test_a_restored_world_has_the_replayed_files_and_shell_session(worlds: list[World]) -> None:
    """Variables, exported variables, functions, umask, cwd, OLDPWD, HOME, /tmp and the world's state all carry over."""
    first = start(worlds)
    setup = (
        "cd /tmp && cd ~/reflector\n"
        "PLAIN='a b'; export EXPORTED=yes\n"
        'greet() { echo "hi $1"; }\n'
        "umask 027\n"
        "echo kept > ~/made-by-replay; touch /tmp/scratch\n"
        "rm ~/reflector/Caddyfile\n"
    )
    assert first.run("setup", setup, 20).rc == 0
    snap = replay.snapshot(first)
    second = start(worlds)
    replay.restore(second, snap)
    probe = (
        "pwd; echo \"$OLDPWD|$PLAIN|$EXPORTED\"; bash -c 'echo child:$EXPORTED'; greet you; umask\n"
        "cat ~/made-by-replay; ls /tmp/scratch; test ! -e ~/reflector/Caddyfile && echo gone\n"
    )
    r = second.run("probe", probe, 20)
    assert r.rc == 0, r.output
    assert r.output.splitlines() == ["/home/deployer/reflector", "/tmp|a b|yes", "child:yes", "hi you", "0027", "kept", "/tmp/scratch", "gone"]
    # The engine answers from the restored state: the first world's containers, by ID, name and state.
    listing = "docker ps -a --format '{{.ID}} {{.Names}} {{.State}}' | sort"
    containers = second.run("containers", listing, 20)
    assert containers.rc == 0, containers.output
    assert "reflector-caddy-1 running" in containers.output
    assert containers.output == first.run("containers", listing, 20).output


CADDY = "cd ~/reflector && docker compose -f docker-compose.prod.yml"
SEEN = f"{CADDY} exec caddy cat /etc/caddy/Caddyfile | tail -n 1"


def test_a_restored_single_file_mount_keeps_the_inode_its_container_was_given(worlds: list[World]) -> None:
    """Caddy holds the Caddyfile's inode: after a restore it still sees that file, edited in place
    before the snapshot, and not one that `sed -i` puts in its place afterwards, until it restarts."""
    first = start(worlds)
    assert first.run("edit", "printf '# edited in place\\n' >> ~/reflector/Caddyfile", 20).rc == 0
    snap = replay.snapshot(first)
    second = start(worlds)
    replay.restore(second, snap)
    replaced = second.run("replace", f"sed -i 's/# edited in place/# replaced/' ~/reflector/Caddyfile && {SEEN}", 20)
    assert (replaced.rc, replaced.output) == (0, "# edited in place\n")
    restarted = second.run("restart", f"{CADDY} restart caddy 2>/dev/null && {SEEN}", 20)
    assert (restarted.rc, restarted.output) == (0, "# replaced\n")


def test_a_restored_mount_whose_file_was_replaced_shows_what_its_process_read(worlds: list[World]) -> None:
    """Replaced by `sed -i` before the snapshot, the inode Caddy holds has no path left to restore:
    the container keeps what it read at its start, not the new file, until it restarts."""
    first = start(worlds)
    before = first.run("before", SEEN, 20).output
    assert first.run("replace", "sed -i '$a # replaced' ~/reflector/Caddyfile", 20).rc == 0
    snap = replay.snapshot(first)
    second = start(worlds)
    replay.restore(second, snap)
    assert second.run("seen", SEEN, 20).output == before != "# replaced\n"
    restarted = second.run("restart", f"{CADDY} restart caddy 2>/dev/null && {SEEN}", 20)
    assert (restarted.rc, restarted.output) == (0, "# replaced\n")


class Broken:
    """A world whose every step fails (a full disk), and whose engine takes no restored files."""

    def run(self, id: str, script: str, timeout: float) -> replay.RunResult:  # noqa: A002 - the protocol's field name
        return replay.RunResult(id, 2, False, "tar: disk full", 0.0, (), ())

    def restored(self, inodes: str) -> CheckResult:
        return CheckResult(False, "engine down")


class Unpacks(Broken):
    """Steps pass; the engine still refuses."""

    def run(self, id: str, script: str, timeout: float) -> replay.RunResult:  # noqa: A002 - the protocol's field name
        return replay.RunResult(id, 0, False, "", 0.0, (), ())


def test_a_failed_snapshot_says_why() -> None:
    with pytest.raises(replay.ReplayError, match="disk full"):
        replay.snapshot(Broken())
    with pytest.raises(replay.ReplayError, match="restoring"):
        replay.restore(Broken(), Snapshot("/home/deployer", ""))
    with pytest.raises(replay.ReplayError, match="could not take the restored files: engine down"):
        replay.restore(Unpacks(), Snapshot("/home/deployer", ""))


def test_restore_script_quotes_the_cwd() -> None:
    script = replay.restore_script(Snapshot("/home/deployer/it's here", "QUJD"))
    assert "cd -- '/home/deployer/it'\"'\"'s here'" in script


def test_the_cache_hands_out_what_the_first_process_stored(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "replays")
    with cache.entry("k") as (found, made):
        assert found is None
        made.append(Snapshot("/home/deployer", "QUJD"))
    with cache.entry("k") as (found, made):
        assert found == Snapshot("/home/deployer", "QUJD")
    with cache.entry("other") as (found, _):
        assert found is None


def test_a_failed_replay_stores_nothing(tmp_path: Path) -> None:
    """The next page replays for itself (and fails the same way), rather than restoring half a state."""
    cache = Cache(tmp_path / "replays")
    with cache.entry("k") as (found, _made):
        pass
    with cache.entry("k") as (found, _made):
        assert found is None


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REFLECTOR_REPLAY_CACHE=0: nothing is stored or found, every page replays for itself."""
    monkeypatch.setenv("REFLECTOR_REPLAY_CACHE", "0")
    cache = Cache(tmp_path / "replays")
    for _ in range(2):
        with cache.entry("k") as (found, made):
            assert found is None
            made.append(Snapshot("/", ""))
    assert not (tmp_path / "replays").exists()


def test_the_cache_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "replays")
    with cache.entry("k") as (_, made):
        made.append(Snapshot("/", ""))
    cache.clean()
    assert not (tmp_path / "replays").exists()


def test_the_key_changes_with_the_pages_text_and_where_the_replay_stops() -> None:
    base = replay.key([("docs/a.md", "text", None)])
    assert base == replay.key([("docs/a.md", "text", None)])
    assert base != replay.key([("docs/a.md", "text!", None)])
    assert base != replay.key([("docs/a.md", "text", 12)])


def test_snapshot_leaves_out_the_read_only_code_mounts() -> None:
    """A clone under /tmp is bound into the world's /tmp; archiving it filled the world's disk (CI found this)."""
    import sys

    script = replay.capture_script()
    for bound in (REPO, Path(sys.prefix), Path(sys.base_prefix)):
        assert f"--exclude={str(bound).lstrip('/')}" in script
    assert "--one-file-system" in script


def test_a_claimed_key_is_stored_by_its_claimant_or_left_to_the_next(tmp_path: Path) -> None:
    """A plain run claims the states other pages continue from: nobody else claims or stores them meanwhile;
    what it stores is what they find, and a released claim leaves them to replay for themselves."""
    cache = Cache(tmp_path / "replays")
    claim = cache.claim("k")
    assert claim is not None
    assert cache.claim("k") is None  # held: a second claimant would only duplicate the work
    claim.store(Snapshot("/home/deployer", "QUJD"))
    with cache.entry("k") as (found, _):
        assert found == Snapshot("/home/deployer", "QUJD")
    assert cache.claim("k") is None  # stored already
    released = cache.claim("other")
    assert released is not None
    released.release()
    with cache.entry("other") as (found, _):
        assert found is None


def test_boot_key_follows_the_world_code_and_the_readers_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A boot snapshot is reused only for the same fixtures, engine and images, and the same values."""
    code = tmp_path / "world"
    (code / "images").mkdir(parents=True)
    (code / "images" / "caddy.py").write_text("behaviour = 1\n")
    monkeypatch.setattr(replay, "WORLD_CODE", code)
    base = replay.boot_key()
    assert base == replay.boot_key()
    assert base != replay.boot_key({"app.example.com": "meet.acme-meetings.test"})
    (code / "images" / "caddy.py").write_text("behaviour = 2\n")
    assert base != replay.boot_key()


IDS = "docker ps --format '{{.ID}} {{.Names}} {{.State}}' | sort"


def test_worlds_of_a_run_restore_its_first_boot(worlds: list[World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first world boots (the real compose up) and is snapshotted; the next restores that stack, which
    runs there as it did (the same containers); with the cache off, each world boots its own."""
    monkeypatch.setattr(replay, "CACHE", Cache(tmp_path / "replays"))
    first = replay.start_world(REPO)
    worlds.append(first)
    second = replay.start_world(REPO)
    worlds.append(second)
    booted = first.run("ids", IDS, 20)
    assert booted.rc == 0, booted.output
    assert "reflector-caddy-1 running" in booted.output
    assert second.run("ids", IDS, 20).output == booted.output
    monkeypatch.setenv("REFLECTOR_REPLAY_CACHE", "0")
    third = replay.start_world(REPO)
    worlds.append(third)
    own = third.run("ids", IDS, 20).output
    assert "reflector-caddy-1 running" in own
    assert own != booted.output


def test_a_world_started_for_a_snapshot_skips_the_boot(worlds: list[World]) -> None:
    """World.start(boot=False): no fixture stack until a snapshot brings one."""
    bare = start(worlds, boot=False)
    r = bare.run("ids", "docker ps -a -q | wc -l; ls ~", 20)
    assert (r.rc, r.output) == (0, "0\n")


def test_a_thread_that_waits_for_its_own_claim_takes_it_back(tmp_path: Path) -> None:
    """A thread runs one page at a time: asking for a key it claimed itself (its plain run paused, say by a
    -k selection) would wait forever, so the claim goes and the asker replays; the claimant stores nothing."""
    cache = Cache(tmp_path / "replays")
    claim = cache.claim("k")
    assert claim is not None
    with cache.entry("k") as (found, made):
        assert found is None
        made.append(Snapshot("/home/deployer", "QUJD"))
    claim.store(Snapshot("/tmp", "WFla"))
    with cache.entry("k") as (found, _):
        assert found == Snapshot("/home/deployer", "QUJD")


def test_a_claim_held_by_another_thread_is_waited_for_not_taken(tmp_path: Path) -> None:
    """Pages run side by side in threads (scripts/lanes.py): a page that continues a run in another thread waits
    for the state that run stores, instead of dropping its claim and replaying the run a second time."""
    cache = Cache(tmp_path / "replays")
    claimed = threading.Event()
    store = threading.Event()

    def plain_run() -> None:
        claim = cache.claim("k")
        assert claim is not None
        claimed.set()
        store.wait(10)
        claim.store(Snapshot("/home/deployer", "QUJD"))

    runner = threading.Thread(target=plain_run)
    runner.start()
    claimed.wait(10)
    threading.Timer(0.2, store.set).start()  # the run reaches its state while the other thread waits
    with cache.entry("k") as (found, made):
        assert found == Snapshot("/home/deployer", "QUJD")
        assert made == []
    runner.join(10)


def test_the_prestarted_world_is_the_next_plain_start_and_outlives_its_thread(worlds: list[World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prestart() boots in a thread of its own, which ends its work there: bwrap --die-with-parent follows the
    thread that started it, so a world whose starting thread ended was killed at its first step (SIGKILL)."""
    monkeypatch.setattr(replay, "CACHE", Cache(tmp_path / "replays"))
    monkeypatch.setattr(replay, "_PRESTARTED", {})
    replay.prestart(REPO)
    early = replay._PRESTARTED[REPO]
    taken = replay.start_world(REPO)
    worlds.append(taken)
    assert early.result() is taken
    assert REPO not in replay._PRESTARTED  # taken once: the next plain start makes its own
    r = taken.run("ids", IDS, 20)
    assert r.rc == 0, r.output
    assert "reflector-caddy-1 running" in r.output
    other = replay.start_world(REPO, nice=5)  # not the plain defaults: never the prestarted one
    worlds.append(other)
    assert other is not taken


def test_a_failed_prestart_fails_the_start_that_takes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "_PRESTARTED", {})

    def broken(*args: object, **kwargs: object) -> World:
        raise SandboxUnavailable("bwrap: no permission")

    monkeypatch.setattr(replay, "_start_world", broken)
    replay.prestart(REPO)
    with pytest.raises(SandboxUnavailable, match="no permission"):
        replay.start_world(REPO)


@pytest.mark.parametrize(
    ("args", "options", "worker", "prestarts"),
    [
        (["tests/test_docs.py"], {}, False, True),
        (["tests/test_docs.py::test_snippet"], {}, False, True),
        (["tests/test_docs.py", "tests/test_lanes.py"], {}, False, False),  # other tests first: the world would idle
        ([], {}, False, False),  # the whole suite
        (["tests/test_docs.py"], {"collectonly": True}, False, False),
        (["tests/test_docs.py"], {"numprocesses": 2}, False, False),  # the controller runs no test
        (["tests/test_docs.py"], {}, True, False),  # a worker cannot know it gets the doc steps
    ],
)
def test_only_a_session_that_runs_just_the_doc_tests_prestarts(args: list[str], options: dict[str, object], worker: bool, prestarts: bool) -> None:
    config = SimpleNamespace(args=args, invocation_params=SimpleNamespace(dir=REPO), option=SimpleNamespace(**{"collectonly": False, "numprocesses": None, **options}))
    if worker:
        config.workerinput = {}  # type: ignore[attr-defined]
    assert runs_only_the_doc_tests_here(config) is prestarts  # type: ignore[arg-type]
