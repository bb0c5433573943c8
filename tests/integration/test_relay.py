"""The relay process publishes the event store to JetStream: every domain event once, in order,
resuming after a stop with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from eventsourcing.utils import get_topic

from commands import models as m
from commands.command_log import CommandProcessed
from commands.replies import Reply
from commands.service import CommandService
from projections.wire import parse_event_message
from tests.processes import start_ticketing, stop, ticketing_env, wait_until
from ticketing.nats.connect import NatsEndpoint, connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

# ticketing/nats/server.py drops the nats-server `Popen` handle while the server runs on
# (reported; pinned in test_nats_roles.py); only that warning is ignored here.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.nats,
]

AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")
COMMAND_RECORD_TOPIC = get_topic(CommandProcessed)


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


@dataclass(frozen=True)
class StoredEvent:
    notification_id: int
    aggregate_id: str
    version: int
    type: str


async def _read_stream(endpoint: NatsEndpoint) -> list[StreamMessage]:
    nc = await connect(endpoint, "admin", name="test-reader", reconnect_forever=False)
    try:
        js = nc.jetstream(timeout=2)
        try:
            info = await js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            return []
        if not info.state.messages:
            return []  # a new, empty stream reports first_seq 0
        messages = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg(STREAM, seq)
            assert raw.seq is not None and raw.subject is not None and raw.data is not None
            messages.append(StreamMessage(raw.seq, raw.subject, dict(raw.headers or {}), raw.data))
        return messages
    finally:
        await nc.close()


def read_stream(endpoint: NatsEndpoint) -> list[StreamMessage]:
    """Every message in TICKETING, by sequence, read with admin credentials."""
    return asyncio.run(_read_stream(endpoint))


def stored_domain_events(service: CommandService) -> list[StoredEvent]:
    """The store's notification log minus the command service's idempotency records."""
    notifications = service.app.recorder.select_notifications(start=1, limit=100_000)
    assert any(n.topic == COMMAND_RECORD_TOPIC for n in notifications), "no command records?"
    return [
        StoredEvent(n.id, str(n.originator_id), n.originator_version, n.topic.rsplit(":", 1)[1])
        for n in notifications
        if n.topic != COMMAND_RECORD_TOPIC
    ]


def status(home: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "status", "--json"],
        env=ticketing_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


def open_ticket(service: CommandService, subject: str) -> str:
    command = m.OpenTicket(
        account_id="acme", requester="bob@acme.example", subject=subject, actor=CUSTOMER
    )
    ticket_id = ok(service.execute(command)).ticket_id
    assert ticket_id is not None
    return ticket_id


def first_batch(service: CommandService) -> None:
    """Accounts and two tickets with most event types; some commands make two events."""
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme Corp")))
    one = open_ticket(service, "VPN drops every hour")
    two = open_ticket(service, "Invoice is wrong")
    for command in (
        m.AssignTicket(ticket_id=one, team="tier1", agent="ana", actor=AGENT),
        m.AddComment(ticket_id=one, body="Which client version?", actor=AGENT),
        m.TagTicket(ticket_id=one, tags=["vpn", "network"], actor=AGENT),
        m.ResolveTicket(ticket_id=one, resolution="upgrade the client", actor=AGENT),
        m.RateTicket(ticket_id=one, score=5, actor=CUSTOMER),
        m.CloseTicket(ticket_id=one, actor=AGENT),
        m.CategorizeTicket(ticket_id=two, category="account", actor=AGENT),
        m.PrioritizeTicket(ticket_id=two, priority="high", actor=AGENT),
        m.RenameAccount(account_id="acme", account_name="Acme Inc"),
        m.ChangeAccountTier(account_id="acme", tier="enterprise"),
    ):
        ok(service.execute(command))
    # Neither a repeat nor a refused command appends anything to publish.
    repeat = m.CategorizeTicket(ticket_id=two, category="usage", command_id="cat-2", actor=AGENT)
    ok(service.execute(repeat))
    ok(service.execute(repeat))
    assert not service.execute(m.ReopenTicket(ticket_id=two, actor=AGENT)).ok


def second_batch(service: CommandService) -> int:
    """More commands while the relay is down; returns how many domain events they made."""
    before = len(stored_domain_events(service))
    three = open_ticket(service, "Cannot log in")
    ok(service.execute(m.AddComment(ticket_id=three, body="Resetting it", actor=AGENT)))
    ok(service.execute(m.ChangeStatus(ticket_id=three, status="pending", actor=AGENT)))
    ok(service.execute(m.AddComment(ticket_id=three, body="Works now", actor=CUSTOMER)))
    return len(stored_domain_events(service)) - before


def assert_stream_mirrors_store(stream: list[StreamMessage], stored: list[StoredEvent]) -> None:
    """One message per domain event, in notification order, with the agreed headers."""
    assert [s.seq for s in stream] == list(range(1, len(stored) + 1))
    assert [int(s.headers["Ticketing-Notification-Id"]) for s in stream] == [
        e.notification_id for e in stored
    ]
    msg_ids = [s.headers["Nats-Msg-Id"] for s in stream]
    assert len(set(msg_ids)) == len(msg_ids)
    for message, event in zip(stream, stored, strict=True):
        kind = "account" if event.type.startswith("Account") else "ticket"
        assert message.subject == f"ticketing.events.{kind}.{event.aggregate_id}"
        assert message.headers["Nats-Msg-Id"] == f"{event.aggregate_id}:{event.version}"
        assert message.headers["Ticketing-Event-Type"] == event.type
        payload = parse_event_message(message.data)
        assert payload.type == event.type  # type: ignore[attr-defined]
        assert str(payload.aggregate_id) == event.aggregate_id
        assert payload.version == event.version
        assert payload.notification_id == event.notification_id


@pytest.fixture
def service(nats_home: Path) -> Iterator[CommandService]:
    service = build_command_service(Settings(home=nats_home))
    yield service
    service.app.close()


@pytest.fixture
def endpoint(nats_home: Path) -> NatsEndpoint:
    return resolve_endpoint(Settings(home=nats_home))


def test_the_relay_publishes_each_domain_event_once_in_store_order_and_resumes_after_a_stop(
    nats_home: Path, service: CommandService, endpoint: NatsEndpoint
) -> None:
    # Given commands stored before any relay ran
    first_batch(service)
    stored = stored_domain_events(service)
    assert {e.type for e in stored} >= {"TicketOpened", "StatusChanged", "AccountTierChanged"}

    # When the relay runs
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(lambda: len(read_stream(endpoint)) >= len(stored), what="the first batch")
    finally:
        stop(relay)
    assert relay.returncode == 0, (nats_home / "run-relay.log").read_text()

    # Then the stream mirrors the store's domain events, command records left out
    stream = read_stream(endpoint)
    assert_stream_mirrors_store(stream, stored)
    assert not any(b"CommandProcessed" in s.data for s in stream)

    # When commands arrive while the relay is stopped, and it starts again
    assert second_batch(service) > 0
    stored = stored_domain_events(service)
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(lambda: len(read_stream(endpoint)) >= len(stored), what="the second batch")
        # Then it publishes exactly the rest: no gap, no duplicate
        assert_stream_mirrors_store(read_stream(endpoint), stored)
    finally:
        stop(relay)
    assert relay.returncode == 0, (nats_home / "run-relay.log").read_text()


def test_status_reports_no_lag_after_catch_up_and_the_backlog_while_the_relay_is_stopped(
    nats_home: Path, service: CommandService, endpoint: NatsEndpoint
) -> None:
    # Given a relay that has caught up
    first_batch(service)
    stored = stored_domain_events(service)
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(lambda: len(read_stream(endpoint)) >= len(stored), what="the first batch")
        report = status(nats_home)
        assert report["relay_lag_events"] == 0
        assert report["stream"]["last_notification_id"] == stored[-1].notification_id
        assert any(p["name"] == "ticketing-relay" for p in report["processes"])
    finally:
        stop(relay)

    # When events are added while it is stopped
    added = second_batch(service)

    # Then status counts them as lag until a relay publishes them
    report = status(nats_home)
    assert report["relay_lag_events"] == added > 0
    assert report["stream"]["last_notification_id"] == stored[-1].notification_id
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(lambda: status(nats_home)["relay_lag_events"] == 0, what="lag 0 again")
    finally:
        stop(relay)


@pytest.mark.parametrize("damage", ["first message deleted", "stream reset to empty"])
def test_a_stream_that_lost_messages_is_published_again_from_the_store(
    nats_home: Path, service: CommandService, endpoint: NatsEndpoint, damage: str
) -> None:
    """nats-server can drop or reset a stream's messages after its disk filled; the store is
    the truth, so the relay makes the stream again with the same sequences."""
    first_batch(service)
    stored = stored_domain_events(service)
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(lambda: len(read_stream(endpoint)) >= len(stored), what="the first batch")
    finally:
        stop(relay)

    # Given the stream lost messages while the relay was away
    async def break_stream() -> None:
        nc = await connect(endpoint, "admin", name="test-damage", reconnect_forever=False)
        try:
            js = nc.jetstream(timeout=5)
            if damage == "first message deleted":
                await js.delete_msg(STREAM, 1)
            else:
                await js.purge_stream(STREAM)
        finally:
            await nc.close()

    asyncio.run(break_stream())
    assert [s.seq for s in read_stream(endpoint)] != list(range(1, len(stored) + 1))
    # When the relay starts
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        wait_until(
            lambda: [s.seq for s in read_stream(endpoint)] == list(range(1, len(stored) + 1)),
            what="the stream published again",
        )
        # Then the stream mirrors the store again, sequence for sequence
        assert_stream_mirrors_store(read_stream(endpoint), stored)
    finally:
        stop(relay)
    log = (nats_home / "run-relay.log").read_text()
    assert "lost messages" in log and "publishing it again from the event store" in log
