"""The notifier as a real process: nats-server, command service, relay and `ticketing run
notifier`, delivering to an SMTP sink (aiosmtpd) and a webhook receiver (http.server) run by
the test. Also the senders alone against those receivers."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from commands import models as m
from commands.client import SyncTicketingClient
from tests.processes import start_ticketing, stop, wait_until
from ticketing.nats.connect import resolve_endpoint
from ticketing.settings import Settings
from ticketing.workers.notify.channels import channel_deliverer
from ticketing.workers.notify.config import SmtpConfig, parse_notifier_config
from ticketing.workers.notify.messages import reference
from ticketing.workers.notify.senders import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SmtpSender,
    build_email,
    message_id,
    post_webhook,
    verify_signature,
)
from ticketing.workers.outbox import OutboxItem
from ticketing.workers.runner import RetryLater

pytestmark = [pytest.mark.integration]

SECRET = "whsec-integration"
AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")
REQUESTER = "bob@acme.example"


# --- receivers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class SmtpSink:
    """An SMTP server keeping every message it accepts; `on_message` runs on each first."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.on_message: Callable[[EmailMessage], None] | None = None
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
        if self.on_message is not None:
            self.on_message(message)
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)

    def distinct(self) -> dict[str, EmailMessage]:
        """What a receiver deduplicating on Message-ID keeps."""
        return {str(msg["Message-ID"]): msg for msg in self.received()}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers[DELIVERY_HEADER]

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    def verifies(self, secret: str = SECRET) -> bool:
        return verify_signature(
            secret,
            self.headers[TIMESTAMP_HEADER],
            self.body,
            self.headers.get(SIGNATURE_HEADER),
            tolerance_s=300,
        )


