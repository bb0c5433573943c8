"""Readable output for people: small aligned tables and one-line event summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
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
        return f"{event['visibility']} {event['comment_id']}: {_cell(event['body'])}"
    if event["type"] == "TicketOpened":
        return f"{event['subject']!r} for {event['account_id']} via {event['channel']}"
    fields = {k: v for k, v in event.items() if k not in _ENVELOPE}
    return ", ".join(f"{k}={_cell(v)}" for k, v in fields.items())


def actor_text(actor: Mapping[str, str]) -> str:
    return f"{actor['kind']}:{actor['id']}"


def events_table(events: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (e["version"], e["occurred_at"], actor_text(e["actor"]), e["type"], describe_change(e))
        for e in events
    ]
    return table(rows, ["v", "occurred_at", "actor", "event", "change"])


def ticket_card(ticket: Mapping[str, Any]) -> str:
    keys = [
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
        "opened_at",
        "updated_at",
        "version",
    ]
    width = max(len(k) for k in keys)
    lines = [
        f"{k.ljust(width)}  {_cell(_rating(ticket[k]) if k == 'rating' else ticket[k])}"
        for k in keys
    ]
    for comment in ticket.get("comments", []):
        lines.append(
            f"  [{comment['comment_id']} {comment['visibility']} "
            f"{actor_text(comment['author'])} {comment['occurred_at']}] {_cell(comment['body'])}"
        )
    return "\n".join(lines)


def _rating(rating: Mapping[str, Any] | None) -> str | None:
    if not rating:
        return None
    return f"{rating['score']}/5" + (f" {rating['comment']!r}" if rating.get("comment") else "")


def queue_table(tickets: Sequence[Mapping[str, Any]]) -> str:
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
            t["opened_at"][:16].replace("T", " "),
            _sla(t),
            t["subject"],
        )
        for t in tickets
    ]
    headers = ["ticket", "priority", "status", "waiting", "team", "agent", "account", "channel"]
    return table(rows, [*headers, "opened (UTC)", "sla", "subject"])


def _sla(ticket: Mapping[str, Any]) -> str | None:
    """`first_reply 10:30` for the next due clock, `BREACHED resolution` for breaches."""
    parts = []
    if ticket.get("sla_breached"):
        parts.append("BREACHED " + ",".join(ticket["sla_breached"]))
    if ticket.get("sla_due_at"):
        due = str(ticket["sla_due_at"])[:16].replace("T", " ")
        parts.append(f"{ticket.get('sla_next_metric')} due {due}")
    return "; ".join(parts) or None
