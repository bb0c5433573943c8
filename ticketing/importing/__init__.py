"""Importing history from other help-desk tools: event logs, mapped onto our commands."""
