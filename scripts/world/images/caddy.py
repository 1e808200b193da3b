"""caddy:2-alpine: the real caddy binary adapts what the container sees at /etc/caddy/Caddyfile; reload swaps the routes.

Source: the caddy image's Dockerfile (CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile",
"--adapter", "caddyfile"], WORKDIR /srv, ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data, EXPOSE 80
443 443/udp 2019). Assumption: the admin endpoint (localhost:2019 inside the container) always
accepts what `caddy reload` sends once caddy has adapted it, so the reload's outcome is caddy's
own adapt step; `caddy run` fails at start on a config that does not adapt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from scripts.world import caddy
from scripts.world.images.base import Box, Crashed, ImageConfig, NotStarted, Outcome, Output, Program, Running, unmodelled
from scripts.world.images.common import common_program

RUN = ("caddy", "run", "--config", caddy.CADDYFILE, "--adapter", "caddyfile")
SUBCOMMANDS = ("reload", "validate", "adapt", "fmt", "version", "environ", "list-modules")


def log_line(level: str, msg: str, **fields: object) -> str:
    """One line of caddy's JSON log (its default when stderr is not a terminal)."""
    return json.dumps({"level": level, "ts": round(time.time(), 6), "msg": msg, **fields})


class Caddy:
    repository = "caddy"
    tags = ("2-alpine", "2")
    config = ImageConfig(
        cmd=RUN,
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *(f"{k}={v}" for k, v in caddy.IMAGE_ENV.items())),
        working_dir="/srv",
        exposed_ports=("80/tcp", "443/tcp", "443/udp", "2019/tcp"),
    )

    def files(self) -> Mapping[str, str]:
        return {}

    def start(self, box: Box, argv: tuple[str, ...]) -> Outcome:
        if argv[:1] != ("caddy",):
            return NotStarted(f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH')
        if argv != RUN:
            return NotStarted(f"caddy {' '.join(argv[1:])}: not modelled in this world")
        text = box.read(caddy.CADDYFILE)
        if text is None:
            return Crashed(1, (f"Error: reading config from file: open {caddy.CADDYFILE}: no such file or directory",))
        routes, error = caddy.adapt(text)
        if error is not None:
            return Crashed(1, (log_line("info", "using config from file", file=caddy.CADDYFILE), f"Error: adapting config using caddyfile: {error}"))
        return Running(
            files={caddy.CADDYFILE: text},
            routes=routes,
            log=(
                log_line("info", "using config from file", file=caddy.CADDYFILE),
                log_line("info", "adapted config to JSON", adapter="caddyfile"),
                log_line("info", "serving initial configuration"),
            ),
        )

    def program(self, argv: tuple[str, ...]) -> Program | None:
        if argv[:1] == ("caddy",):
            return Program(False, lambda box, env, stdin: self.caddy(box, list(argv[1:])))
        return common_program(argv, busybox=True)

    def caddy(self, box: Box, args: list[str]) -> Output:
        """The real caddy CLI on the container's Caddyfile, with the image's environment only."""
        sub = args[0] if args else ""
        if sub not in SUBCOMMANDS:
            return unmodelled(f"caddy {sub}")
        text = box.read(caddy.CADDYFILE)
        files = {caddy.CADDYFILE: text} if text is not None else {}
        if sub != "reload":
            done = caddy.run(args, files)
            return Output(done.rc, done.stdout.encode(), done.stderr.encode())
        # `caddy reload` adapts, then POSTs to the admin endpoint: run it against an address where
        # nothing listens, keep its output up to the send, and do the load step here.
        done = caddy.run([*args, "--address", "127.0.0.1:1"], files)
        lines = done.stderr.splitlines()
        sent = [i for i, line in enumerate(lines) if "sending configuration to instance" in line]
        if not sent:
            return Output(done.rc or 1, done.stdout.encode(), done.stderr.encode())
        shown = "".join(line + "\n" for line in lines[: sent[0]]).encode()
        config_arg = args[args.index("--config") + 1] if "--config" in args else None
        if config_arg != caddy.CADDYFILE or text is None:
            return Output(0, stderr=shown)
        routes, error = caddy.adapt(text)
        return Output(0, stderr=shown, routes=routes if error is None else None)
