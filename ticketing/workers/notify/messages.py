"""What customers and webhooks are told about an event, as plain data (pure: no I/O, no clock).

Customers get, by e-mail to the ticket's requester (each update can be switched off):

- `opened`: on `TicketOpened`, an acknowledgement.
- `public_reply`: on a public `CommentAdded` by an author in `reply_authors` (default: agents
  only), the reply's text. Never internal notes, never the customer's own comments; automation,
  AI, system and API replies only if configured (they are usually delivered by their sender).
- `pending`: on `StatusChanged` to `pending`, "we need your reply".
- `solved`: on `TicketResolved`, with the CSAT survey link when `survey_url` is set (the
  resolution text is not sent: it is written for the ticket, not always for the customer).
- `sla_warning`: on `SlaWarningIssued` for `first_reply` / `next_reply`, "still working on it",
  only while the ticket waits on us, and once per reply cycle.

Nothing is sent on a closed ticket, for a ticket the notifier never saw opened, or about an
event older than `max_age_hours` (imported history; see `is_stale`). Every message
has a key derived from the event only (`email:<ticket>:<version>:<update>`, the SLA update
`email:<ticket>:still_working:<metric>:<cycle>`, `webhook:<id>:<aggregate>:<version>`), so a
redelivered event yields the same key and the outbox keeps one message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ticketing.domain.status_rules import WAITING_ON_US
from ticketing.workers.notify.config import CustomerConfig, WebhookConfig

REPLY_METRICS = frozenset({"first_reply", "next_reply"})


@dataclass(frozen=True)
class TicketFacts:
    """The little the notifier keeps per ticket."""

    requester: str
    subject: str
    status: str


@dataclass(frozen=True)
class Email:
    """One customer e-mail, as it is stored in the outbox (`body()`)."""

    key: str
    to: str
    subject: str
    text: str
    ticket_id: str
    update: str
    comment_id: str | None = None
    redacted: bool = False

    def body(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["key"]
        return fields


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one webhook, as stored in the outbox (`body()`); the secret is not."""

    key: str
    webhook: str
    event: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"webhook": self.webhook, "event": dict(self.event)}
        body["ticket_id"] = str(self.event.get("aggregate_id"))
        if self.event.get("type") == "CommentAdded":
            body["comment_id"] = self.event.get("comment_id")
        return body


def fold_ticket(event: Mapping[str, Any], ticket: TicketFacts | None) -> TicketFacts | None:
    """The ticket's facts after `event`."""
    kind = event.get("type")
    if kind == "TicketOpened":
        return TicketFacts(str(event["requester"]), str(event["subject"]), "new")
    if ticket is not None and isinstance(event.get("to_status"), str):
        return replace(ticket, status=event["to_status"])
    return ticket


def customer_emails(
    event: Mapping[str, Any],
    ticket: TicketFacts | None,
    customer: CustomerConfig,
    wanted: Iterable[str],
) -> list[Email]:
    """The e-mails `event` calls for; `ticket` is the ticket's facts after the event."""
    if ticket is None or ticket.status == "closed":
        return []
    kind = event.get("type")
    update, subject, text = None, "", ""
    if kind == "TicketOpened":
        update = "opened"
        subject = "We received your request"
        text = f'We have received your request "{ticket.subject}" and will get back to you soon.'
    elif kind == "CommentAdded" and _is_reply_for_customer(event, customer):
        update = "public_reply"
        subject, text = "Re", str(event.get("body", ""))
    elif kind == "StatusChanged" and event.get("to_status") == "pending":
        update = "pending"
        subject = "We need your reply"
        text = (
            f'We are waiting for your reply on "{ticket.subject}" before we can go on. '
            "Please send us the information we asked for."
        )
    elif kind == "TicketResolved":
        update = "solved"
        subject = "Solved"
        text = (
            f'We believe your request "{ticket.subject}" is solved. '
            "If it is not, let us know and we will reopen it."
        )
        if customer.survey_url:
            survey = customer.survey_url.format(ticket_id=event["aggregate_id"])
            text += f"\n\nHow did we do? Please rate our support: {survey}"
    elif (
        kind == "SlaWarningIssued"
        and event.get("metric") in REPLY_METRICS
        and ticket.status in WAITING_ON_US
    ):
        update = "sla_warning"
        subject = "Still working on it"
        text = (
            f'We are still working on your request "{ticket.subject}" '
            "and will reply as soon as we can."
        )
    if update is None or update not in wanted:
        return []
    ticket_id = str(event["aggregate_id"])
    return [
        Email(
            key=email_key(event, update),
            to=ticket.requester,
            subject=_one_line(f"[#{reference(ticket_id)}] {subject}: {ticket.subject}"),
            text=f"{text}\n\n{customer.signature}\nTicket {reference(ticket_id)}\n",
            ticket_id=ticket_id,
            update=update,
            comment_id=event.get("comment_id") if update == "public_reply" else None,
        )
    ]


def webhook_deliveries(
    event: Mapping[str, Any], webhooks: Iterable[WebhookConfig]
) -> list[WebhookDelivery]:
    """One delivery of `event` to every webhook subscribed to its type."""
    kind = event.get("type")
    return [
        WebhookDelivery(
            key=f"webhook:{hook.id}:{event['aggregate_id']}:{event['version']}",
            webhook=hook.id,
            event=event,
        )
        for hook in webhooks
        if kind in hook.events
    ]


def email_key(event: Mapping[str, Any], update: str) -> str:
    """The outbox key (and, hashed, the Message-ID): one "still working" per reply cycle."""
    ticket_id = event["aggregate_id"]
    if update == "sla_warning":
        return f"email:{ticket_id}:still_working:{event['metric']}:{event['cycle']}"
    return f"email:{ticket_id}:{event['version']}:{update}"


def is_stale(event: Mapping[str, Any], now: datetime, max_age: timedelta) -> bool:
    """Too old to tell a customer about: recorded long after it happened (imported history) or
    long before now (the notifier was far behind or started on an old stream)."""
    try:
        occurred = datetime.fromisoformat(str(event["occurred_at"]))
        recorded = datetime.fromisoformat(str(event["recorded_at"]))
    except (KeyError, ValueError):
        return False
    return recorded - occurred > max_age or now - recorded > max_age


def redacted(body: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox body with the comment text blanked (e-mail text or the webhook's event body)."""
    blank = {**body, "redacted": True}
    if "text" in blank:
        blank["text"] = ""
    if isinstance(blank.get("event"), Mapping):
        blank["event"] = {**blank["event"], "body": ""}
    return blank


def reference(ticket_id: str) -> str:
    """The short ticket reference customers see in subjects."""
    return ticket_id.replace("-", "")[:8]


def _is_reply_for_customer(event: Mapping[str, Any], customer: CustomerConfig) -> bool:
    actor = event.get("actor") or {}
    return (
        event.get("visibility") == "public"
        and actor.get("kind") != "customer"
        and actor.get("kind") in customer.reply_authors
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
