"""Stand-in for `nano` (GNU nano 7.2): an interactive editor, which a script cannot drive."""

from __future__ import annotations

import os

from scripts.world.standins.common import Failure, run_main, unsupported

# Real nano refuses to start when standard input is not a terminal: it prints
# `Standard input is not a terminal` on stderr and exits 1, leaving every file as it was
# (checked with Debian 12's nano 7.2, under TERM=dumb and TERM=xterm alike). It also paints a
# screen on stdout first; the stand-in leaves that terminal noise out. With a terminal, a person
# would edit the file by hand, which this world cannot emulate.

VERSION = """\
 GNU nano, version 7.2
 (C) 2023 the Free Software Foundation and various contributors
 Compiled options: --disable-libmagic --enable-utf8"""


def handle(argv: list[str]) -> int:
    """Print the version, or fail as nano does without a terminal."""
    # nano's many options are not validated: none of them lets it run without a terminal.
    if "-V" in argv or "--version" in argv:
        print(VERSION)
        return 0
    if os.isatty(0):
        unsupported("nano", "interactive editing")
    raise Failure("Standard input is not a terminal", 1)


def main() -> None:
    """Entry point for `python -m scripts.world.standins.nano`."""
    run_main("nano", handle)


if __name__ == "__main__":
    main()
