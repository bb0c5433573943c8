"""The wire contract: the JSON the relay publishes for each event type, as pydantic models.

`projections/schema/events.schema.json` is generated from these models and checked in;
`tests/unit/test_wire_contract.py` fails when a change would break a consumer of that schema
(a removed type or field, a changed type, a new required field)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_PATH = Path(__file__).parent / "schema" / "events.schema.json"
WIRE_VERSION = "1"


class WireActor(BaseModel):
    kind: Literal["customer", "agent", "system", "automation", "ai", "api"]
    id: str


class WireEvent(BaseModel):
    """Fields every event message carries."""

    model_config = ConfigDict(extra="allow")

    aggregate_id: UUID
    version: int = Field(ge=1, description="The aggregate's version after this event")
    notification_id: int = Field(ge=1, description="Global order in the event store")
    recorded_at: datetime
    occurred_at: datetime
    actor: WireActor
    command_id: str
    # Added after wire version 1 was published, so optional: older messages lack them.
    previous_hash: str | None = Field(default=None, description="The predecessor's event_hash")
    event_hash: str | None = Field(default=None, description="sha256 of the canonical event")


class TicketOpened(WireEvent):
    type: Literal["TicketOpened"]
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
    # Added after wire version 1 was published, so optional: older messages lack it.
    external_id: str | None = Field(
        default=None, description="The ticket's id where it came from, e.g. <source>:<case id>"
    )


class TicketCategorized(WireEvent):
    type: Literal["TicketCategorized"]
    category: str
    previous_category: str | None


class TicketPrioritized(WireEvent):
    type: Literal["TicketPrioritized"]
    priority: str
    previous_priority: str


class TicketAssigned(WireEvent):
    type: Literal["TicketAssigned"]
    team: str | None
    agent: str | None
    previous_team: str | None
    previous_agent: str | None


class CommentAdded(WireEvent):
    type: Literal["CommentAdded"]
    comment_id: str
    body: str
    visibility: Literal["public", "internal"]
    body_commitment: str | None = Field(default=None, description="sha256(salt:body)")


class CommentRedacted(WireEvent):
    """The comment's text was erased for a privacy request; consumers should erase it too."""

    type: Literal["CommentRedacted"]
    comment_id: str
    reason: str


class StatusChanged(WireEvent):
    type: Literal["StatusChanged"]
    from_status: str
    to_status: str
    reason: str | None


class TicketResolved(WireEvent):
    type: Literal["TicketResolved"]
    from_status: str
    to_status: str
    resolution: str | None


class TicketReopened(WireEvent):
    type: Literal["TicketReopened"]
    from_status: str
    to_status: str
    reason: str | None


class TicketClosed(WireEvent):
    type: Literal["TicketClosed"]
    from_status: str
    to_status: str


class TicketRated(WireEvent):
    type: Literal["TicketRated"]
    score: int = Field(ge=1, le=5)
    comment: str | None
    survey: str | None = Field(default=None, description="Since TicketRated v2; v1 means csat")


class TicketTagged(WireEvent):
    type: Literal["TicketTagged"]
    tags: list[str]


class TicketUntagged(WireEvent):
    type: Literal["TicketUntagged"]
    tags: list[str]


class AccountRegistered(WireEvent):
    type: Literal["AccountRegistered"]
    account_id: str
    name: str
    tier: str


class AccountTierChanged(WireEvent):
    type: Literal["AccountTierChanged"]
    tier: str
    previous_tier: str


class AccountRenamed(WireEvent):
    type: Literal["AccountRenamed"]
    name: str
    previous_name: str


class SlaPolicyApplied(WireEvent):
    type: Literal["SlaPolicyApplied"]
    policy_id: str
    policy_version: int = Field(ge=1)
    calendar_id: str | None
    calendar_version: int | None


class SlaWarningIssued(WireEvent):
    type: Literal["SlaWarningIssued"]
    metric: Literal["first_reply", "next_reply", "resolution"]
    cycle: int = Field(ge=0)
    due_at: datetime
    threshold: float


class SlaBreached(WireEvent):
    type: Literal["SlaBreached"]
    metric: Literal["first_reply", "next_reply", "resolution"]
    cycle: int = Field(ge=0)
    due_at: datetime = Field(description="The breach instant")


class SlaPolicyPublished(WireEvent):
    type: Literal["SlaPolicyPublished"]
    policy_id: str
    definition: dict[str, Any]


class SlaPolicyRevised(WireEvent):
    type: Literal["SlaPolicyRevised"]
    definition: dict[str, Any]


class CalendarPublished(WireEvent):
    type: Literal["CalendarPublished"]
    calendar_id: str
    definition: dict[str, Any]


class CalendarRevised(WireEvent):
    type: Literal["CalendarRevised"]
    definition: dict[str, Any]


class AgentRegistered(WireEvent):
    type: Literal["AgentRegistered"]
    agent_id: str


class AgentJoinedTeam(WireEvent):
    type: Literal["AgentJoinedTeam"]
    team: str


class AgentLeftTeam(WireEvent):
    type: Literal["AgentLeftTeam"]
    team: str


class AgentAvailabilityChanged(WireEvent):
    type: Literal["AgentAvailabilityChanged"]
    availability: str
    previous_availability: str


class AgentCapacityChanged(WireEvent):
    type: Literal["AgentCapacityChanged"]
    capacity: int | None
    previous_capacity: int | None


EventMessage = Annotated[
    TicketOpened
    | TicketCategorized
    | TicketPrioritized
    | TicketAssigned
    | CommentAdded
    | CommentRedacted
    | StatusChanged
    | TicketResolved
    | TicketReopened
    | TicketClosed
    | TicketRated
    | TicketTagged
    | TicketUntagged
    | AccountRegistered
    | AccountTierChanged
    | AccountRenamed
    | SlaPolicyApplied
    | SlaWarningIssued
    | SlaBreached
    | SlaPolicyPublished
    | SlaPolicyRevised
    | CalendarPublished
    | CalendarRevised
    | AgentRegistered
    | AgentJoinedTeam
    | AgentLeftTeam
    | AgentAvailabilityChanged
    | AgentCapacityChanged,
    Field(discriminator="type"),
]

EVENT_MESSAGE: TypeAdapter[Any] = TypeAdapter(EventMessage)


def parse_event_message(data: bytes | str) -> WireEvent:
    message: WireEvent = EVENT_MESSAGE.validate_json(data)
    return message


def json_schema() -> dict[str, Any]:
    schema = EVENT_MESSAGE.json_schema()
    schema["title"] = "Ticketing event message"
    schema["$comment"] = f"wire version {WIRE_VERSION}; generated from projections/wire.py"
    return schema


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
