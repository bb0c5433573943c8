"""Long-running processes (`ticketing run …`): each runs alone, stops cleanly on SIGTERM/SIGINT,
and registers as a `nats.micro` service so `ticketing status` can find it and read its stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nats.micro import add_service
from nats.micro.request import Request
from pydantic import ValidationError

from commands.nats_service import NatsCommandService
from commands.replies import Reply
from projections.consumer import Projector
from projections.relay import Relay
from ticketing import __version__
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.nats.health import store_watch
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_application, build_command_service, load_principals
from ticketing.settings import Settings, analytics_path, analytics_snapshot_path, queue_path

log = logging.getLogger(__name__)


def run_process(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` until SIGTERM or SIGINT sets `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


async def nats_server(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    server = EmbeddedNats(settings.home, settings.principals_path)
    url = await asyncio.to_thread(server.start)
    say(f"nats-server running at {url}; credentials in {server.credentials_path}")
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if not stop.is_set() and store_watch(server).needs_restart():
                say("nats-server store writes failed (disk full?) and there is room again; restart")
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
    finally:
        await asyncio.to_thread(server.stop)


async def relay(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    app = build_application(settings)
    nc = await connect(resolve_endpoint(settings), "relay", name="ticketing-relay")
    worker = Relay(app, nc)
    micro = await add_service(
        nc,
        name="ticketing-relay",
        version=__version__,
        description="Publishes the event store to the TICKETING stream",
        stats_handler=lambda _endpoint: vars(worker.stats),
    )
    say("relay publishing the event store to stream TICKETING")
    task = asyncio.create_task(worker.run())
    await stop.wait()
    worker.stop()
    await _finish(task, 10)
    await micro.stop()
    await nc.close()
    app.close()


async def command_service(
    settings: Settings, stop: asyncio.Event, say: Callable[[str], None]
) -> None:
    service = build_command_service(settings)
    nc = await connect(resolve_endpoint(settings), "command_service", name="ticketing-commands")
    server = NatsCommandService(
        service, nc, principals=load_principals(settings), version=__version__
    )
    await server.start()
    say("command service answering ticketing.cmd.<principal>.<command>")
    await stop.wait()
    await server.stop()
    await nc.drain()
    service.app.close()


async def _finish(task: asyncio.Task[Any], timeout: float) -> None:
    try:
        await asyncio.wait_for(task, timeout)
    except TimeoutError:
        log.warning("%s did not stop within %s s", task.get_name(), timeout)


async def queue_projector(
    settings: Settings, stop: asyncio.Event, say: Callable[[str], None]
) -> None:
    from projections.queue.queries import QueueQuery, list_queue, open_reader, queue_position
    from projections.queue.store import QueueStore

    path = queue_path(settings)
    store = QueueStore(path)
    nc = await connect(
        resolve_endpoint(settings), "queue-projector", name="ticketing-queue-projector"
    )
    projector = Projector(nc, store, "queue-projector")

    def answer_query(data: bytes) -> dict[str, Any]:
        try:
            query = QueueQuery.model_validate_json(data or b"{}")
        except ValidationError as error:
            return Reply.from_validation(error).as_dict()
        reader = open_reader(path)
        try:
            return {
                "ok": True,
                "position": queue_position(reader),
                "tickets": list_queue(reader, query),
            }
        finally:
            reader.close()

    async def on_query(request: Request) -> None:
        result = await asyncio.to_thread(answer_query, request.data)
        await request.respond(json.dumps(result).encode())

    micro = await _register(nc, "ticketing-queue-projector", projector)
    group = micro.add_group(name="ticketing.query", queue_group="ticketing-queue")
    await group.add_endpoint(name="queue", handler=on_query)
    say(f"queue projector writing {path}; answering ticketing.query.queue")
    await _project_until(stop, projector)
    await micro.stop()
    await nc.close()  # not drain: a pull subscription's queue is never joined
    store.close()


async def analytics_projector(
    settings: Settings, stop: asyncio.Event, say: Callable[[str], None]
) -> None:
    from projections.analytics.store import AnalyticsStore

    store = SerializedStore(AnalyticsStore(analytics_path(settings)))
    snapshot = analytics_snapshot_path(settings)
    nc = await connect(
        resolve_endpoint(settings), "analytics-projector", name="ticketing-analytics-projector"
    )
    projector = Projector(nc, store, "analytics-projector", batch_size=5000)
    micro = await _register(nc, "ticketing-analytics-projector", projector)
    say(f"analytics projector writing {analytics_path(settings)}; analysts read {snapshot}")
    publisher = asyncio.create_task(_publish_snapshots(store, snapshot, stop))
    await _project_until(stop, projector)
    await _finish(publisher, 10)
    await micro.stop()
    await nc.close()  # not drain: a pull subscription's queue is never joined
    store.close()


async def sla_monitor(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    from ticketing.workers import sla_monitor as process

    await process.run(settings, stop, say)


async def triggers(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    from ticketing.workers import trigger_worker as process

    await process.run(settings, stop, say)


async def router(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    from ticketing.workers import router as process

    await process.run(settings, stop, say)


async def notifier(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    from ticketing.workers.notify import process

    await process.run(settings, stop, say)


SNAPSHOT_INTERVAL_S = 1.0
"""Analysts see data at most this much (plus one batch) behind the projector."""


class SerializedStore:
    """Lets the projector and the snapshot publisher share one DuckDB connection safely."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.published_position = -1

    def position(self) -> int:
        with self.lock:
            return int(self.inner.position())

    def apply(self, events: Any) -> None:
        with self.lock:
            self.inner.apply(events)

    def publish_if_changed(self, target: Path) -> bool:
        with self.lock:
            position = int(self.inner.position())
            if position == self.published_position and target.exists():
                return False
            self.inner.publish_snapshot(target)
            self.published_position = position
            return True

    def close(self) -> None:
        with self.lock:
            self.inner.close()


async def _publish_snapshots(store: SerializedStore, target: Path, stop: asyncio.Event) -> None:
    while True:
        try:
            await asyncio.to_thread(store.publish_if_changed, target)
        except Exception:
            log.exception("publishing the analytics snapshot failed; will retry")
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), SNAPSHOT_INTERVAL_S)
        except TimeoutError:
            continue


async def _register(nc: Any, name: str, projector: Projector) -> Any:
    """A micro service per projector: `ticketing status` reads its position from the stats."""

    async def on_position(request: Request) -> None:
        await request.respond(json.dumps(vars(projector.stats)).encode())

    micro = await add_service(
        nc,
        name=name,
        version=__version__,
        description=f"{name}: a projection of the TICKETING stream",
        stats_handler=lambda _endpoint: vars(projector.stats),
    )
    group = micro.add_group(name=f"ticketing.query.{projector.durable}")
    await group.add_endpoint(name="position", handler=on_position)
    return micro


async def _project_until(stop: asyncio.Event, projector: Projector) -> None:
    task = asyncio.create_task(projector.run(), name=projector.durable)
    await stop.wait()
    projector.stop()
    await _finish(task, 15)
