"""Events a projection cannot apply: which one it is, why, and the error every reader reports.

A projection applies the stream in order and never skips an event, so one event it cannot
apply (a value its fold cannot handle, a message that is not an event) holds it at that point.
`apply_isolating` finds that event exactly: the batch is applied whole, and only when that
fails, one event at a time from the same committed state, so the events before the bad one
are applied and the one named is the one that fails on its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from projections.stream_event import StreamEvent
from ticketing.domain.errors import TicketingError

MAX_REASON = 300
"""Characters of an exception's message kept in a reason (status lines stay readable)."""


DISK_FULL = ("No space left on device", "disk is full")


class EventNotAppliedError(TicketingError):
    """A projection cannot apply an event; it names the event and the reason."""

    code = "event_not_applied"


class _Store(Protocol):
    def apply(self, events: Sequence[StreamEvent]) -> None: ...


def reason_of(error: BaseException) -> str:
    """`Type: message` on one line, bounded."""
    text = " ".join(str(error).split())
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_environmental(error: BaseException) -> bool:
    """The machine failed (disk full, file unreadable), not the event: retrying may mend it."""
    if isinstance(error, OSError | MemoryError | sqlite3.OperationalError):
        return True
    if any(sign in str(error) for sign in DISK_FULL):  # e.g. DuckDB's failed commit
        return True
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return False
    return isinstance(error, duckdb.IOException)


@dataclass(frozen=True)
class ApplyFailure:
    """The first event a projection could not apply, and why."""

    sequence: int
    event_type: str
    reason: str
    aggregate_id: str | None = None
    notification_id: int | None = None
    environmental: bool = False

    @classmethod
    def of(cls, event: StreamEvent, error: BaseException) -> ApplyFailure:
        payload: dict[str, Any] = event.payload if isinstance(event.payload, dict) else {}
        notification = payload.get("notification_id")
        return cls(
            sequence=event.sequence,
            event_type=str(payload.get("type") or "?"),
            reason=reason_of(error),
            aggregate_id=str(payload["aggregate_id"]) if payload.get("aggregate_id") else None,
            notification_id=notification if isinstance(notification, int) else None,
            environmental=is_environmental(error),
        )

    def describe(self) -> str:
        """`stream sequence 5 (SlaPolicyApplied, aggregate …, notification 9): Error: …`"""
        where = [self.event_type]
        if self.aggregate_id:
            where.append(f"aggregate {self.aggregate_id}")
        if self.notification_id is not None:
            where.append(f"notification {self.notification_id}")
        return f"stream sequence {self.sequence} ({', '.join(where)}): {self.reason}"

    def error(self, projection: str) -> EventNotAppliedError:
        return EventNotAppliedError(
            f"{projection} cannot apply {self.describe()}",
            projection=projection,
            sequence=self.sequence,
            event_type=self.event_type,
            reason=self.reason,
        )


def apply_isolating(
    store: _Store, events: Sequence[StreamEvent]
) -> tuple[int, ApplyFailure | None]:
    """Apply `events` in order: as one batch, or, when the batch fails, one at a time up to the
    first event that fails alone. Returns how many events were applied (a prefix of `events`)
    and the failure, None when all were applied. Each `apply` commits with its position or
    rolls back whole, so a failure leaves the store at the last applied event."""
    if not events:
        return 0, None
    try:
        store.apply(events)
    except Exception as error:
        if len(events) == 1:
            return 0, ApplyFailure.of(events[0], error)
    else:
        return len(events), None
    for applied, event in enumerate(events):
        try:
            store.apply([event])
        except Exception as error:
            return applied, ApplyFailure.of(event, error)
    # The batch failed but each event alone applied (a failure of the batch's size, e.g. the
    # disk filling up and then freeing); everything is applied now.
    return len(events), None
