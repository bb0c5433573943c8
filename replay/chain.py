"""Verify the hash chains: every stored event's own hash, its link to its predecessor, version
continuity, and the signed checkpoints that catch deleted newest events.

Verification reads the stored records as written (no upcasting), so it checks exactly the bytes
the chain was computed over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from commands.application import TicketingApplication
from commands.erasure import decode_state
from projections.payloads import PUBLISHED_TOPICS
from replay.checkpoint import Checkpoint, CheckpointLog, Digest
from ticketing.domain.chain import GENESIS_HASH, commitment, event_hash

BATCH = 2000


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold, named precisely."""

    code: str
    message: str
    aggregate_id: str | None = None
    version: int | None = None
    notification_id: int | None = None


@dataclass
class ChainReport:
    events: int = 0
    aggregates: int = 0
    checkpoints_checked: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "aggregates": self.aggregates,
            "checkpoints_checked": self.checkpoints_checked,
            "breaks": [vars(b) for b in self.breaks],
        }


@dataclass
class _Link:
    version: int
    event_hash: str


class ChainVerifier:
    """Walks stored events in order, keeping each aggregate's last link."""

    def __init__(self) -> None:
        self.links: dict[str, _Link] = {}
        self.report = ChainReport()

    def check(
        self, topic: str, aggregate_id: UUID, version: int, state: dict[str, Any], nid: int | None
    ) -> str:
        """Check one stored event; returns its stored hash (for the global digest)."""
        self.report.events += 1
        key = str(aggregate_id)
        event_type = topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        stored_hash = str(state.get("event_hash", ""))
        previous = self.links.get(key)
        if previous is None:
            self.report.aggregates += 1
        expected_version = previous.version + 1 if previous else 1
        expected_previous = previous.event_hash if previous else GENESIS_HASH

        def broken(code: str, message: str) -> None:
            self.report.breaks.append(ChainBreak(code, message, key, version, nid))

        if version != expected_version:
            broken(
                "version_gap",
                f"{key} v{version} follows v{expected_version - 1}: events are missing or moved",
            )
        elif state.get("previous_hash") != expected_previous:
            broken(
                "broken_link",
                f"{key} v{version} does not link to v{version - 1}: "
                "an event before it was changed, removed or reordered",
            )
        if event_hash(event_type, key, version, state) != stored_hash:
            broken("hash_mismatch", f"{key} v{version} ({event_type}) was changed after writing")
        elif not _text_matches_commitment(state):
            broken("hash_mismatch", f"{key} v{version} ({event_type}): its text was changed")
        self.links[key] = _Link(version, stored_hash)
        return stored_hash


def _text_matches_commitment(state: dict[str, Any]) -> bool:
    """A comment's text is outside the hash (so it can be erased); while it is there, it must
    still match the hashed commitment."""
    if "body_commitment" not in state or not (state.get("body") or state.get("body_salt")):
        return True
    return commitment(str(state.get("body_salt", "")), str(state.get("body", ""))) == str(
        state["body_commitment"]
    )


def verify_aggregate(app: TicketingApplication, aggregate_id: UUID) -> ChainReport:
    verifier = ChainVerifier()
    for stored in app.recorder.select_events(aggregate_id):
        state = decode_state(app, stored.state)
        verifier.check(stored.topic, aggregate_id, stored.originator_version, state, None)
    return verifier.report


def stored_events(app: TicketingApplication, after: int = 0) -> Iterator[Any]:
    """Every published event's stored record, in notification order."""
    position = after
    while True:
        batch = app.recorder.select_notifications(
            start=position + 1, limit=BATCH, topics=PUBLISHED_TOPICS, inclusive_of_start=True
        )
        if not batch:
            return
        yield from batch
        position = batch[-1].id


def verify_store(
    app: TicketingApplication,
    checkpoints: CheckpointLog | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Verify every chain and every checkpoint; the first break of each kind is kept."""
    verifier = ChainVerifier()
    pending = checkpoints.read() if checkpoints else []
    report = verifier.report
    for checkpoint in pending:
        if checkpoints and not checkpoints.authentic(checkpoint):
            report.breaks.append(
                ChainBreak(
                    "checkpoint_forged",
                    f"checkpoint at {checkpoint.notification_id} does not carry a valid signature",
                )
            )
    pending = [c for c in pending if checkpoints and checkpoints.authentic(c)]
    digest = Digest()
    last_id = 0
    for record in stored_events(app):
        while pending and record.id > pending[0].notification_id:
            _compare(report, pending.pop(0), digest, last_id)
        state = decode_state(app, record.state)
        stored_hash = verifier.check(
            record.topic, record.originator_id, record.originator_version, state, record.id
        )
        digest.add(stored_hash)
        last_id = record.id
        if progress and report.events % BATCH == 0:
            progress(report.events)
    for checkpoint in pending:
        _compare(report, checkpoint, digest, last_id)
    return report


def _compare(report: ChainReport, checkpoint: Checkpoint, digest: Digest, last_id: int) -> None:
    report.checkpoints_checked += 1
    if last_id < checkpoint.notification_id and digest.count < checkpoint.events:
        report.breaks.append(
            ChainBreak(
                "events_missing",
                f"checkpoint signed {checkpoint.events} events up to notification "
                f"{checkpoint.notification_id}, but the store has only {digest.count} "
                f"(ending at {last_id}): the newest events were deleted",
                notification_id=checkpoint.notification_id,
            )
        )
    elif (digest.count, digest.value) != (checkpoint.events, checkpoint.digest):
        report.breaks.append(
            ChainBreak(
                "checkpoint_mismatch",
                f"events up to notification {checkpoint.notification_id} differ from the signed "
                f"checkpoint ({digest.count} events now, {checkpoint.events} signed)",
                notification_id=checkpoint.notification_id,
            )
        )
