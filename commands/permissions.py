"""Who may do what: the one permission table (actor kind x command x ownership) and its checks.

A command passes three gates, all decided here:
1. the principal (proven by credentials) may act as the command's actor;
2. the table's cell for (actor kind, command) allows it, possibly only on the customer's own
   tickets or with a principal grant;
3. dating a command into the past needs the `import` grant.
Denials are `forbidden`, naming what is missing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ticketing.domain.errors import ForbiddenError
from ticketing.domain.values import Actor, ActorKind
from ticketing.principals import Principal


class Rule(StrEnum):
    """What a table cell allows."""

    ALLOW = "allow"
    OWN = "own"  # a customer's own ticket, in an account the principal serves
    SERVED = "served"  # an account whose customers the principal serves
    ADMIN = "admin"  # the principal holds `admin` or `auditor`
    ADMIN_OR_IMPORT = "admin_or_import"  # ... or `import` (history brings its accounts along)
    IMPORT = "import"  # the principal holds `import`
    SLA_MONITOR = "sla_monitor"  # only system:sla-monitor
    DENY = "deny"


READ_TICKET = "read_ticket"
"""The pseudo-command for reading one ticket (state, history, log)."""

_STAFF = (ActorKind.AGENT, ActorKind.SYSTEM, ActorKind.AUTOMATION, ActorKind.AI, ActorKind.API)


def _row(customer: Rule, staff: Rule = Rule.ALLOW, **overrides: Rule) -> dict[ActorKind, Rule]:
    """A table row: the customer's cell, every staff kind's, then named exceptions."""
    row = {ActorKind.CUSTOMER: customer, **{kind: staff for kind in _STAFF}}
    row.update({ActorKind(kind): rule for kind, rule in overrides.items()})
    return row


_WORK = _row(Rule.DENY)
_ADMIN_ONLY = _row(Rule.DENY, Rule.ADMIN, automation=Rule.DENY, ai=Rule.DENY)
_NEW_ACCOUNT = _row(Rule.DENY, Rule.ADMIN_OR_IMPORT, automation=Rule.DENY, ai=Rule.DENY)
_ROSTER = _row(Rule.DENY, automation=Rule.DENY, ai=Rule.DENY)
_SLA_RECORD = _row(Rule.DENY, Rule.DENY, system=Rule.SLA_MONITOR)

TABLE: dict[str, dict[ActorKind, Rule]] = {
    "open_ticket": _row(Rule.SERVED),
    "categorize_ticket": _WORK,
    "prioritize_ticket": _WORK,
    "assign_ticket": _WORK,
    "add_comment": _row(Rule.OWN),
    "redact_comment": _ADMIN_ONLY,
    "change_status": _WORK,
    "resolve_ticket": _WORK,
    "reopen_ticket": _row(Rule.OWN),
    "close_ticket": _WORK,
    "rate_ticket": _row(Rule.OWN, Rule.DENY, system=Rule.IMPORT),
    "tag_ticket": _WORK,
    "untag_ticket": _WORK,
    "create_account": _NEW_ACCOUNT,
    "change_account_tier": _ADMIN_ONLY,
    "rename_account": _ADMIN_ONLY,
    "record_sla_warning": _SLA_RECORD,
    "record_sla_breach": _SLA_RECORD,
    "publish_sla_policy": _ADMIN_ONLY,
    "publish_calendar": _ADMIN_ONLY,
    "join_team": _ROSTER,
    "leave_team": _ROSTER,
    "set_agent_availability": _ROSTER,
    "set_agent_capacity": _ROSTER,
    READ_TICKET: _row(Rule.OWN),
}
"""Every command (and reading a ticket) by actor kind. README "Security model" shows it."""

SLA_MONITOR = Actor(ActorKind.SYSTEM, "sla-monitor")


@dataclass(frozen=True)
class TicketOwnership:
    """What ownership is judged on: the ticket's account, requester and opener."""

    account_id: str
    requester: str
    opened_by: Actor | None


def rule_for(command: str, actor: Actor) -> Rule:
    return TABLE[command][actor.kind]


