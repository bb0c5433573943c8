"""Command models: what a caller may ask for, validated strictly before any handler runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from ticketing.domain.routing import Availability
from ticketing.domain.sla_policy import SlaMetric
from ticketing.domain.values import (
    IDENTIFIER_PATTERN,
    TAG_PATTERN,
    ActorKind,
    Channel,
    Priority,
    SlaTier,
    Status,
    Visibility,
)

MAX_BODY_BYTES = 64 * 1024
MAX_SUBJECT_CHARS = 250
MAX_TAGS = 20
MAX_VERSION = 2**31 - 1
MAX_CYCLE = 10_000
EARLIEST_TIME = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
"""Times outside this window are mistakes, and the far ends overflow date arithmetic."""
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"


def _within_body_limit(text: str) -> str:
    if len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise ValueError(f"must be at most {MAX_BODY_BYTES} bytes of UTF-8")
    return text


def _within_time_window(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(
            f"must lie between {EARLIEST_TIME.date()} and {LATEST_TIME.date()} (UTC), "
            f"got {moment.isoformat()}"
        )
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_within_time_window)]
"""An instant with a zone, in the sane window; the service also refuses the future."""
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN.pattern)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN.pattern)]
Body = Annotated[str, StringConstraints(min_length=1), AfterValidator(_within_body_limit)]
OptionalText = Annotated[str, AfterValidator(_within_body_limit)]
Subject = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SUBJECT_CHARS)
]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,39}$")]
CommandId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
ExternalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SUBJECT_CHARS)
]
"""A ticket's id in the system it came from, e.g. an import's `<source>:<case id>`."""


class ActorModel(BaseModel):
    """Who asks: `{kind, id}`; recorded on every event the command causes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ActorKind
    id: Identifier

    @classmethod
    def parse(cls, text: str) -> ActorModel:
        kind, _, ident = text.partition(":")
        return cls.model_validate({"kind": kind, "id": ident})


DEFAULT_ACTOR = ActorModel(kind=ActorKind.API, id="api")


class Command(BaseModel):
    """Common envelope: idempotency key, actor, historical time and optimistic version."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str]

    command_id: CommandId = Field(default_factory=lambda: str(uuid4()))
    actor: ActorModel = DEFAULT_ACTOR
    occurred_at: Moment | None = None
    expected_version: Annotated[int, Field(ge=1, le=MAX_VERSION, strict=True)] | None = None


class TicketCommand(Command):
    ticket_id: UUID


class AccountCommand(Command):
    account_id: Identifier


class OpenTicket(Command):
    name: ClassVar[str] = "open_ticket"
    account_id: Identifier
    requester: Email
    subject: Subject
    description: OptionalText = ""
    channel: Channel = Channel.WEB
    priority: Priority = Priority.NORMAL
    category: CategoryName | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = []
    follow_up_of: UUID | None = None
    external_id: ExternalId | None = None

    @model_serializer(mode="wrap")
    def _without_absent_external_id(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leaves `external_id` out when None, so a command reads as it did before the field
        existed: on the wire to an older service, and in its idempotency fingerprint (a
        repeat of a command recorded before is still the same command)."""
        data: dict[str, Any] = handler(self)
        if data.get("external_id", 0) is None:
            del data["external_id"]
        return data


class CategorizeTicket(TicketCommand):
    name: ClassVar[str] = "categorize_ticket"
    category: CategoryName


class PrioritizeTicket(TicketCommand):
    name: ClassVar[str] = "prioritize_ticket"
    priority: Priority


class AssignTicket(TicketCommand):
    """Fields left out keep their value; an explicit `null` unassigns."""

    name: ClassVar[str] = "assign_ticket"
    team: Identifier | None = None
    agent: Identifier | None = None

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in ("team", "agent") if f in self.model_fields_set}


class AddComment(TicketCommand):
    name: ClassVar[str] = "add_comment"
    body: Body
    visibility: Visibility = Visibility.PUBLIC


