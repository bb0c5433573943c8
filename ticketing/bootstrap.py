"""The composition root: builds the application and its adapters from settings, in one place."""

from __future__ import annotations

from commands.application import TicketingApplication
from commands.service import CommandService
from ticketing.settings import Settings


def build_application(settings: Settings) -> TicketingApplication:
    if settings.event_store == "sqlite":
        settings.home.mkdir(parents=True, exist_ok=True)
    return TicketingApplication(env=settings.eventsourcing_env())


def build_command_service(settings: Settings) -> CommandService:
    return CommandService(
        build_application(settings),
        categories=settings.categories,
        sla_policy_id=settings.sla_policy,
    )
