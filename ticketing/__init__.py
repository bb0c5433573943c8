"""Event-sourced support-ticketing core: every ticket change is an immutable, replayable event."""

__version__ = "0.1.0"
