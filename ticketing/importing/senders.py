"""Where imported commands go: the command service in this process, or over NATS.

Either way every command passes the same handlers; a batch holds commands on different tickets
only, so it may commit as one group (`execute_many` here, the service's group commit there)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from commands import models as m
from commands.client import TicketingClient
from commands.replies import Reply
from ticketing.nats.connect import LoopThread, NatsEndpoint


class NatsSender:
    """Sends each batch as concurrent NATS requests and waits for every reply.

    A request that times out or finds no service is retried with the same command id for up to
    `retry_for` seconds (at most one effect), then the error ends the import; a later run
    resumes."""

    def __init__(
        self, endpoint: NatsEndpoint, *, timeout: float = 10.0, retry_for: float = 30.0
    ) -> None:
        self.timeout = timeout
        self.retry_for = retry_for
        self._loop = LoopThread("ticketing-import")
        try:
            self._client = self._loop.run(
                TicketingClient.connect(endpoint, principal="importer", timeout=timeout),
                timeout + 5,
            )
        except BaseException:
            self._loop.stop()
            raise

    def __call__(self, commands: Sequence[m.Command]) -> list[Reply]:
        async def batch() -> list[Reply]:
            return list(
                await asyncio.gather(
                    *(
                        self._client.execute(c, retry_for=self.retry_for, raise_errors=False)
                        for c in commands
                    )
                )
            )

        return self._loop.run(batch(), self.timeout + self.retry_for + 30)

    def close(self) -> None:
        try:
            self._loop.run(self._client.close(), 5)
        finally:
            self._loop.stop()

    def __enter__(self) -> NatsSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