@dataclass
class WebhookReceiver:
    """An HTTP server recording each POST; answers the statuses in `answers` first, then 200."""

    answers: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    on_delivery: Callable[[Delivery], None] | None = None

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                delivery = Delivery(dict(self.headers.items()), body)
                with receiver.lock:
                    receiver.deliveries.append(delivery)
                    status = receiver.answers.pop(0) if receiver.answers else 200
                if receiver.on_delivery is not None:
                    receiver.on_delivery(delivery)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def distinct(self) -> dict[str, Delivery]:
        """What a receiver deduplicating on X-Ticketing-Delivery keeps."""
        return {d.key: d for d in self.received()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink().start()
    yield started
    started.stop()


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# --- the stack ------------------------------------------------------------------------------


def notifier_file(home: Path, smtp_port: int, hook_url: str) -> Path:
    path = home / "notifier.toml"
    path.write_text(
        f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "support@example.com"
timeout = 5

[customer]
survey_url = "https://support.example.com/csat/{{ticket_id}}"

[[webhooks]]
id = "crm"
url = "{hook_url}"
secret_env = "CRM_SECRET"
events = ["TicketOpened", "CommentAdded", "TicketResolved"]
timeout = 5
"""
    )
    return path


@dataclass
class Stack:
    """nats (from `nats_home`), command service, relay and the notifier, with a client."""

    home: Path
    config: Path
    client: SyncTicketingClient
    processes: dict[str, subprocess.Popen[bytes]]
    starts: int = 1

    def start_notifier(self) -> None:
        self.starts += 1
        self.processes["notifier"] = start_ticketing(
            self.home,
            "run",
            "notifier",
            log_name=f"notifier-{self.starts}",
            env={"TICKETING_NOTIFIER": str(self.config), "CRM_SECRET": SECRET},
        )

    def run(self, command: m.Command) -> str:
        reply = self.client.execute(command, retry_for=20)
        assert reply.ok, reply.as_dict()
        return str(reply.ticket_id)

    def open_ticket(self, subject: str = "VPN drops hourly") -> str:
        return self.run(m.OpenTicket(account_id="acme", requester=REQUESTER, subject=subject))

    def outbox(self) -> list[dict[str, Any]]:
        path = self.home / "automation" / "notifier.sqlite"
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM outbox ORDER BY seq")]
        except sqlite3.OperationalError:  # not created yet
            return []
        finally:
            db.close()

    def all_delivered(self) -> bool:
        rows = self.outbox()
        return bool(rows) and all(r["delivered_at"] for r in rows)

    def log(self, name: str = "notifier") -> str:
        return "\n".join(p.read_text() for p in sorted(self.home.glob(f"{name}*.log")))


@contextlib.contextmanager
def stack(home: Path, smtp_port: int, hook_url: str) -> Iterator[Stack]:
    config = notifier_file(home, smtp_port, hook_url)
    processes = {
        "command-service": start_ticketing(home, "run", "command-service"),
        "relay": start_ticketing(home, "run", "relay"),
    }
    try:
        with SyncTicketingClient(
            resolve_endpoint(Settings(home=home)), principal="admin"
        ) as client:
            running = Stack(home, config, client, processes, starts=0)
            running.start_notifier()
            running.run(m.CreateAccount(account_id="acme", account_name="Acme Corp"))
            yield running
        for name, process in processes.items():
            assert process.poll() is None, f"{name} died; see the logs in {home}"
    finally:
        codes = {name: stop(process) for name, process in processes.items()}
    assert codes["notifier"] == 0, running.log()


# --- the whole stack ------------------------------------------------------------------------


@pytest.mark.nats
def test_a_tickets_life_reaches_the_customer_by_mail_and_the_crm_by_signed_webhooks(
    nats_home: Path, sink: SmtpSink, hooks: WebhookReceiver
) -> None:
    with stack(nats_home, sink.port, hooks.url) as desk:
        # Given a ticket taken from opening to solved, with a note and a customer reply
        ticket = desk.open_ticket()
        desk.run(m.AssignTicket(ticket_id=ticket, team="network", agent="ana", actor=AGENT))
        desk.run(m.AddComment(ticket_id=ticket, body="Could you send the log?", actor=AGENT))
        desk.run(m.AddComment(ticket_id=ticket, body="MTU?", visibility="internal", actor=AGENT))
        desk.run(m.ChangeStatus(ticket_id=ticket, status="pending", actor=AGENT))
        desk.run(m.AddComment(ticket_id=ticket, body="Log attached.", actor=CUSTOMER))
        desk.run(m.ResolveTicket(ticket_id=ticket, resolution="MTU 1400", actor=AGENT))

        # When the notifier has delivered everything it queued
        wait_until(lambda: len(sink.received()) >= 4, what="four e-mails", timeout=30)
        wait_until(desk.all_delivered, what="the notifier's outbox to drain", timeout=30)

    # Then the requester got exactly the four updates, in order, each once
    ref = reference(ticket)
    mails = sink.received()
    assert [str(msg["Subject"]) for msg in mails] == [
        f"[#{ref}] We received your request: VPN drops hourly",
        f"[#{ref}] Re: VPN drops hourly",
        f"[#{ref}] We need your reply: VPN drops hourly",
        f"[#{ref}] Solved: VPN drops hourly",
    ]
    assert sink.recipients == [[REQUESTER]] * 4
    assert all(str(msg["To"]) == REQUESTER for msg in mails)
    assert all(str(msg["From"]) == "support@example.com" for msg in mails)
    assert len({str(msg["Message-ID"]) for msg in mails}) == 4
    assert str(mails[0]["Message-ID"]) == message_id(f"email:{ticket}:1:opened")
    texts = [msg.get_content() for msg in mails]
    assert texts[1].startswith("Could you send the log?")
    assert f"https://support.example.com/csat/{ticket}" in texts[3]
    assert not any("MTU" in text or "Log attached" in text for text in texts)

    # And the CRM got one signed delivery per subscribed event, each verifying
    deliveries = hooks.received()
    assert [d.json["event"]["type"] for d in deliveries] == [
        "TicketOpened",
        "CommentAdded",
        "CommentAdded",
        "CommentAdded",
        "TicketResolved",
    ]
    assert all(d.verifies() for d in deliveries)
    assert not deliveries[0].verifies("another secret")
    assert all(d.json["delivery"] == d.key for d in deliveries)
    assert deliveries[0].key == f"webhook:crm:{ticket}:1"
    assert deliveries[0].json["event"]["requester"] == REQUESTER


@pytest.mark.nats
def test_mail_queued_while_the_smtp_server_is_down_is_delivered_once_it_is_up(
    nats_home: Path, hooks: WebhookReceiver
) -> None:
    down = SmtpSink()  # its port is chosen, but nothing listens there yet
    with stack(nats_home, down.port, hooks.url) as desk:
        # Given the mail server is down when a ticket is opened
        ticket = desk.open_ticket()
        key = f"email:{ticket}:1:opened"

        def failed_attempt() -> bool:
            return any(r["key"] == key and r["attempts"] >= 1 for r in desk.outbox())

        wait_until(failed_attempt, what="a failed delivery attempt", timeout=30)
        [row] = [r for r in desk.outbox() if r["key"] == key]
        assert row["delivered_at"] is None
        assert row["outcome"].startswith("smtp: ConnectionRefusedError")
        # When the server comes up
        down.start()
        try:
            wait_until(down.received, what="the retried e-mail", timeout=30)
            wait_until(desk.all_delivered, what="the outbox to drain", timeout=30)
        finally:
            down.stop()
    # Then the e-mail arrived once
    [mail] = down.received()
    assert str(mail["Message-ID"]) == message_id(key)
    [row] = [r for r in desk.outbox() if r["key"] == key]
    assert row["attempts"] >= 2
    assert row["outcome"] == f"sent: {message_id(key)}"


# --- the senders alone ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered: 200"),
        (204, "delivered: 204"),
        (404, "refused: HTTP 404"),
        (410, "refused: HTTP 410"),
        (302, "refused: HTTP 302"),
        (408, RetryLater),
        (429, RetryLater),
        (500, RetryLater),
        (503, RetryLater),
    ],
)
def test_a_webhooks_answer_decides_between_delivered_refused_and_retry(
    hooks: WebhookReceiver, status: int, outcome: str | type[Exception]
) -> None:
    hooks.answers.append(status)
    send = post_webhook(hooks.url, SECRET, "webhook:crm:t:1", b'{"a":1}', timeout=5)
    if isinstance(outcome, str):
        assert asyncio.run(send) == outcome
    else:
        with pytest.raises(outcome):
            asyncio.run(send)
    [delivery] = hooks.received()
    assert delivery.key == "webhook:crm:t:1"
    assert delivery.verifies()


def test_an_unreachable_webhook_is_retried_later() -> None:
    send = post_webhook(f"http://127.0.0.1:{free_port()}/", SECRET, "k", b"{}", timeout=2)
    with pytest.raises(RetryLater, match="webhook: URLError"):
        asyncio.run(send)


class Refusing(SmtpSink):
    """A mail server refusing every recipient with `code`."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return f"{self.code} no such user here"


@pytest.mark.parametrize(("code", "permanent"), [(550, True), (450, False)])
def test_a_refused_recipient_is_final_and_a_deferred_one_retried(
    code: int, permanent: bool
) -> None:
    server = Refusing(code).start()
    try:
        sender = SmtpSender(
            SmtpConfig(host="127.0.0.1", port=server.port, sender="support@example.com")
        )
        message = build_email(
            key="k", sender="support@example.com", to="nobody@acme.example", subject="s", text="t"
        )
        if permanent:
            assert asyncio.run(sender.send(message)) == "refused: recipient refused (550)"
        else:
            with pytest.raises(RetryLater, match="deferred"):
                asyncio.run(sender.send(message))
    finally:
        server.stop()
    assert server.received() == []


def test_channel_messages_go_to_the_channels_webhook_or_mailbox(
    sink: SmtpSink, hooks: WebhookReceiver
) -> None:
    # Given channels that trigger rules notify: one a webhook, one a mailbox
    config = parse_notifier_config(
        {
            "smtp": {"host": "127.0.0.1", "port": sink.port, "sender": "support@example.com"},
            "webhooks": [
                {"id": "crm", "url": hooks.url, "secret": SECRET, "events": ["TicketOpened"]}
            ],
            "channels": {"oncall": {"webhook": "crm"}, "leads": {"email": "leads@example.com"}},
        },
        {},
    )
    deliver = channel_deliverer(config)

    def item(seq: int, channel: str) -> OutboxItem:
        body = {"channel": channel, "subject": "Urgent", "text": "Outage", "ticket_id": "t1"}
        return OutboxItem(seq, f"trigger:rule:{seq}", "channel", body, 0)

    # When messages for them (and for an unknown channel) are delivered
    outcomes = [asyncio.run(deliver(item(n, c))) for n, c in enumerate(("oncall", "leads", "x"))]
    # Then each went where its channel says, under its outbox key
    assert outcomes[0] == "delivered: 200"
    assert outcomes[1] == f"sent: {message_id('trigger:rule:1')}"
    assert outcomes[2] == "dropped: unknown channel x"
    [delivery] = hooks.received()
    assert delivery.verifies()
    assert delivery.key == "trigger:rule:0"
    assert delivery.json == {
        "delivery": "trigger:rule:0",
        "channel": "oncall",
        "subject": "Urgent",
        "text": "Outage",
        "ticket_id": "t1",
    }
    [mail] = sink.received()
    assert sink.recipients == [["leads@example.com"]]
    assert (str(mail["Subject"]), mail.get_content().strip()) == ("Urgent", "Outage")
    # And without a notifier file nothing is sent, and the outcome says why
    unconfigured = asyncio.run(channel_deliverer(None)(item(9, "oncall")))
    assert unconfigured == "dropped: no notifier configuration for channel oncall"


# --- configuration --------------------------------------------------------------------------


@pytest.mark.nats
def test_without_a_notifier_file_the_notifier_consumes_and_sends_nothing(nats_home: Path) -> None:
    started = {
        "command-service": start_ticketing(nats_home, "run", "command-service"),
        "relay": start_ticketing(nats_home, "run", "relay"),
        "notifier": start_ticketing(nats_home, "run", "notifier"),
    }
    state = nats_home / "automation" / "notifier.sqlite"

    def position() -> int:
        if not state.exists():
            return 0
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT stream_sequence FROM automation_position").fetchone()
            return int(row[0]) if row else 0
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()

    try:
        with SyncTicketingClient(
            resolve_endpoint(Settings(home=nats_home)), principal="admin"
        ) as client:
            for command in (
                m.CreateAccount(account_id="acme", account_name="Acme Corp"),
                m.OpenTicket(account_id="acme", requester=REQUESTER, subject="VPN"),
            ):
                assert client.execute(command, retry_for=20).ok
        wait_until(lambda: position() >= 2, what="the notifier to consume both events")
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
        try:
            assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
            assert db.execute("SELECT requester FROM notifier_tickets").fetchall() == [(REQUESTER,)]
        finally:
            db.close()
    finally:
        codes = [stop(process) for process in started.values()]
    assert codes == [0, 0, 0]
    assert "no notifier file" in (nats_home / "run-notifier.log").read_text()


def test_a_bad_notifier_file_ends_the_process_with_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "notifier.toml"
    bad.write_text('[[webhooks]]\nid = "crm"\nurl = "http://x/"\nevents = ["TicketOpened"]\n')
    process = start_ticketing(
        tmp_path / "home", "run", "notifier", env={"TICKETING_NOTIFIER": str(bad)}
    )
    assert process.wait(30) == 1
    output = (tmp_path / "home" / "run-notifier.log").read_text()
    assert output.strip() == (
        f"error: invalid_notifier: {bad}: webhooks[0]: give exactly one of secret or secret_env"
    )
