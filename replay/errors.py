"""Replay errors: each with a stable code, as every other error in the project."""

from __future__ import annotations

from ticketing.domain.errors import TicketingError


class BeforeTicketExistedError(TicketingError):
    code = "before_ticket_existed"


class VersionOutOfRangeError(TicketingError):
    code = "version_out_of_range"


class InvalidTimeError(TicketingError):
    code = "validation_error"
