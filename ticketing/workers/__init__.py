"""Event-driven workers: each reads the stream and acts through an outbox (the automation
runtime, SLA monitor, triggers, router, and the notifier in `notify/`); AI and channel workers
join them here. The package exports the trigger rules' public names."""

from ticketing.workers.triggers import (
    MAX_CASCADE_DEPTH,
    Notification,
    Outcome,
    Rule,
    TriggerRulesError,
    evaluate,
    load_rules,
    parse_rules,
)

__all__ = [
    "MAX_CASCADE_DEPTH",
    "Notification",
    "Outcome",
    "Rule",
    "TriggerRulesError",
    "evaluate",
    "load_rules",
    "parse_rules",
]
