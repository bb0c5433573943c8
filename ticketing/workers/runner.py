"""Runs an automation worker: a durable consumer feeding its store, and a loop that fires its
timers and delivers its outbox.

Timers only fire while the consumer is caught up with the stream: a clock must not judge a
ticket whose later events are still unread (after downtime the backlog is folded first, then
every missed deadline is judged against the whole history)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from nats.micro import add_service
from nats.micro.request import Request

from projections.consumer import Projector
from ticketing import __version__
from ticketing.clock import clock_from as clock_for
from ticketing.domain.errors import TicketingError
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.settings import Settings
from ticketing.workers.outbox import AutomationStore, OutboxItem, Worker

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


class RetryLater(Exception):  # noqa: N818 - a signal to the delivery loop
    """The receiver is unavailable or overloaded; the item stays queued and is retried."""


Deliver = Callable[[OutboxItem], Awaitable[str]]
"""Delivers one outbox item and returns the outcome to record; raises RetryLater to retry."""

MAX_BACKOFF = timedelta(minutes=5)


@dataclass
class DeliveryStats:
    delivered: int = 0
    retries: int = 0
    ticks: int = 0
    last_error: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)


class AutomationLoop:
    """Fires timers and delivers the outbox until stopped."""

    def __init__(
        self,
        store: AutomationStore,
        projector: Projector | None,
        deliverers: Mapping[str, Deliver],
        clock: Clock,
        *,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.projector = projector
        self.deliverers = deliverers
        self.clock = clock
        self.interval = interval
        self.stats = DeliveryStats()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except Exception as error:  # the loop must outlive any one bad item
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("automation step failed; continuing")
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                continue

    async def step(self) -> int:
        """One round: timers (if caught up), then every due outbox item. Returns deliveries."""
        now = self.clock()
        if self.projector is None or self.projector.caught_up:
            await asyncio.to_thread(self.store.tick, now)
            self.stats.ticks += 1
        delivered = 0
        for item in await asyncio.to_thread(self.store.due, now):
            delivered += await self._deliver(item)
        return delivered

    async def _deliver(self, item: OutboxItem) -> int:
        deliver = self.deliverers.get(item.kind)
        if deliver is None:
            await asyncio.to_thread(
                self.store.delivered, item, f"dropped: no deliverer for {item.kind}", self.clock()
            )
            return 0
        try:
            outcome = await deliver(item)
        except Exception as error:  # a bad item must not stop the ones behind it
            if not isinstance(error, RetryLater):
                log.exception("delivering %s failed; will retry", item.key)
                error = RetryLater(f"{type(error).__name__}: {error}")
            backoff = min(MAX_BACKOFF, timedelta(seconds=2 ** min(item.attempts, 8)))
            jitter = timedelta(seconds=random.uniform(0, backoff.total_seconds() / 2))
            await asyncio.to_thread(
                self.store.retry_later, item, str(error), self.clock() + backoff + jitter
            )
            self.stats.retries += 1
            self.stats.last_error = str(error)
            return 0
        await asyncio.to_thread(self.store.delivered, item, outcome, self.clock())
        self.stats.delivered += 1
        key = outcome.split(":", 1)[0]
        self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
        return 1


class WorkerConfigError(TicketingError):
    """A worker's configuration file is unusable: its process ends with one error line
    (`error: <code>: <message>`) instead of running on a guess."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def configured(code: str, load: Callable[[], T], *errors: type[Exception]) -> T:
    """What `load` reads of a worker's configuration; one of `errors` becomes a
    WorkerConfigError with `code`, so the process ends with one error line."""
    try:
        return load()
    except errors as error:
        raise WorkerConfigError(code, str(error)) from error


async def configured_or_idle(
    path: Path | None,
    load: Callable[[Path], T],
    *errors: type[Exception],
    code: str,
    stop: asyncio.Event,
    say: Callable[[str], None],
    missing: str,
) -> T | None:
    """The start of a worker that has nothing to do without its file: without one it says
    `missing` and idles until stopped (then None); a bad file is a WorkerConfigError."""
    if path is None:
        say(missing)
        await stop.wait()
        return None
    return configured(code, lambda: load(path), *errors)


def clock_from(settings: Settings) -> Clock:
    """The wall clock, or for drills and tests the instant in `TICKETING_CLOCK_FILE` (the
    command service reads the same clock for its time window)."""
    return clock_for(settings.extra_env)


async def run_automation(
    settings: Settings,
    stop: asyncio.Event,
    say: Callable[[str], None],
    *,
    worker: Worker,
    deliverers: Callable[[Any], Mapping[str, Deliver]],
    description: str,
    interval: float = 0.5,
) -> None:
    """The body of `ticketing run <worker>`: consume, fold, fire timers, deliver, report."""
    store = AutomationStore(settings.home / "automation" / f"{worker.name}.sqlite", worker)
    nc = await connect(resolve_endpoint(settings), worker.name, name=f"ticketing-{worker.name}")
    projector = Projector(nc, store, worker.name)
    loop = AutomationLoop(store, projector, deliverers(nc), clock_from(settings), interval=interval)

    def stats(_endpoint: Any) -> dict[str, Any]:
        # The consumer's health (last_error, failing_since, stuck_sequence) is the process's;
        # a delivery's last failure is reported beside it, never over it.
        return {
            **vars(loop.stats),
            **vars(projector.stats),
            "delivery_last_error": loop.stats.last_error,
            "outbox": store.outbox_counts(),
        }

    async def on_position(request: Request) -> None:
        await request.respond(json.dumps(stats(None), default=str).encode())

    micro = await add_service(
        nc,
        name=f"ticketing-{worker.name}",
        version=__version__,
        description=description,
        stats_handler=stats,
    )
    group = micro.add_group(name=f"ticketing.query.{worker.name}")
    await group.add_endpoint(name="position", handler=on_position)
    say(f"{worker.name}: {description}; state in {store.path}")
    consuming = asyncio.create_task(projector.run(), name=worker.name)
    delivering = asyncio.create_task(loop.run(stop), name=f"{worker.name}-delivery")
    await stop.wait()
    projector.stop()
    for task in (consuming, delivering):
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            log.warning("%s did not stop in time", task.get_name())
    await micro.stop()
    await nc.close()
    store.close()
