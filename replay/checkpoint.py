"""Signed checkpoints of the store: a rolling digest over every event's hash in notification
order, and each aggregate's head (its version and newest event hash), signed with HMAC-SHA256
under a key kept outside the database.

The per-aggregate chains catch changed, removed or reordered events, but not the deletion of an
aggregate's newest events, nor a chain rewritten with recomputed hashes. A checkpoint does: it
fixes how many events existed up to a point and their digest (for `verify chain`), and where
each aggregate's chain ended (for `verify chain TICKET`, without reading the whole store).

A checkpoint lists only the heads of aggregates that changed since the previous checkpoint (the
first one, or the first after checkpoints without heads, lists all), so its size follows the
new events; and it carries the previous checkpoint's signature, so the log is itself a chain in
which a removed checkpoint shows. Threat model: someone who can write the database and the log,
but not the key."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.stored_records import stored_hashes
from ticketing.domain.chain import GENESIS_HASH

if TYPE_CHECKING:
    from ticketing.store.application import TicketingApplication

READ_BLOCK = 1 << 20
Heads = dict[str, list[Any]]
"""aggregate id -> [version, event hash of that version]."""


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
    """One signed line of the log. `previous` (the signature of the checkpoint before, "" for
    the first) and `heads` are absent (None) in checkpoints written before they existed; the
    signature covers exactly the fields present, so those still verify."""

    notification_id: int
    events: int
    digest: str
    created_at: str
    mac: str = ""
    previous: str | None = None
    heads: Heads | None = None

    def signed_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "mac" and v is not None}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def as_json(self) -> str:
        """The line as written: the signed bytes with the signature added last, so a reader
        can check it without decoding it (`_Line`)."""
        return f'{self.signed_bytes().decode()[:-1]},"mac":"{self.mac}"}}'


@dataclass(frozen=True)
class LogFinding:
    """Something wrong with the checkpoint log itself: a forged or a missing checkpoint."""

    code: str
    message: str
    notification_id: int


@dataclass
class SignedHead:
    """Where the newest checkpoint that names an aggregate saw its chain end."""

    version: int
    event_hash: str
    notification_id: int
    created_at: str


@dataclass
class HeadLookup:
    head: SignedHead | None = None
    checkpoints_read: int = 0
    findings: list[LogFinding] = field(default_factory=list)


class CheckpointLog:
    """`<home>/audit/checkpoints.jsonl` and its key `<home>/audit/checkpoint.key` (0600), or
    the key from TICKETING_CHECKPOINT_KEY (hex) so it can live elsewhere."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "checkpoints.jsonl"
        self.key_path = directory / "checkpoint.key"
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is not None:
            return self._key
        from_env = os.environ.get("TICKETING_CHECKPOINT_KEY")
        if from_env:
            self._key = bytes.fromhex(from_env)
            return self._key
        if not self.key_path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        self._key = bytes.fromhex(self.key_path.read_text().strip())
        return self._key

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        return replace(checkpoint, mac=self.mac(checkpoint.signed_bytes()))

    def authentic(self, checkpoint: Checkpoint) -> bool:
        return hmac.compare_digest(self.mac(checkpoint.signed_bytes()), checkpoint.mac)

    def read(self) -> list[Checkpoint]:
        if not self.path.exists():
            return []
        with self.path.open() as handle:
            return [_parse(line) for line in handle if line.strip()]

    def findings(self, checkpoints: list[Checkpoint]) -> list[LogFinding]:
        """Forged checkpoints, and gaps in the chain of signatures (a removed checkpoint)."""
        found = []
        previous_mac = ""
        for checkpoint in checkpoints:
            if not self.authentic(checkpoint):
                found.append(_forged(checkpoint.notification_id))
                continue
            if checkpoint.previous is not None and checkpoint.previous != previous_mac:
                found.append(_missing_before(checkpoint.notification_id))
            previous_mac = checkpoint.mac
        return found

    def signed_head(self, aggregate_id: str) -> HeadLookup:
        """The aggregate's head in the newest authentic checkpoint that names it, reading the
        log from its end and checking every checkpoint on the way (so a forged one, or a gap
        where a newer head was removed, is reported instead of trusted past). Lines as written
        are checked without decoding them: the cost is a MAC per line read."""
        lookup = HeadLookup()
        expected_mac: str | None = None  # the signature the newer checkpoint links to
        needle = f'"{aggregate_id}":['.encode()
        for raw in _newest_first(self):
            lookup.checkpoints_read += 1
            line = _Line.read(raw, self)
            if not line.authentic:
                lookup.findings.append(_forged(line.notification_id))
                continue
            if expected_mac is not None and line.mac != expected_mac:
                lookup.findings.append(_missing_after(line.notification_id))
            if not line.has_heads:
                return lookup  # written before checkpoints carried heads: nothing older has them
            if needle in line.body:
                checkpoint = _parse(raw)
                version, event_hash = (checkpoint.heads or {})[aggregate_id]
                lookup.head = SignedHead(
                    int(version), str(event_hash), checkpoint.notification_id, checkpoint.created_at
                )
                return lookup
            expected_mac = line.previous
        if expected_mac:  # the oldest checkpoint read links to one that is not there
            lookup.findings.append(
                LogFinding(
                    "checkpoint_missing",
                    "the oldest checkpoint in the log follows one that was removed",
                    0,
                )
            )
        return lookup

    def mac(self, body: bytes) -> str:
        return hmac.new(self.key(), body, hashlib.sha256).hexdigest()


