"""Clients for backend services: issue commands over NATS with bounded waits and typed errors.

`TicketingClient` is async; `SyncTicketingClient` wraps it for threaded code. A failed reply
raises the error class for its code; `execute(..., raise_errors=False)` returns the reply."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats.errors
from nats.aio.client import Client

from commands.models import Command
from commands.replies import Reply
from ticketing.nats.connect import (
    ConnectionEvents,
    LoopThread,
    NatsEndpoint,
    NatsUnavailableError,
    connect,
    principal_of,
)
from ticketing.nats.roles import command_subject


class ClientError(Exception):
    """Base of every error the client raises."""

    code = "client_error"


class ServiceUnavailableError(ClientError):
    """NATS is unreachable or no command service is running."""

    code = "service_unavailable"


class CommandTimeoutError(ClientError):
    """No reply in time; the command may or may not have run: retry with the same id."""

    code = "timeout"


class ForbiddenError(ClientError):
    """These credentials may not publish this command."""

    code = "forbidden"


class CommandRejectedError(ClientError):
    """The service answered with an error; `code`, `message` and `details` say which."""

    def __init__(self, reply: Reply) -> None:
        assert reply.error is not None
        super().__init__(f"{reply.error.code}: {reply.error.message}")
        self.reply = reply
        self.code = reply.error.code
        self.message = reply.error.message
        self.details = reply.error.details


def _rejection(code: str, doc: str) -> type[CommandRejectedError]:
    name = "".join(part.title() for part in code.split("_")) + "Error"
    return type(name, (CommandRejectedError,), {"__doc__": doc})


ValidationFailedError = _rejection("validation_error", "The command is malformed.")
NotFoundError = _rejection("not_found", "Unknown ticket or account.")
AlreadyExistsError = _rejection("already_exists", "The account id is taken.")
InvalidTransitionError = _rejection("invalid_transition", "The status model forbids it.")
TicketClosedError = _rejection("ticket_closed", "Closed tickets are read-only.")
TimeOutOfOrderError = _rejection("time_out_of_order", "occurred_at before the latest change.")
VersionConflictError = _rejection("version_conflict", "expected_version is stale.")
DuplicateCommandIdError = _rejection("duplicate_command_id", "Command id used for another command.")
ActorForbiddenError = _rejection("forbidden", "The actor may not do this.")
StoreUnavailableError = _rejection("store_unavailable", "The event store failed.")

REJECTIONS: dict[str, type[CommandRejectedError]] = {
    "validation_error": ValidationFailedError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "invalid_transition": InvalidTransitionError,
    "ticket_closed": TicketClosedError,
    "time_out_of_order": TimeOutOfOrderError,
    "version_conflict": VersionConflictError,
    "duplicate_command_id": DuplicateCommandIdError,
    "forbidden": ActorForbiddenError,
    "store_unavailable": StoreUnavailableError,
}


def raise_for(reply: Reply) -> Reply:
    if reply.ok:
        return reply
    assert reply.error is not None
    raise REJECTIONS.get(reply.error.code, CommandRejectedError)(reply)


class TicketingClient:
    """Async client. Timeouts are per attempt; `retry_for` keeps retrying (same command id,
    so at most one effect) while the service is down or slow, for up to that many seconds."""

    def __init__(
        self,
        nc: Client,
        events: ConnectionEvents,
        *,
        principal: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.nc = nc
        self.events = events
        self.principal = principal or principal_of(nc)
        self.timeout = timeout

    @classmethod
    async def connect(
        cls, endpoint: NatsEndpoint, *, principal: str = "caller", timeout: float = 5.0
    ) -> TicketingClient:
        events = ConnectionEvents()
        try:
            nc = await connect(
                endpoint, principal, name="ticketing-client", reconnect_forever=True, events=events
            )
        except NatsUnavailableError as error:
            raise ServiceUnavailableError(str(error)) from error
        return cls(nc, events, principal=principal, timeout=timeout)

    async def close(self) -> None:
        await self.nc.close()

    async def execute(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        retry_for: float = 0.0,
        raise_errors: bool = True,
    ) -> Reply:
        # Unset fields stay unset (an explicit `agent=None` unassigns, a missing one keeps),
        # but the command id always travels so that retries are idempotent.
        data = command.model_dump(mode="json", exclude_unset=True)
        data["command_id"] = command.command_id
        payload = json.dumps(data).encode()
        reply = await self.request(command.name, payload, timeout=timeout, retry_for=retry_for)
        return raise_for(reply) if raise_errors else reply

    async def request(
        self,
        name: str,
        payload: bytes,
        *,
        timeout: float | None = None,
        retry_for: float = 0.0,
    ) -> Reply:
        """Send raw JSON for command `name`; returns the reply whatever its outcome."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return await self._request_once(name, payload, timeout or self.timeout)
            except (ServiceUnavailableError, CommandTimeoutError):
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _request_once(self, name: str, payload: bytes, timeout: float) -> Reply:
        subject = command_subject(self.principal, name)
        if self.nc.is_closed:
            raise ServiceUnavailableError("the client is closed")
        try:
            message = await self.nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError as error:
            raise ServiceUnavailableError(f"no command service answers {subject}") from error
        except nats.errors.TimeoutError as error:
            await asyncio.sleep(0.05)  # let a permission error reach error_cb
            if self.events.permission_denied(subject):
                raise ForbiddenError(f"these credentials may not publish {subject}") from error
            if not self.nc.is_connected:
                raise ServiceUnavailableError("not connected to NATS") from error
            raise CommandTimeoutError(f"no reply on {subject} within {timeout} s") from error
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError,
        ) as error:
            raise ServiceUnavailableError(f"NATS connection unavailable: {error}") from error
        return Reply.model_validate_json(message.data)


class SyncTicketingClient:
    """The same client for synchronous code: one private event-loop thread."""

    def __init__(self, endpoint: NatsEndpoint, *, principal: str = "caller", timeout: float = 5.0):
        self._loop = LoopThread("ticketing-client")
        self.timeout = timeout
        try:
            self._client = self._loop.run(
                TicketingClient.connect(endpoint, principal=principal, timeout=timeout),
                timeout + 5,
            )
        except BaseException:
            self._loop.stop()
            raise

    def execute(self, command: Command, **options: Any) -> Reply:
        limit = self.timeout + float(options.get("retry_for", 0.0)) + 5
        return self._loop.run(self._client.execute(command, **options), limit)

    def request(self, name: str, payload: bytes, **options: Any) -> Reply:
        limit = self.timeout + float(options.get("retry_for", 0.0)) + 5
        return self._loop.run(self._client.request(name, payload, **options), limit)

    def close(self) -> None:
        try:
            self._loop.run(self._client.close(), 5)
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncTicketingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
