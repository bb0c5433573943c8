"""Verify the hash chains: every stored event's own hash, its link to its predecessor, version
continuity, erased comment text only where a redaction was recorded, and the signed checkpoints
that catch deleted newest events and rewritten chains (store-wide through the digest, for one
ticket through its signed head).

Verification reads the stored event records as written (no upcasting, no snapshots), so it
checks exactly the bytes the chain was computed over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from projections.payloads import PUBLISHED_TOPICS
from replay.checkpoint import Checkpoint, CheckpointLog, Digest, LogFinding, SignedHead
from replay.stored_records import BATCH, stored_events
from replay.stream import aggregate_rows
from ticketing.domain.chain import GENESIS_HASH, commitment, event_hash
from ticketing.store.application import TicketingApplication
from ticketing.store.erasure import decode_state

_PUBLISHED = frozenset(PUBLISHED_TOPICS)


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
    signed_head: SignedHead | None = None
    """For one aggregate: its head in the newest checkpoint that names it (None: not signed)."""

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
            "signed_head": vars(self.signed_head) if self.signed_head else None,
        }

    def add_log_findings(self, findings: list[LogFinding]) -> None:
        self.breaks.extend(
            ChainBreak(f.code, f.message, notification_id=f.notification_id) for f in findings
        )


@dataclass
class _Link:
    version: int
    event_hash: str


class ChainVerifier:
    """Walks stored events in order, keeping each aggregate's last link."""

    def __init__(self) -> None:
        self.links: dict[str, _Link] = {}
        self.report = ChainReport()
        self.erased: dict[tuple[str, str], tuple[int, int | None]] = {}
        """Comments whose text is gone, by (aggregate, comment id), until a redaction of them
        follows: (version, notification id)."""

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
        if event_type == "CommentAdded" and _text_erased(state):
            self.erased[key, str(state.get("comment_id"))] = (version, nid)
        elif event_type == "CommentRedacted":
            self.erased.pop((key, str(state.get("comment_id"))), None)
        self.links[key] = _Link(version, stored_hash)
        return stored_hash

    def finish(self) -> ChainReport:
        """Report the comments erased without a CommentRedacted after them (the text is
        outside the hash, so only the redaction makes an erasure legitimate)."""
        for (key, comment_id), (version, nid) in self.erased.items():
            self.report.breaks.append(
                ChainBreak(
                    "erased_without_redaction",
                    f"{key} v{version} (CommentAdded {comment_id}): its text was erased, "
                    "but no CommentRedacted for it follows in the chain",
                    key,
                    version,
                    nid,
                )
            )
        self.erased.clear()
        return self.report


def _text_erased(state: dict[str, Any]) -> bool:
    return not state.get("body") and not state.get("body_salt")


def _text_matches_commitment(state: dict[str, Any]) -> bool:
    """A comment's text is outside the hash (so it can be erased); while it is there, it must
    still match the hashed commitment."""
    if "body_commitment" not in state or not (state.get("body") or state.get("body_salt")):
        return True
    return commitment(str(state.get("body_salt", "")), str(state.get("body", ""))) == str(
        state["body_commitment"]
    )


def verify_aggregate(
    app: TicketingApplication, aggregate_id: UUID, checkpoints: CheckpointLog | None = None
) -> ChainReport:
    """One aggregate's chain, and its head against the newest signed checkpoint naming it: a
    chain that ends before the signed version lost its newest events; one whose event at that
    version has another hash was rewritten (recomputed hashes included)."""
    verifier = ChainVerifier()
    hashes: dict[int, str] = {}
    for version, topic, data in aggregate_rows(app, aggregate_id):
        if topic not in _PUBLISHED:
            continue  # not a domain event (an idempotency record or a snapshot)
        state = decode_state(app, data)
        hashes[version] = verifier.check(topic, aggregate_id, version, state, None)
    report = verifier.finish()
    if checkpoints is not None:
        lookup = checkpoints.signed_head(str(aggregate_id))
        report.add_log_findings(lookup.findings)
        if lookup.head is not None:
            report.checkpoints_checked = 1
            report.signed_head = lookup.head
            _compare_head(report, str(aggregate_id), lookup.head, hashes)
    return report


def _compare_head(report: ChainReport, key: str, head: SignedHead, hashes: dict[int, str]) -> None:
    last = max(hashes, default=0)
    signed = f"the checkpoint at notification {head.notification_id} ({head.created_at})"
    if last < head.version:
        now = f"the store has only v{last}" if last else "the store has none of its events"
        report.breaks.append(
            ChainBreak(
                "events_missing",
                f"{key}: {signed} signed its chain up to v{head.version}, {now}: "
                "its newest events were deleted",
                key,
                head.version,
                head.notification_id,
            )
        )
    elif hashes.get(head.version) != head.event_hash:
        report.breaks.append(
            ChainBreak(
                "checkpoint_mismatch",
                f"{key} v{head.version} is not the event {signed} signed: the chain was rewritten",
                key,
                head.version,
                head.notification_id,
            )
        )


def verify_store(
    app: TicketingApplication,
    checkpoints: CheckpointLog | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Verify every chain and every checkpoint, reporting every break found."""
    verifier = ChainVerifier()
    pending = checkpoints.read() if checkpoints else []
    report = verifier.report
    if checkpoints:
        report.add_log_findings(checkpoints.findings(pending))
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
    return verifier.finish()


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
