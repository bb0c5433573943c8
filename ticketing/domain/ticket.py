"""The Ticket aggregate: enforces the status model and records every change as an event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from ticketing.domain import errors
from ticketing.domain.chain import GENESIS_HASH, chained, commitment, new_salt
from ticketing.domain.clock import as_utc, utc_now
from ticketing.domain.events import (
    CommentAdded,
    CommentRedacted,
    SlaBreached,
    SlaPolicyApplied,
    SlaWarningIssued,
    StatusChanged,
    TicketAssigned,
    TicketCategorized,
    TicketClosed,
    TicketOpened,
    TicketPrioritized,
    TicketRated,
    TicketReopened,
    TicketResolved,
    TicketTagged,
    TicketUntagged,
)
from ticketing.domain.recording import ChainedAggregate
from ticketing.domain.status_rules import RATEABLE, can_move
from ticketing.domain.values import (
    TAG_PATTERN,
    Actor,
    ActorKind,
    Channel,
    Priority,
    Status,
    Visibility,
)

SLA_RECORDS = (SlaWarningIssued, SlaBreached)
"""Measurements about a ticket rather than changes to it (see `_sla_moment`)."""


class _Keep:
    """Marks an assignment field the caller did not mention (as opposed to `None`, unassign)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


class Ticket(ChainedAggregate):
    """A customer problem tracked from opening to closure; closed tickets stay replayable."""

    def __init__(self) -> None:
        """State is set by `evolve(TicketOpened)`, so a replay builds it the same way."""
        self.account_id: str
        self.account_tier: str
        self.requester: str
        self.opened_by: dict[str, str]
        self.subject: str
        self.description: str
        self.channel: Channel
        self.priority: Priority
        self.category: str | None
        self.tags: list[str]
        self.follow_up_of: str | None
        self.external_id: str | None
        self.team: str | None
        self.agent: str | None
        self.status: Status
        self.comments: list[dict[str, Any]]
        self.resolution: str | None
        self.rating: dict[str, Any] | None
        self.rating_survey: str | None
        self.opened_at: datetime
        self.last_occurred_at: datetime
        self.reopen_count: int
        self.sla_policy: dict[str, Any] | None
        self.sla_warnings: set[tuple[str, int]]
        self.sla_breaches: set[tuple[str, int]]
        self.chain_head: str

    @classmethod
    def open(
        cls,
        *,
        account_id: str,
        account_tier: str,
        requester: str,
        subject: str,
        actor: Actor,
        description: str = "",
        channel: Channel = Channel.WEB,
        priority: Priority = Priority.NORMAL,
        category: str | None = None,
        tags: Iterable[str] = (),
        follow_up_of: str | None = None,
        external_id: str | None = None,
        at: datetime | None = None,
        command_id: str = "",
        ticket_id: UUID | None = None,
    ) -> Ticket:
        tag_list = _checked_tags(tags)
        new_id = ticket_id or uuid4()
        fields = dict(
            account_id=account_id,
            account_tier=str(account_tier),
            requester=requester,
            subject=subject,
            description=description,
            channel=str(Channel(channel)),
            priority=str(Priority(priority)),
            category=category,
            tags=tag_list,
            follow_up_of=follow_up_of,
            external_id=external_id,
            actor=actor.as_dict(),
            occurred_at=as_utc(at) if at else utc_now(),
            command_id=command_id,
        )
        return cls._create(
            TicketOpened, id=new_id, **chained(TicketOpened, new_id, 1, GENESIS_HASH, fields)
        )

    # --- commands -------------------------------------------------------------------------

    def categorize(
        self, category: str, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        self._refuse_if_closed("categorize")
        if category == self.category:
            return
        self._record(
            TicketCategorized,
            actor,
            at,
            command_id,
            category=category,
            previous_category=self.category,
        )

    def prioritize(
        self, priority: Priority, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        self._refuse_if_closed("prioritize")
        priority = Priority(priority)
        if priority is self.priority:
            return
        self._record(
            TicketPrioritized,
            actor,
            at,
            command_id,
            priority=str(priority),
            previous_priority=str(self.priority),
        )

    def assign(
        self,
        *,
        actor: Actor,
        team: str | _Keep | None = KEEP,
        agent: str | _Keep | None = KEEP,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Route to a team and/or an agent; `None` unassigns. Giving a new ticket to an agent
        starts work on it (new -> open); routing to a team alone is triage and keeps it new."""
        self._refuse_if_closed("assign")
        new_team = self.team if isinstance(team, _Keep) else team
        new_agent = self.agent if isinstance(agent, _Keep) else agent
        if (new_team, new_agent) == (self.team, self.agent):
            return
        moment = self._moment(at)
        self._record(
            TicketAssigned,
            actor,
            moment,
            command_id,
            team=new_team,
            agent=new_agent,
            previous_team=self.team,
            previous_agent=self.agent,
        )
        if self.status is Status.NEW and new_agent is not None:
            self._record_status(StatusChanged, Status.OPEN, actor, moment, command_id, "assigned")

    def add_comment(
        self,
        body: str,
        *,
        actor: Actor,
        visibility: Visibility = Visibility.PUBLIC,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """A public reply or internal note; replies move the status the way support teams
        expect: an agent's first reply starts work, a customer's reply brings it back to us."""
        self._refuse_if_closed("comment on")
        visibility = Visibility(visibility)
        if not body.strip():
            raise errors.ValidationError("a comment needs a body", field="body")
        if actor.kind is ActorKind.CUSTOMER and visibility is Visibility.INTERNAL:
            raise errors.ForbiddenError("customers cannot add internal notes", field="visibility")
        moment = self._moment(at)
        salt = new_salt()
        self._record(
            CommentAdded,
            actor,
            moment,
            command_id,
            comment_id=f"c{len(self.comments) + 1}",
            body=body,
            body_salt=salt,
            body_commitment=commitment(salt, body),
            visibility=str(visibility),
        )
        if visibility is not Visibility.PUBLIC:
            return
        if actor.is_agent and self.status is Status.NEW:
            self._record_status(
                StatusChanged, Status.OPEN, actor, moment, command_id, "agent_replied"
            )
        elif actor.kind is ActorKind.CUSTOMER and self.status is Status.PENDING:
            self._record_status(
                StatusChanged, Status.OPEN, actor, moment, command_id, "customer_replied"
            )
        elif actor.kind is ActorKind.CUSTOMER and self.status is Status.SOLVED:
            self._record_status(
                TicketReopened, Status.OPEN, actor, moment, command_id, "customer_replied"
            )

    def redact_comment(
        self,
        comment_id: str,
        *,
        actor: Actor,
        reason: str,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Erase a comment's text for a privacy request. Allowed on closed tickets too: privacy
        outranks read-only; the store then erases the stored text
        (see ticketing/store/erasure.py)."""
        comment = next((c for c in self.comments if c["comment_id"] == comment_id), None)
        if comment is None:
            raise errors.NotFoundError(
                f"ticket {self.id} has no comment {comment_id!r}", field="comment_id"
            )
        if comment["redacted"]:
            return
        self._record(CommentRedacted, actor, at, command_id, comment_id=comment_id, reason=reason)

    def change_status(
        self,
        status: Status | str,
        *,
        actor: Actor,
        reason: str | None = None,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Any allowed move; solving, reopening and closing get their own, more telling events."""
        target = Status(status)
        if target is self.status:
            return
        self._refuse_if_closed("change the status of")
        self._check_transition(target)
        if target is Status.SOLVED:
            self.resolve(actor=actor, resolution=reason, at=at, command_id=command_id)
        elif target is Status.CLOSED:
            self.close(actor=actor, at=at, command_id=command_id)
        elif self.status is Status.SOLVED:
            self.reopen(actor=actor, reason=reason, at=at, command_id=command_id)
        else:
            self._record_status(StatusChanged, target, actor, at, command_id, reason)

    def resolve(
        self,
        *,
        actor: Actor,
        resolution: str | None = None,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        if self.status is Status.SOLVED and resolution in (None, self.resolution):
            return
        self._refuse_if_closed("resolve")
        self._check_transition(Status.SOLVED)
        self._record(
            TicketResolved,
            actor,
            at,
            command_id,
            from_status=str(self.status),
            to_status=str(Status.SOLVED),
            resolution=resolution,
        )

    def reopen(
        self,
        *,
        actor: Actor,
        reason: str | None = None,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        self._refuse_if_closed("reopen")
        if self.status is not Status.SOLVED:
            raise errors.InvalidTransitionError(
                f"only a solved ticket can be reopened; this one is {self.status}",
                from_status=str(self.status),
                to_status=str(Status.OPEN),
            )
        self._record_status(TicketReopened, Status.OPEN, actor, at, command_id, reason)

    def close(self, *, actor: Actor, at: datetime | None = None, command_id: str = "") -> None:
        if self.status is Status.CLOSED:
            return
        self._check_transition(Status.CLOSED)
        self._record(
            TicketClosed,
            actor,
            at,
            command_id,
            from_status=str(self.status),
            to_status=str(Status.CLOSED),
        )

    def rate(
        self,
        score: int,
        *,
        actor: Actor,
        comment: str | None = None,
        survey: str = "csat",
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """CSAT on solved or closed tickets only; a later rating replaces the earlier one."""
        if not 1 <= score <= 5:
            raise errors.ValidationError("score must be between 1 and 5", field="score")
        if self.status not in RATEABLE:
            raise errors.InvalidTransitionError(
                f"only solved or closed tickets can be rated; this one is {self.status}",
                status=str(self.status),
            )
        if self.rating == {"score": score, "comment": comment} and self.rating_survey == survey:
            return
        self._record(
            TicketRated, actor, at, command_id, score=score, comment=comment, survey=survey
        )

    def tag(
        self, tags: Iterable[str], *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        self._refuse_if_closed("tag")
        added = [t for t in _checked_tags(tags) if t not in self.tags]
        if added:
            self._record(TicketTagged, actor, at, command_id, tags=added)

    def untag(
        self, tags: Iterable[str], *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        self._refuse_if_closed("untag")
        removed = [t for t in _checked_tags(tags) if t in self.tags]
        if removed:
            self._record(TicketUntagged, actor, at, command_id, tags=removed)

    # --- SLA records ----------------------------------------------------------------------

    def apply_sla_policy(
        self,
        *,
        policy_id: str,
        policy_version: int,
        calendar_id: str | None,
        calendar_version: int | None,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Pin the policy (and calendar) versions this ticket is measured against; once."""
        if self.sla_policy is not None:
            return
        self._record(
            SlaPolicyApplied,
            actor,
            at,
            command_id,
            policy_id=policy_id,
            policy_version=policy_version,
            calendar_id=calendar_id,
            calendar_version=calendar_version,
        )

    def record_sla_warning(
        self,
        *,
        metric: str,
        cycle: int,
        due_at: datetime,
        threshold: float,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Once per metric cycle, and never after that cycle breached."""
        key = (metric, cycle)
        if key in self.sla_warnings or key in self.sla_breaches:
            return
        self._record(
            SlaWarningIssued,
            actor,
            at,
            command_id,
            checked_time=self._sla_moment(at),
            metric=metric,
            cycle=cycle,
            due_at=as_utc(due_at).isoformat(),
            threshold=threshold,
        )

    def record_sla_breach(
        self,
        *,
        metric: str,
        cycle: int,
        due_at: datetime,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """Once per metric cycle: a monitor that restarts or repeats itself records nothing new.
        Accepted on closed tickets too: it states a fact about their past."""
        if (metric, cycle) in self.sla_breaches:
            return
        self._record(
            SlaBreached,
            actor,
            at,
            command_id,
            checked_time=self._sla_moment(at),
            metric=metric,
            cycle=cycle,
            due_at=as_utc(due_at).isoformat(),
        )

    def _sla_moment(self, at: datetime | None) -> datetime:
        """SLA records are measurements, not changes: dated when the monitor made them (the
        breach instant itself is in `due_at`), and they never hold back changes dated earlier
        (history imported or backfilled while the monitor runs)."""
        return as_utc(at) if at else utc_now()

    # --- state ----------------------------------------------------------------------------

    def evolve(self, event: Any) -> None:
        """Apply one event to the state; the only place ticket state changes."""
        if isinstance(event, TicketOpened):
            self._open(event)
            return
        self._follow(event)
        match event:
            case TicketCategorized():
                self.category = event.category
            case TicketPrioritized():
                self.priority = Priority(event.priority)
            case TicketAssigned():
                self.team, self.agent = event.team, event.agent
            case CommentAdded() | CommentRedacted():
                self._evolve_comments(event)
            case TicketResolved():
                self.status = Status.SOLVED
                self.resolution = event.resolution
            case TicketReopened():
                self.status = Status.OPEN
                self.reopen_count += 1
            case StatusChanged() | TicketClosed():
                self.status = Status(event.to_status)
            case TicketRated():
                self.rating = {"score": event.score, "comment": event.comment}
                self.rating_survey = event.survey
            case TicketTagged():
                self.tags = sorted({*self.tags, *event.tags})
            case TicketUntagged():
                self.tags = [t for t in self.tags if t not in event.tags]
            case SlaPolicyApplied() | SlaWarningIssued() | SlaBreached():
                self._evolve_sla(event)

    def _follow(self, event: Any) -> None:
        """Chain to the event and, unless it is an SLA record, move the ticket's time on."""
        if not isinstance(event, SLA_RECORDS):
            self.last_occurred_at = event.occurred_at
        self.chain_head = event.event_hash

    def _evolve_sla(self, event: SlaPolicyApplied | SlaWarningIssued | SlaBreached) -> None:
        match event:
            case SlaPolicyApplied():
                self.sla_policy = {
                    "policy_id": event.policy_id,
                    "policy_version": event.policy_version,
                    "calendar_id": event.calendar_id,
                    "calendar_version": event.calendar_version,
                }
            case SlaWarningIssued():
                self.sla_warnings = {*self.sla_warnings, (event.metric, event.cycle)}
            case SlaBreached():
                self.sla_breaches = {*self.sla_breaches, (event.metric, event.cycle)}

    def _evolve_comments(self, event: CommentAdded | CommentRedacted) -> None:
        if isinstance(event, CommentRedacted):
            for comment in self.comments:
                if comment["comment_id"] == event.comment_id:
                    comment.update(body=None, redacted=True)
            return
        self.comments.append(
            {
                "comment_id": event.comment_id,
                "body": event.body or None,  # erased text reads as None
                "visibility": event.visibility,
                "author": dict(event.actor),
                "occurred_at": event.occurred_at,
                "redacted": False,
            }
        )

    def _open(self, event: TicketOpened) -> None:
        self.account_id = event.account_id
        self.account_tier = event.account_tier
        self.requester = event.requester
        self.opened_by = dict(event.actor)
        self.subject = event.subject
        self.description = event.description
        self.channel = Channel(event.channel)
        self.priority = Priority(event.priority)
        self.category = event.category
        self.tags = sorted(event.tags)
        self.follow_up_of = event.follow_up_of
        self.external_id = event.external_id
        self.team = None
        self.agent = None
        self.status = Status.NEW
        self.comments = []
        self.resolution = None
        self.rating = None
        self.rating_survey = None
        self.opened_at = event.occurred_at
        self.last_occurred_at = event.occurred_at
        self.reopen_count = 0
        self.sla_policy = None
        self.sla_warnings = set()
        self.sla_breaches = set()
        self.chain_head = event.event_hash

    def as_dict(self) -> dict[str, Any]:
        """Current state in plain values, for `show` and replies."""
        return {
            "ticket_id": str(self.id),
            "version": self.version,
            "account_id": self.account_id,
            "account_tier": self.account_tier,
            "requester": self.requester,
            "subject": self.subject,
            "description": self.description,
            "channel": str(self.channel),
            "priority": str(self.priority),
            "category": self.category,
            "tags": list(self.tags),
            "status": str(self.status),
            "team": self.team,
            "agent": self.agent,
            "resolution": self.resolution,
            "rating": dict(self.rating) if self.rating else None,
            "reopen_count": self.reopen_count,
            "follow_up_of": self.follow_up_of,
            "external_id": self.external_id,
            "sla_policy": dict(self.sla_policy) if self.sla_policy else None,
            "sla_breaches": [f"{m}#{c}" for m, c in sorted(self.sla_breaches)],
            "chain_head": self.chain_head,
            "opened_at": self.opened_at.isoformat(),
            "updated_at": self.last_occurred_at.isoformat(),
            "comments": [{**c, "occurred_at": c["occurred_at"].isoformat()} for c in self.comments],
        }

    # --- helpers --------------------------------------------------------------------------

    def _moment(self, at: datetime | None) -> datetime:
        if at is None:
            # The clock may lag a historical import; never let it move a ticket backwards.
            return max(utc_now(), self.last_occurred_at)
        moment: datetime = as_utc(at)
        if moment < self.last_occurred_at:
            raise errors.TimeOutOfOrderError(
                "a change cannot be dated before the ticket's latest change",
                field="occurred_at",
                occurred_at=moment.isoformat(),
                latest=self.last_occurred_at.isoformat(),
            )
        return moment

    def _record_status(
        self,
        event_class: Any,
        target: Status,
        actor: Actor,
        at: datetime | None,
        command_id: str,
        reason: str | None,
    ) -> None:
        self._record(
            event_class,
            actor,
            at,
            command_id,
            from_status=str(self.status),
            to_status=str(target),
            reason=reason,
        )

    def _refuse_if_closed(self, verb: str) -> None:
        if self.status is Status.CLOSED:
            raise errors.TicketClosedError(
                f"cannot {verb} a closed ticket; open a follow-up ticket instead",
                ticket_id=str(self.id),
            )

    def _check_transition(self, target: Status) -> None:
        if not can_move(self.status, target):
            raise errors.InvalidTransitionError(
                f"a ticket cannot go from {self.status} to {target}",
                from_status=str(self.status),
                to_status=str(target),
            )


def _checked_tags(tags: Iterable[str]) -> list[str]:
    checked = list(dict.fromkeys(tags))
    for tag in checked:
        if not TAG_PATTERN.match(tag):
            raise errors.ValidationError(f"invalid tag {tag!r}", field="tags")
    return checked
