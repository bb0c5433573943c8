"""Small builders that make tests read as given/when/then."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind

AGENT = Actor(ActorKind.AGENT, "ana")
OTHER_AGENT = Actor(ActorKind.AGENT, "ben")
CUSTOMER = Actor(ActorKind.CUSTOMER, "bob@acme.example")
AUTOMATION = Actor(ActorKind.AUTOMATION, "rule-7")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def opened_ticket(**overrides: object) -> Ticket:
    """A fresh ticket with its opening event already collected."""
    fields: dict[str, object] = {
        "account_id": "acme",
        "account_tier": "business",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "actor": CUSTOMER,
        "at": T0,
        "command_id": "open-1",
    }
    fields.update(overrides)
    ticket = Ticket.open(**fields)  # type: ignore[arg-type]
    ticket.collect_events()
    return ticket


def ticket_in(status: str) -> Ticket:
    """A ticket driven through real commands into the given status."""
    ticket = opened_ticket()
    if status == "new":
        return ticket
    ticket.assign(agent="ana", actor=AGENT, at=at(1))
    if status in ("pending", "on_hold"):
        ticket.change_status(status, actor=AGENT, at=at(2))
    if status in ("solved", "closed"):
        ticket.resolve(actor=AGENT, resolution="fixed", at=at(3))
    if status == "closed":
        ticket.close(actor=AGENT, at=at(4))
    ticket.collect_events()
    return ticket


def unsaved_ticket(**overrides: object) -> Ticket:
    """A fresh ticket whose opening event is still pending, for tests that replay its history."""
    fields: dict[str, object] = {
        "account_id": "acme",
        "account_tier": "business",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "actor": CUSTOMER,
        "at": T0,
        "command_id": "open-1",
    }
    fields.update(overrides)
    return Ticket.open(**fields)  # type: ignore[arg-type]


def replayed(events: Iterable[Any]) -> Any:
    """The aggregate rebuilt from nothing by folding its events, the way the repository does."""
    aggregate: Any = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
