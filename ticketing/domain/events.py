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
    """Version 2 added `external_id`: the ticket's id in the system it came from (an import's
    `<source>:<case id>`); None for tickets opened here and for every version-1 event."""

    class_version: ClassVar[int] = 2

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
    external_id: str | None
    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("external_id", None)


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


class SlaPolicyApplied(TicketEvent):
    """The SLA policy and calendar versions this ticket is measured against: those in force
    when it was opened (`calendar_id` is None for a calendar-time policy)."""

    policy_id: str
    policy_version: int
    calendar_id: str | None
    calendar_version: int | None


class SlaWarningIssued(TicketEvent):
    """An SLA clock passed its warning threshold (a fraction of the target) while running."""

    metric: str
    cycle: int
    due_at: str
    threshold: float


class SlaBreached(TicketEvent):
    """An SLA clock reached its due time before its metric was achieved; `due_at` is the
    breach instant, `occurred_at` when the monitor recorded it."""

    metric: str
    cycle: int
    due_at: str


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


class _Recorded(_Evolves, AggregateEvent):
    """Fields every later event of the policy, calendar and agent aggregates carries."""

    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class _RecordedCreation(_Evolves, AggregateCreated):
    """The same fields on the event that creates a policy, calendar or agent."""

    actor: dict[str, str]
    occurred_at: datetime
    command_id: str
    previous_hash: str
    event_hash: str


class SlaPolicyPublished(_RecordedCreation):
    """Version 1 of a named SLA policy; `definition` as `ticketing.domain.sla_definitions`."""

    policy_id: str
    definition: dict[str, Any]


class SlaPolicyRevised(_Recorded):
    """A new version of the policy; tickets already open keep the version they were given."""

    definition: dict[str, Any]


class CalendarPublished(_RecordedCreation):
    """Version 1 of a named business-hours calendar (weekly hours, time zone, holidays)."""

    calendar_id: str
    definition: dict[str, Any]


class CalendarRevised(_Recorded):
    definition: dict[str, Any]


class AgentRegistered(_RecordedCreation):
    """An agent the router may assign to; created by the first roster change about them."""

    agent_id: str


class AgentJoinedTeam(_Recorded):
    team: str


class AgentLeftTeam(_Recorded):
    team: str


class AgentAvailabilityChanged(_Recorded):
    """available | away; the router skips agents who are away (they keep their tickets)."""

    availability: str
    previous_availability: str


class AgentCapacityChanged(_Recorded):
    """How many open tickets the agent takes at most (None: no limit)."""

    capacity: int | None
    previous_capacity: int | None


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
    SlaPolicyApplied,
    SlaWarningIssued,
    SlaBreached,
)
ACCOUNT_EVENT_TYPES: tuple[type, ...] = (AccountRegistered, AccountTierChanged, AccountRenamed)
SLA_POLICY_EVENT_TYPES: tuple[type, ...] = (SlaPolicyPublished, SlaPolicyRevised)
CALENDAR_EVENT_TYPES: tuple[type, ...] = (CalendarPublished, CalendarRevised)
AGENT_EVENT_TYPES: tuple[type, ...] = (
    AgentRegistered,
    AgentJoinedTeam,
    AgentLeftTeam,
    AgentAvailabilityChanged,
    AgentCapacityChanged,
)
EVENT_TYPES_BY_KIND: dict[str, tuple[type, ...]] = {
    "ticket": TICKET_EVENT_TYPES,
    "account": ACCOUNT_EVENT_TYPES,
    "sla_policy": SLA_POLICY_EVENT_TYPES,
    "calendar": CALENDAR_EVENT_TYPES,
    "agent": AGENT_EVENT_TYPES,
}
"""Each aggregate kind's events; the kind names the subject `ticketing.events.<kind>.<id>`."""
PUBLISHED_EVENT_TYPES: tuple[type, ...] = tuple(
    cls for classes in EVENT_TYPES_BY_KIND.values() for cls in classes
)
AGGREGATE_KIND_OF: dict[str, str] = {
    cls.__name__: kind for kind, classes in EVENT_TYPES_BY_KIND.items() for cls in classes
}
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
