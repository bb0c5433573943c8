"""`ticketing show`: one ticket as a person reads it (or as it was), or as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import click

from ticketing.cli import output
from ticketing.cli.context import CliError, current_context
from ticketing.cli.times import local, parse_moment, zone_name

if TYPE_CHECKING:
    from ticketing.domain.ticket import Ticket
    from ticketing.store.application import TicketingApplication

_CARD = [
    "ticket_id",
    "subject",
    "status",
    "priority",
    "category",
    "channel",
    "account_id",
    "account_tier",
    "requester",
    "team",
    "agent",
    "tags",
    "resolution",
    "rating",
    "reopen_count",
    "follow_up_of",
    "external_id",
    "opened_at",
    "updated_at",
    "version",
]
_WIDTH = 12


@click.command()
@click.argument("ticket")
@click.option(
    "--as-of", help="The state exactly as it was at this time (ISO 8601; without a zone: --tz)."
)
@click.option("--version", "version", type=int, help="The state exactly as it was at this version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (times in UTC).")
def show(ticket: str, as_of: str | None, version: int | None, as_json: bool) -> None:
    """Show a ticket: its fields, description, SLA state and conversation (public replies and
    internal notes marked), times in --tz; current, or exactly as it was at a time or version.
    TICKET is its id or a unique prefix of it."""
    from replay.history import ticket_as_of

    obj = current_context()
    if as_of is not None and version is not None:
        raise CliError("validation_error", "give --as-of or --version, not both")
    moment = parse_moment(as_of, "--as-of", obj.zone) if as_of is not None else None
    app = obj.store
    found = ticket_as_of(app, obj.ticket_id(ticket), at=moment, version=version)
    state = found.as_dict()
    if as_json:
        click.echo(json.dumps(state))
        return
    click.echo(ticket_text(state, obj.zone, sla_state(app, found, moment)))


def ticket_text(
    ticket: Mapping[str, Any], zone: tzinfo, sla: Mapping[str, str | None] | None = None
) -> str:
    """The card: one `key  value` line each, the description and conversation below, indented
    (so `cut`/`awk` still find the keys), times in `zone`."""

    def value(key: str) -> Any:
        if key == "rating":
            return output.rating_text(ticket["rating"])
        if key in ("opened_at", "updated_at"):
            return local(ticket[key], zone)
        return ticket.get(key)  # external_id is missing from tickets opened before it existed

    lines = [f"{key.ljust(_WIDTH)}  {output.cell(value(key))}" for key in _CARD]
    description = (ticket.get("description") or "").strip()
    if description:
        first, *rest = description.splitlines()
        lines.append(f"{'description'.ljust(_WIDTH)}  {first}")
        lines += [f"{'':{_WIDTH}}  {line}" for line in rest]
    for key, text in (sla or {"sla": "none (no policy applied)"}).items():
        lines.append(f"{key.ljust(_WIDTH)}  {text or '-'}")
    lines += conversation(ticket.get("comments", []), zone)
    return "\n".join(line.rstrip() for line in lines)


def conversation(comments: list[Mapping[str, Any]], zone: tzinfo) -> list[str]:
    """Every comment oldest first: a public reply or an INTERNAL NOTE, who and when, the text."""
    if not comments:
        return [f"{'conversation'.ljust(_WIDTH)}  none yet"]
    public = sum(1 for c in comments if c["visibility"] == "public")
    internal = len(comments) - public
    lines = [
        f"{'conversation'.ljust(_WIDTH)}  {_count(public, 'public reply', 'public replies')}, "
        f"{_count(internal, 'internal note', 'internal notes')} (times in {zone_name(zone)})"
    ]
    for comment in comments:
        kind = "reply" if comment["visibility"] == "public" else "INTERNAL NOTE"
        who = output.actor_text(comment["author"])
        lines.append(
            f"  {local(comment['occurred_at'], zone)}  {kind} by {who} ({comment['comment_id']})"
        )
        body = "[redacted]" if comment.get("redacted") else comment.get("body") or "[erased]"
        lines += [f"      {line}" for line in body.splitlines() or [""]]
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def sla_state(
    app: TicketingApplication, ticket: Ticket, at: datetime | None
) -> dict[str, str | None] | None:
    """The ticket's pinned policy, the clock that falls due next (when, in how long, of which
    target) and the warnings and breaches recorded; None without a policy."""
    pin = ticket.sla_policy
    if not pin:
        return None
    from ticketing.domain.clock import utc_now
    from ticketing.domain.events import event_payload
    from ticketing.domain.policies import calendar_uuid, policy_uuid
    from ticketing.sla.catalog import SlaCatalog
    from ticketing.sla.timeline import TicketSla, next_due

    catalog = SlaCatalog()
    sources = [policy_uuid(pin["policy_id"])]
    if pin.get("calendar_id"):
        sources.append(calendar_uuid(pin["calendar_id"]))
    for source in sources:
        for event in app.events.get(source):
            catalog.add(event_payload(event))
    timeline = TicketSla()
    for event in app.events.get(ticket.id, lte=ticket.version):
        timeline.add(event_payload(event))
    now = at if at is not None else max(utc_now(), ticket.last_occurred_at)
    clock = next_due(timeline.report(catalog, now))
    calendar = (
        f", calendar {pin['calendar_id']} v{pin['calendar_version']}"
        if pin.get("calendar_id")
        else ", 24x7"
    )
    zone = current_context().zone
    if clock is None or clock.due_at is None:
        due = "no clock running"
    else:
        left = _duration((clock.due_at - now).total_seconds())
        due = (
            f"{_metric(str(clock.metric), clock.cycle)} due {local(clock.due_at, zone)} "
            f"(in {left}; target {clock.target_minutes} min)"
        )
    return {
        "sla_policy": f"{pin['policy_id']} v{pin['policy_version']}{calendar}",
        "sla_next": due,
        "sla_warned": ", ".join(_metric(m, c) for m, c in sorted(ticket.sla_warnings)) or None,
        "sla_breached": ", ".join(_metric(m, c) for m, c in sorted(ticket.sla_breaches)) or None,
    }


def _metric(metric: str, cycle: int) -> str:
    return f"{metric} #{cycle + 1}" if metric == "next_reply" else metric


def _duration(seconds: float) -> str:
    """`45 min`, `3 h 5 min`, `2 d 4 h` (calendar time)."""
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def register(group: click.Group) -> None:
    """Add `show` to the main `ticketing` group."""
    group.add_command(show)
