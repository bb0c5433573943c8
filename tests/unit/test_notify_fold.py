"""The notifier's fold and delivery on its real SQLite state file, fed with the events of
tickets driven through the in-memory command service and delivered to fake receivers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from projections.stream_event import StreamEvent
from replay.stream import stream_batches
from ticketing.workers.notify.config import NotifierConfig, parse_notifier_config
from ticketing.workers.notify.process import Notifier, OutboxReader, notifier_deliverers
from ticketing.workers.outbox import AutomationStore, OutboxItem
from ticketing.workers.runner import AutomationLoop, Deliver

AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")
CONFIG = parse_notifier_config(
    {
        "smtp": {"host": "127.0.0.1", "port": 9, "sender": "support@example.com"},
        "customer": {"survey_url": "https://csat.example/{ticket_id}"},
        "webhooks": [
            {"id": "crm", "url": "http://127.0.0.1:9/", "secret": "s", "events": ["CommentAdded"]}
        ],
    },
    {},
)


def now() -> datetime:
    return datetime.now(UTC)


class Desk:
    """A command service, the notifier's state file and the stream position it has read."""

    def __init__(self, service: CommandService, path: Path, config: NotifierConfig | None):
        self.service = service
        self.path = path
        self.config = config
        self.store = AutomationStore(path, Notifier(config))
        self.read = 0

    def run(self, command: m.Command) -> str:
        reply = self.service.execute(command)
        assert reply.ok, reply.as_dict()
        return str(reply.ticket_id)

    def new_events(self) -> list[StreamEvent]:
        events = [e for batch in stream_batches(self.service.app) for e in batch]
        fresh, self.read = events[self.read :], len(events)
        return [StreamEvent(e.sequence, e.payload) for e in fresh]

    def fold(self) -> None:
        self.store.apply(self.new_events())

    def outbox(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM outbox ORDER BY seq").fetchall()
        return [{**dict(r), "body": json.loads(r["body"])} for r in rows]

    def restart(self, store_class: type[AutomationStore] = AutomationStore) -> None:
        self.store.close()
        self.store = store_class(self.path, Notifier(self.config))


@pytest.fixture
def desk(memory_service: CommandService, tmp_path: Path) -> Iterator[Desk]:
    reply = memory_service.execute(m.CreateAccount(account_id="acme", account_name="Acme"))
    assert reply.ok
    desk = Desk(memory_service, tmp_path / "notifier.sqlite", CONFIG)
    yield desk
    desk.store.close()


def open_ticket(desk: Desk) -> str:
    return desk.run(
        m.OpenTicket(account_id="acme", requester="bob@acme.example", subject="VPN drops")
    )


def test_a_tickets_life_queues_one_message_per_customer_update(desk: Desk) -> None:
    # Given a ticket taken from opening to solved
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="Which version?", actor=AGENT))
    desk.run(m.AddComment(ticket_id=ticket, body="MTU?", visibility="internal", actor=AGENT))
    desk.run(m.ChangeStatus(ticket_id=ticket, status="pending", actor=AGENT))
    desk.run(m.AddComment(ticket_id=ticket, body="4.2", actor=CUSTOMER))
    desk.run(m.ResolveTicket(ticket_id=ticket, actor=AGENT))
    # When the notifier folds the stream
    desk.fold()
    # Then the outbox holds the four e-mails and a webhook per comment, keyed by event
    keys = [row["key"] for row in desk.outbox()]
    assert keys == [
        f"email:{ticket}:1:opened",
        f"webhook:crm:{ticket}:2",
        f"email:{ticket}:2:public_reply",
        f"webhook:crm:{ticket}:4",
        f"email:{ticket}:5:pending",
        f"webhook:crm:{ticket}:6",
        f"email:{ticket}:8:solved",
    ]
    with sqlite3.connect(desk.path) as db:
        facts = db.execute("SELECT requester, subject, status FROM notifier_tickets").fetchall()
    assert facts == [("bob@acme.example", "VPN drops", "solved")]


def test_folding_the_same_events_after_a_crash_queues_the_same_messages(
    desk: Desk, tmp_path: Path
) -> None:
    # Given events folded into one state file
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="Which version?", actor=AGENT))
    events = desk.new_events()
    desk.store.apply(events)
    # When the same events are folded again: redelivered, and into a file that lost its commit
    desk.store.apply(events)
    again = Desk(desk.service, tmp_path / "again.sqlite", CONFIG)
    again.store.apply(events)
    # Then both outboxes hold the same messages, once each
    assert [(r["key"], r["body"]) for r in again.outbox()] == [
        (r["key"], r["body"]) for r in desk.outbox()
    ]
    assert len(desk.outbox()) == 3
    again.store.close()


