"""Commands every modelled image has (env, printenv, cat, true), with the wording of its userland (BusyBox or GNU coreutils)."""

from __future__ import annotations

from collections.abc import Mapping

from scripts.world.images.base import Box, Output, Program


def _printenv(names: tuple[str, ...]) -> Program:
    def run(box: Box, env: Mapping[str, str], stdin: bytes) -> Output:
        if not names:
            return Output(0, "".join(f"{k}={v}\n" for k, v in env.items()).encode())
        found = [env[n] for n in names if n in env]
        # printenv exits 1 when any named variable is unset, printing the ones it found.
        return Output(0 if len(found) == len(names) else 1, "".join(f"{v}\n" for v in found).encode())

    return Program(False, run)


def _cat(paths: tuple[str, ...], busybox: bool) -> Program:
    def run(box: Box, env: Mapping[str, str], stdin: bytes) -> Output:
        out, err, rc = [], [], 0
        for path in paths:
            text = box.read(path)
            if text is None:
                err.append(f"cat: can't open '{path}': No such file or directory\n" if busybox else f"cat: {path}: No such file or directory\n")
                rc = 1
            else:
                out.append(text)
        return Output(rc, "".join(out).encode(), "".join(err).encode())

    return Program(False, run)


def common_program(argv: tuple[str, ...], *, busybox: bool) -> Program | None:
    """env, printenv, cat FILE..., true: what the guide runs in any container; None for anything else."""
    if not argv:
        return None
    name, args = argv[0], argv[1:]
    if (name == "env" and not args) or name == "printenv":
        return _printenv(args)
    if name == "cat" and args and not any(a.startswith("-") for a in args):
        return _cat(args, busybox)
    if name == "true":
        return Program(False, lambda box, env, stdin: Output(0))
    return None
