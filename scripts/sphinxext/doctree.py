"""Where the extension's additions go in a page's doctree: under the page's title, or next to a block."""

from __future__ import annotations

from docutils import nodes  # type: ignore[import-untyped]  # docutils ships no types


def insert_after_title(doctree: nodes.document, node: nodes.Node) -> None:
    """Right under the page's title (at the top when the page has none)."""
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        doctree.insert(0, node)
        return
    section.insert(1, node)


def outermost(block: nodes.Element) -> nodes.Element:
    """The node a block's neighbours go next to: a captioned block's wrapper, else the block itself."""
    parent = block.parent
    if isinstance(parent, nodes.container) and "literal-block-wrapper" in parent["classes"]:
        return parent
    return block