class RedactComment(TicketCommand):
    """Erase a comment's text for a privacy request; the chain still verifies."""

    name: ClassVar[str] = "redact_comment"
    comment_id: Annotated[str, StringConstraints(pattern=r"^c[0-9]{1,6}$")]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ChangeStatus(TicketCommand):
    name: ClassVar[str] = "change_status"
    status: Status
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class ResolveTicket(TicketCommand):
    name: ClassVar[str] = "resolve_ticket"
    resolution: OptionalText | None = None


class ReopenTicket(TicketCommand):
    name: ClassVar[str] = "reopen_ticket"
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class CloseTicket(TicketCommand):
    name: ClassVar[str] = "close_ticket"


class RateTicket(TicketCommand):
    name: ClassVar[str] = "rate_ticket"
    score: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: OptionalText | None = None
    survey: Identifier = "csat"


class TagTicket(TicketCommand):
    name: ClassVar[str] = "tag_ticket"
    tags: Annotated[list[Tag], Field(min_length=1, max_length=MAX_TAGS)]


class UntagTicket(TicketCommand):
    name: ClassVar[str] = "untag_ticket"
    tags: Annotated[list[Tag], Field(min_length=1, max_length=MAX_TAGS)]


class CreateAccount(AccountCommand):
    name: ClassVar[str] = "create_account"
    account_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    tier: SlaTier = SlaTier.STANDARD


class ChangeAccountTier(AccountCommand):
    name: ClassVar[str] = "change_account_tier"
    tier: SlaTier


class RenameAccount(AccountCommand):
    name: ClassVar[str] = "rename_account"
    account_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]


class RecordSlaWarning(TicketCommand):
    """Sent by the SLA monitor; a repeat for the same metric cycle records nothing."""

    name: ClassVar[str] = "record_sla_warning"
    metric: SlaMetric
    cycle: Annotated[int, Field(ge=0, le=MAX_CYCLE, strict=True)] = 0
    due_at: Moment
    threshold: Annotated[float, Field(gt=0, lt=1)]


class RecordSlaBreach(TicketCommand):
    """Sent by the SLA monitor; a repeat for the same metric cycle records nothing."""

    name: ClassVar[str] = "record_sla_breach"
    metric: SlaMetric
    cycle: Annotated[int, Field(ge=0, le=MAX_CYCLE, strict=True)] = 0
    due_at: Moment


class PublishSlaPolicy(Command):
    """Create a policy or publish its next version (an unchanged definition records nothing);
    see `ticketing.domain.sla_definitions` for the definition's shape."""

    name: ClassVar[str] = "publish_sla_policy"
    policy_id: Identifier
    definition: dict[str, Any]


class PublishCalendar(Command):
    """Create a business-hours calendar or publish its next version."""

    name: ClassVar[str] = "publish_calendar"
    calendar_id: Identifier
    definition: dict[str, Any]


class AgentCommand(Command):
    """Roster changes; the first one about an agent registers them."""

    agent_id: Identifier


class JoinTeam(AgentCommand):
    name: ClassVar[str] = "join_team"
    team: Identifier


class LeaveTeam(AgentCommand):
    name: ClassVar[str] = "leave_team"
    team: Identifier


class SetAgentAvailability(AgentCommand):
    name: ClassVar[str] = "set_agent_availability"
    availability: Availability


class SetAgentCapacity(AgentCommand):
    """`capacity: null` removes the limit."""

    name: ClassVar[str] = "set_agent_capacity"
    capacity: Annotated[int, Field(ge=0, le=1000, strict=True)] | None


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        OpenTicket,
        CategorizeTicket,
        PrioritizeTicket,
        AssignTicket,
        AddComment,
        RedactComment,
        ChangeStatus,
        ResolveTicket,
        ReopenTicket,
        CloseTicket,
        RateTicket,
        TagTicket,
        UntagTicket,
        CreateAccount,
        ChangeAccountTier,
        RenameAccount,
        RecordSlaWarning,
        RecordSlaBreach,
        PublishSlaPolicy,
        PublishCalendar,
        JoinTeam,
        LeaveTeam,
        SetAgentAvailability,
        SetAgentCapacity,
    )
}
"""Command name (as in `ticketing.cmd.<name>`) to its model."""
