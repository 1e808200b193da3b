"""The fakes' traffic held to the real services' published contracts: Authentik's API (authentik-client), OAuth2/OIDC, Reflector's API.

The front records every exchange a fake answers (traffic.jsonl in the world); the executor hands each
step's share to the host with the step's result, and `check_traffic` names what a real server would
not have answered that way. New page content is covered with no new test: whatever a step makes the
fakes say is checked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from scripts.contract import authentik_api, oauth, reflector
from scripts.contract.common import Exchange, Violation


@functools.cache
def authentik_contract() -> authentik_api.Contract:
    return authentik_api.load()


def violations(exchange: Exchange) -> Iterator[Violation]:
    """Everything in one exchange that the real service's contract forbids."""
    if exchange.response.status == 502 and exchange.response.header("Server") == "Caddy":
        return  # Caddy answered for an app it could not reach: the app said nothing
    if exchange.app == "authentik":
        if exchange.request.path.startswith("/api/v3/"):
            yield from authentik_api.check(authentik_contract(), exchange)
        elif exchange.request.path.startswith("/application/o/"):
            yield from oauth.check(exchange)
    elif exchange.app == "reflector-api":
        yield from reflector.check(exchange)


def check_traffic(records: Iterable[Mapping[str, Any]], step: str) -> list[str]:
    """One message per violation in a step's traffic, naming the operation, the field and the step."""
    return [v.describe(step) for record in records for v in violations(Exchange.from_json(record))]
