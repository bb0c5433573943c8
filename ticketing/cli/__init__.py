"""The `ticketing` command line (click): one module per area; `app` holds the group."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    """The console entry point; imports the CLI on first use."""
    from ticketing.cli.app import main as run

    run(argv)
