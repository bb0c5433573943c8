"""A large analytics rebuild with its per-event work spread over worker processes.

Most of an analytics rebuild is per-event Python: decoding each stored record into its
payload, cutting the relay's message from the stored JSON, making the event fact row. Only the
fold into ticket rows must run in stream order, and in one process all of it shares one core
(the GIL). Here worker processes (`python -m replay.rebuild_workers`, one per core) take fixed
ranges of notification ids in turn, worker i the ranges i, i+K, i+2K…, and send back for each
range its payloads (marshalled, for the fold) and its event fact rows (an Arrow record batch). The
rebuilding process takes the ranges in order, numbers the events in the stream, fills in each
row's stream sequence and account (which only the fold knows), folds, and writes.

Workers open the store from the application's settings, given on stdin (never in their
arguments, where other users could read a password): an SQLite file or PostgreSQL, never an
in-memory store."""

from __future__ import annotations

import gc
import json
import marshal
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from projections.analytics.event_facts import EVENT_FACTS_SCHEMA, event_fact_batch
from projections.stream_event import StreamEvent
from replay.stream import published_between
from ticketing.domain.errors import TicketingError
from ticketing.store.application import TicketingApplication
from ticketing.store.engine import engine_of

RANGE = 40_000
"""Notification ids per range: about 20,000 events where each command stores its record."""

_RAMP = (8, 4, 2)
"""The first ranges are 1/8, 1/4 and 1/2 of `RANGE`: the rebuild starts folding as soon as a
worker has read a few thousand events, not a whole range."""


def range_bounds(number: int, size: int) -> tuple[int, int]:
    """Range `number` as notification ids (after, upto]."""
    ramp = [size // part for part in _RAMP]
    if number < len(ramp):
        after = sum(ramp[:number])
        return after, after + ramp[number]
    after = sum(ramp) + (number - len(ramp)) * size
    return after, after + size


def range_count(until: int, size: int) -> int:
    """How many ranges cover notification ids 1 to `until`."""
    count = 0
    while range_bounds(count, size)[0] < until:
        count += 1
    return count


class RebuildWorkerError(TicketingError):
    code = "rebuild_worker_failed"


class RebuildWorkersUnavailableError(RebuildWorkerError):
    code = "rebuild_workers_unavailable"


def can_share_store(app: TicketingApplication) -> bool:
    """Whether another process can open the application's store: an SQLite file or
    PostgreSQL (an in-memory store lives in this process only)."""
    recorder: Any = app.recorder
    engine = engine_of(recorder)
    if engine == "postgres":
        return True
    return engine == "sqlite" and not recorder.datastore.pool.is_sqlite_memory_mode


class RebuildWorkers:
    """The worker processes, and the ranges they send, read back in stream order."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int,
        until_notification: int,
        range_size: int | None = None,
    ) -> None:
        range_size = range_size or RANGE
        self._until = until_notification
        self._range = range_size
        self._workers: list[_Worker] = []
        try:
            for index in range(workers):
                request = {
                    # The store exists: workers creating its tables at once would race
                    # (PostgreSQL answers "tuple concurrently updated").
                    "env": {**env, "CREATE_TABLE": "no"},
                    "worker": index,
                    "workers": workers,
                    "until_notification": until_notification,
                    "range": range_size,
                }
                self._workers.append(_Worker(request))
        except BaseException:
            self.close()  # the ones already started
            raise

    def batches(
        self, upto_sequence: int | None = None
    ) -> Iterator[tuple[list[StreamEvent], pa.Table]]:
        """(events numbered in the stream, their fact rows without sequences and accounts),
        one pair per range that holds published events, up to `upto_sequence` events."""
        sequence = 0
        for number in range(range_count(self._until, self._range)):
            payloads, facts = self._workers[number % len(self._workers)].receive()
            if upto_sequence is not None and sequence + len(payloads) > upto_sequence:
                payloads, facts = (
                    payloads[: upto_sequence - sequence],
                    facts.slice(0, upto_sequence - sequence),
                )
            if payloads:
                events = [StreamEvent(sequence + i, p) for i, p in enumerate(payloads, 1)]
                sequence += len(events)
                yield events, facts
            if upto_sequence is not None and sequence >= upto_sequence:
                return

    def close(self) -> None:
        """Stop every worker (some may still be reading when a rebuild ends early)."""
        for worker in self._workers:
            worker.close()


class _Worker:
    def __init__(self, request: dict[str, Any]) -> None:
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._process.stdin as stdin:
            stdin.write(json.dumps(request).encode())
        self._channel = Connection(os.dup(self._process.stdout.fileno()), writable=False)

    def receive(self) -> tuple[list[dict[str, Any]], pa.Table]:
        try:
            payloads = _loads(self._channel.recv_bytes())
            facts = pa.ipc.read_record_batch(
                pa.py_buffer(self._channel.recv_bytes()), EVENT_FACTS_SCHEMA
            )
        except (EOFError, OSError):
            raise self._failure() from None
        return payloads, pa.Table.from_batches([facts])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._channel.close()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._errors.close()

    def _failure(self) -> RebuildWorkerError:
        self._process.wait(timeout=10)
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return RebuildWorkerError(
            f"a rebuild worker stopped with exit code {self._process.returncode}: "
            f"{lines[-1] if lines else 'no message'}"
        )


# --- the worker process ------------------------------------------------------------------------


def _send_ranges(request: dict[str, Any], channel: Connection) -> None:
    """Every range of this worker, in order: its payloads, then its event fact rows (sent
    for empty ranges too, so the reader can take the ranges strictly in turn)."""
    gc.disable()  # as in the rebuild: millions of acyclic objects, nothing for it to free
    app = TicketingApplication(env=request["env"])
    until, size = request["until_notification"], request["range"]
    try:
        for number in range(request["worker"], range_count(until, size), request["workers"]):
            after, upto = range_bounds(number, size)
            events = published_between(app, after, min(upto, until), with_messages=True)
            channel.send_bytes(_dumps([e.payload for e in events]))
            # every column but the stream sequence and the account (the rebuild fills them in)
            channel.send_bytes(event_fact_batch(events).serialize())
    finally:
        app.close()


def _dumps(payloads: list[dict[str, Any]]) -> bytes:
    """`marshal` (5x quicker than pickle for JSON-like values, and both ends run the same
    interpreter), or pickle for a payload that holds anything else."""
    try:
        return b"m" + marshal.dumps(payloads)
    except ValueError:
        return b"p" + pickle.dumps(payloads, pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> list[dict[str, Any]]:
    payloads: list[dict[str, Any]] = (marshal if data[:1] == b"m" else pickle).loads(data[1:])
    return payloads


def main() -> int:
    request = json.load(sys.stdin.buffer)
    channel = Connection(os.dup(sys.stdout.fileno()), readable=False)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nothing else may write into the channel
    try:
        _send_ranges(request, channel)
    except (BrokenPipeError, ConnectionResetError):
        return 1  # the rebuild stopped listening
    except Exception as error:  # reported to the rebuild through stderr and the exit code
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
