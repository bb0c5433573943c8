"""Replay and audit: history, as-of state, rebuild, verify (chains and projections),
checkpoints and export."""
