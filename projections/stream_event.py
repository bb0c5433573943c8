"""One event as the projectors see it: its place in the stream and its payload (its own small
module, so that a rebuild worker can use it without loading the NATS client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StreamEvent:
    """One event message with its place in the stream."""

    sequence: int
    payload: dict[str, Any]
    raw: bytes | None = field(default=None, compare=False, repr=False)
    """The message as published (compact JSON of `payload`), when it came from the stream."""
