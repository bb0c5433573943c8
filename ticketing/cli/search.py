"""`ticketing search TEXT`: full-text search over the queue projection (subjects, descriptions,
comments and internal notes, marked), for agents at a terminal."""

from __future__ import annotations

import json

import click

from ticketing.cli import output
from ticketing.cli.context import CliError, current_context

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")


@click.command("search")
@click.argument("text")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only tickets in these statuses (repeatable; default: every status).",
)
@click.option("--account", help="Only this account's tickets.")
@click.option("--requester", help="Only this requester's tickets (e-mail, any case).")
@click.option(
    "--public-only", is_flag=True, help="Leave internal notes out (search what customers see)."
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="At most N."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
def search_command(
    text: str,
    statuses: tuple[str, ...],
    account: str | None,
    requester: str | None,
    public_only: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Tickets whose subject, description or comments hold every word of TEXT, best first.

    A "quoted phrase" must occur in that order, word* matches a prefix; anything else (AND,
    OR, brackets, punctuation) is searched as plain words. Internal notes are searched too and
    marked as such."""
    from projections.queue.queries import (
        QueueNotReadyError,
        SearchFilters,
        open_reader,
        search,
    )
    from ticketing.settings import queue_path

    obj = current_context()
    obj.require_home()
    filters = SearchFilters(
        status=list(statuses) or None,
        account=account,
        requester=requester,
        include_internal=not public_only,
    )
    try:
        reader = open_reader(queue_path(obj.settings))
    except QueueNotReadyError as error:
        raise CliError("not_ready", str(error)) from error
    try:
        hits = search(reader, text, limit, filters)
    finally:
        reader.close()
    if as_json:
        click.echo(json.dumps(hits))
        return
    if not hits:
        click.echo("no tickets match")
        return
    rows = [
        (
            hit["ticket_id"][:8],
            _short(hit["subject"], 40),
            hit["status"],
            ", ".join(hit["matched_in"]) + (" (only)" if hit["internal_only"] else ""),
            _short(hit["snippet"], 70),
        )
        for hit in hits
    ]
    click.echo(output.table(rows, ("ticket", "subject", "status", "matched in", "snippet")))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def register(group: click.Group) -> None:
    """Add `search` to the main `ticketing` group."""
    group.add_command(search_command)
