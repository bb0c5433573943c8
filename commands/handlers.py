"""One handler per command: load the aggregate, call one domain method, return what changed.

Handlers neither save nor format replies; the command service does both, so every interface
and the group-commit path share them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from commands import models as m
from commands.command_log import ticket_id_for
from ticketing.domain import errors
from ticketing.domain.account import Account
from ticketing.domain.agent import Agent
from ticketing.domain.policies import VersionedCalendar, VersionedSlaPolicy
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind
from ticketing.sla.catalog import Pin


class HandlerContext(Protocol):
    """What handlers may ask of the service: loading aggregates and configured vocabularies."""

    categories: frozenset[str]

    def load_ticket(self, ticket_id: UUID, expected_version: int | None = None) -> Ticket: ...

    def load_account(self, account_id: str, expected_version: int | None = None) -> Account: ...

    def account_exists(self, account_id: str) -> bool: ...

    def find_policy(self, policy_id: str) -> VersionedSlaPolicy | None: ...

    def find_calendar(self, calendar_id: str) -> VersionedCalendar | None: ...

    def find_agent(self, agent_id: str) -> Agent | None: ...

    def policy_in_force(self, moment: datetime) -> Pin | None: ...


def _actor(command: m.Command) -> Actor:
    return Actor(ActorKind(command.actor.kind), command.actor.id)


def _cause(command: m.Command) -> dict[str, Any]:
    return {"actor": _actor(command), "at": command.occurred_at, "command_id": command.command_id}


def _check_category(ctx: HandlerContext, category: str | None) -> None:
    if category is not None and category not in ctx.categories:
        raise errors.ValidationError(
            f"unknown category {category!r}; known: {', '.join(sorted(ctx.categories))}",
            field="category",
        )


def _no_version_for_creation(cmd: m.Command) -> None:
    if cmd.expected_version is not None:
        raise errors.ValidationError(
            f"expected_version does not apply to {cmd.name}: it creates", field="expected_version"
        )


def open_ticket(cmd: m.OpenTicket, ctx: HandlerContext) -> Ticket:
    _no_version_for_creation(cmd)
    account = ctx.load_account(cmd.account_id)
    _check_category(ctx, cmd.category)
    if cmd.follow_up_of is not None:
        ctx.load_ticket(cmd.follow_up_of)
    ticket = Ticket.open(
        ticket_id=ticket_id_for(cmd.command_id),
        account_id=cmd.account_id,
        account_tier=str(account.tier),
        requester=cmd.requester,
        subject=cmd.subject,
        description=cmd.description,
        channel=cmd.channel,
        priority=cmd.priority,
        category=cmd.category,
        tags=cmd.tags,
        follow_up_of=str(cmd.follow_up_of) if cmd.follow_up_of else None,
        external_id=cmd.external_id,
        actor=_actor(cmd),
        at=cmd.occurred_at,
        command_id=cmd.command_id,
    )
    pin = ctx.policy_in_force(ticket.opened_at)
    if pin is not None:
        ticket.apply_sla_policy(
            policy_id=pin.policy_id,
            policy_version=pin.policy_version,
            calendar_id=pin.calendar_id,
            calendar_version=pin.calendar_version,
            actor=Actor(ActorKind.SYSTEM, "sla"),
            at=ticket.opened_at,
            command_id=cmd.command_id,
        )
    return ticket


def categorize_ticket(cmd: m.CategorizeTicket, ctx: HandlerContext) -> Ticket:
    _check_category(ctx, cmd.category)
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.categorize(cmd.category, **_cause(cmd))
    return ticket


def prioritize_ticket(cmd: m.PrioritizeTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.prioritize(cmd.priority, **_cause(cmd))
    return ticket


def assign_ticket(cmd: m.AssignTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.assign(**cmd.changes(), **_cause(cmd))
    return ticket


def add_comment(cmd: m.AddComment, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.add_comment(cmd.body, visibility=cmd.visibility, **_cause(cmd))
    return ticket


def redact_comment(cmd: m.RedactComment, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.redact_comment(cmd.comment_id, reason=cmd.reason, **_cause(cmd))
    return ticket


def change_status(cmd: m.ChangeStatus, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.change_status(cmd.status, reason=cmd.reason, **_cause(cmd))
    return ticket


def resolve_ticket(cmd: m.ResolveTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.resolve(resolution=cmd.resolution, **_cause(cmd))
    return ticket


def reopen_ticket(cmd: m.ReopenTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.reopen(reason=cmd.reason, **_cause(cmd))
    return ticket


def close_ticket(cmd: m.CloseTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.close(**_cause(cmd))
    return ticket


def rate_ticket(cmd: m.RateTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.rate(cmd.score, comment=cmd.comment, survey=cmd.survey, **_cause(cmd))
    return ticket


def tag_ticket(cmd: m.TagTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.tag(cmd.tags, **_cause(cmd))
    return ticket


def untag_ticket(cmd: m.UntagTicket, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.untag(cmd.tags, **_cause(cmd))
    return ticket


def create_account(cmd: m.CreateAccount, ctx: HandlerContext) -> Account:
    _no_version_for_creation(cmd)
    if ctx.account_exists(cmd.account_id):
        raise errors.AlreadyExistsError(
            f"account {cmd.account_id!r} already exists", field="account_id"
        )
    return Account.register(
        account_id=cmd.account_id,
        name=cmd.account_name,
        tier=cmd.tier,
        actor=_actor(cmd),
        at=cmd.occurred_at,
        command_id=cmd.command_id,
    )


def change_account_tier(cmd: m.ChangeAccountTier, ctx: HandlerContext) -> Account:
    account = ctx.load_account(cmd.account_id, cmd.expected_version)
    account.change_tier(cmd.tier, **_cause(cmd))
    return account


def rename_account(cmd: m.RenameAccount, ctx: HandlerContext) -> Account:
    account = ctx.load_account(cmd.account_id, cmd.expected_version)
    account.rename(cmd.account_name, **_cause(cmd))
    return account


def record_sla_warning(cmd: m.RecordSlaWarning, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.record_sla_warning(
        metric=str(cmd.metric),
        cycle=cmd.cycle,
        due_at=cmd.due_at,
        threshold=cmd.threshold,
        **_cause(cmd),
    )
    return ticket


def record_sla_breach(cmd: m.RecordSlaBreach, ctx: HandlerContext) -> Ticket:
    ticket = ctx.load_ticket(cmd.ticket_id, cmd.expected_version)
    ticket.record_sla_breach(
        metric=str(cmd.metric), cycle=cmd.cycle, due_at=cmd.due_at, **_cause(cmd)
    )
    return ticket


def publish_sla_policy(cmd: m.PublishSlaPolicy, ctx: HandlerContext) -> VersionedSlaPolicy:
    calendar_id = cmd.definition.get("calendar")
    if isinstance(calendar_id, str) and ctx.find_calendar(calendar_id) is None:
        raise errors.NotFoundError(
            f"calendar {calendar_id!r} not found; publish it first",
            field="definition.calendar",
            calendar_id=calendar_id,
        )
    found = ctx.find_policy(cmd.policy_id)
    return _publish(VersionedSlaPolicy, found, cmd.policy_id, cmd.definition, cmd)


def publish_calendar(cmd: m.PublishCalendar, ctx: HandlerContext) -> VersionedCalendar:
    found = ctx.find_calendar(cmd.calendar_id)
    return _publish(VersionedCalendar, found, cmd.calendar_id, cmd.definition, cmd)


_V = TypeVar("_V", VersionedSlaPolicy, VersionedCalendar)


def _publish(
    kind: type[_V], found: _V | None, name: str, definition: dict[str, Any], cmd: m.Command
) -> _V:
    """Version 1 of a new definition, or the next version of a changed one."""
    if found is None:
        _no_version_for_creation(cmd)
        return kind.publish(name, definition, **_cause(cmd))
    what = "policy" if kind is VersionedSlaPolicy else "calendar"
    check_version(f"{what} {name!r}", found.version, cmd.expected_version)
    found.revise(definition, **_cause(cmd))
    return found


def _agent(cmd: m.AgentCommand, ctx: HandlerContext) -> Agent:
    agent = ctx.find_agent(cmd.agent_id)
    if agent is None:
        return Agent.register(cmd.agent_id, **_cause(cmd))
    check_version(f"agent {cmd.agent_id!r}", agent.version, cmd.expected_version)
    return agent


def join_team(cmd: m.JoinTeam, ctx: HandlerContext) -> Agent:
    agent = _agent(cmd, ctx)
    agent.join_team(cmd.team, **_cause(cmd))
    return agent


def leave_team(cmd: m.LeaveTeam, ctx: HandlerContext) -> Agent:
    agent = _agent(cmd, ctx)
    agent.leave_team(cmd.team, **_cause(cmd))
    return agent


def set_agent_availability(cmd: m.SetAgentAvailability, ctx: HandlerContext) -> Agent:
    agent = _agent(cmd, ctx)
    agent.set_availability(cmd.availability, **_cause(cmd))
    return agent


def set_agent_capacity(cmd: m.SetAgentCapacity, ctx: HandlerContext) -> Agent:
    agent = _agent(cmd, ctx)
    agent.set_capacity(cmd.capacity, **_cause(cmd))
    return agent


def check_version(what: str, actual: int, expected: int | None) -> None:
    """Optimistic concurrency: a stale `expected_version` is a conflict, not an overwrite."""
    if expected is not None and actual != expected:
        raise errors.VersionConflictError(
            f"{what} is at version {actual}, not {expected}",
            field="expected_version",
            expected_version=expected,
            actual_version=actual,
        )


Aggregate = Ticket | Account | VersionedSlaPolicy | VersionedCalendar | Agent
Handler = Callable[[Any, HandlerContext], Aggregate]

HANDLERS: dict[type[m.Command], Handler] = {
    m.OpenTicket: open_ticket,
    m.CategorizeTicket: categorize_ticket,
    m.PrioritizeTicket: prioritize_ticket,
    m.AssignTicket: assign_ticket,
    m.AddComment: add_comment,
    m.RedactComment: redact_comment,
    m.ChangeStatus: change_status,
    m.ResolveTicket: resolve_ticket,
    m.ReopenTicket: reopen_ticket,
    m.CloseTicket: close_ticket,
    m.RateTicket: rate_ticket,
    m.TagTicket: tag_ticket,
    m.UntagTicket: untag_ticket,
    m.CreateAccount: create_account,
    m.ChangeAccountTier: change_account_tier,
    m.RenameAccount: rename_account,
    m.RecordSlaWarning: record_sla_warning,
    m.RecordSlaBreach: record_sla_breach,
    m.PublishSlaPolicy: publish_sla_policy,
    m.PublishCalendar: publish_calendar,
    m.JoinTeam: join_team,
    m.LeaveTeam: leave_team,
    m.SetAgentAvailability: set_agent_availability,
    m.SetAgentCapacity: set_agent_capacity,
}
