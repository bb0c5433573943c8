"""Comparing aggregate state exactly, types included (a str-enum equals its string, a set its
sorted list only after conversion): what snapshot tests assert on."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

from ticketing.store.snapshots import LazyList


def canonical(value: Any) -> Any:
    """A comparable form that keeps each value's type, so `Status.OPEN` != "open"."""
    if isinstance(value, Enum):
        return ("enum", type(value).__qualname__, value.value)
    if isinstance(value, LazyList):
        value = list(value)
    if isinstance(value, list):
        return ("list", [canonical(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", [canonical(v) for v in value])
    if isinstance(value, set | frozenset):
        return (type(value).__name__, sorted((canonical(v) for v in value), key=repr))
    if isinstance(value, dict):
        return ("dict", sorted((k, canonical(v)) for k, v in value.items()))
    return (type(value).__qualname__, value)


def canonical_state(aggregate: Any, skip: Iterable[str] = ("_pending_events",)) -> Any:
    """Every attribute of the aggregate (id and version included), canonical."""
    return canonical({k: v for k, v in vars(aggregate).items() if k not in skip})
