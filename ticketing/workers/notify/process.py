"""`ticketing run notifier`: folds the TICKETING stream into customer e-mails and signed webhook
deliveries through the automation outbox (at least once; receivers dedup on Message-ID or
`X-Ticketing-Delivery`), and delivers the "channel" messages other processes queue.

The notifier keeps each ticket's requester, subject and status in `notifier_tickets`, beside
its position and outbox in `<home>/automation/notifier.sqlite`. Without a notifier file it says
so and runs idle: it consumes and keeps those facts, and queues nothing.

Redaction: on `CommentRedacted` the comment's text is blanked in every outbox message carrying
it (the e-mail of the reply, a webhook delivery of its `CommentAdded`), delivered or not, and
one not yet delivered is then recorded as "redacted: not sent" instead of being sent. The
deliverers re-read a message just before sending, so only a send already under way when the
redaction is folded can still carry the text."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from projections.stream_event import StreamEvent
from ticketing.domain.clock import utc_now
from ticketing.settings import Settings
from ticketing.workers.notify.channels import channel_deliverer
from ticketing.workers.notify.config import (
    NotifierConfig,
    NotifierConfigError,
    load_notifier_config,
)
from ticketing.workers.notify.messages import (
    TicketFacts,
    customer_emails,
    fold_ticket,
    is_stale,
    redacted,
    webhook_deliveries,
)
from ticketing.workers.notify.senders import SmtpSender, build_email, post_webhook, webhook_body
from ticketing.workers.outbox import Action, OutboxItem
from ticketing.workers.runner import (
    Clock,
    Deliver,
    clock_from,
    configured,
    run_automation,
)

NAME = "notifier"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifier_tickets (
    ticket_id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL
);
"""


class Notifier:
    """The notifier's fold: ticket facts in, e-mail and webhook actions out (no timers)."""

    name = NAME
    schema = _SCHEMA

    def __init__(self, config: NotifierConfig | None, clock: Clock = utc_now) -> None:
        self.config = config
        self.clock = clock

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        tickets: dict[str, TicketFacts | None] = {}
        actions: list[Action] = []
        now = self.clock()
        for event in events:
            payload = event.payload
            ticket_id = str(payload.get("aggregate_id"))
            if ticket_id not in tickets:
                tickets[ticket_id] = _load_ticket(db, ticket_id)
            tickets[ticket_id] = ticket = fold_ticket(payload, tickets[ticket_id])
            if self.config is None:
                continue
            if payload.get("type") == "CommentRedacted":
                actions = _redact(db, actions, ticket_id, str(payload.get("comment_id")))
            actions.extend(self._actions(self.config, payload, ticket, now))
        db.executemany(
            "INSERT OR REPLACE INTO notifier_tickets VALUES (?, ?, ?, ?)",
            [
                (ticket_id, t.requester, t.subject, t.status)
                for ticket_id, t in tickets.items()
                if t is not None
            ],
        )
        return actions

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        return []  # no timers: "still working on it" follows the SLA monitor's warnings

    @staticmethod
    def _actions(
        config: NotifierConfig,
        payload: Mapping[str, Any],
        ticket: TicketFacts | None,
        now: datetime,
    ) -> list[Action]:
        actions = [
            Action(d.key, "webhook", d.body()) for d in webhook_deliveries(payload, config.webhooks)
        ]
        wanted = config.customer_events
        customer = config.customer_settings
        if wanted and not is_stale(payload, now, timedelta(hours=customer.max_age_hours)):
            actions.extend(
                Action(e.key, "email", e.body())
                for e in customer_emails(payload, ticket, customer, wanted)
            )
        return actions


def _load_ticket(db: sqlite3.Connection, ticket_id: str) -> TicketFacts | None:
    row = db.execute(
        "SELECT requester, subject, status FROM notifier_tickets WHERE ticket_id = ?",
        (ticket_id,),
    ).fetchone()
    return TicketFacts(*row) if row else None


