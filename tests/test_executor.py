"""A world's snippets behave like commands typed into one terminal: state carries over, failures and timeouts stay contained."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.sandbox import World
from scripts.world.executor import GRACE, Process, command_line, stat_fields, stop_and_wait

REPO = Path(__file__).resolve().parent.parent

# Stand-ins for the other engineers' modules, so these tests exercise the executor's hooks alone.
DOUBLES = {
    "scripts/world/standins/nano.py": """
import json, os, sys
from pathlib import Path
with open(Path(os.environ["WORLD"]) / "calls.jsonl", "a") as f:
    f.write(json.dumps({"tool": "nano", "argv": sys.argv[1:], "pythonpath": os.environ.get("PYTHONPATH")}) + "\\n")
print("nano double", *sys.argv[1:])
""",
    "scripts/world/boot.py": """
def boot(home, world, env, source=None):
    (home / "reflector").mkdir()
    (home / "reflector" / ".env").write_text("AUTH_BACKEND=none\\n")
""",
    "scripts/world/fakes/server.py": """
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.headers['Host']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Handle:
    def __init__(self, server):
        self.server = server

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fault(self, name, args):
        if name == "explode":
            raise RuntimeError("boom")
        return True, f"{name} {sorted(args.items())}"

def start(world):
    server = ThreadingHTTPServer(("127.0.0.1", 443), Hello)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return Handle(server)
""",
    "scripts/world/checks.py": """
def run_check(name, args, home, world):
    if name == "crash":
        raise ValueError("bad input")
    return name == "ok", f"{name} saw {sorted(args.items())} in {home}"

def apply_config(path, content, fmt, mode, home, world):
    target = home / path
    target.write_text(content)
    return True, f"{mode} {fmt} {target}"
""",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The executor plus the doubles, and nothing else of the project."""
    root = tmp_path_factory.mktemp("repo")
    (root / "scripts" / "world").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "world" / "executor.py", root / "scripts" / "world" / "executor.py")
    for name, text in DOUBLES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def world(repo: Path) -> Iterator[World]:
    """One world, one terminal session, shared by the tests below (each sets up the state it needs)."""
    with World.start(repo) as w:
        yield w


# -- session state ---------------------------------------------------------------------------------


def test_cd_export_variable_array_function_and_umask_carry_over(world: World) -> None:
    first = world.run(
        "p.md:1",
        """
mkdir -p ~/work && cd ~/work
export TOKEN="s3cr et"
PLAIN=$'two\\nlines "quoted" $notexpanded'
LIST=(a "b c" d)
declare -A MAP=([k]=v)
greet() { echo "hello $1"; }
umask 027
""",
        10,
    )
    assert first.rc == 0, first.output
    second = world.run(
        "p.md:9",
        """
pwd
bash -c 'echo "child sees $TOKEN"'
printf '%s\\n' "$PLAIN" "${LIST[1]}" "${#LIST[@]}" "${MAP[k]}"
greet world
umask
""",
        10,
    )
    assert second.output == '/home/deployer/work\nchild sees s3cr et\ntwo\nlines "quoted" $notexpanded\nb c\n3\nv\nhello world\n0027\n'


def test_exported_function_stays_exported(world: World) -> None:
    world.run("t", "shout() { echo LOUD; }; export -f shout", 10)
    assert world.run("t", "bash -c shout", 10).output == "LOUD\n"


def test_unset_and_cd_back_carry_over(world: World) -> None:
    world.run("t", "cd ~; GONE=1; cd /tmp", 10)
    world.run("t", "unset GONE; cd -", 10)
    assert world.run("t", 'echo "${GONE-unset} $PWD"', 10).output == "unset /home/deployer\n"


def test_nonzero_exit_status_is_returned(world: World) -> None:
    assert world.run("t", "false", 10).rc == 1
    assert world.run("t", "(exit 7)", 10).rc == 7
    assert world.run("t", "kill -TERM $$", 10).rc == 128 + 15


