"""A pytest plugin that runs the pages of tests/test_docs.py in a seeded random order, each page's steps still in page order.

Load it with `-p scripts.tools.shuffle_pages --shuffle-pages SEED` (scripts/tools/stability.py does). A page is
a unit of state, so only whole pages move; any other test counts as a group of its own. Every
xdist worker collects the same items and shuffles them with the same seed, so they agree on the
order, as xdist requires. Under `--dist loadgroup`, also pass `--no-loadscope-reorder`: xdist
otherwise hands out the pages largest first, whatever the collected order.
"""

from __future__ import annotations

import random

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shuffle-pages", metavar="SEED", type=int, default=None, help="run whole pages in a random order from SEED")


def group_of(item: pytest.Item) -> str:
    """The page a test_docs step belongs to (its `page` parameter), else the test's own id."""
    callspec = getattr(item, "callspec", None)
    page = callspec.params.get("page") if callspec is not None else None
    path = getattr(page, "path", None)
    return f"page:{path}" if isinstance(path, str) else f"test:{item.nodeid}"


def shuffled(items: list[pytest.Item], seed: int) -> list[pytest.Item]:
    """Items regrouped by page, the groups in an order drawn from `seed`, each group in its collected order."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    order = list(groups)
    random.Random(seed).shuffle(order)
    return [item for key in order for item in groups[key]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = config.getoption("--shuffle-pages")
    if seed is not None:
        items[:] = shuffled(items, seed)


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("--shuffle-pages")
    return None if seed is None else f"pages shuffled with seed {seed}"
