"""The projector runner: a durable pull consumer feeding a projection store exactly once.

Each projection store writes its rows and the stream sequence it has reached in ONE
transaction. The runner skips anything at or below that position (redeliveries after a crash
between commit and ack) and acks after the commit. The store's position is the truth: when the
durable consumer is ahead of it (the projection was rebuilt or deleted) or a gap appears, the
consumer is recreated to start right after the position."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from projections.stream_event import StreamEvent
from ticketing.nats_roles import STREAM

log = logging.getLogger(__name__)


class ProjectionStore(Protocol):
    """A projection that can apply a batch and its position atomically."""

    def position(self) -> int: ...

    def apply(self, events: Sequence[StreamEvent]) -> None: ...


@dataclass
class ProjectorStats:
    applied: int = 0
    batches: int = 0
    skipped_redeliveries: int = 0
    consumer_resets: int = 0
    position: int = 0
    last_error: str | None = None
    last_commit_ms: float = 0.0
    pending: int | None = None
    """Messages the stream holds beyond what was fetched (0 when caught up; None: unknown)."""
    started_at: float = field(default_factory=time.time)


class Projector:
    """Runs one projection store from the TICKETING stream through a durable consumer."""

    def __init__(
        self,
        nc: Client,
        store: ProjectionStore,
        durable: str,
        *,
        batch_size: int = 1000,
        fetch_timeout: float = 0.5,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=5)
        self.store = store
        self.durable = durable
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.stats = ProjectorStats()
        self._stopping = asyncio.Event()
        self._subscription: Any = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `stop()`; NATS outages are waited out, never fatal."""
        self.stats.position = await asyncio.to_thread(self.store.position)
        while not self._stopping.is_set():
            try:
                if self._subscription is None:
                    await self._bind()
                await self._consume()
            except (nats.errors.Error, OSError) as error:
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.warning("%s: %s; retrying", self.durable, self.stats.last_error)
                self._subscription = None
                await self._pause(0.5)

    async def _consume(self) -> None:
        """Pipelined: the next batch is fetched while the current one commits (the store
        releases the GIL in SQLite and DuckDB), then acked once committed."""
        subscription = self._subscription
        next_fetch = asyncio.create_task(self._fetch(subscription))
        try:
            while not self._stopping.is_set() and self._subscription is subscription:
                messages = await next_fetch
                next_fetch = asyncio.create_task(self._fetch(subscription))
                await self.process(messages)
        finally:
            next_fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, nats.errors.Error, OSError):
                await next_fetch

    async def step(self) -> int:
        """Fetch one batch, apply what is new, ack (unpipelined; for tools and tests)."""
        return await self.process(await self._fetch(self._subscription))

    async def _fetch(self, subscription: Any) -> list[Msg]:
        try:
            messages: list[Msg] = await subscription.fetch(
                self.batch_size, timeout=self.fetch_timeout
            )
        except TimeoutError:  # idle: nats-py raises its own TimeoutError or asyncio's
            self.stats.pending = 0
            return []
        return messages

    async def process(self, messages: Sequence[Msg]) -> int:
        """Apply what is new in one batch and ack it. Returns how many events were applied."""
        if not messages:
            return 0
        events = _decode(messages)
        fresh = [e for e in events if e.sequence > self.stats.position]
        self.stats.skipped_redeliveries += len(events) - len(fresh)
        if fresh and not _contiguous(self.stats.position, fresh):
            log.warning(
                "%s: gap after %s; restarting the consumer", self.durable, self.stats.position
            )
            self._subscription = None
            await self._bind(force=True)
            return 0
        if fresh:
            started = time.perf_counter()
            await asyncio.to_thread(self.store.apply, fresh)
            self.stats.last_commit_ms = (time.perf_counter() - started) * 1000
            self.stats.position = fresh[-1].sequence
            self.stats.applied += len(fresh)
            self.stats.batches += 1
        await messages[-1].ack()  # AckPolicy.ALL: acknowledges the whole batch
        self.stats.pending = messages[-1].metadata.num_pending
        return len(fresh)

    @property
    def caught_up(self) -> bool:
        """Everything published so far is applied (as of the last fetch)."""
        return self.stats.pending == 0

    async def _bind(self, *, force: bool = False) -> None:
        position = self.stats.position
        try:
            info = await self.js.consumer_info(STREAM, self.durable)
            ahead = info.ack_floor is not None and (info.ack_floor.stream_seq or 0) > position
            if force or ahead:
                await self.js.delete_consumer(STREAM, self.durable)
                self.stats.consumer_resets += 1
                raise nats.js.errors.NotFoundError
        except nats.js.errors.NotFoundError:
            await self.js.add_consumer(STREAM, self._consumer_config(position))
        self._subscription = await self.js.pull_subscribe_bind(durable=self.durable, stream=STREAM)

    def _consumer_config(self, position: int) -> ConsumerConfig:
        start = (
            {"deliver_policy": DeliverPolicy.ALL}
            if position == 0
            else {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1}
        )
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.ALL,
            ack_wait=60,
            # Projections must see every event in order: a failing event is retried (and
            # logged) rather than skipped, so there is no delivery limit.
            max_deliver=-1,
            max_ack_pending=self.batch_size * 4,
            filter_subject="ticketing.events.>",
            **start,
        )

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return


def _decode(messages: Sequence[Msg]) -> list[StreamEvent]:
    events = [StreamEvent(m.metadata.sequence.stream, json.loads(m.data), m.data) for m in messages]
    events.sort(key=lambda e: e.sequence)
    return events


def _contiguous(position: int, events: Sequence[StreamEvent]) -> bool:
    expected = position + 1
    for event in events:
        if event.sequence != expected:
            return False
        expected += 1
    return True
