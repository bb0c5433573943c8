"""The command service on NATS: `ticketing.cmd.<principal>.<name>` request/reply in a queue
group. The server lets only `<principal>` publish under its name, so the subject proves who sent
a request; the permission table then decides what that principal's actor may do.

Requests are validated with the same pydantic models as every other interface, then queued;
one worker thread takes whatever has queued up and commits it as one group (`execute_many`),
so under load many commands share one durable commit while each stays atomic and idempotent."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from commands.models import COMMAND_TYPES, Command
from commands.replies import Reply
from commands.service import CommandService
from ticketing.principals import Principal, Principals

log = logging.getLogger(__name__)

SERVICE_NAME = "ticketing-commands"
QUEUE_GROUP = "ticketing-commands"
SUBJECT_PREFIX = "ticketing.cmd"
MAX_REQUEST_BYTES = 256 * 1024


@dataclass
class _Pending:
    command: Command
    principal: Principal
    request: Request


class NatsCommandService:
    """Answers every command subject; replies in the common shape, never crashes on input."""

    def __init__(
        self,
        service: CommandService,
        nc: Client,
        *,
        principals: Principals | None = None,
        version: str = "0.1.0",
        max_group: int = 128,
    ) -> None:
        self.service = service
        self.principals = principals or Principals.built_in()
        self.nc = nc
        self.version = version
        self.max_group = max_group
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.micro: Service | None = None
        self._worker: asyncio.Task[None] | None = None
        self.groups = 0
        self.commands = 0

    async def start(self) -> None:
        self.micro = await add_service(
            self.nc,
            name=SERVICE_NAME,
            version=self.version,
            description="Ticketing commands: request/reply, one reply shape",
            queue_group=QUEUE_GROUP,
            stats_handler=self._stats,
        )
        group = self.micro.add_group(name=SUBJECT_PREFIX, queue_group=QUEUE_GROUP)
        for name in COMMAND_TYPES:
            await group.add_endpoint(name=name, subject=f"*.{name}", handler=self._receive)
        self._worker = asyncio.create_task(self._work(), name="command-worker")

    async def stop(self) -> None:
        if self.micro is not None:
            await self.micro.stop()
        if self._worker is not None:
            # Let queued commands finish (bounded: a dead worker must not hang the stop).
            for _ in range(500):
                if self.queue.empty():
                    break
                await asyncio.sleep(0.01)
            self._worker.cancel()

    def _stats(self, endpoint: Any) -> dict[str, int]:
        return {"groups": self.groups, "commands": self.commands}

    async def _receive(self, request: Request) -> None:
        """Validate on the event loop (cheap) and queue; answer bad input at once."""
        sender, name = request.subject.split(".")[-2:]
        principal = self.principals.get(sender)
        if principal is None:
            reply = Reply.failure(
                "forbidden", f"unknown principal {sender!r}", field="(subject)", principal=sender
            )
            await _respond(request, reply)
            return
        if len(request.data) > MAX_REQUEST_BYTES:
            reply = Reply.failure(
                "validation_error",
                f"request is {len(request.data)} bytes; the limit is {MAX_REQUEST_BYTES}",
                field="(request)",
            )
            await _respond(request, reply)
            return
        parsed = CommandService.parse(name, request.data or b"{}")
        if isinstance(parsed, Reply):
            await _respond(request, parsed)
            return
        self.queue.put_nowait(_Pending(parsed, principal, request))

    async def _work(self) -> None:
        while True:
            group = [await self.queue.get()]
            while len(group) < self.max_group and not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                replies = await asyncio.to_thread(
                    self.service.execute_many,
                    [p.command for p in group],
                    [p.principal for p in group],
                )
            except Exception as error:  # the store failed: answer everyone, keep serving
                log.exception("command group failed")
                replies = [
                    Reply.failure("store_unavailable", f"{type(error).__name__}: {error}")
                    for _ in group
                ]
            self.groups += 1
            self.commands += len(group)
            for pending, reply in zip(group, replies, strict=True):
                await _respond(pending.request, reply)


async def _respond(request: Request, reply: Reply) -> None:
    try:
        await request.respond(reply.to_json().encode())
    except Exception as error:  # the caller's retry with the same command id gets the reply
        log.warning("could not deliver a reply: %s", error)