_MAC_KEY = b',"mac":"'
_SUFFIX_MAC = 64 + 2  # the signature's hex and '"}'
_SUFFIX = len(_MAC_KEY) + _SUFFIX_MAC
_LAST_KEYS = 160  # `"notification_id":<n>,"previous":"<64 hex>"}` and a margin
_PREVIOUS = re.compile(rb'"previous":"([0-9a-f]*)"')
_NOTIFICATION_ID = re.compile(rb'"notification_id":(\d+)')


@dataclass
class _Line:
    """One line of the log, checked as stored when it is as written (its signed bytes, then
    the signature), else decoded and checked as a `Checkpoint`. `body` holds the signed
    bytes (canonical JSON, so a head is found by its key: `"<aggregate id>":[`)."""

    body: bytes
    authentic: bool
    mac: str
    previous: str | None
    has_heads: bool
    notification_id: int

    @classmethod
    def read(cls, raw: bytes, log: CheckpointLog) -> _Line:
        raw = raw.rstrip()
        if raw[-_SUFFIX:-_SUFFIX_MAC] == _MAC_KEY and raw.endswith(b'"}'):
            body = raw[:-_SUFFIX] + b"}"
            mac = raw[-_SUFFIX_MAC:-2].decode()
            if hmac.compare_digest(log.mac(body), mac):
                end = max(0, len(body) - _LAST_KEYS)  # (the keys after `heads`, sorted)
                previous = _PREVIOUS.search(body, end)
                number = _NOTIFICATION_ID.search(body, end)
                return cls(
                    body,
                    True,
                    mac,
                    previous.group(1).decode() if previous else None,
                    b'"heads":{' in body,
                    int(number.group(1)) if number else 0,
                )
        checkpoint = _parse(raw)  # not as written (edited by hand, or forged): decode it
        return cls(
            checkpoint.signed_bytes(),
            log.authentic(checkpoint),
            checkpoint.mac,
            checkpoint.previous,
            checkpoint.heads is not None,
            checkpoint.notification_id,
        )


def _parse(line: str | bytes) -> Checkpoint:
    try:
        return Checkpoint(**json.loads(line))
    except (ValueError, TypeError):  # not a checkpoint at all: unsigned, so reported as forged
        return Checkpoint(0, 0, "", "")


def _newest_first(log: CheckpointLog) -> Iterator[bytes]:
    """The log's lines from its end, reading the file backwards block by block: a writer
    needs only the last one, a ticket's verification those since its last change."""
    if not log.path.exists():
        return
    with log.path.open("rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        tail = b""
        while position > 0:
            size = min(READ_BLOCK, position)
            position -= size
            handle.seek(position)
            lines = (handle.read(size) + tail).split(b"\n")
            tail = lines[0]  # maybe the end of a line that starts in an earlier block
            yield from (line for line in reversed(lines[1:]) if line.strip())
        if tail.strip():
            yield tail


def _forged(notification_id: int) -> LogFinding:
    return LogFinding(
        "checkpoint_forged",
        f"checkpoint at {notification_id} does not carry a valid signature",
        notification_id,
    )


def _missing_before(notification_id: int) -> LogFinding:
    return LogFinding(
        "checkpoint_missing",
        f"the checkpoint before the one at {notification_id} was removed from the log",
        notification_id,
    )


def _missing_after(notification_id: int) -> LogFinding:
    return LogFinding(
        "checkpoint_missing",
        f"the checkpoint after the one at {notification_id} was removed from the log",
        notification_id,
    )


def write_checkpoint(app: TicketingApplication, log: CheckpointLog) -> Checkpoint | None:
    """Sign the store as it is now, continuing from the last authentic checkpoint's digest.

    Only the events since then are read, unless that checkpoint carries no heads (or there is
    none): then every event is read once to list every aggregate's head. The log is locked
    meanwhile, so two writers (`serve` and a `ticketing checkpoint`) never fork its chain."""
    log.directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(log.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        authentic = (c for c in map(_parse, _newest_first(log)) if log.authentic(c))
        last = next(authentic, None)
        checkpoint = _next_checkpoint(app, last)
        if checkpoint is None:
            return None
        signed = log.sign(checkpoint)
        handle.write(signed.as_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        return signed


def _next_checkpoint(app: TicketingApplication, last: Checkpoint | None) -> Checkpoint | None:
    digest, after = Digest(), 0
    if last is not None:
        digest, after = Digest(last.digest, last.events), last.notification_id
    full = last is None or last.heads is None
    heads: Heads = {}
    last_id = after
    for nid, aggregate_id, version, stored_hash in stored_hashes(app, 0 if full else after):
        heads[aggregate_id] = [version, stored_hash]
        if nid > after:
            digest.add(stored_hash)
            last_id = nid
    if last is not None and last_id == after and not full:
        return None  # nothing new since the last checkpoint
    return Checkpoint(
        notification_id=last_id,
        events=digest.count,
        digest=digest.value,
        created_at=datetime.now(UTC).isoformat(),
        previous=last.mac if last is not None else "",
        heads=heads,
    )
