"""Connecting to NATS as a principal, with every wait bounded, and running async code from sync
code."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
from nats.aio.client import Client

from ticketing.nats.roles import inbox_prefix
from ticketing.nats.server import EmbeddedNats
from ticketing.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class NatsUnavailableError(RuntimeError):
    """No NATS server is configured or reachable."""


@dataclass(frozen=True)
class NatsEndpoint:
    """Where NATS is and the user of each principal (`None`: the server needs no credentials)."""

    url: str
    credentials: dict[str, dict[str, str]] | None = None

    def user_for(self, principal: str) -> dict[str, str]:
        if self.credentials is None:
            return {}
        if principal not in self.credentials:
            raise NatsUnavailableError(f"no NATS credentials for principal {principal!r}")
        entry = self.credentials[principal]
        return {"user": entry["user"], "password": entry["password"]}


def resolve_endpoint(settings: Settings) -> NatsEndpoint:
    """`NATS_URL` (+ `TICKETING_NATS_CREDENTIALS`) if set, else this home's embedded server."""
    if settings.nats_url:
        credentials = None
        if settings.nats_credentials:
            credentials = json.loads(settings.nats_credentials.read_text())
        return NatsEndpoint(settings.nats_url, credentials)
    embedded = EmbeddedNats(settings.home)
    url = embedded.running_url()
    if url is None:
        raise NatsUnavailableError(
            f"no NATS server is running for {settings.home}: start `ticketing serve` or "
            "`ticketing run nats`, or set NATS_URL"
        )
    return NatsEndpoint(url, json.loads(embedded.credentials_path.read_text()))


@dataclass
class ConnectionEvents:
    """What the client told us: errors (permission violations included) and disconnections."""

    errors: list[Exception] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def permission_denied(self, subject: str) -> bool:
        # nats-py lower-cases protocol error text, so compare case-insensitively.
        needle = f'"{subject}"'.lower()
        return any(
            "permissions violation" in str(e).lower() and needle in str(e).lower()
            for e in self.errors
        )


_PRINCIPALS: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()


def principal_of(nc: Client) -> str:
    """The principal a connection made by `connect` authenticated as."""
    return _PRINCIPALS[nc]


async def connect(
    endpoint: NatsEndpoint,
    principal: str,
    *,
    name: str,
    connect_timeout: float = 2.0,
    reconnect_forever: bool = True,
    events: ConnectionEvents | None = None,
) -> Client:
    """Connect as `principal` (its replies under its own inbox prefix); long-running processes
    reconnect forever, tools give up quickly."""
    seen = events or ConnectionEvents()

    async def on_error(error: Exception) -> None:
        seen.errors.append(error)
        del seen.errors[:-50]
        log.debug("nats error (%s): %s", name, error)

    async def on_disconnected() -> None:
        seen.connected.clear()
        log.info("%s: disconnected from NATS", name)

    async def on_reconnected() -> None:
        seen.connected.set()
        log.info("%s: reconnected to NATS", name)

    async def on_closed() -> None:
        seen.connected.clear()

    try:
        client = await asyncio.wait_for(
            nats.connect(
                endpoint.url,
                name=name,
                connect_timeout=max(1, int(connect_timeout)),
                allow_reconnect=True,
                reconnect_time_wait=0.25,
                max_reconnect_attempts=-1 if reconnect_forever else 3,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                closed_cb=on_closed,
                inbox_prefix=inbox_prefix(principal),
                **endpoint.user_for(principal),
            ),
            timeout=connect_timeout + 1,
        )
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise NatsUnavailableError(f"cannot connect to NATS at {endpoint.url}: {error}") from error
    seen.connected.set()
    _PRINCIPALS[client] = principal
    return client


class LoopThread:
    """One event-loop thread for sync callers (click, eventsourcing) of async nats-py."""

    def __init__(self, name: str = "nats-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        async def wrapper() -> T:
            return await factory()

        return self.run(wrapper(), timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
