"""Automation: rules that react to ticket events with commands and notifications."""

from ticketing.automation.triggers import (
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