def test_without_a_configuration_the_notifier_keeps_facts_and_queues_nothing(
    memory_service: CommandService, tmp_path: Path
) -> None:
    assert memory_service.execute(m.CreateAccount(account_id="acme", account_name="Acme")).ok
    idle = Desk(memory_service, tmp_path / "idle.sqlite", None)
    open_ticket(idle)
    idle.fold()
    assert idle.outbox() == []
    assert idle.store.position() > 0
    idle.store.close()


def deliver_all(desk: Desk, deliverers: dict[str, Deliver]) -> AutomationLoop:
    loop = AutomationLoop(desk.store, None, deliverers, now)
    asyncio.run(loop.step())
    return loop


def test_a_reply_redacted_before_it_was_sent_is_blanked_and_never_sent(desk: Desk) -> None:
    # Given an agent's reply folded into the outbox but not yet delivered
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="Your password is hunter2", actor=AGENT))
    desk.fold()
    # When the comment is redacted
    desk.run(m.RedactComment(ticket_id=ticket, comment_id="c1", reason="privacy", actor=AGENT))
    desk.fold()
    # Then no stored message carries the text, and delivery records it as not sent
    assert "hunter2" not in json.dumps(desk.outbox())
    reader = OutboxReader(desk.path)
    deliverers = notifier_deliverers(CONFIG, reader.body)
    redacted_keys = {r["key"] for r in desk.outbox() if r["body"].get("redacted")}
    assert redacted_keys == {f"email:{ticket}:2:public_reply", f"webhook:crm:{ticket}:2"}
    for row in desk.outbox():
        if row["key"] in redacted_keys:
            item = OutboxItem(row["seq"], row["key"], row["kind"], row["body"], 0)
            assert asyncio.run(deliverers[row["kind"]](item)) == "redacted: not sent"
    reader.close()


def test_a_redaction_in_the_same_batch_blanks_the_message_before_it_is_queued(
    desk: Desk,
) -> None:
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="Your password is hunter2", actor=AGENT))
    desk.run(m.RedactComment(ticket_id=ticket, comment_id="c1", reason="privacy", actor=AGENT))
    desk.fold()
    assert "hunter2" not in json.dumps(desk.outbox())
    reply = next(r for r in desk.outbox() if r["key"].endswith(":public_reply"))
    assert reply["body"]["redacted"] is True


def test_a_stale_copy_fetched_before_the_redaction_is_not_sent(desk: Desk) -> None:
    # Given the delivery loop fetched the reply just before the redaction was folded
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="hunter2", actor=AGENT))
    desk.fold()
    [fetched] = [i for i in desk.store.due(now()) if i.key.endswith(":public_reply")]
    desk.run(m.RedactComment(ticket_id=ticket, comment_id="c1", reason="privacy", actor=AGENT))
    desk.fold()
    # When it is delivered
    reader = OutboxReader(desk.path)
    outcome = asyncio.run(notifier_deliverers(CONFIG, reader.body)["email"](fetched))
    reader.close()
    # Then the deliverer re-read it and sent nothing
    assert outcome == "redacted: not sent"


class Receiver:
    """A fake mail server that deduplicates on the message key, as a mail client does on
    Message-ID."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def deliver(self, item: OutboxItem) -> str:
        self.received.append(item.key)
        return "sent"

    def distinct(self) -> list[str]:
        return list(dict.fromkeys(self.received))


class DiesAfterSending(AutomationStore):
    """A store whose process dies between sending a message and recording it."""

    def delivered(self, item: OutboxItem, outcome: str, now: datetime) -> None:
        raise SystemExit("killed between send and record")


def test_a_crash_between_send_and_record_resends_the_same_message_after_restart(
    desk: Desk,
) -> None:
    # Given two e-mails queued
    ticket = open_ticket(desk)
    desk.run(m.AddComment(ticket_id=ticket, body="Which version?", actor=AGENT))
    desk.fold()
    receiver = Receiver()
    deliverers: dict[str, Deliver] = {"email": receiver.deliver, "webhook": receiver.deliver}
    # When the process dies right after the first send, before recording it
    desk.restart(DiesAfterSending)
    with pytest.raises(SystemExit):
        deliver_all(desk, deliverers)
    assert receiver.received == [f"email:{ticket}:1:opened"]
    # And is restarted on the same file
    desk.restart()
    loop = deliver_all(desk, deliverers)
    # Then every message arrived, the first one twice with the same key, and all are recorded
    assert loop.stats.delivered == 3
    assert receiver.received[0] == receiver.received[1]
    assert receiver.distinct() == [row["key"] for row in desk.outbox()]
    assert all(row["delivered_at"] for row in desk.outbox())
