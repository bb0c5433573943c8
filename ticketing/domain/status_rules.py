"""The status model (docs/status-model.md): which status may follow which, and the named sets
of statuses every reader shares, in one place."""

from __future__ import annotations

from typing import Literal

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

WORKING_STATUSES: tuple[Status, ...] = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)
"""The unsolved statuses: the queue lists them by default, the backlog counts them, and the
wait-time KPIs add up the time spent in each. A tuple, so SQL parameters come in one order."""

DONE_STATUSES: tuple[Status, ...] = (Status.SOLVED, Status.CLOSED)
"""The solved statuses: every status that is not a working one."""

ENTERABLE_WORKING_STATUSES: tuple[Status, ...] = (Status.OPEN, Status.PENDING, Status.ON_HOLD)
"""The working statuses a move can enter: all but `new`, which means "untouched" and which
nothing returns to (see ALLOWED_TRANSITIONS). The SLA clock's status changes take only these,
so a reader folding moves for the clock uses this set, not WORKING_STATUSES."""

WAITING_ON: dict[Status, Literal["us", "customer"]] = {
    Status.NEW: "us",
    Status.OPEN: "us",
    Status.ON_HOLD: "us",
    Status.PENDING: "customer",
}
"""Who acts next on a working ticket (the queue's `waiting_on`); solved tickets wait on nobody."""

WAITING_ON_US = frozenset(status for status, who in WAITING_ON.items() if who == "us")
"""The working statuses in which the next move is ours (everything but `pending`)."""


def can_move(current: Status, target: Status) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
