"""The one comma-list parser behind every list the user types (--seeds, --rates, --counts, --methods,
--labels, and ``[a, b]`` values of --set)."""

from __future__ import annotations


def comma_items(text) -> list[str]:
    """'a, b,,c' -> ['a', 'b', '', 'c']: every item stripped, empty ones kept (callers decide whether an
    empty item is skipped or refused)."""
    return [item.strip() for item in str(text).split(",")]