def authorize(principal: Principal, command: str, actor: Actor) -> Rule:
    """Gates 1 and 2 without ownership; returns the cell's rule for `check_ticket` /
    `check_account` to finish. Raises `forbidden` naming the missing grant."""
    if not principal.may_act_as(actor):
        raise _forbidden(
            principal,
            command,
            actor,
            f"principal {principal.name!r} may not act as {actor.kind}:{actor.id}",
            grant=f"act_as {actor.kind}:{actor.id}",
        )
    rule = rule_for(command, actor)
    if rule is Rule.DENY:
        raise _forbidden(
            principal, command, actor, f"{actor.kind} actors may not {command}", grant=None
        )
    if rule is Rule.ADMIN and not principal.has_grant("admin", "auditor"):
        raise _forbidden(
            principal,
            command,
            actor,
            f"{command} needs the admin or auditor grant",
            grant="admin|auditor",
        )
    if rule is Rule.ADMIN_OR_IMPORT and not principal.has_grant("admin", "auditor", "import"):
        raise _forbidden(
            principal,
            command,
            actor,
            f"{command} needs the admin, auditor or import grant",
            grant="admin|auditor|import",
        )
    if rule is Rule.IMPORT and not principal.has_grant("import"):
        raise _forbidden(
            principal,
            command,
            actor,
            f"{command} as {actor.kind} needs the import grant",
            grant="import",
        )
    if rule is Rule.SLA_MONITOR and actor != SLA_MONITOR:
        raise _forbidden(
            principal, command, actor, f"only system:sla-monitor may {command}", grant=None
        )
    return rule


def check_ticket(principal: Principal, command: str, actor: Actor, ticket: TicketOwnership) -> None:
    """Gate 2 on a loaded ticket: customers act on their own tickets only."""
    if rule_for(command, actor) is not Rule.OWN:
        return
    if not principal.serves_account(ticket.account_id) or not owns(actor, ticket):
        raise _forbidden(
            principal,
            command,
            actor,
            f"{actor.kind}:{actor.id} may {command} only on their own tickets",
            grant="ownership",
        )


def check_account(principal: Principal, command: str, actor: Actor, account_id: str) -> None:
    """Gate 2 for opening: a customer opens tickets for an account the principal serves."""
    if rule_for(command, actor) is Rule.SERVED and not principal.serves_account(account_id):
        raise _forbidden(
            principal,
            command,
            actor,
            f"principal {principal.name!r} does not serve customers of account {account_id!r}",
            grant=f"accounts {account_id}",
        )


def owns(actor: Actor, ticket: TicketOwnership) -> bool:
    """A customer owns a ticket they opened or that names them as the requester."""
    return actor.kind is ActorKind.CUSTOMER and (
        ticket.opened_by == actor or ticket.requester.lower() == actor.id.lower()
    )


def may_read(principal: Principal, actor: Actor, ticket: TicketOwnership) -> bool:
    """Reading one ticket: staff read every ticket, customers their own."""
    try:
        authorize(principal, READ_TICKET, actor)
        check_ticket(principal, READ_TICKET, actor, ticket)
    except ForbiddenError:
        return False
    return True


def check_time(
    principal: Principal,
    command: str,
    actor: Actor,
    occurred_at: datetime | None,
    now: datetime,
    skew: timedelta,
) -> None:
    """Gate 3: only principals granted `import` may date a command into the past."""
    if occurred_at is None or occurred_at >= now - skew or principal.has_grant("import"):
        return
    raise _forbidden(
        principal,
        command,
        actor,
        f"occurred_at {occurred_at.isoformat()} is in the past; dating commands back needs "
        "the import grant",
        grant="import",
        field="occurred_at",
    )


def _forbidden(
    principal: Principal,
    command: str,
    actor: Actor,
    message: str,
    *,
    grant: str | None,
    field: str = "actor",
) -> ForbiddenError:
    return ForbiddenError(
        message,
        field=field,
        principal=principal.name,
        actor=f"{actor.kind}:{actor.id}",
        command=command,
        missing_grant=grant,
    )


_CELL = {
    Rule.ALLOW: "yes",
    Rule.OWN: "own",
    Rule.SERVED: "served",
    Rule.ADMIN: "admin",
    Rule.ADMIN_OR_IMPORT: "admin/import",
    Rule.IMPORT: "import",
    Rule.SLA_MONITOR: "monitor",
    Rule.DENY: "-",
}


def table_markdown() -> str:
    """The permission table as the README shows it (a test keeps the two equal)."""
    kinds = list(ActorKind)
    lines = [
        "| command | " + " | ".join(str(k) for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for command, row in TABLE.items():
        cells = " | ".join(_CELL[row[kind]] for kind in kinds)
        lines.append(f"| `{command}` | {cells} |")
    return "\n".join(lines)
