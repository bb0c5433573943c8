"""The live queue: one row per ticket with everything a queue screen filters and sorts by."""
