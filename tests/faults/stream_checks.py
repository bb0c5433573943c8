"""The end-of-scenario invariant for fault tests: the TICKETING stream is the event store.

After the relay has caught up, stream sequences 1..N carry exactly the stored domain events in
store order (one message each, no repeated `Nats-Msg-Id`), and every acknowledged reply's events
are in the store."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from commands.replies import Reply
from projections.payloads import PUBLISHED_TOPICS
from projections.relay import NOTIFICATION_HEADER, subject_for
from ticketing.nats.connect import NatsUnavailableError, connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication

STORE_SCAN_LIMIT = 10_000_000
FETCH_BATCH = 1_000


@dataclass(frozen=True)
class Entry:
    """One event as the stream must carry it: where it sits in the store and how it is named."""

    notification_id: int
    msg_id: str
    subject: str


@dataclass(frozen=True)
class StreamSnapshot:
    first_seq: int
    last_seq: int
    messages: int
    sequences: list[int]
    entries: list[Entry]


def store_entries(app: TicketingApplication) -> list[Entry]:
    """Every published-kind event in the store, in notification order."""
    notifications = app.recorder.select_notifications(
        start=1, limit=STORE_SCAN_LIMIT, topics=PUBLISHED_TOPICS
    )
    return [
        Entry(
            n.id,
            f"{n.originator_id}:{n.originator_version}",
            subject_for(n.topic, str(n.originator_id)),
        )
        for n in notifications
    ]


def last_store_notification_id(app: TicketingApplication) -> int:
    entries = app.recorder.select_notifications(
        start=1, limit=STORE_SCAN_LIMIT, topics=PUBLISHED_TOPICS
    )
    return entries[-1].id if entries else 0


async def _admin(home: Path, name: str) -> Any:
    return await connect(
        resolve_endpoint(Settings(home=home)),
        "admin",
        name=name,
        connect_timeout=2.0,
        reconnect_forever=False,
    )


async def _stream_position(home: Path) -> tuple[int, int, int] | None:
    """(messages, last sequence, notification id of the last message), None if unknown."""
    try:
        nc = await _admin(home, "fault-test-position")
    except NatsUnavailableError:
        return None
    try:
        js = nc.jetstream(timeout=2)
        info = await js.stream_info(STREAM)
        if not info.state.messages:
            return 0, info.state.last_seq, 0
        message = await js.get_msg(STREAM, info.state.last_seq)
        position = int((message.headers or {}).get(NOTIFICATION_HEADER, 0))
        return info.state.messages, info.state.last_seq, position
    except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
        return None
    finally:
        await nc.close()


def stream_position(home: Path) -> tuple[int, int, int] | None:
    """(messages, last sequence, last message's notification id) of TICKETING, or None."""
    try:
        return asyncio.run(_stream_position(home))
    except NatsUnavailableError:  # no server.json (the server is down)
        return None


def wait_for_relay(home: Path, app: TicketingApplication, timeout: float = 60.0) -> int:
    """Wait until the stream's last message is the store's last published event."""
    target = last_store_notification_id(app)
    deadline = time.monotonic() + timeout
    seen: tuple[int, int, int] | None = None
    while True:
        seen = stream_position(home)
        if seen is not None and seen[2] == target:
            return target
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the relay did not catch up within {timeout} s: the store's last published "
                f"notification is {target}, the stream (messages, last seq, last notification "
                f"id) is {seen}; see the relay log and nats/server.log under {home}"
            )
        time.sleep(0.1)


