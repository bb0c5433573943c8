"""The eventsourcing application holding tickets, accounts and command records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from ticketing.domain.account import Account
from ticketing.domain.ticket import Ticket


def replay_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """Fold events into state without the library's generic runtime checks (3-6x faster)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class TicketingApplication(Application[UUID]):
    """Tickets, accounts and command records in one store, so a command commits atomically."""

    name = "Ticketing"

    @property
    def supports_erasure(self) -> bool:
        """Durable stores can erase redacted text in place; the in-memory one keeps it."""
        return type(self.recorder).__module__.split(".")[-1] in ("sqlite", "postgres")

    def get_ticket(self, ticket_id: UUID, version: int | None = None) -> Ticket:
        ticket: Ticket = self.repository.get(
            ticket_id, version=version, projector_func=replay_events
        )
        return ticket

    def get_account(self, account_uuid: UUID) -> Account:
        account: Account = self.repository.get(account_uuid, projector_func=replay_events)
        return account
