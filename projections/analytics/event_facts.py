"""One `event_facts` row per stream event: what the event says, where it sits in the stream,
and its message as the relay published it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.analytics.columns import EVENT_FACTS, compact_json, micros
from projections.stream_event import StreamEvent


def event_fact_row(
    event: StreamEvent, aggregate_kind: str, account_id: str | None, at: int
) -> tuple[Any, ...]:
    """The row of `EVENT_FACTS` for one event (`at` is its occurred time in microseconds)."""
    payload = event.payload
    actor = payload.get("actor") or {}
    recorded = payload.get("recorded_at")
    return (
        event.sequence,
        payload.get("notification_id"),
        str(payload["aggregate_id"]),
        aggregate_kind,
        payload.get("version"),
        payload["type"],
        at,
        micros(recorded) if recorded else None,
        actor.get("kind"),
        actor.get("id"),
        payload.get("command_id"),
        account_id,
        payload.get("from_status"),
        payload.get("to_status"),
        # The relay's compact JSON as received (or as a rebuild cut it from the store), else
        # the same text made here.
        event.raw.decode() if event.raw is not None else compact_json(payload),
    )


def event_fact_columns(rows: Sequence[tuple[Any, ...]]) -> dict[str, Sequence[Any]]:
    """Rows column by column, as Arrow wants them."""
    columns = list(zip(*rows, strict=True)) or [() for _ in EVENT_FACTS]
    return {c.name: values for c, values in zip(EVENT_FACTS, columns, strict=True)}