async def _read_stream(home: Path) -> StreamSnapshot:
    nc = await _admin(home, "fault-test-reader")
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(STREAM)
        sub = await js.pull_subscribe(
            "ticketing.events.>",
            stream=STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                headers_only=True,
                inactive_threshold=30.0,
            ),
        )
        sequences: list[int] = []
        entries: list[Entry] = []
        try:
            while len(sequences) < info.state.messages:
                try:
                    batch = await sub.fetch(FETCH_BATCH, timeout=5)
                except TimeoutError:
                    break  # fewer messages than the stream info said: reported by the caller
                for msg in batch:
                    headers = msg.headers or {}
                    sequences.append(msg.metadata.sequence.stream)
                    entries.append(
                        Entry(
                            int(headers.get(NOTIFICATION_HEADER, -1)),
                            headers.get("Nats-Msg-Id", ""),
                            msg.subject,
                        )
                    )
        finally:
            await sub.unsubscribe()
        return StreamSnapshot(
            info.state.first_seq, info.state.last_seq, info.state.messages, sequences, entries
        )
    finally:
        await nc.close()


def read_stream(home: Path) -> StreamSnapshot:
    return asyncio.run(_read_stream(home))


def _first_difference(left: Sequence[Entry], right: Sequence[Entry]) -> str:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return f"first difference at stream seq {index + 1}: stream {a}, store {b}"
    return f"one is a prefix of the other (stream {len(left)}, store {len(right)})"


def check_stream_is_store(home: Path, app: TicketingApplication) -> StreamSnapshot:
    """Stream seq 1..N == the store's domain events, one each, in store order."""
    expected = store_entries(app)
    snapshot = read_stream(home)
    problems: list[str] = []
    if snapshot.first_seq != 1 or snapshot.messages != snapshot.last_seq:
        problems.append(
            f"stream holds {snapshot.messages} messages, seq {snapshot.first_seq}.."
            f"{snapshot.last_seq} (expected a gapless 1..N)"
        )
    if snapshot.sequences != list(range(1, len(snapshot.sequences) + 1)):
        problems.append("the consumer did not read seq 1..N in order")
    doubled = [(i, n) for i, n in Counter(e.msg_id for e in snapshot.entries).items() if n > 1]
    if doubled:
        problems.append(f"{len(doubled)} Nats-Msg-Id values repeat, e.g. {doubled[:5]}")
    stream_ids = [e.notification_id for e in snapshot.entries]
    store_ids = [e.notification_id for e in expected]
    if stream_ids != store_ids:
        missing = sorted(set(store_ids) - set(stream_ids))
        extra = sorted(set(stream_ids) - set(store_ids))
        problems.append(
            f"notification ids differ: stream {len(stream_ids)}, store {len(store_ids)}; "
            f"missing from stream {len(missing)} {missing[:10]}, not in store {len(extra)} "
            f"{extra[:10]}, out of order: {stream_ids != sorted(stream_ids)}; "
            + _first_difference(snapshot.entries, expected)
        )
    elif snapshot.entries != expected:
        problems.append(
            "message ids or subjects differ: " + _first_difference(snapshot.entries, expected)
        )
    assert not problems, "stream != store:\n" + "\n".join(problems) + f"\n(logs under {home})"
    return snapshot


def check_acknowledged_in_store(app: TicketingApplication, replies: Iterable[Reply]) -> None:
    """Every event an ok reply announced is stored at that version with that type."""
    announced: dict[str, list[dict[str, Any]]] = {}
    for reply in replies:
        if reply.ok:
            for event in reply.events:
                announced.setdefault(event["aggregate_id"], []).append(event)
    lost: list[str] = []
    for aggregate_id, events in announced.items():
        stored = {e.originator_version: e for e in app.events.get(UUID(aggregate_id))}
        for event in events:
            found = stored.get(event["version"])
            if found is None or type(found).__name__ != event["type"]:
                lost.append(f"{event['type']} {aggregate_id} v{event['version']}")
    assert not lost, f"{len(lost)} acknowledged events are not stored: {lost[:10]}"


def check_invariant(
    home: Path, app: TicketingApplication, replies: Iterable[Reply] = (), timeout: float = 60.0
) -> StreamSnapshot:
    """Wait for the relay, then: stream == store, and every acknowledged event is stored."""
    check_acknowledged_in_store(app, replies)
    wait_for_relay(home, app, timeout)
    return check_stream_is_store(home, app)
