"""Readable output for people: small aligned tables and one-line event summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Any

from ticketing.cli.times import local, zone_name

_ENVELOPE = {
    "type",
    "aggregate_id",
    "version",
    "recorded_at",
    "actor",
    "occurred_at",
    "command_id",
    "previous_team",
    "previous_agent",
    "previous_category",
    "previous_priority",
    "previous_tier",
    "previous_name",
    "previous_hash",
    "event_hash",
    "body_commitment",
}


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns sized to their widest cell."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def cell(value: Any) -> str:
    """One table cell: `-` for nothing, lists comma-joined, one line of at most 60 chars."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def describe_change(event: Mapping[str, Any]) -> str:
    """What an event changed, in a few words (`new -> open`, `agent=ana`, `score=5`)."""
    if "from_status" in event:
        text = f"{event['from_status']} -> {event['to_status']}"
        extra = event.get("reason") or event.get("resolution")
        return f"{text} ({extra})" if extra else text
    if event["type"] == "CommentAdded":
        return f"{event['visibility']} {event['comment_id']}: {cell(event['body'])}"
    if event["type"] == "TicketOpened":
        return f"{event['subject']!r} for {event['account_id']} via {event['channel']}"
    fields = {k: v for k, v in event.items() if k not in _ENVELOPE}
    return ", ".join(f"{k}={cell(v)}" for k, v in fields.items())


def actor_text(actor: Mapping[str, str]) -> str:
    return f"{actor['kind']}:{actor['id']}"


def rating_text(rating: Mapping[str, Any] | None) -> str | None:
    """`5/5 'great'`."""
    if not rating:
        return None
    return f"{rating['score']}/5" + (f" {rating['comment']!r}" if rating.get("comment") else "")


def queue_table(tickets: Sequence[Mapping[str, Any]], zone: tzinfo = UTC) -> str:
    """The queue for people: times in `zone`, named in the headers."""
    if not tickets:
        return "no tickets match"
    rows = [
        (
            t["ticket_id"],
            t["priority"],
            t["status"],
            t["waiting_on"],
            t["team"],
            t["agent"],
            t["account_id"],
            t["channel"],
            _minute(t["opened_at"], zone),
            _sla(t, zone),
            t["subject"],
        )
        for t in tickets
    ]
    headers = ["ticket", "priority", "status", "waiting", "team", "agent", "account", "channel"]
    named = zone_name(zone)
    return table(rows, [*headers, f"opened ({named})", f"sla (next due, {named})", "subject"])


def _minute(value: Any, zone: tzinfo) -> str | None:
    """`2026-11-24 10:30`: a table's time in `zone` (named once, in its header)."""
    text = local(value, zone)
    return None if text is None else text.rsplit(" ", 1)[0]


def _sla(ticket: Mapping[str, Any], zone: tzinfo) -> str | None:
    """`first_reply due 2026-11-24 10:30 CET` for the next due clock (a time of day in the
    zone it names), `BREACHED resolution` for breaches."""
    parts = []
    if ticket.get("sla_breached"):
        parts.append("BREACHED " + ",".join(ticket["sla_breached"]))
    if ticket.get("sla_due_at"):
        parts.append(f"{ticket.get('sla_next_metric')} due {local(ticket['sla_due_at'], zone)}")
    return "; ".join(parts) or None
