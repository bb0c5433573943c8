"""The automation runtime on a real SQLite file: actions committed with the stream position,
redeliveries ignored, timers, and a delivery loop that retries without blocking the rest."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from projections.stream_event import StreamEvent
from ticketing.workers.outbox import Action, AutomationStore, OutboxItem
from ticketing.workers.runner import AutomationLoop, RetryLater

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Echo:
    """One action per event, keyed by the event's id; a timer action once per minute."""

    name = "echo"
    schema = ""

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        return [Action(f"event:{e.payload['id']}", "note", {"id": e.payload["id"]}) for e in events]

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        return [Action(f"minute:{now:%H%M}", "note", {"id": f"{now:%H%M}"})]


def event(sequence: int) -> StreamEvent:
    return StreamEvent(sequence, {"id": f"e{sequence}"})


def test_actions_commit_with_the_position_and_redeliveries_add_nothing(tmp_path: Path) -> None:
    store = AutomationStore(tmp_path / "echo.sqlite", Echo())
    store.apply([event(1), event(2)])
    store.apply([event(1), event(2), event(3)])  # a redelivered batch with one new event
    store.close()
    reopened = AutomationStore(tmp_path / "echo.sqlite", Echo())
    assert reopened.position() == 3
    assert [i.key for i in reopened.due(NOW)] == ["event:e1", "event:e2", "event:e3"]
    assert reopened.tick(NOW) == 1
    assert reopened.tick(NOW) == 0  # the same timer action twice is one action
    assert reopened.outbox_counts() == {"delivered": 0, "waiting": 4}


def test_a_failing_item_is_retried_later_and_does_not_block_the_others(tmp_path: Path) -> None:
    store = AutomationStore(tmp_path / "echo.sqlite", Echo())
    store.apply([event(1), event(2), event(3)])
    sent: list[str] = []

    async def deliver(item: OutboxItem) -> str:
        if item.body["id"] == "e1":
            raise ValueError("malformed")
        if item.body["id"] == "e2" and item.attempts == 0:
            raise RetryLater("receiver down")
        sent.append(item.key)
        return "ok"

    clock = [NOW]
    loop = AutomationLoop(store, None, {"note": deliver}, lambda: clock[0])
    asyncio.run(loop.step())
    assert sent == ["event:e3", "minute:0900"]
    assert loop.stats.retries == 2
    # Nothing is due again before its backoff; after it, e2 goes through and e1 keeps failing
    asyncio.run(loop.step())
    assert sent == ["event:e3", "minute:0900"]
    clock[0] = NOW + timedelta(minutes=1)
    asyncio.run(loop.step())
    assert "event:e2" in sent and "event:e1" not in sent
    assert store.outbox_counts()["waiting"] == 1
