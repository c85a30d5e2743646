"""The one list parser behind every list the user types: comma lists (--seeds, --rates, --counts, --methods,
--labels, and ``[a, b]`` values of --set) and the '+'-joined parts of one item (--drop's switches, a --counts
point's domains)."""

from __future__ import annotations


def _items(text, sep: str) -> list[str]:
    return [item.strip() for item in str(text).split(sep)]


def comma_items(text) -> list[str]:
    """'a, b,,c' -> ['a', 'b', '', 'c']: every item stripped, empty ones kept (callers decide whether an
    empty item is skipped or refused)."""
    return _items(text, ",")


def plus_items(text) -> list[str]:
    """'a+ b++c' -> ['a', 'b', '', 'c']: the parts of one item joined by '+', stripped, empty ones kept."""
    return _items(text, "+")
