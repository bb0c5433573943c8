"""Rebuild a projection from the event store into a fresh file, with progress."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
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
    return _rebuild(app, target, AnalyticsStore, upto_sequence, progress)


def _rebuild(
    app: TicketingApplication,
    target: Path,
    store_class: Any,
    upto_sequence: int | None,
    progress: Progress | None,
) -> int:
    """Build into `<target>.building`, then rename over the target: never a half-built file."""
    building = target.with_name(target.name + ".building")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    store = store_class(building)
    applied = 0
    try:
        batches = stream_batches(app, upto_sequence=upto_sequence)
        if hasattr(store, "apply_all"):
            applied = store.apply_all(batches, progress)
        else:
            for events in batches:
                store.apply(events)
                applied += len(events)
                if progress:
                    progress(len(events))
    finally:
        store.close()
    os.replace(building, target)
    return applied


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
