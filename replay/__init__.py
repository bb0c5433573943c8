"""Replay and audit: history, as-of state, rebuild, verify, export (built in later issues)."""
