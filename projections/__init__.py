"""The read side: the relay, the projector runner, the queue (SQLite) and analytics (DuckDB)
stores and their queries, and the wire contract."""
