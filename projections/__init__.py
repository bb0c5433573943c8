"""Projections: relay, projectors, their stores and queries (built in later issues)."""
