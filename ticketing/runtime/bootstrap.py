"""The composition root: builds the application and its adapters from settings, in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ticketing.clock import clock_from
from ticketing.home import create_home, require_home, writable
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication

if TYPE_CHECKING:  # both imported where used: a reader of the store alone starts faster
    from commands.service import CommandService
    from ticketing.principals import Principals


def build_application(settings: Settings, *, create: bool = True) -> TicketingApplication:
    """The application on the configured store. With `create` (writers: commands, processes)
    a missing home is made (0700) and a read-only one refused (`store_read_only`); without it
    (readers) the home must exist (`not_found`), and one that cannot be written is opened
    read-only."""
    read_only = False
    if settings.event_store == "sqlite":
        if create:
            create_home(settings.home, settings.sqlite_path)
        else:
            require_home(settings.home, settings.sqlite_path)
            read_only = not writable(settings.home, settings.sqlite_path)
    return TicketingApplication(env=settings.eventsourcing_env(read_only=read_only))


def build_command_service(settings: Settings, *, create: bool = True) -> CommandService:
    from commands.service import CommandService  # here: readers of the store alone skip it

    return CommandService(
        build_application(settings, create=create),
        categories=settings.categories,
        sla_policy_id=settings.sla_policy,
        clock=clock_from(settings.extra_env),
        clock_skew=timedelta(seconds=settings.clock_skew_seconds),
    )


def load_principals(settings: Settings) -> Principals:
    """The built-in principals and the operator's (`TICKETING_PRINCIPALS`)."""
    from ticketing.principals import Principals

    return Principals.load(settings.principals_path)
