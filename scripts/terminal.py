"""The writer's terminal relayed to an interactive shell inside a world (`python -m scripts.check --shell`).

The host makes a pseudo-terminal, hands its slave end to the executor (World.open_shell), and
copies bytes between the writer's terminal and the master end until the executor answers that
the shell has exited. The writer's terminal is in raw mode meanwhile, so keys such as Ctrl-C and
Tab reach the shell inside, and the window size follows the writer's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import struct
import termios
import tty
from collections.abc import Iterator
from types import FrameType

from scripts.sandbox import World

CHUNK = 1 << 16


def copy_window_size(source: int, target: int) -> None:
    """Give the pty the writer's window size (nothing to copy when the writer's side is not a terminal)."""
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """The writer's terminal in raw mode for the duration, restored whatever happens."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def relay(world: World, master: int, stdin: int, stdout: int) -> None:
    """Copy the writer's keys to the shell and its output back, until the executor reports the shell gone."""
    with selectors.DefaultSelector() as sel:
        sel.register(stdin, selectors.EVENT_READ)
        sel.register(master, selectors.EVENT_READ)
        sel.register(world.response_fd, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fd == world.response_fd:
                    return
                try:
                    data = os.read(key.fd, CHUNK)
                except OSError:
                    data = b""  # EIO: every process of the shell closed the terminal
                if not data:
                    sel.unregister(key.fd)
                    continue
                write_all(master if key.fd == stdin else stdout, data)


def drain(master: int, stdout: int) -> None:
    """What the shell printed last, still buffered in the pty once it exited."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, CHUNK)
        except OSError:
            return  # EIO (no writer left) or EAGAIN (nothing left)
        if not data:
            return
        write_all(stdout, data)


def interactive_shell(world: World, id: str, state: str, banner: str, text: str, stdin: int = 0, stdout: int = 1) -> int | None:  # noqa: A002 - the step's id, as in the protocol
    """Open a shell in `world` at step `id` on the writer's terminal; its exit status once the writer leaves it."""
    master, slave = os.openpty()
    copy_window_size(stdin, slave)

    def resized(signum: int, frame: FrameType | None) -> None:
        copy_window_size(stdin, master)

    previous = signal.signal(signal.SIGWINCH, resized)
    try:
        try:
            world.open_shell(id, state, os.environ.get("TERM", "xterm"), banner, text, slave)
        finally:
            os.close(slave)
        with raw(stdin):
            relay(world, master, stdin, stdout)
            drain(master, stdout)
        return world.shell_result()
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(master)
