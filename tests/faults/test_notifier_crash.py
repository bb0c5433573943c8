"""The notifier SIGKILLed between sending a message and recording it: the receiver already has
the message, the outbox does not know. After a restart the message is sent again with the same
Message-ID (e-mail) or X-Ticketing-Delivery (webhook), so a deduplicating receiver sees every
message exactly once, and nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from tests.integration.test_notifier import AGENT, SmtpSink, WebhookReceiver, stack
from tests.processes import wait_until
from ticketing.workers.notify.senders import message_id

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]


class KillOnFirstReceipt:
    """Kills the notifier (by PID) from inside a receiver, on the first message, before the
    receiver answers: the message has arrived, the sender never learns it did."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = threading.Event()

    def __call__(self, _message: Any) -> None:
        if self.process is not None and not self.killed.is_set():
            self.killed.set()
            os.kill(self.process.pid, signal.SIGKILL)


@pytest.mark.parametrize("receiver", ["smtp", "webhook"])
def test_a_message_sent_but_not_recorded_is_resent_with_the_same_identity(
    nats_home: Path, receiver: str
) -> None:
    sink = SmtpSink().start()
    hooks = WebhookReceiver()
    crash = KillOnFirstReceipt()
    if receiver == "smtp":
        sink.on_message = crash
    else:
        hooks.on_delivery = crash
    try:
        with stack(nats_home, sink.port, hooks.url) as desk:
            # Given a ticket opened, answered and solved
            crash.process = desk.processes["notifier"]
            ticket = desk.open_ticket()
            desk.run(m.AddComment(ticket_id=ticket, body="Try 4.3", actor=AGENT))
            desk.run(m.ResolveTicket(ticket_id=ticket, actor=AGENT))

            # When the notifier dies on its first receipt, before recording it
            assert crash.killed.wait(30), desk.log()
            killed = desk.processes["notifier"]
            assert killed.wait(10) == -signal.SIGKILL
            # And is restarted on the same state
            desk.start_notifier()
            wait_until(lambda: len(sink.distinct()) == 3, what="three distinct e-mails")
            wait_until(lambda: len(hooks.distinct()) == 3, what="three distinct webhooks")
            wait_until(desk.all_delivered, what="the outbox to drain", timeout=30)
    finally:
        sink.stop()
        hooks.close()

    # Then every message arrived; deduplicated on its identity, each exactly once
    # (the reply on a new ticket is version 2, with StatusChanged to open as 3)
    keys = [f"email:{ticket}:1:opened", f"email:{ticket}:2:public_reply"]
    keys.append(f"email:{ticket}:4:solved")
    assert list(sink.distinct()) == [message_id(key) for key in keys]
    assert list(hooks.distinct()) == [f"webhook:crm:{ticket}:{v}" for v in (1, 2, 4)]
    # ... the one in flight at the crash arrived twice, with the same identity; nothing else did
    mails = Counter(str(msg["Message-ID"]) for msg in sink.received())
    posts = Counter(d.key for d in hooks.received())
    repeats = {k: n for k, n in (mails + posts).items() if n > 1}
    first = message_id(keys[0]) if receiver == "smtp" else f"webhook:crm:{ticket}:1"
    assert repeats == {first: 2}
    # ... and every repeated webhook still verifies
    assert all(d.verifies() for d in hooks.received())
