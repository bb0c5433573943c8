"""Signed checkpoints of the whole store: a rolling digest over every event's hash in
notification order, signed with HMAC-SHA256 under a key kept outside the database.

The per-ticket chains catch changed, removed or reordered events, but not the deletion of a
ticket's newest events. A checkpoint does: it fixes how many events existed up to a point and
their digest. Threat model: someone who can write the database but not the key file."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ticketing.domain.chain import GENESIS_HASH

if TYPE_CHECKING:
    from commands.application import TicketingApplication


@dataclass
class Digest:
    """sha256 chain over event hashes: D_n = sha256(D_(n-1) ":" event_hash_n)."""

    value: str = GENESIS_HASH
    count: int = 0

    def add(self, event_hash: str) -> None:
        self.value = hashlib.sha256(f"{self.value}:{event_hash}".encode()).hexdigest()
        self.count += 1


@dataclass(frozen=True)
class Checkpoint:
    notification_id: int
    events: int
    digest: str
    created_at: str
    mac: str = ""

    def signed_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "mac"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class CheckpointLog:
    """`<home>/audit/checkpoints.jsonl` and its key `<home>/audit/checkpoint.key` (0600), or
    the key from TICKETING_CHECKPOINT_KEY (hex) so it can live elsewhere."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "checkpoints.jsonl"
        self.key_path = directory / "checkpoint.key"

    def key(self) -> bytes:
        from_env = os.environ.get("TICKETING_CHECKPOINT_KEY")
        if from_env:
            return bytes.fromhex(from_env)
        if not self.key_path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return bytes.fromhex(self.key_path.read_text().strip())

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        mac = hmac.new(self.key(), checkpoint.signed_bytes(), hashlib.sha256).hexdigest()
        return Checkpoint(**{**asdict(checkpoint), "mac": mac})

    def authentic(self, checkpoint: Checkpoint) -> bool:
        expected = hmac.new(self.key(), checkpoint.signed_bytes(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, checkpoint.mac)

    def read(self) -> list[Checkpoint]:
        if not self.path.exists():
            return []
        return [Checkpoint(**json.loads(line)) for line in self._lines()]

    def _lines(self) -> Iterator[str]:
        with self.path.open() as handle:
            yield from (line for line in handle if line.strip())

    def append(self, checkpoint: Checkpoint) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(asdict(checkpoint), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def write_checkpoint(app: TicketingApplication, log: CheckpointLog) -> Checkpoint | None:
    """Sign the store as it is now, continuing from the last authentic checkpoint's digest."""
    from replay.chain import stored_events

    previous = [c for c in log.read() if log.authentic(c)]
    digest, after = Digest(), 0
    if previous:
        last = previous[-1]
        digest, after = Digest(last.digest, last.events), last.notification_id
    last_id = after
    for record in stored_events(app, after):
        state_hash = _stored_hash(app, record.state)
        digest.add(state_hash)
        last_id = record.id
    if last_id == after and previous:
        return None  # nothing new since the last checkpoint
    checkpoint = log.sign(
        Checkpoint(last_id, digest.count, digest.value, datetime.now(UTC).isoformat())
    )
    log.append(checkpoint)
    return checkpoint


def _stored_hash(app: TicketingApplication, state: bytes) -> str:
    from commands.erasure import decode_state

    return str(decode_state(app, state).get("event_hash", ""))
