"""The event store read as the stream the projectors see: published events in notification
order, numbered 1, 2, 3… exactly as the relay numbers them in the TICKETING stream (it publishes
each once, in this order), so a projection rebuilt from the store carries positions a live
projector can continue from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from commands.application import TicketingApplication
from projections.consumer import StreamEvent
from projections.payloads import stored_payload
from projections.relay import PUBLISHED_TOPICS

BATCH = 20_000  # large batches: fewer transactions in the stores


def stream_batches(
    app: TicketingApplication, *, upto_sequence: int | None = None, batch: int = BATCH
) -> Iterator[list[StreamEvent]]:
    position, sequence = 0, 0
    while upto_sequence is None or sequence < upto_sequence:
        limit = batch if upto_sequence is None else min(batch, upto_sequence - sequence)
        notifications = app.recorder.select_notifications(
            start=position + 1, limit=limit, topics=PUBLISHED_TOPICS, inclusive_of_start=True
        )
        if not notifications:
            return
        events = []
        for notification in notifications:
            sequence += 1
            payload: dict[str, Any] = stored_payload(
                app,
                notification.topic,
                notification.originator_id,
                notification.originator_version,
                notification.state,
            )
            payload["notification_id"] = notification.id
            events.append(StreamEvent(sequence, payload))
        position = notifications[-1].id
        yield events


def occurred_at(event: StreamEvent) -> datetime:
    return datetime.fromisoformat(event.payload["occurred_at"])
