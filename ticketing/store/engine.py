"""Which engine holds the event store: the one place that reads it off the recorder."""

from __future__ import annotations

from typing import Any, Literal

Engine = Literal["sqlite", "postgres", "memory"]

_ENGINES: dict[str, Engine] = {"sqlite": "sqlite", "postgres": "postgres", "popo": "memory"}


def engine_of(app_or_recorder: Any) -> Engine:
    """The engine of an application's (or a recorder's) store, named as TICKETING_EVENT_STORE
    names it. eventsourcing says it only by the recorder's module (`eventsourcing.sqlite`,
    `eventsourcing.postgres`, `eventsourcing.popo`)."""
    recorder = getattr(app_or_recorder, "recorder", app_or_recorder)
    module = type(recorder).__module__
    try:
        return _ENGINES[module.rsplit(".", 1)[-1]]
    except KeyError:
        raise ValueError(f"an event store on an unknown engine: {module}") from None
