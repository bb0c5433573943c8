"""The command service: validate, deduplicate, run one handler, commit atomically, reply.

Every interface (Python API, CLI, NATS) goes through `execute` or `execute_many`."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from pydantic import ValidationError as PydanticValidationError

from commands import models as m
from commands import permissions
from commands.command_log import (
    CommandRecord,
    command_record_id,
    fingerprint,
    fingerprint_differences,
    ticket_id_for,
)
from commands.handlers import HANDLERS, Aggregate, check_version
from commands.replies import Reply
from ticketing.domain import errors
from ticketing.domain.account import Account, account_uuid
from ticketing.domain.agent import Agent, agent_uuid
from ticketing.domain.clock import utc_now
from ticketing.domain.events import CommentRedacted, event_payload
from ticketing.domain.policies import (
    VersionedCalendar,
    VersionedSlaPolicy,
    calendar_uuid,
    policy_uuid,
)
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import DEFAULT_CATEGORIES, Actor, ActorKind
from ticketing.principals import LOCAL, Principal
from ticketing.sla.catalog import Pin
from ticketing.store.application import TicketingApplication
from ticketing.store.erasure import erase_comment_text

DEFAULT_SLA_POLICY = "default"
"""The policy new tickets are measured against, once it is published."""
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
"""How far into the future a command may be dated (clocks of senders drift)."""
_A = TypeVar("_A")
log = logging.getLogger(__name__)


class DuplicateCommandIdError(errors.TicketingError):
    """A command id names one command forever; reusing it for another command is a mistake."""

    code = "duplicate_command_id"


@dataclass
class _Decision:
    """A handled command whose events are ready to commit."""

    command: m.Command
    events: list[Any]
    record: CommandRecord
    reply: Reply


class _Recalled(Exception):  # noqa: N818 - control flow, not an error
    """A repeated command: carries the reply it got the first time."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class CommandService:
    """Runs commands against the event store with idempotency and optimistic concurrency."""

    def __init__(
        self,
        app: TicketingApplication,
        *,
        categories: Iterable[str] = DEFAULT_CATEGORIES,
        max_attempts: int = 25,
        sla_policy_id: str = DEFAULT_SLA_POLICY,
        clock: Callable[[], datetime] = utc_now,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self.app = app
        self.categories = frozenset(categories)
        self.sla_policy_id = sla_policy_id
        self.max_attempts = max_attempts
        self.clock = clock
        self.clock_skew = clock_skew

    # --- entry points ---------------------------------------------------------------------

    def execute(self, command: m.Command, principal: Principal = LOCAL) -> Reply:
        """Run one command for `principal` (in-process callers are `LOCAL`)."""
        try:
            return self._execute(_as_principal(command, principal), principal)
        except errors.TicketingError as error:
            return Reply.from_error(error)
        except Exception as error:  # the store failed: this command did not commit
            return _store_failure(command, error)

    def execute_raw(
        self, name: str, payload: bytes | str | Mapping[str, Any], principal: Principal = LOCAL
    ) -> Reply:
        """Validate an untrusted payload (JSON text or a mapping) and run it."""
        command = self.parse(name, payload)
        return command if isinstance(command, Reply) else self.execute(command, principal)

    @staticmethod
    def parse(name: str, payload: bytes | str | Mapping[str, Any]) -> m.Command | Reply:
        model = m.COMMAND_TYPES.get(name)
        if model is None:
            return Reply.failure(
                "validation_error",
                f"unknown command {name!r}",
                field="command",
                known=sorted(m.COMMAND_TYPES),
            )
        try:
            if isinstance(payload, bytes | str):
                return model.model_validate_json(payload)
            return model.model_validate(payload)
        except PydanticValidationError as error:
            return Reply.from_validation(error)

    def execute_many(
        self, commands: Sequence[m.Command], principals: Sequence[Principal] | None = None
    ) -> list[Reply]:
        """Group commit: commands on different aggregates share one transaction, each still
        atomic and idempotent; on any failure of the shared commit the group falls back to one
        commit each, so a command the store refuses never fails its neighbours."""
        senders = list(principals) if principals is not None else [LOCAL] * len(commands)
        commands = [_as_principal(c, p) for c, p in zip(commands, senders, strict=True)]
        replies: list[Reply | None] = [None] * len(commands)
        decided: list[tuple[int, _Decision]] = []
        solo: list[int] = []
        targets: set[UUID] = set()
        for index, command in enumerate(commands):
            target = _target_of(command)
            if target in targets:
                solo.append(index)
                continue
            targets.add(target)
            try:
                decided.append((index, self._decide_or_recall(command, senders[index])))
            except _Recalled as recalled:
                replies[index] = recalled.reply
            except errors.TicketingError as error:
                replies[index] = Reply.from_error(error)
            except Exception as error:
                replies[index] = _store_failure(command, error)
        if decided:
            try:
                self._commit([d for _, d in decided])
                for index, decision in decided:
                    replies[index] = decision.reply
            except Exception as error:
                if not isinstance(error, IntegrityError):
                    log.info("group commit failed (%r); committing one by one", error)
                solo.extend(index for index, _ in decided)
        for index in sorted(solo):
            replies[index] = self.execute(commands[index], senders[index])
        return [
            r if r is not None else Reply.failure("internal_error", "no reply") for r in replies
        ]

    # --- reads ----------------------------------------------------------------------------

    def load_ticket(self, ticket_id: UUID, expected_version: int | None = None) -> Ticket:
        try:
            ticket = self.app.get_ticket(ticket_id)
        except AggregateNotFoundError:
            ticket = None
        if not isinstance(ticket, Ticket):
            raise errors.NotFoundError(
                f"ticket {ticket_id} not found", field="ticket_id", ticket_id=str(ticket_id)
            )
        check_version(f"ticket {ticket_id}", ticket.version, expected_version)
        return ticket

    def load_account(self, account_id: str, expected_version: int | None = None) -> Account:
        try:
            account = self.app.get_account(account_uuid(account_id))
        except AggregateNotFoundError:
            account = None
        if not isinstance(account, Account):
            raise errors.NotFoundError(
                f"account {account_id!r} not found", field="account_id", account_id=account_id
            )
        check_version(f"account {account_id!r}", account.version, expected_version)
        return account

    def account_exists(self, account_id: str) -> bool:
        return account_uuid(account_id) in self.app.repository

    def find_policy(self, policy_id: str) -> VersionedSlaPolicy | None:
        return self._find(policy_uuid(policy_id), VersionedSlaPolicy)

    def find_calendar(self, calendar_id: str) -> VersionedCalendar | None:
        return self._find(calendar_uuid(calendar_id), VersionedCalendar)

    def find_agent(self, agent_id: str) -> Agent | None:
        return self._find(agent_uuid(agent_id), Agent)

    def policy_in_force(self, moment: datetime) -> Pin | None:
        """The configured policy's version in force at `moment` and its calendar's."""
        policy = self.find_policy(self.sla_policy_id)
        version = policy.version_at(moment) if policy else None
        if policy is None or version is None:
            return None
        number, definition = version
        calendar_id = definition.get("calendar")
        calendar = self.find_calendar(calendar_id) if calendar_id else None
        calendar_version = None
        if calendar is not None:  # a calendar dated after the policy: its first version
            calendar_version = (calendar.version_at(moment) or calendar.versions[0])[0]
        return Pin(policy.policy_id, number, calendar_id, calendar_version)

    def _find(self, aggregate_id: UUID, kind: type[_A]) -> _A | None:
        try:
            found: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    # --- internals ------------------------------------------------------------------------

    def _execute(self, command: m.Command, principal: Principal) -> Reply:
        """Decide and commit; the idempotency record is looked up only when something fails.

        A repeated command id always collides with its own record in the same transaction, so
        the happy path needs no extra read, and a repeat still gets its first reply."""
        for attempt in range(self.max_attempts):
            try:
                decision = self._decide_or_recall(command, principal)
            except _Recalled as recalled:
                return recalled.reply
            try:
                self._commit([decision])
            except IntegrityError:
                prior = self._prior_reply(command)
                if prior is not None:
                    return prior
                if command.expected_version is not None:
                    raise errors.VersionConflictError(
                        "the ticket changed while this command ran",
                        field="expected_version",
                        expected_version=command.expected_version,
                    ) from None
                # Exponential backoff with full jitter: a loser must not keep losing to a
                # writer that goes straight on to its next command.
                time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
                continue
            return decision.reply
        raise errors.VersionConflictError(
            f"gave up after {self.max_attempts} concurrent-write conflicts; try again"
        )

    def _decide_or_recall(self, command: m.Command, principal: Principal) -> _Decision:
        """Decide; if the command is refused, a repeat of an accepted one still gets its reply."""
        try:
            return self._decide(command, principal)
        except errors.ForbiddenError:
            raise  # a repeat is answered only to whoever may send the command
        except errors.TicketingError:
            prior = self._prior_reply(command)
            if prior is not None:
                raise _Recalled(prior) from None
            raise

    def _decide(self, command: m.Command, principal: Principal) -> _Decision:
        actor = Actor(ActorKind(command.actor.kind), command.actor.id)
        permissions.authorize(principal, command.name, actor)
        self._check_time(command, principal, actor)
        if isinstance(command, m.OpenTicket):
            permissions.check_account(principal, command.name, actor, command.account_id)
        aggregate = HANDLERS[type(command)](command, _Scope(self, principal, command, actor))
        events = list(aggregate.collect_events())
        from_version = events[0].originator_version - 1 if events else aggregate.version
        kind, subject = _identity(aggregate)
        record = CommandRecord.record(
            command.command_id,
            command_name=command.name,
            fingerprint=fingerprint(command, _target_of(command)),
            aggregate_kind=kind,
            aggregate_id=str(aggregate.id),
            from_version=from_version,
            to_version=aggregate.version,
        )
        reply = _success(events, aggregate.version, **subject)
        return _Decision(command, events, record, reply)

    def _check_time(self, command: m.Command, principal: Principal, actor: Actor) -> None:
        """Dates lie in the past (with the `import` grant) or now, never in the future."""
        moment = command.occurred_at
        if moment is None:
            return
        now = self.clock()
        if moment > now + self.clock_skew:
            raise errors.ValidationError(
                f"occurred_at {moment.isoformat()} is in the future (now is {now.isoformat()}, "
                f"allowed skew {int(self.clock_skew.total_seconds())} s)",
                field="occurred_at",
            )
        permissions.check_time(principal, command.name, actor, moment, now, self.clock_skew)

    def _commit(self, decisions: Sequence[_Decision]) -> None:
        pending: list[Any] = []
        for decision in decisions:
            pending.extend(decision.events)
            pending.extend(decision.record.collect_events())
        self.app.save(*pending)
        for decision in decisions:
            self._erase_redacted(decision.events)

    def _erase_redacted(self, events: Sequence[Any]) -> None:
        """After a redaction commits, erase the stored text (idempotent; see erasure.py)."""
        for event in events:
            if isinstance(event, CommentRedacted) and self.app.supports_erasure:
                erase_comment_text(self.app, event.originator_id, event.comment_id)

    def _prior_reply(self, command: m.Command) -> Reply | None:
        try:
            record: CommandRecord = self.app.repository.get(command_record_id(command.command_id))
        except AggregateNotFoundError:
            return None
        if record.command_name != command.name:
            raise DuplicateCommandIdError(
                f"command id {command.command_id!r} was already used for {record.command_name}",
                field="command_id",
                differs=["(command)"],
            )
        if record.fingerprint:
            differs = fingerprint_differences(
                record.fingerprint, fingerprint(command, _target_of(command))
            )
            if differs:
                raise DuplicateCommandIdError(
                    f"command id {command.command_id!r} was already used for a different "
                    f"{record.command_name} (differs in {', '.join(differs)})",
                    field="command_id",
                    differs=differs,
                )
        events = list(
            self.app.events.get(
                UUID(record.aggregate_id), gt=record.from_version, lte=record.to_version
            )
        )
        if record.aggregate_kind == "ticket":
            return _success(events, record.to_version, ticket_id=record.aggregate_id)
        _, subject = _identity(self.app.repository.get(UUID(record.aggregate_id)))
        return _success(events, record.to_version, **subject)


class _Scope:
    """The handler context for one command: the service's reads, with ownership checked on
    every ticket the command touches (customers act on their own tickets only)."""

    def __init__(
        self, service: CommandService, principal: Principal, command: m.Command, actor: Actor
    ) -> None:
        self._service = service
        self._principal = principal
        self._command = command
        self._actor = actor
        self.categories = service.categories

    def load_ticket(self, ticket_id: UUID, expected_version: int | None = None) -> Ticket:
        ticket = self._service.load_ticket(ticket_id)
        permissions.check_ticket(
            self._principal, self._command.name, self._actor, ownership_of(ticket)
        )
        check_version(f"ticket {ticket_id}", ticket.version, expected_version)
        return ticket

    def load_account(self, account_id: str, expected_version: int | None = None) -> Account:
        return self._service.load_account(account_id, expected_version)

    def account_exists(self, account_id: str) -> bool:
        return self._service.account_exists(account_id)

    def find_policy(self, policy_id: str) -> VersionedSlaPolicy | None:
        return self._service.find_policy(policy_id)

    def find_calendar(self, calendar_id: str) -> VersionedCalendar | None:
        return self._service.find_calendar(calendar_id)

    def find_agent(self, agent_id: str) -> Agent | None:
        return self._service.find_agent(agent_id)

    def policy_in_force(self, moment: datetime) -> Pin | None:
        return self._service.policy_in_force(moment)


def ownership_of(ticket: Ticket) -> permissions.TicketOwnership:
    """What the permission table judges a ticket's ownership on."""
    opened_by = getattr(ticket, "opened_by", None)
    return permissions.TicketOwnership(
        account_id=ticket.account_id,
        requester=ticket.requester,
        opened_by=Actor.from_dict(opened_by) if opened_by else None,
    )


def _as_principal(command: m.Command, principal: Principal) -> m.Command:
    """A command naming no actor acts as the principal itself (`api:<principal>`)."""
    if "actor" in command.model_fields_set or principal is LOCAL:
        return command
    actor = principal.default_actor
    return command.model_copy(update={"actor": m.ActorModel(kind=actor.kind, id=actor.id)})


def _store_failure(command: m.Command, error: Exception) -> Reply:
    """The store (or something below the domain) failed: this command did not commit."""
    log.warning("command %s failed in the store: %r", command.name, error)
    return Reply.failure("store_unavailable", f"{type(error).__name__}: {error}")


def _success(events: Sequence[Any], version: int, **subject: str) -> Reply:
    """An ok reply: the same shape for a first run and for a repeat rebuilt from the store."""
    return Reply(ok=True, version=version, events=[event_payload(e) for e in events], **subject)


def _identity(aggregate: Aggregate) -> tuple[str, dict[str, str]]:
    """The aggregate's kind and the reply field naming it."""
    match aggregate:
        case Ticket():
            return "ticket", {"ticket_id": str(aggregate.id)}
        case Account():
            return "account", {"account_id": aggregate.account_id}
        case VersionedSlaPolicy():
            return "sla_policy", {"policy_id": aggregate.policy_id}
        case VersionedCalendar():
            return "calendar", {"calendar_id": aggregate.calendar_id}
        case Agent():
            return "agent", {"agent_id": aggregate.agent_id}
    raise TypeError(f"unknown aggregate {type(aggregate).__name__}")


def _target_of(command: m.Command) -> UUID:
    """The aggregate a command changes, known before it runs (for grouping)."""
    if isinstance(command, m.TicketCommand):
        return command.ticket_id
    if isinstance(command, m.OpenTicket):
        return ticket_id_for(command.command_id)
    if isinstance(command, m.AccountCommand):
        return account_uuid(command.account_id)
    if isinstance(command, m.AgentCommand):
        return agent_uuid(command.agent_id)
    if isinstance(command, m.PublishSlaPolicy):
        return policy_uuid(command.policy_id)
    if isinstance(command, m.PublishCalendar):
        return calendar_uuid(command.calendar_id)
    raise TypeError(f"no target known for {type(command).__name__}")
