"""Long-running processes (`ticketing run …`): each runs alone, stops cleanly on SIGTERM/SIGINT,
and registers as a `nats.micro` service so `ticketing status` can find it and read its stats."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from nats.micro import add_service

from commands.nats_service import NatsCommandService
from projections.relay import Relay
from ticketing import __version__
from ticketing.bootstrap import build_application, build_command_service
from ticketing.nats_connect import connect, resolve_endpoint
from ticketing.nats_server import EmbeddedNats
from ticketing.settings import Settings

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
    server = EmbeddedNats(settings.home)
    url = await asyncio.to_thread(server.start)
    say(f"nats-server running at {url}; credentials in {server.credentials_path}")
    try:
        await stop.wait()
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
    await nc.drain()
    app.close()


async def command_service(
    settings: Settings, stop: asyncio.Event, say: Callable[[str], None]
) -> None:
    service = build_command_service(settings)
    nc = await connect(resolve_endpoint(settings), "command_service", name="ticketing-commands")
    server = NatsCommandService(service, nc, version=__version__)
    await server.start()
    say("command service answering ticketing.cmd.*")
    await stop.wait()
    await server.stop()
    await nc.drain()
    service.app.close()


async def _finish(task: asyncio.Task[Any], timeout: float) -> None:
    try:
        await asyncio.wait_for(task, timeout)
    except TimeoutError:
        log.warning("%s did not stop within %s s", task.get_name(), timeout)
