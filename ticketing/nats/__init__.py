"""NATS transport: the embedded server, principal users and their permissions, connecting."""
