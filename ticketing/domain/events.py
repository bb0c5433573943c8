"""Ticket and account events: immutable facts, past-tense names, stable forever.

The store keeps each class's topic (`ticketing.domain.events:TicketOpened`), so these names and
this module path must never change; a field change needs `class_version` and an upcaster.
Events hold only JSON-friendly values so that every reader (relay, projectors, auditors) sees
exactly what was stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import AggregateCreated, AggregateEvent


class _Evolves:
    """Hands the event to its aggregate's `evolve`, keeping state changes in the aggregate."""

    def apply(self, aggregate: Any) -> None:
        aggregate.evolve(self)


class TicketEvent(_Evolves, AggregateEvent):
    """Every ticket change records who caused it, when it happened and which command did it,
    and chains to its predecessor (see `ticketing.domain.chain`)."""

    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class TicketOpened(_Evolves, AggregateCreated):
    account_id: str
    account_tier: str
    requester: str
    subject: str
    description: str
    channel: str
    priority: str
    category: str | None
    tags: list[str]
    follow_up_of: str | None
    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class TicketCategorized(TicketEvent):
    category: str
    previous_category: str | None


class TicketPrioritized(TicketEvent):
    priority: str
    previous_priority: str


class TicketAssigned(TicketEvent):
    """Team and agent after the change; `None` means unassigned."""

    team: str | None
    agent: str | None
    previous_team: str | None
    previous_agent: str | None


class CommentAdded(TicketEvent):
    """`body` and `body_salt` may be erased for a privacy request (see CommentRedacted); the
    chain covers `body_commitment` = sha256(salt:body) instead of the text."""

    comment_id: str
    body: str
    body_salt: str
    body_commitment: str
    visibility: str


class CommentRedacted(TicketEvent):
    """A comment's text was erased (privacy request); the fact that it existed stays."""

    comment_id: str
    reason: str


class StatusChanged(TicketEvent):
    """A move between the working statuses (new, open, pending, on_hold)."""

    from_status: str
    to_status: str
    reason: str | None


class TicketResolved(TicketEvent):
    from_status: str
    to_status: str
    resolution: str | None


class TicketReopened(TicketEvent):
    from_status: str
    to_status: str
    reason: str | None


class TicketClosed(TicketEvent):
    from_status: str
    to_status: str


class TicketRated(TicketEvent):
    """Version 2 added `survey`: which survey collected the rating (v1 ratings were CSAT)."""

    class_version: ClassVar[int] = 2

    score: int
    comment: str | None
    survey: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("survey", "csat")


class TicketTagged(TicketEvent):
    tags: list[str]


class TicketUntagged(TicketEvent):
    tags: list[str]


STATUS_EVENTS = (StatusChanged, TicketResolved, TicketReopened, TicketClosed)
"""Every event that moves a ticket's status carries `from_status` and `to_status`."""


class AccountEvent(_Evolves, AggregateEvent):
    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class AccountRegistered(_Evolves, AggregateCreated):
    account_id: str
    name: str
    tier: str
    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class AccountTierChanged(AccountEvent):
    tier: str
    previous_tier: str


class AccountRenamed(AccountEvent):
    name: str
    previous_name: str


TICKET_EVENT_TYPES: tuple[type, ...] = (
    TicketOpened,
    TicketCategorized,
    TicketPrioritized,
    TicketAssigned,
    CommentAdded,
    CommentRedacted,
    StatusChanged,
    TicketResolved,
    TicketReopened,
    TicketClosed,
    TicketRated,
    TicketTagged,
    TicketUntagged,
)
ACCOUNT_EVENT_TYPES: tuple[type, ...] = (AccountRegistered, AccountTierChanged, AccountRenamed)
PUBLISHED_EVENT_TYPES = TICKET_EVENT_TYPES + ACCOUNT_EVENT_TYPES
"""Domain events, as opposed to the command service's idempotency records."""

NOT_PUBLISHED = ("originator_topic", "body_salt")
"""Stored fields that never leave the store (the salt would help guess redacted text)."""
_BASE_FIELDS = ("originator_id", "originator_version", "timestamp", *NOT_PUBLISHED)


def event_payload(event: Any) -> dict[str, Any]:
    """The JSON-ready description of a stored event: one shape for replies, logs and the wire."""
    fields = {k: v for k, v in vars(event).items() if k not in _BASE_FIELDS}
    fields["occurred_at"] = fields["occurred_at"].isoformat()
    return {
        "type": type(event).__name__,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "recorded_at": event.timestamp.isoformat(),
        **fields,
    }
