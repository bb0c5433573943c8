"""The relay: publishes every stored event to JetStream exactly once and in store order.

The notification log is the outbox. The relay reads it in order, publishes in pipelined batches
with `Nats-Expected-Last-Sequence` (so nothing can be stored out of order or twice) and
`Nats-Msg-Id` (dedup as a second guard), and after any failure or restart resumes from the last
message actually in the stream: the stream itself is the relay's position."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from projections.payloads import PUBLISHED_TOPICS, stored_payload
from ticketing.domain.events import AGGREGATE_KIND_OF, PUBLISHED_EVENT_TYPES
from ticketing.nats.roles import STREAM
from ticketing.store.application import TicketingApplication

log = logging.getLogger(__name__)

_KIND_OF_TOPIC = {get_topic(cls): AGGREGATE_KIND_OF[cls.__name__] for cls in PUBLISHED_EVENT_TYPES}
NOTIFICATION_HEADER = "Ticketing-Notification-Id"
TYPE_HEADER = "Ticketing-Event-Type"
VERSION_HEADER = "Ticketing-Aggregate-Version"
DUPLICATE_WINDOW_S = 120.0


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=["ticketing.events.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        description="Every ticketing event, in event-store order",
    )


def subject_for(topic: str, aggregate_id: str) -> str:
    return f"ticketing.events.{_KIND_OF_TOPIC[topic]}.{aggregate_id}"


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    restarts: int = 0
    position: int = 0
    stream_sequence: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)
    failing_since: float | None = None
    """Since when publishing has failed (epoch seconds; None once a batch goes through)."""
    stream_rebuilds: int = 0
    """Times the stream was found with a hole and published again from the store."""


class Relay:
    """Follows the event store's notification log and publishes it to the TICKETING stream."""

    def __init__(
        self,
        app: TicketingApplication,
        nc: Client,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        ack_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=ack_timeout)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.stats = RelayStats()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def ensure_stream(self) -> None:
        try:
            await self.js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(stream_config())

    async def resume(self) -> None:
        """Take the position from the stream: its last sequence and that message's
        notification id. A stream that lost messages is made again from the store first."""
        await self.repair_stream()
        last_seq, position = await last_published_position(self.js)
        self.stats.stream_sequence = last_seq
        self.stats.position = position

    async def repair_stream(self) -> bool:
        """Sequence n is always the store's n-th published event, so a stream with a hole (a
        nats-server that dropped or reset messages after its disk filled) is deleted and
        published again from the store: the same messages at the same sequences, which the
        projectors' positions still match. Returns whether it had to."""
        state = (await self.js.stream_info(STREAM)).state
        complete = state.messages == state.last_seq and (not state.messages or state.first_seq == 1)
        if complete:
            return False
        log.error(
            "relay: stream %s lost messages (holds %s of sequences 1..%s, first %s); "
            "publishing it again from the event store",
            STREAM,
            state.messages,
            state.last_seq,
            state.first_seq,
        )
        await self.js.delete_stream(STREAM)
        await self.js.add_stream(stream_config())
        self.stats.stream_rebuilds += 1
        return True

    async def run(self) -> None:
        """Publish until `stop()`; on any NATS failure wait briefly, re-read the stream, go on."""
        while not self._stopping.is_set():
            try:
                await self.ensure_stream()
                await self.resume()
                await self._follow()
            except (TimeoutError, nats.errors.Error, OSError) as error:
                self.stats.restarts += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                if self.stats.failing_since is None:
                    self.stats.failing_since = time.time()
                log.warning("relay: %s; resuming from the stream", self.stats.last_error)
                await self._sleep(0.5)

    async def run_until_caught_up(self) -> int:
        """Publish everything stored so far, then return the position (for tools and tests)."""
        await self.ensure_stream()
        await self.resume()
        while await self.publish_next_batch():
            pass
        return self.stats.position

    async def _follow(self) -> None:
        while not self._stopping.is_set():
            if not await self.publish_next_batch():
                self.stats.failing_since = None  # caught up: nothing is failing
                await self._sleep(self.poll_interval)

    async def publish_next_batch(self) -> bool:
        notifications = await asyncio.to_thread(self._read_after, self.stats.position)
        if not notifications:
            return False
        await self._publish(notifications)
        return True

    def _read_after(self, position: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=position + 1,
            limit=self.batch_size,
            topics=PUBLISHED_TOPICS,
            inclusive_of_start=True,
        )

    async def _publish(self, notifications: Sequence[Notification]) -> None:
        expected = self.stats.stream_sequence
        futures = []
        for notification in notifications:
            subject, payload, headers = self.message_for(notification)
            headers["Nats-Expected-Last-Sequence"] = str(expected)
            futures.append(await self.js.publish_async(subject, payload, headers=headers))
            expected += 1
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=self.ack_timeout)
        self.stats.stream_sequence = acks[-1].seq
        self.stats.position = notifications[-1].id
        self.stats.published += len(acks)
        self.stats.batches += 1
        self.stats.failing_since = None

    def message_for(self, notification: Notification) -> tuple[str, bytes, dict[str, str]]:
        payload = stored_payload(
            self.app,
            notification.topic,
            notification.originator_id,
            notification.originator_version,
            notification.state,
        )
        payload["notification_id"] = notification.id
        subject = subject_for(notification.topic, payload["aggregate_id"])
        headers = {
            "Nats-Msg-Id": f"{payload['aggregate_id']}:{payload['version']}",
            TYPE_HEADER: payload["type"],
            NOTIFICATION_HEADER: str(notification.id),
            VERSION_HEADER: str(payload["version"]),
        }
        return subject, json.dumps(payload, separators=(",", ":")).encode(), headers

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


async def last_published_position(js: JetStreamContext) -> tuple[int, int]:
    """(stream last sequence, notification id of that message) — (0, 0) for an empty stream."""
    info = await js.stream_info(STREAM)
    if not info.state.messages:
        return info.state.last_seq, 0
    message = await js.get_msg(STREAM, info.state.last_seq)
    return info.state.last_seq, int((message.headers or {}).get(NOTIFICATION_HEADER, 0))
