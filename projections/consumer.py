"""The projector runner: a durable pull consumer feeding a projection store exactly once.

Each projection store writes its rows and the stream sequence it has reached in ONE
transaction. The runner skips anything at or below that position (redeliveries after a crash
between commit and ack) and acks after the commit. The store's position is the truth: when the
durable consumer is ahead of it (the projection was rebuilt or deleted) or a gap appears, the
consumer is recreated to start right after the position.

An event the store cannot apply (a poison event, or a full disk) is never skipped: the events
before it are applied and acknowledged, it is named at once in the log and in the stats
(`last_error`, `failing_since`, `stuck_sequence`), and it is retried with a bounded exponential
backoff until it applies (after a fix and a restart, or when space comes back)."""

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

from projections.poison import ApplyFailure, apply_isolating, reason_of
from projections.stream_event import StreamEvent
from ticketing.nats.roles import STREAM

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5
LAST_RETRY_S = 30.0
"""A store that cannot apply an event retries it after 0.5 s, doubling up to every 30 s."""
TYPE_HEADER = "Ticketing-Event-Type"  # set by the relay on every message


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
    failing_since: float | None = None
    """When the projector stopped making progress (epoch seconds); None while healthy."""
    stuck_sequence: int | None = None
    """The stream sequence it cannot apply (None while healthy)."""
    stuck_event_type: str | None = None
    failed_attempts: int = 0
    """Attempts at the stuck event so far (0 while healthy)."""
    next_retry_s: float | None = None


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
            except Exception as error:  # never a silently dead task: report, back off, retry
                self._failed(f"{reason_of(error)}; retrying")
                log.exception("%s: %s", self.durable, self.stats.last_error)
                self._subscription = None
                await self._pause(self.stats.next_retry_s or FIRST_RETRY_S)

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
        """Apply what is new in one batch and ack it. Returns how many events were applied.

        An event the store cannot apply holds the batch there: the events before it are
        applied and acknowledged, and it is retried with backoff until it applies or the
        projector stops; nothing at or after it is acknowledged."""
        if not messages:
            return 0
        ordered = sorted(messages, key=lambda m: m.metadata.sequence.stream)
        fresh = [m for m in ordered if m.metadata.sequence.stream > self.stats.position]
        self.stats.skipped_redeliveries += len(ordered) - len(fresh)
        if fresh and not _contiguous(self.stats.position, fresh):
            log.warning(
                "%s: gap after %s; restarting the consumer", self.durable, self.stats.position
            )
            self._subscription = None
            await self._bind(force=True)
            return 0
        applied = 0
        while fresh:
            started = time.perf_counter()
            done, failure = await asyncio.to_thread(self._apply, fresh)
            if done:
                self.stats.last_commit_ms = (time.perf_counter() - started) * 1000
                self.stats.position = fresh[done - 1].metadata.sequence.stream
                self.stats.applied += done
                self.stats.batches += 1
                applied += done
            if failure is None:
                self._recovered()
                break
            if done:
                await fresh[done - 1].ack()  # AckPolicy.ALL: up to the last applied, no further
            self._stuck(failure)
            fresh = fresh[done:]
            await self._pause(self.stats.next_retry_s or FIRST_RETRY_S)
            if self._stopping.is_set():
                return applied
        await ordered[-1].ack()  # AckPolicy.ALL: acknowledges the whole batch
        self.stats.pending = ordered[-1].metadata.num_pending
        return applied

    def _apply(self, messages: Sequence[Msg]) -> tuple[int, ApplyFailure | None]:
        """Decode and apply in order; a message that is not an event fails like an event the
        store cannot apply, after the ones before it are applied."""
        events = _decode(messages)
        done, failure = apply_isolating(self.store, events)
        if failure is None and len(events) < len(messages):
            failure = _undecodable(messages[len(events)])
        return done, failure

    def _stuck(self, failure: ApplyFailure) -> None:
        first = self.stats.stuck_sequence != failure.sequence
        if first:
            self.stats.failed_attempts = 0
            self.stats.next_retry_s = FIRST_RETRY_S
        self.stats.stuck_sequence = failure.sequence
        self.stats.stuck_event_type = failure.event_type
        kind = "store unavailable at" if failure.environmental else "cannot apply"
        self._failed(f"{kind} {failure.describe()}")
        if first:
            log.error(
                "%s: %s; nothing after it is applied; retrying in %.1f s",
                self.durable,
                self.stats.last_error,
                self.stats.next_retry_s,
            )
        else:
            log.warning(
                "%s: still %s (attempt %d); retrying in %.1f s",
                self.durable,
                self.stats.last_error,
                self.stats.failed_attempts,
                self.stats.next_retry_s,
            )

    def _failed(self, message: str) -> None:
        """Count a failed attempt and set the next pause (0.5 s doubling to 30 s)."""
        self.stats.last_error = message
        if self.stats.failing_since is None:
            self.stats.failing_since = time.time()
            self.stats.next_retry_s = FIRST_RETRY_S
        elif self.stats.failed_attempts:
            self.stats.next_retry_s = min(
                LAST_RETRY_S, (self.stats.next_retry_s or FIRST_RETRY_S) * 2
            )
        self.stats.failed_attempts += 1

    def _recovered(self) -> None:
        if self.stats.failing_since is None:
            return
        log.warning(
            "%s: applied stream sequence %s after %d failed attempts; going on",
            self.durable,
            self.stats.stuck_sequence,
            self.stats.failed_attempts,
        )
        self.stats.failing_since = None
        self.stats.stuck_sequence = None
        self.stats.stuck_event_type = None
        self.stats.failed_attempts = 0
        self.stats.next_retry_s = None

    @property
    def caught_up(self) -> bool:
        """Everything published so far is applied (as of the last fetch), nothing failing."""
        return self.stats.pending == 0 and self.stats.failing_since is None

    @property
    def failing(self) -> bool:
        return self.stats.failing_since is not None

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
    """The events of `messages`, in their order, up to the first message that is not one."""
    events = []
    for message in messages:
        try:
            payload = json.loads(message.data)
        except ValueError:
            break
        if not isinstance(payload, dict):
            break
        events.append(StreamEvent(message.metadata.sequence.stream, payload, message.data))
    return events


def _undecodable(message: Msg) -> ApplyFailure:
    try:
        payload = json.loads(message.data)
        reason = f"TypeError: the message is JSON {type(payload).__name__}, not an event"
    except ValueError as error:
        reason = reason_of(error)
    event_type = (message.headers or {}).get(TYPE_HEADER) or "undecodable message"
    return ApplyFailure(message.metadata.sequence.stream, event_type, reason)


def _contiguous(position: int, messages: Sequence[Msg]) -> bool:
    expected = position + 1
    for message in messages:
        if message.metadata.sequence.stream != expected:
            return False
        expected += 1
    return True
