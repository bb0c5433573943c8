"""Tamper evidence: every event carries its own hash and its predecessor's, forming a chain
per aggregate, over one documented canonical serialization.

Canonical form of an event (UTF-8 JSON, keys sorted, no spaces, non-ASCII kept):
`{"aggregate_id": "<uuid>", "state": {...}, "type": "<EventClass>", "version": <n>}` where
`state` holds every stored field (`class_version` included, as stored, when above 1) except
`event_hash` and `originator_topic`, and except the redactable fields (`CommentAdded.body` and
`body_salt`, whose salted SHA-256 commitment `body_commitment` is hashed instead, so a
comment's text can be erased for a privacy request and the chain still verifies). Times are
ISO 8601 as stored; UUIDs lower-case text.
`event_hash = sha256(canonical).hexdigest()`; the first event's `previous_hash` is 64 zeros.

Each event's hash is computed once, when it is created, and stored with it: upcasting an old
event never changes the hash the chain relies on, and verification recomputes it from the
stored record."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64
NOT_HASHED = frozenset({"event_hash", "originator_topic"})
REDACTABLE: Mapping[str, frozenset[str]] = {"CommentAdded": frozenset({"body", "body_salt"})}


def canonical(event_type: str, aggregate_id: str, version: int, state: Mapping[str, Any]) -> bytes:
    skipped = NOT_HASHED | REDACTABLE.get(event_type, frozenset())
    document = {
        "aggregate_id": str(aggregate_id),
        "state": {k: _plain(v) for k, v in state.items() if k not in skipped},
        "type": event_type,
        "version": version,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event_type: str, aggregate_id: str, version: int, state: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(event_type, aggregate_id, version, state)).hexdigest()


def chained(
    event_class: Any,
    aggregate_id: UUID,
    version: int,
    previous_hash: str,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The fields of a new event completed with its recording time and both chain hashes."""
    content = {
        **fields,
        "timestamp": event_class.create_timestamp(),
        "previous_hash": previous_hash,
    }
    hashed = dict(content)
    class_version = getattr(event_class, "class_version", 1)
    if class_version > 1:
        hashed["class_version"] = class_version  # stored beside the fields by the mapper
    content["event_hash"] = event_hash(event_class.__name__, str(aggregate_id), version, hashed)
    return content


def new_salt() -> str:
    return secrets.token_hex(16)


def commitment(salt: str, text: str) -> str:
    """A salted commitment to a text: proves what was written without keeping it."""
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
