"""The commands that publish an SLA policy file: its calendars first, then its policy."""

from __future__ import annotations

from datetime import datetime

from commands import models as m
from ticketing.sla.policy_file import PolicyFile


def publish_commands(
    policy_file: PolicyFile, actor: m.ActorModel, in_force_from: datetime | None = None
) -> list[m.Command]:
    """The file's calendars, then its policy: the commands `sla publish` sends, dated
    `in_force_from` (default: now) since that is when the versions take effect."""
    calendars: list[m.Command] = [
        m.PublishCalendar(
            calendar_id=name, definition=definition, actor=actor, occurred_at=in_force_from
        )
        for name, definition in policy_file.calendars.items()
    ]
    policy = m.PublishSlaPolicy(
        policy_id=policy_file.policy_id,
        definition=policy_file.definition,
        actor=actor,
        occurred_at=in_force_from,
    )
    return [*calendars, policy]
