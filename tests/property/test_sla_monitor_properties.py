"""The SLA monitor against the pure clock: whatever happens to a ticket, whenever the monitor
ticks, and however often it loses its state, it ends up having recorded exactly the breaches the
clock reports for the whole history, each once, and never a warning for a clock it had already
seen breached."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from commands import models as m
from commands.service import CommandService
from projections.stream_event import StreamEvent
from replay.stream import stream_batches
from ticketing.domain.sla_policy import ClockState, SlaClock
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.timeline import TicketSla, all_clocks
from ticketing.workers.outbox import AutomationStore
from ticketing.workers.sla_monitor import SlaMonitor

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
POLICY = {"default": {"first_reply": 30, "next_reply": 45, "resolution": 120}, "warning_at": 0.5}

happenings = st.sampled_from(
    ["agent_reply", "customer_reply", "pending", "on_hold", "open", "solve", "tick", "restart"]
)
steps = st.lists(st.tuples(happenings, st.integers(min_value=1, max_value=40)), max_size=25)


def command(kind: str, ticket: str, at: datetime) -> m.Command | None:
    common: dict[str, Any] = {"ticket_id": ticket, "occurred_at": at}
    if kind == "agent_reply":
        return m.AddComment(body="reply", actor=AGENT, **common)
    if kind == "customer_reply":
        return m.AddComment(body="more", actor=CUSTOMER, **common)
    if kind in {"pending", "on_hold", "open"}:
        return m.ChangeStatus(status=kind, actor=AGENT, **common)
    if kind == "solve":
        return m.ResolveTicket(actor=AGENT, **common)
    return None


class Monitor:
    def __init__(self, service: CommandService, path: Path) -> None:
        self.service, self.path = service, path
        self.store = AutomationStore(path, SlaMonitor(settle_seconds=0))

    def restart(self, lose_state: bool) -> None:
        self.store.close()
        if lose_state:
            self.path.unlink()
        self.store = AutomationStore(self.path, SlaMonitor(settle_seconds=0))

    def tick(self, now: datetime) -> None:
        position = self.store.position()
        stream = [e for batch in stream_batches(self.service.app) for e in batch]
        self.store.apply([StreamEvent(e.sequence, e.payload) for e in stream[position:]])
        self.store.tick(now)
        for item in self.store.due(now):
            reply = self.service.execute_raw(item.body["name"], item.body["payload"])
            assert reply.ok, reply.as_dict()
            self.store.delivered(item, "ok", now)


@given(steps)
def test_the_monitor_records_exactly_the_breaches_of_the_whole_history(
    plan: list[tuple[str, int]],
) -> None:
    service = build_command_service(Settings(event_store="memory"))
    with TemporaryDirectory() as directory:
        ok = service.execute(m.CreateAccount(account_id="a", account_name="A", occurred_at=T0))
        assert ok.ok
        assert service.execute(
            m.PublishSlaPolicy(policy_id="default", definition=POLICY, occurred_at=T0)
        ).ok
        opened = service.execute(
            m.OpenTicket(account_id="a", requester="b@a.example", subject="s", occurred_at=T0)
        )
        ticket = str(opened.ticket_id)
        monitor = Monitor(service, Path(directory) / "monitor.sqlite")
        now = T0
        for number, (kind, minutes) in enumerate(plan):
            now += timedelta(minutes=minutes)
            if kind == "tick":
                monitor.tick(now)
            elif kind == "restart":
                monitor.restart(lose_state=number % 2 == 0)
            elif (change := command(kind, ticket, now)) is not None:
                service.execute(change)  # refusals (e.g. reopening by status) change nothing
        end = now + timedelta(hours=6)
        monitor.tick(end)
        monitor.tick(end + timedelta(minutes=1))

        payloads = [e.payload for batch in stream_batches(service.app) for e in batch]
        records = Counter(
            (p["type"], p["metric"], p["cycle"])
            for p in payloads
            if p["type"] in {"SlaWarningIssued", "SlaBreached"}
        )
        assert all(n == 1 for n in records.values()), records
        catalog, sla = SlaCatalog(), TicketSla()
        for payload in payloads:
            catalog.add(payload) or (payload.get("aggregate_id") == ticket and sla.add(payload))
        policy = sla.policy(catalog)
        assert policy is not None
        report = SlaClock(policy).evaluate(sla.entries, now=end)
        expected = {
            (str(c.metric), c.cycle) for c in all_clocks(report) if c.state is ClockState.BREACHED
        }
        breached = {(metric, cycle) for kind, metric, cycle in records if kind == "SlaBreached"}
        assert breached == expected
        order = [
            (p["type"], p["metric"], p["cycle"])
            for p in payloads
            if p["type"] in {"SlaWarningIssued", "SlaBreached"}
        ]
        for kind, metric, cycle in records:
            if kind == "SlaWarningIssued" and ("SlaBreached", metric, cycle) in order:
                warned = order.index((kind, metric, cycle))
                assert warned < order.index(("SlaBreached", metric, cycle))
    service.app.close()
