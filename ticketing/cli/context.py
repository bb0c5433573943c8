"""What every CLI module shares: the per-invocation context, the one-line error, ticket ids.

Kept apart from `ticketing.cli` so the command modules import it directly (no import cycle),
and so the context class is the same whether the CLI runs as a script or `python -m`. It
imports only what every command needs, so `ticketing --version` starts fast; the store, the
command service and their dependencies load on first use."""

from __future__ import annotations

import getpass
import re
from datetime import tzinfo
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

from ticketing.cli.exit_codes import FAILED
from ticketing.settings import Settings

if TYPE_CHECKING:
    from commands.service import CommandService
    from ticketing.store.application import TicketingApplication

MIN_PREFIX = 4
"""Hex digits a ticket id prefix needs at least (as git asks of abbreviated hashes)."""
CANDIDATES_SHOWN = 10


class CliError(Exception):
    """Ends the command with one line on stderr and a non-zero exit (`exit_codes`)."""

    def __init__(self, code: str, message: str, exit_code: int = FAILED) -> None:
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
        self._store: TicketingApplication | None = None
        self._writes = False

    @property
    def service(self) -> CommandService:
        """For reading: `not_found` on a home that does not exist, never creating one."""
        if self._service is None:
            from ticketing.runtime.bootstrap import build_command_service

            if self._store is not None:
                self._store.close()
                self._store = None
            self._service = build_command_service(self.settings, create=False)
        return self._service

    @property
    def writer(self) -> CommandService:
        """For writing: creates the home on a first write; `store_read_only` if it cannot."""
        if self._service is None or not self._writes:
            from ticketing.runtime.bootstrap import build_command_service

            if self._service is not None:
                self._service.app.close()
            if self._store is not None:
                self._store.close()
                self._store = None
            self._service = build_command_service(self.settings, create=True)
            self._writes = True
        return self._service

    @property
    def store(self) -> TicketingApplication:
        """The event store alone, for reading (`show`, prefixes): as `service`, without loading
        the command models (a faster start)."""
        if self._service is not None:
            return self._service.app
        if self._store is None:
            from ticketing.runtime.bootstrap import build_application

            self._store = build_application(self.settings, create=False)
        return self._store

    @property
    def zone(self) -> tzinfo:
        """The zone people read and type times in (`--tz`, `TICKETING_TZ`; default UTC)."""
        return zone_named(self.settings.timezone)

    def require_home(self) -> None:
        """For commands that read the home's files but not the store (queue, sql, kpi)."""
        from ticketing.home import require_home

        require_home(self.settings.home)

    def require_writable_home(self) -> None:
        """For commands that read the store and write files beside it (rebuild, checkpoint)."""
        from ticketing.home import require_writable

        require_writable(self.settings.home)

    def ticket_id(self, text: str) -> UUID:
        """The ticket `text` names: a whole id, or a unique prefix of one (at least 4 hex
        digits, dashes optional) looked up in the event store. An unknown prefix is
        `not_found`, one that fits several tickets `ambiguous_id` listing them, anything else
        `validation_error`: the same answer from every command that takes a ticket."""
        whole = _whole_id(text)
        if whole is not None:
            return whole
        prefix = text.strip().lower().replace("-", "")
        if len(prefix) < MIN_PREFIX or not _HEX.fullmatch(prefix):
            raise _not_an_id(text)
        app = self.writer.app if self._writes else self.store
        found = ticket_ids_with_prefix(app, self.settings.event_store, prefix, CANDIDATES_SHOWN + 1)
        if not found:
            raise CliError("not_found", f"ticket {text} not found (no ticket id starts with it)")
        if len(found) > 1:
            shown = ", ".join(str(t) for t in found[:CANDIDATES_SHOWN])
            more = " and more" if len(found) > CANDIDATES_SHOWN else ""
            raise CliError(
                "ambiguous_id",
                f"ticket id prefix {text!r} fits {len(found)}{more} tickets: {shown}{more}; "
                "give more digits",
            )
        return found[0]


_HEX = re.compile(r"[0-9a-f]+")


def zone_named(name: str) -> tzinfo:
    """The IANA zone `name` (UTC for "UTC"/"Z"); `ValueError` when there is none."""
    from datetime import UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone: {name!r} (e.g. Europe/Paris, or UTC)") from None


def _whole_id(text: str) -> UUID | None:
    if len(text.strip().replace("-", "")) != 32:
        return None
    try:
        return UUID(text.strip())
    except ValueError:
        return None


def _not_an_id(text: str) -> CliError:
    return CliError(
        "validation_error",
        f"ticket_id: not a ticket id or a prefix of one (at least {MIN_PREFIX} hex digits): "
        f"{text!r}",
    )


def ticket_ids_with_prefix(
    app: TicketingApplication, event_store: str, prefix: str, limit: int
) -> list[UUID]:
    """Up to `limit` ticket ids (aggregates whose first event is `TicketOpened`) starting with
    the hex digits `prefix`, in id order: a range scan of the events table's primary key on
    SQLite and PostgreSQL, a walk over the notifications in memory."""
    from eventsourcing.utils import get_topic

    from ticketing.domain.events import TicketOpened

    topic = get_topic(TicketOpened)
    recorder: Any = app.recorder
    if event_store == "sqlite":
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_id FROM {recorder.events_table_name} "
                "WHERE originator_id >= ? AND originator_id < ? AND originator_version = 1 "
                "AND topic = ? ORDER BY originator_id LIMIT ?",
                [prefix, prefix + "g", topic, limit],  # "g" sorts after every hex digit
            )
            return [UUID(hex=row[0]) for row in cursor.fetchall()]
    if event_store == "postgres":
        from psycopg.sql import SQL, Identifier  # only here: PostgreSQL is optional

        table = Identifier(recorder.datastore.schema, recorder.events_table_name)
        statement = SQL(
            "SELECT originator_id FROM {table} WHERE originator_id BETWEEN %s AND %s "
            "AND originator_version = 1 AND topic = %s ORDER BY originator_id LIMIT %s"
        ).format(table=table)
        low, high = UUID(prefix.ljust(32, "0")), UUID(prefix.ljust(32, "f"))
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, [low, high, topic, limit])
            return [UUID(str(row["originator_id"])) for row in cursor.fetchall()]
    found = sorted(
        n.originator_id
        for n in recorder.select_notifications(start=1, limit=2**62, topics=[topic])
        if n.originator_version == 1 and n.originator_id.hex.startswith(prefix)
    )
    return found[:limit]


def current_context() -> Context:
    """The running invocation's context (set up by the `ticketing` group)."""
    obj = click.get_current_context().find_object(Context)
    if obj is None:
        raise RuntimeError("ticketing commands need the ticketing CLI context")
    return obj


def ticket_uuid(text: str) -> UUID:
    """The ticket `text` names in the running invocation (see `Context.ticket_id`)."""
    return current_context().ticket_id(text)


def default_actor() -> str:
    """People at a terminal are usually agents; name them after their login."""
    try:
        login = re.sub(r"[^A-Za-z0-9_.@\-]", "", getpass.getuser()) or "cli"
    except (KeyError, OSError):
        login = "cli"
    return f"agent:{login}"
