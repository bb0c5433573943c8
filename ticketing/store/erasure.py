"""Privacy erasure: after a RedactComment commits, the stored CommentAdded record loses its
text and salt. This is the one in-place change to stored events, and the hash chain covers the
salted commitment instead of the text, so the chain still verifies afterwards. The ticket's
snapshots (which may hold the text) are deleted in the same transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ticketing.domain.events import CommentAdded
from ticketing.store.application import TicketingApplication
from ticketing.store.engine import engine_of
from ticketing.store.snapshots import delete_snapshots

COMMENT_ADDED_TOPIC = get_topic(CommentAdded)


def erase_comment_text(app: TicketingApplication, ticket_id: UUID, comment_id: str) -> bool:
    """Erase one comment's stored text; `False` when it was already erased or not found."""
    for stored in app.recorder.select_events(ticket_id):
        if stored.topic != COMMENT_ADDED_TOPIC:
            continue
        state = decode_state(app, stored.state)
        if state["comment_id"] != comment_id:
            continue
        if not state["body"] and not state["body_salt"]:
            return False
        state["body"] = ""
        state["body_salt"] = ""
        rewrite_state(app, ticket_id, stored.originator_version, encode_state(app, state))
        return True
    return False


def decode_state(app: TicketingApplication, data: bytes) -> dict[str, Any]:
    """A stored event's state as written (no upcasting): what the hash chain covers."""
    mapper = app.mapper
    if mapper.cipher:
        data = mapper.cipher.decrypt(data)
    if mapper.compressor:
        data = mapper.compressor.decompress(data)
    state: dict[str, Any] = mapper.transcoder.decode(data)
    return state


def encode_state(app: TicketingApplication, state: dict[str, Any]) -> bytes:
    mapper = app.mapper
    data: bytes = mapper.transcoder.encode(state)
    if mapper.compressor:
        data = mapper.compressor.compress(data)
    if mapper.cipher:
        data = mapper.cipher.encrypt(data)
    return data


def rewrite_state(
    app: TicketingApplication, aggregate_id: UUID, version: int, state: bytes
) -> None:
    """Replace one stored event's state in place (SQLite or PostgreSQL), deleting the
    aggregate's snapshots in the same transaction."""
    recorder: Any = app.recorder
    table = recorder.events_table_name
    engine = engine_of(recorder)
    with recorder.datastore.transaction(commit=True) as cursor:
        if engine == "sqlite":
            cursor.execute(
                f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                (state, aggregate_id.hex, version),
            )
        elif engine == "postgres":
            schema = recorder.datastore.schema
            cursor.execute(
                f'UPDATE "{schema}"."{table}" SET state = %s '
                "WHERE originator_id = %s AND originator_version = %s",
                (state, aggregate_id, version),
            )
        else:
            raise NotImplementedError(f"erasure is not supported on the {engine} store")
        delete_snapshots(app.snapshot_recorder, cursor, aggregate_id)