def _redact(
    db: sqlite3.Connection, batch: list[Action], ticket_id: str, comment_id: str
) -> list[Action]:
    """Blank the comment's text in the stored outbox and in this batch's actions."""

    def carries(body: Mapping[str, Any]) -> bool:
        return body.get("ticket_id") == ticket_id and body.get("comment_id") == comment_id

    rows = db.execute(
        "SELECT seq, body FROM outbox WHERE json_extract(body, '$.ticket_id') = ? "
        "AND json_extract(body, '$.comment_id') = ?",
        (ticket_id, comment_id),
    ).fetchall()
    db.executemany(
        "UPDATE outbox SET body = ? WHERE seq = ?",
        [(json.dumps(redacted(json.loads(body)), sort_keys=True), seq) for seq, body in rows],
    )
    return [Action(a.key, a.kind, redacted(a.body)) if carries(a.body) else a for a in batch]


class OutboxReader:
    """Reads an item's current body just before it is sent (a redaction may have blanked it
    since the delivery loop fetched it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None

    def body(self, item: OutboxItem) -> dict[str, Any] | None:
        with self.lock:
            if self.db is None:
                self.db = sqlite3.connect(self.path, check_same_thread=False)
            row = self.db.execute("SELECT body FROM outbox WHERE seq = ?", (item.seq,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None


def notifier_deliverers(
    config: NotifierConfig | None, current_body: Callable[[OutboxItem], dict[str, Any] | None]
) -> dict[str, Deliver]:
    """The deliverers for "email", "webhook" and "channel" items."""
    smtp = SmtpSender(config.smtp) if config is not None and config.smtp is not None else None

    async def fresh(item: OutboxItem) -> dict[str, Any] | None:
        body = await asyncio.to_thread(current_body, item)
        return None if body is None or body.get("redacted") else body

    async def deliver_email(item: OutboxItem) -> str:
        body = await fresh(item)
        if body is None:
            return "redacted: not sent"
        if smtp is None:
            return "dropped: no [smtp] section"
        try:
            message = build_email(
                key=item.key,
                sender=smtp.config.sender,
                to=body["to"],
                subject=body["subject"],
                text=body["text"],
                ticket_id=body.get("ticket_id"),
            )
        except (KeyError, TypeError, ValueError) as error:  # retrying cannot mend it
            return f"dropped: cannot build the e-mail ({type(error).__name__}: {error})"
        return await smtp.send(message)

    async def deliver_webhook(item: OutboxItem) -> str:
        body = await fresh(item)
        if body is None:
            return "redacted: not sent"
        name = body.get("webhook")
        hook = config.webhook(str(name)) if config is not None else None
        if config is None or hook is None:
            return f"dropped: webhook {name} is not configured"
        content = {"webhook": hook.id, "event": body["event"]}
        return await post_webhook(
            hook.url,
            config.webhook_secret(hook.id),
            item.key,
            webhook_body(item.key, content),
            timeout=hook.timeout,
        )

    return {
        "email": deliver_email,
        "webhook": deliver_webhook,
        "channel": channel_deliverer(config),
    }


def state_path(settings: Settings) -> Path:
    """Where `run_automation` keeps the notifier's position, tickets and outbox."""
    return settings.home / "automation" / f"{NAME}.sqlite"


async def run(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    """The body of `ticketing run notifier`; a bad notifier file ends it with one error line."""

    config = configured(
        "invalid_notifier", lambda: load_notifier_config(settings), NotifierConfigError
    )
    if config is None:
        say("notifier: no notifier file (TICKETING_NOTIFIER); consuming events, sending nothing")
    else:
        say(
            f"notifier: {settings.notifier_file}: customer updates "
            f"{', '.join(sorted(config.customer_events)) or 'none'}; "
            f"webhooks {', '.join(h.id for h in config.webhooks) or 'none'}; "
            f"channels {', '.join(sorted(config.channels)) or 'none'}"
        )
    reader = OutboxReader(state_path(settings))
    try:
        await run_automation(
            settings,
            stop,
            say,
            worker=Notifier(config, clock_from(settings)),
            deliverers=lambda _nc: notifier_deliverers(config, reader.body),
            description="customer updates by e-mail and signed webhooks",
        )
    finally:
        reader.close()
