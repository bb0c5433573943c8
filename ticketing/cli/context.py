"""What every CLI module shares: the per-invocation context, the one-line error, ticket ids.

Kept apart from `ticketing.cli` so the command modules import it directly (no import cycle),
and so the context class is the same whether the CLI runs as a script or `python -m`."""

from __future__ import annotations

import getpass
import re
from uuid import UUID

import click

from commands.service import CommandService
from ticketing.home import require_home, require_writable
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings


class CliError(Exception):
    """Ends the command with one line on stderr and a non-zero exit."""

    def __init__(self, code: str, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


class Context:
    """Per-invocation state: settings and a lazily built command service.

    Reading commands use `service` (the home must exist; a read-only one is opened
    read-only), commands that write use `writer` (the home is created if missing)."""

    def __init__(self, settings: Settings, *, home_given: bool = False) -> None:
        self.settings = settings
        self.home_given = home_given
        self._service: CommandService | None = None
        self._writes = False

    @property
    def service(self) -> CommandService:
        """For reading: `not_found` on a home that does not exist, never creating one."""
        if self._service is None:
            self._service = build_command_service(self.settings, create=False)
        return self._service

    @property
    def writer(self) -> CommandService:
        """For writing: creates the home on a first write; `store_read_only` if it cannot."""
        if self._service is None or not self._writes:
            if self._service is not None:
                self._service.app.close()
            self._service = build_command_service(self.settings, create=True)
            self._writes = True
        return self._service

    def require_home(self) -> None:
        """For commands that read the home's files but not the store (queue, sql, kpi)."""
        require_home(self.settings.home)

    def require_writable_home(self) -> None:
        """For commands that read the store and write files beside it (rebuild, checkpoint)."""
        require_writable(self.settings.home)


def current_context() -> Context:
    """The running invocation's context (set up by the `ticketing` group)."""
    obj = click.get_current_context().find_object(Context)
    if obj is None:
        raise RuntimeError("ticketing commands need the ticketing CLI context")
    return obj


def ticket_uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise CliError("validation_error", f"ticket_id: not a ticket id: {text!r}") from None


def default_actor() -> str:
    """People at a terminal are usually agents; name them after their login."""
    try:
        login = re.sub(r"[^A-Za-z0-9_.@\-]", "", getpass.getuser()) or "cli"
    except (KeyError, OSError):
        login = "cli"
    return f"agent:{login}"
