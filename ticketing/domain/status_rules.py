"""The status model (DESIGN.md): which status may follow which, in one table."""

from __future__ import annotations

from ticketing.domain.values import Status

ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED}),
    Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED}),
    Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.SOLVED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.SOLVED}),
    # solved -> open is a reopen; closed is reached only from solved and is terminal.
    Status.SOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

RATEABLE = frozenset({Status.SOLVED, Status.CLOSED})


def can_move(current: Status, target: Status) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
