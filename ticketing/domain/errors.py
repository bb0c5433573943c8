"""Domain errors: one hierarchy, each with a stable machine-readable code."""

from __future__ import annotations

from typing import Any


class TicketingError(Exception):
    """Base of every error a command can answer with; `code` never changes once published."""

    code = "ticketing_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(TicketingError):
    code = "not_found"


class AlreadyExistsError(TicketingError):
    code = "already_exists"


class InvalidTransitionError(TicketingError):
    """The ticket's status model does not allow this change from its current status."""

    code = "invalid_transition"


class TicketClosedError(TicketingError):
    """Closed tickets are archived and read-only forever; follow-ups open a new ticket."""

    code = "ticket_closed"


class TimeOutOfOrderError(TicketingError):
    """A change may not be dated before the ticket's latest change: times never go backwards."""

    code = "time_out_of_order"


class VersionConflictError(TicketingError):
    code = "version_conflict"


class ValidationError(TicketingError):
    code = "validation_error"


class ForbiddenError(TicketingError):
    code = "forbidden"
