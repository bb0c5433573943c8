"""What every aggregate here shares: events that carry who, when and which command, chained to
their predecessor by hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from ticketing.domain.chain import chained
from ticketing.domain.values import Actor


class ChainedAggregate(Aggregate):
    """Base of Ticket and Account: `_record` completes an event's common fields and hashes."""

    chain_head: str

    def _moment(self, at: datetime | None) -> datetime:
        raise NotImplementedError

    def _record(
        self,
        event_class: Any,
        actor: Actor,
        at: datetime | None,
        command_id: str,
        *,
        checked_time: datetime | None = None,
        **fields: Any,
    ) -> None:
        """`checked_time` dates the event as given, skipping `_moment`'s rules (measurements
        such as SLA records, which are not changes)."""
        content = {
            "actor": actor.as_dict(),
            "occurred_at": checked_time or self._moment(at),
            "command_id": command_id,
            **fields,
        }
        self.trigger_event(
            event_class,
            **chained(event_class, self.id, self.version + 1, self.chain_head, content),
        )
