"""Rebuild a projection from the event store into a fresh file, with progress."""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from commands.application import TicketingApplication
from projections.analytics.store import AnalyticsStore
from projections.queue.store import QueueStore
from replay.stream import occurred_at, published_after, stream_batches

Progress = Callable[[int], None]


def published_count(app: TicketingApplication) -> int:
    """How many events a rebuild will read (for the progress bar)."""
    return published_after(app, 0)[0]


def rebuild_queue(
    app: TicketingApplication,
    target: Path,
    *,
    upto_sequence: int | None = None,
    progress: Progress | None = None,
) -> int:
    return _rebuild(app, target, QueueStore, upto_sequence, progress)


def rebuild_analytics(
    app: TicketingApplication,
    target: Path,
    *,
    upto_sequence: int | None = None,
    progress: Progress | None = None,
) -> int:
    return _rebuild(app, target, AnalyticsStore, upto_sequence, progress, with_messages=True)


def _rebuild(
    app: TicketingApplication,
    target: Path,
    store_class: Any,
    upto_sequence: int | None,
    progress: Progress | None,
    *,
    with_messages: bool = False,
) -> int:
    """Build into `<target>.building`, then rename over the target: never a half-built file."""
    building = target.with_name(target.name + ".building")
    for suffix in ("", "-wal", "-shm", ".wal"):  # SQLite's and DuckDB's journals
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    with _collector_paused():
        store = store_class(building)
        try:
            batches = stream_batches(app, upto_sequence=upto_sequence, with_messages=with_messages)
            applied = _apply(store, batches, progress)
        finally:
            store.close()
    os.replace(building, target)
    return applied


def _apply(store: Any, batches: Iterator[list[Any]], progress: Progress | None) -> int:
    """The store's bulk path when it has one, else batch by batch."""
    if hasattr(store, "apply_all"):
        return int(store.apply_all(batches, progress))
    applied = 0
    for events in batches:
        store.apply(events)
        applied += len(events)
        if progress:
            progress(len(events))
    return applied


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A rebuild allocates millions of small acyclic dicts and tuples and keeps many alive;
    the cyclic collector would walk the live ones again and again (≈ 15% of a rebuild,
    measured), finding nothing to free. Paused for the rebuild, restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def queue_as_of(app: TicketingApplication, moment: datetime) -> sqlite3.Connection:
    """The whole queue exactly as it was at `moment`: every event up to then, replayed into an
    in-memory queue projection (exact; slower than reading the live queue)."""
    store = QueueStore(Path(":memory:"))
    sequence = 0
    for events in stream_batches(app):
        kept = [e for e in events if occurred_at(e) <= moment]
        if kept:
            store.apply(kept)
        sequence += len(events)
    return store.db
