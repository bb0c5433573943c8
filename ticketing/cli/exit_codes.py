"""The CLI's exit codes: one table, used by every command and documented in the README."""

from __future__ import annotations

OK = 0
"""Done."""
FAILED = 1
"""Understood but refused or failed: a command the model or the domain rejects
(`validation_error`, `not_found`, `ambiguous_id`, `invalid_transition`, ...), a failing process,
drift found by `verify`."""
USAGE = 2
"""Usage or configuration: an unknown command or option, a malformed option value (a time, a
choice, an empty SQL text), a bad setting (`configuration_error`) or input file."""
INTERNAL = 3
"""A bug or an unexpected failure (`internal_error`): please report it."""
INTERRUPTED = 130
"""Ctrl-C (`aborted`), as shells report SIGINT."""

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "ok"),
    (FAILED, "refused or failed: the command was understood and refused, or a check failed"),
    (USAGE, "usage or configuration: a wrong argument, option value, setting or input file"),
    (INTERNAL, "internal error: a bug; please report it"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)
"""What each code means, in the README's words (a test keeps the README equal)."""