def test_exit_in_a_snippet_keeps_the_session(world: World) -> None:
    r = world.run("t", "KEPT=yes; cd /tmp; exit 3", 10)
    assert r.rc == 3
    assert world.run("t", 'echo "$KEPT $PWD"', 10).output == "yes /tmp\n"


def test_scripts_a_snippet_starts_do_not_touch_the_session(world: World) -> None:
    """BASH_ENV is the session's own: a child bash neither restores nor saves state."""
    world.run("t", "cd ~ && OUTER=1", 10)
    r = world.run("t", 'echo "${BASH_ENV-unset}"; bash -c \'echo "${OUTER-none}"; cd /; OUTER=2\'', 10)
    assert r.output == "unset\nnone\n"
    assert world.run("t", 'echo "$OUTER $PWD"', 10).output == "1 /home/deployer\n"


def test_a_deleted_cwd_falls_back_to_home(world: World) -> None:
    world.run("t", "mkdir -p /tmp/doomed && cd /tmp/doomed && rmdir /tmp/doomed", 10)
    assert world.run("t", "pwd", 10).output == "/home/deployer\n"


# -- output ----------------------------------------------------------------------------------------


def test_stdout_and_stderr_are_merged_in_order(world: World) -> None:
    assert world.run("t", "echo a; echo b >&2; echo c", 10).output == "a\nb\nc\n"


def test_invalid_utf8_is_replaced_not_fatal(world: World) -> None:
    assert world.run("t", r"printf 'ok \xff\n'", 10).output == "ok \ufffd\n"


def test_snippet_file_holds_exactly_the_script(world: World) -> None:
    script = 'cat "$0"; echo "$0"\n# trailing comment without newline'
    r = world.run("docs/page.md:12", script, 10)
    assert r.output == script + "/run/world/snippets/docs_page.md_12.sh\n"


def test_seconds_is_the_wall_time_of_bash(world: World) -> None:
    r = world.run("t", "sleep 0.3", 10)
    assert 0.3 <= r.seconds < 10  # the upper bound only says "not some other command's time"; the bench measures


# -- timeouts and leftovers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    ["sleep 100", "sleep 100 & wait", "trap '' TERM; sleep 100"],
    ids=["foreground", "waited-background", "ignores-sigterm"],
)
def test_timeout_kills_the_whole_group_and_the_session_goes_on(world: World, script: str) -> None:
    started = time.monotonic()
    r = world.run("t", script, 0.5)
    elapsed = time.monotonic() - started
    assert (r.rc, r.timed_out, r.leftover) == (None, True, ())
    assert 0.5 <= elapsed < 0.5 + GRACE + 10  # killed at its timeout, not after the 100 s sleep (slack for a loaded CI)
    after = world.run("t", "echo next; ps -eo args | grep -c '^sleep 100'", 10)
    assert after.output == "next\n0\n"


def test_background_process_is_reported_and_killed(world: World) -> None:
    # Wait (in the snippet) until the child has exec'd, so its command line is `sleep 100`.
    r = world.run("t", 'sleep 100 & until [ "$(cat /proc/$!/comm)" = sleep ]; do :; done; echo started', 10)
    assert (r.rc, r.output, r.leftover) == (0, "started\n", ("sleep 100",))
    assert world.run("t", "ps -eo args | grep -c '^sleep 100'", 10).output == "0\n"


def test_process_escaping_the_group_is_reported_and_killed(world: World) -> None:
    r = world.run("t", 'setsid sleep 99 & until [ "$(cat /proc/$!/comm)" = sleep ]; do :; done', 10)
    assert r.leftover == ("sleep 99",)
    assert world.run("t", "ps -eo args | grep -c '^sleep 99'", 10).output == "0\n"


def test_stop_and_wait_returns_only_once_every_process_is_stopped() -> None:
    """The sweep reads leftovers' command lines after this, so it must not return while one still runs (or is mid-exec).

    More busy processes than cores: most are waiting for a CPU when the signal comes, and stop only once scheduled.
    """
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4 * (os.cpu_count() or 1))]
    try:
        stop_and_wait([b.pid for b in busy], time.monotonic() + 30)
        states = [(stat_fields(b.pid) or ("gone",))[0] for b in busy]
        assert states == ["T"] * len(busy)
        assert command_line(Process(busy[0].pid, 0, "python3")) == f"{sys.executable} -c while True: pass"
    finally:
        for b in busy:
            b.kill()
            b.wait()


