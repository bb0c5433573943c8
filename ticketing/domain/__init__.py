"""The pure ticketing core: aggregates, events, values and errors, free of infrastructure."""
