"""Rebuild a projection from the event store into a fresh file, with progress."""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from projections.analytics.store import AnalyticsStore
from projections.poison import apply_isolating, is_environmental, reason_of
from projections.queue.store import QueueStore
from replay.rebuild_workers import (
    RebuildWorkers,
    RebuildWorkersUnavailableError,
    can_share_store,
)
from replay.stream import occurred_at, published_after, stream_batches
from ticketing.domain.errors import TicketingError
from ticketing.store.application import TicketingApplication

Progress = Callable[[int], None]


class RebuildFailedError(TicketingError):
    """A rebuild stopped for a reason that is not one event (the disk, the store)."""

    code = "rebuild_failed"


def published_count(app: TicketingApplication, last_notification: int | None = None) -> int:
    """How many events a rebuild will read (for the progress bar), up to `last_notification`
    when given."""
    return published_after(app, 0, last_notification)[0]


def rebuild_queue(
    app: TicketingApplication,
    target: Path,
    *,
    upto_sequence: int | None = None,
    progress: Progress | None = None,
) -> int:
    batches = stream_batches(app, upto_sequence=upto_sequence)
    try:
        return _build(target, QueueStore, lambda store: _apply(store, batches, progress))
    except Exception as error:
        raise _named(error, app, "queue", QueueStore, upto_sequence) from error


PARALLEL_FROM = 200_000
"""Stored records (events and command records) from which an analytics rebuild spreads its
per-event work over worker processes: below it, starting them costs more than they save."""

MOST_WORKERS = 4
"""Workers by default on a machine with more cores: the in-order fold of the rebuilding process
(about 8 us an event, measured on 2 cores) keeps pace with three or four workers (about 22 us
an event each), so more would only wait."""


def rebuild_analytics(
    app: TicketingApplication,
    target: Path,
    *,
    upto_sequence: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    published: int | None = None,
) -> int:
    """`workers`: processes that decode events and make their fact rows (`rebuild_workers`);
    0 does everything in this process; the default is `analytics_workers`. `published`: the
    `published_count` when the caller has it (the progress bar's total); else it is counted
    here, for the layout of the file's row groups (`projections.analytics.row_groups`)."""
    workers = analytics_workers(app, workers)
    try:
        return _rebuild_analytics(app, target, upto_sequence, progress, workers, published)
    except Exception as error:
        raise _named(error, app, "analytics", AnalyticsStore, upto_sequence) from error


def _rebuild_analytics(
    app: TicketingApplication,
    target: Path,
    upto_sequence: int | None,
    progress: Progress | None,
    workers: int,
    published: int | None,
) -> int:
    if workers == 0:
        expected = _expected_events(app, upto_sequence, published)
        batches = stream_batches(app, upto_sequence=upto_sequence, with_messages=True)
        return _build(
            target,
            AnalyticsStore,
            lambda store: store.apply_all(batches, progress, expected_events=expected),
        )
    last = app.recorder.max_notification_id() or 0  # the workers and we stop at the same event
    team = RebuildWorkers(app.env, workers=workers, until_notification=last)
    try:
        # Counted on the store's writer thread once the first batches are in (this process
        # reads nothing else from the store meanwhile): the count of a large store takes
        # 0.2-0.5 s, which would otherwise hold up the start.
        return _build(
            target,
            AnalyticsStore,
            lambda store: store.apply_all_with_facts(
                team.batches(upto_sequence),
                progress,
                expected_events=lambda: _expected_events(app, upto_sequence, published, last),
            ),
        )
    finally:
        team.close()


def _named(
    error: Exception,
    app: TicketingApplication,
    projection: str,
    store_class: Any,
    upto_sequence: int | None,
) -> TicketingError:
    """The error a rebuild ends with: the event it cannot apply, named by its stream sequence,
    type and reason, or the disk's or store's failure. The bulk paths fold whole batches (and
    SLA clocks at a batch's end), so the event is found again by applying the stream batch by
    batch into a scratch store, one event at a time in the batch that fails (a second pass,
    only on this path)."""
    if isinstance(error, TicketingError):
        return error
    if is_environmental(error):
        return RebuildFailedError(f"rebuilding {projection} failed: {reason_of(error)}")
    with tempfile.TemporaryDirectory(prefix="ticketing-diagnose-") as scratch:
        store = store_class(Path(scratch) / f"{projection}.diagnose")
        try:
            batches = stream_batches(
                app, upto_sequence=upto_sequence, with_messages=projection == "analytics"
            )
            for events in batches:
                _done, failure = apply_isolating(store, events)
                if failure is not None:
                    return failure.error(projection)
        except Exception as again:  # the second pass failed elsewhere: report the first
            return RebuildFailedError(
                f"rebuilding {projection} failed: {reason_of(error)} "
                f"(finding the event failed too: {reason_of(again)})"
            )
        finally:
            store.close()
    return RebuildFailedError(f"rebuilding {projection} failed: {reason_of(error)}")


def _expected_events(
    app: TicketingApplication,
    upto_sequence: int | None,
    published: int | None,
    last_notification: int | None = None,
) -> int:
    if published is None:
        published = published_count(app, last_notification)
    return published if upto_sequence is None else min(published, upto_sequence)


def analytics_workers(app: TicketingApplication, requested: int | None = None) -> int:
    """How many worker processes an analytics rebuild uses: `requested`, else one per core (at
    most `MOST_WORKERS`) for a store of `PARALLEL_FROM` records or more that another process
    can open, else 0. Workers asked of a store no other process can open are refused."""
    if requested is None:
        large = (app.recorder.max_notification_id() or 0) >= PARALLEL_FROM
        return min(os.cpu_count() or 1, MOST_WORKERS) if large and can_share_store(app) else 0
    if requested > 0 and not can_share_store(app):
        raise RebuildWorkersUnavailableError(
            "rebuild workers need a store that another process can open (an SQLite file or "
            "PostgreSQL); use no workers for an in-memory store",
            field="workers",
        )
    return max(requested, 0)


def _build(target: Path, store_class: Any, fill: Callable[[Any], int]) -> int:
    """Build into `<target>.building`, then rename over the target: never a half-built file,
    and none left behind when the build fails."""
    building = target.with_name(target.name + ".building")
    _remove_with_journals(building)
    try:
        with _collector_paused():
            store = store_class(building)
            try:
                applied = fill(store)
            finally:
                store.close()
    except BaseException:
        _remove_with_journals(building)
        raise
    os.replace(building, target)
    return applied


def _remove_with_journals(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".wal"):  # SQLite's and DuckDB's journals
        Path(f"{path}{suffix}").unlink(missing_ok=True)


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