BLANK_ARGV = """
import ctypes, sys
fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (stat fields 48, 49)
ctypes.memset(start, 0, end - start)
print("blank", flush=True)
sys.stdin.read()
"""


def test_a_process_without_a_readable_command_line_is_named_by_its_program() -> None:
    """A blank /proc/PID/cmdline (mid-exec, or argv wiped) must not become a bare `[python3]` while the program is known."""
    blank = subprocess.Popen([sys.executable, "-c", BLANK_ARGV], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert blank.stdout is not None
        assert blank.stdout.readline() == "blank\n"
        assert Path(f"/proc/{blank.pid}/cmdline").read_bytes().strip(b"\0") == b""
        assert command_line(Process(blank.pid, 0, "python3")) == f"{Path(sys.executable).resolve()} (arguments unreadable)"
    finally:
        blank.kill()
        blank.wait()
    assert command_line(Process(2**22 + 7, 0, "bash")) == "[bash]"  # gone (above pid_max): the kernel's name is all there was


# -- the world around the session --------------------------------------------------------------------


def test_fixtures_are_installed_before_the_first_snippet(world: World) -> None:
    assert world.run("t", "cat ~/reflector/.env", 10).output == "AUTH_BACKEND=none\n"


def test_fakes_serve_the_guide_hostnames_on_443(world: World) -> None:
    r = world.run("t", "curl -sS http://authentik.example.com:443/", 10)
    assert r.output == "hello from authentik.example.com:443\n"


def test_stand_in_calls_are_returned_with_their_run(world: World, repo: Path) -> None:
    """The wrapper sets PYTHONPATH for the stand-in only; the snippet's environment stays the allowlist."""
    r = world.run("t", "nano notes.txt; echo ${PYTHONPATH-unset}", 10)
    assert r.output == "nano double notes.txt\nunset\n"
    assert r.standins == ({"tool": "nano", "argv": ["notes.txt"], "pythonpath": str(repo)},)
    assert world.run("t", "true", 10).standins == ()


def test_missing_stand_in_module_fails_like_a_missing_command(world: World) -> None:
    r = world.run("t", "ssh deploy@server true", 10)
    assert r.rc == 1
    assert "No module named scripts.world.standins.ssh" in r.output


def test_check_apply_and_fault_are_forwarded(world: World) -> None:
    ok = world.check("ok", {"file": "a"})
    assert ok.ok
    assert ok.detail == "ok saw [('file', 'a')] in /home/deployer"
    assert not world.check("other", {}).ok
    applied = world.apply("applied.env", "A=1\n", "env", "replace")
    assert applied.ok
    assert applied.detail == "replace env /home/deployer/applied.env"
    assert world.run("t", "cat ~/applied.env", 10).output == "A=1\n"
    fault = world.fault("slow", {"ms": 5})
    assert fault.ok
    assert fault.detail == "slow [('ms', 5)]"


def test_crashing_hook_is_a_failure_with_its_reason(world: World) -> None:
    crashed = world.check("crash", {})
    assert not crashed.ok
    assert crashed.detail == "check crash crashed: ValueError: bad input"
    exploded = world.fault("explode", {})
    assert not exploded.ok
    assert exploded.detail == "fault explode crashed: RuntimeError: boom"
    assert world.run("t", "echo alive", 10).output == "alive\n"


def test_shell_options_a_terminal_keeps_carry_over(world: World) -> None:
    """`set -o pipefail` typed at a prompt stays on for the reader's next commands, so it does for the next step too."""
    world.run("t", "set -o pipefail", 10)
    assert world.run("t", "false | true; echo $?", 10).output == "1\n"
    world.run("t", "set +o pipefail", 10)
    assert world.run("t", "false | true; echo $?", 10).output == "0\n"
