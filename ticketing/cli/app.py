"""The `ticketing` command line: turns arguments into one command, runs it, prints the reply."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from commands.replies import Reply
from projections.queue.queries import MAX_LIMIT
from ticketing.cli import output
from ticketing.cli.context import CliError, Context, current_context, default_actor, ticket_uuid
from ticketing.domain.errors import TicketingError
from ticketing.domain.events import event_payload
from ticketing.domain.values import Channel, Priority, SlaTier, Status
from ticketing.home import private_files
from ticketing.nats.connect import NatsUnavailableError
from ticketing.nats.server import NatsServerError
from ticketing.principals import PrincipalError
from ticketing.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


pass_context = click.make_pass_decorator(Context)


@click.group()
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="TICKETING_HOME",
    help="Data directory (event store, NATS store, projections). Default ./.ticketing.",
)
@click.version_option(package_name="ticketing")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Event-sourced support ticketing: every change is an immutable event."""
    try:
        settings = Settings.from_env().with_home(home)
    except SettingsError as error:
        raise CliError("configuration_error", str(error), 2) from error
    ctx.obj = Context(settings, home_given=home is not None)


def command_options(func: F) -> F:
    """Options every state-changing command shares."""
    options = [
        click.option(
            "--as",
            "actor",
            default=default_actor,
            show_default="agent:<your login>",
            help="Who acts, as KIND:ID (customer, agent, system, automation, ai, api).",
        ),
        click.option("--command-id", help="Idempotency key: repeating it returns the first reply."),
        click.option(
            "--at", "occurred_at", help="When it happened (ISO 8601 with zone); default now."
        ),
        click.option(
            "--expected-version",
            type=int,
            help="Fail with version_conflict unless at this version.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the reply object as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _envelope(
    actor: str, command_id: str | None, occurred_at: str | None, expected_version: int | None
) -> dict[str, Any]:
    kind, sep, ident = actor.partition(":")
    if not sep:
        raise CliError("validation_error", f"--as: expected KIND:ID, got {actor!r}")
    payload: dict[str, Any] = {"actor": {"kind": kind, "id": ident}}
    if command_id is not None:
        payload["command_id"] = command_id
    if occurred_at is not None:
        payload["occurred_at"] = occurred_at
    if expected_version is not None:
        payload["expected_version"] = expected_version
    return payload


def run_command(name: str, fields: dict[str, Any], common: dict[str, Any]) -> None:
    """Validate and execute one command, then print its reply for people or machines."""
    as_json = common.pop("as_json")
    obj = current_context()
    payload = {**_envelope(**common), **{k: v for k, v in fields.items()}}
    reply = obj.writer.execute_raw(name, payload)
    print_reply(reply, as_json=as_json, brief=name == "open_ticket")


def print_reply(reply: Reply, *, as_json: bool, brief: bool = False) -> None:
    if as_json:
        click.echo(reply.to_json())
    if not reply.ok:
        assert reply.error is not None
        raise CliError(reply.error.code, reply.error.message)
    if as_json:
        return
    if brief:
        click.echo(reply.ticket_id)
        return
    subject = next(
        f"{kind} {value}"
        for kind, value in (
            ("ticket", reply.ticket_id),
            ("account", reply.account_id),
            ("agent", reply.agent_id),
            ("policy", reply.policy_id),
            ("calendar", reply.calendar_id),
        )
        if value
    )
    if not reply.events:
        click.echo(f"{subject} unchanged (version {reply.version})")
        return
    changes = "; ".join(f"{e['type']}: {output.describe_change(e)}" for e in reply.events)
    click.echo(f"{subject} -> version {reply.version}: {changes}")


def ticket_argument(func: F) -> F:
    return click.argument("ticket")(func)


# --- accounts ----------------------------------------------------------------------------


@cli.group()
def account() -> None:
    """Customer organisations and their SLA tier."""


@account.command("create")
@click.argument("account_id")
@click.option("--name", required=True, help="The organisation's display name.")
@click.option(
    "--tier",
    type=click.Choice([t.value for t in SlaTier]),
    default="standard",
    show_default=True,
    help="SLA tier.",
)
@command_options
def account_create(account_id: str, name: str, tier: str, **common: Any) -> None:
    """Register an account."""
    run_command(
        "create_account", {"account_id": account_id, "account_name": name, "tier": tier}, common
    )


@account.command("set-tier")
@click.argument("account_id")
@click.argument("tier", type=click.Choice([t.value for t in SlaTier]))
@command_options
def account_set_tier(account_id: str, tier: str, **common: Any) -> None:
    """Move an account to another SLA tier (recorded as an event)."""
    run_command("change_account_tier", {"account_id": account_id, "tier": tier}, common)


@account.command("show")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def account_show(obj: Context, account_id: str, as_json: bool) -> None:
    """Show an account's current state."""
    state = obj.service.load_account(account_id).as_dict()
    if as_json:
        click.echo(json.dumps(state))
    else:
        click.echo(output.table([list(state.values())], list(state)))


# --- agents ------------------------------------------------------------------------------


@cli.group()
def agent() -> None:
    """Agents the router assigns to: teams, availability and capacity (all recorded as events)."""


@agent.command("join")
@click.argument("agent_id")
@click.option("--team", required=True, help="The team to join.")
@command_options
def agent_join(agent_id: str, team: str, **common: Any) -> None:
    """Add an agent to a team (the first change about an agent registers them)."""
    run_command("join_team", {"agent_id": agent_id, "team": team}, common)


@agent.command("leave")
@click.argument("agent_id")
@click.option("--team", required=True, help="The team to leave.")
@command_options
def agent_leave(agent_id: str, team: str, **common: Any) -> None:
    """Take an agent out of a team; they keep the tickets they hold."""
    run_command("leave_team", {"agent_id": agent_id, "team": team}, common)


@agent.command("availability")
@click.argument("agent_id")
@click.argument("availability", type=click.Choice(["available", "away"]))
@command_options
def agent_availability(agent_id: str, availability: str, **common: Any) -> None:
    """Mark an agent available or away; the router skips agents who are away."""
    run_command(
        "set_agent_availability", {"agent_id": agent_id, "availability": availability}, common
    )


@agent.command("capacity")
@click.argument("agent_id")
@click.argument("capacity", type=int, required=False)
@command_options
def agent_capacity(agent_id: str, capacity: int | None, **common: Any) -> None:
    """The most unsolved tickets the router gives an agent; leave it out for no limit."""
    run_command("set_agent_capacity", {"agent_id": agent_id, "capacity": capacity}, common)


@agent.command("show")
@click.argument("agent_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def agent_show(obj: Context, agent_id: str, as_json: bool) -> None:
    """Show an agent's teams, availability and capacity."""
    found = obj.service.find_agent(agent_id)
    if found is None:
        raise CliError("not_found", f"agent {agent_id!r} not found")
    state = found.as_dict()
    if as_json:
        click.echo(json.dumps(state))
    else:
        click.echo(
            output.table(
                [[json.dumps(v) if isinstance(v, list) else v for v in state.values()]], list(state)
            )
        )


# --- tickets -----------------------------------------------------------------------------


@cli.command("open")
@click.option("--account", "account_id", required=True, help="Account id of the customer.")
@click.option("--requester", required=True, help="Requester's email address.")
@click.option("--subject", required=True, help="One line, at most 250 characters.")
@click.option("--description", default="", help="The full problem description.")
@click.option(
    "--channel", type=click.Choice([c.value for c in Channel]), default="web", show_default=True
)
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority]),
    default="normal",
    show_default=True,
)
@click.option("--category", help="Category from the configured taxonomy.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--follow-up-of", help="The closed ticket this one follows up.")
@command_options
def open_ticket(
    account_id: str,
    requester: str,
    subject: str,
    description: str,
    channel: str,
    priority: str,
    category: str | None,
    tags: tuple[str, ...],
    follow_up_of: str | None,
    **common: Any,
) -> None:
    """Open a ticket and print its id."""
    fields: dict[str, Any] = {
        "account_id": account_id,
        "requester": requester,
        "subject": subject,
        "description": description,
        "channel": channel,
        "priority": priority,
        "category": category,
        "tags": list(tags),
        "follow_up_of": follow_up_of,
    }
    run_command("open_ticket", fields, common)


@cli.command()
@ticket_argument
@click.argument("category")
@command_options
def categorize(ticket: str, category: str, **common: Any) -> None:
    """Set a ticket's category."""
    run_command("categorize_ticket", {"ticket_id": ticket, "category": category}, common)


@cli.command()
@ticket_argument
@click.argument("priority", type=click.Choice([p.value for p in Priority]))
@command_options
def prioritize(ticket: str, priority: str, **common: Any) -> None:
    """Set a ticket's priority."""
    run_command("prioritize_ticket", {"ticket_id": ticket, "priority": priority}, common)


@cli.command()
@ticket_argument
@click.option("--team", help="Route to this team.")
@click.option("--agent", help="Give to this agent.")
@click.option("--no-team", is_flag=True, help="Remove the team.")
@click.option("--no-agent", is_flag=True, help="Remove the agent.")
@command_options
def assign(
    ticket: str,
    team: str | None,
    agent: str | None,
    no_team: bool,
    no_agent: bool,
    **common: Any,
) -> None:
    """Assign a ticket to a team and/or an agent, or unassign."""
    if (team and no_team) or (agent and no_agent):
        raise CliError("validation_error", "give either --team/--agent or --no-team/--no-agent")
    fields: dict[str, Any] = {"ticket_id": ticket}
    if team or no_team:
        fields["team"] = team
    if agent or no_agent:
        fields["agent"] = agent
    if len(fields) == 1:
        raise CliError("validation_error", "assign needs --team, --agent, --no-team or --no-agent")
    run_command("assign_ticket", fields, common)


@cli.command()
@ticket_argument
@click.option("--body", required=True, help="The text (at most 64 KiB).")
@click.option("--internal", is_flag=True, help="An internal note instead of a public reply.")
@command_options
def comment(ticket: str, body: str, internal: bool, **common: Any) -> None:
    """Add a public reply or an internal note."""
    fields = {"ticket_id": ticket, "body": body, "visibility": "internal" if internal else "public"}
    run_command("add_comment", fields, common)


@cli.command("set-status")
@ticket_argument
@click.argument("status", type=click.Choice([s.value for s in Status]))
@click.option("--reason", help="Why (recorded with the change).")
@command_options
def set_status(ticket: str, status: str, reason: str | None, **common: Any) -> None:
    """Move a ticket to another status (within the status model)."""
    run_command("change_status", {"ticket_id": ticket, "status": status, "reason": reason}, common)


@cli.command()
@ticket_argument
@click.option("--resolution", help="How it was solved.")
@command_options
def resolve(ticket: str, resolution: str | None, **common: Any) -> None:
    """Mark a ticket solved."""
    run_command("resolve_ticket", {"ticket_id": ticket, "resolution": resolution}, common)


@cli.command()
@ticket_argument
@click.option("--reason", help="Why it is reopened.")
@command_options
def reopen(ticket: str, reason: str | None, **common: Any) -> None:
    """Reopen a solved ticket."""
    run_command("reopen_ticket", {"ticket_id": ticket, "reason": reason}, common)


@cli.command()
@ticket_argument
@command_options
def close(ticket: str, **common: Any) -> None:
    """Close a solved ticket (archived, read-only, still viewable)."""
    run_command("close_ticket", {"ticket_id": ticket}, common)


@cli.command()
@ticket_argument
@click.option("--score", type=int, required=True, help="CSAT score 1-5.")
@click.option("--comment", "rating_comment", help="What the customer said.")
@command_options
def rate(ticket: str, score: int, rating_comment: str | None, **common: Any) -> None:
    """Record a CSAT rating on a solved or closed ticket."""
    fields = {"ticket_id": ticket, "score": score, "comment": rating_comment}
    run_command("rate_ticket", fields, common)


@cli.command()
@ticket_argument
@click.argument("tags", nargs=-1, required=True)
@command_options
def tag(ticket: str, tags: tuple[str, ...], **common: Any) -> None:
    """Add tags."""
    run_command("tag_ticket", {"ticket_id": ticket, "tags": list(tags)}, common)


@cli.command()
@ticket_argument
@click.argument("tags", nargs=-1, required=True)
@command_options
def untag(ticket: str, tags: tuple[str, ...], **common: Any) -> None:
    """Remove tags."""
    run_command("untag_ticket", {"ticket_id": ticket, "tags": list(tags)}, common)


# --- reading -----------------------------------------------------------------------------


@cli.command()
@ticket_argument
@click.option(
    "--as-of", help="The state exactly as it was at this time (ISO 8601; UTC if no zone)."
)
@click.option("--version", "version", type=int, help="The state exactly as it was at this version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def show(obj: Context, ticket: str, as_of: str | None, version: int | None, as_json: bool) -> None:
    """Show a ticket's state: current, or exactly as it was at a time or version."""
    from replay.history import parse_time, ticket_as_of

    if as_of is not None and version is not None:
        raise CliError("validation_error", "give --as-of or --version, not both")
    moment = parse_time(as_of) if as_of is not None else None
    state = ticket_as_of(obj.service.app, ticket_uuid(ticket), at=moment, version=version).as_dict()
    click.echo(json.dumps(state) if as_json else output.ticket_card(state))


@cli.command()
@ticket_argument
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of events.")
@pass_context
def log(obj: Context, ticket: str, as_json: bool) -> None:
    """List a ticket's events, oldest first."""
    ticket_id = ticket_uuid(ticket)
    obj.service.load_ticket(ticket_id)
    events = [event_payload(e) for e in obj.service.app.events.get(ticket_id)]
    click.echo(json.dumps(events) if as_json else output.events_table(events))


@cli.command()
@click.option(
    "--tickets",
    type=click.IntRange(min=1),
    default=80,
    show_default=True,
    help="Tickets in the day.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulated day.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replay this real event log (CSV, gzip CSV or XES) instead of the simulated day.",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The mapping file (TOML) of --log, e.g. mappings/uci498_servicenow.toml.",
)
@pass_context
def demo(
    obj: Context, tickets: int, seed: int, log_path: Path | None, mapping_path: Path | None
) -> None:
    """Run the whole stack in a fresh data directory, drive a seeded day of support (or a
    real log with --log/--mapping) through the NATS command API, show the queue and the
    KPIs, then stop everything."""
    import tempfile

    from ticketing.cli.demo import run_demo
    from ticketing.importing.mapping import MappingError, load_mapping
    from ticketing.importing.readers import SourceError

    if (log_path is None) != (mapping_path is None):
        raise CliError("validation_error", "--log and --mapping go together")
    mapping = None
    if mapping_path is not None:
        try:
            mapping = load_mapping(mapping_path)
        except MappingError as error:
            raise CliError("mapping_error", str(error), 2) from error
    if log_path is not None and not log_path.is_file():
        raise CliError("source_error", f"{log_path}: no such file", 2)
    settings = obj.settings
    if not obj.home_given:
        base = Path(".ticketing-demo")
        base.mkdir(exist_ok=True)
        settings = settings.with_home(tempfile.mkdtemp(prefix="run-", dir=base))
    elif settings.home.exists() and any(settings.home.iterdir()):
        raise CliError(
            "validation_error", f"--home {settings.home} is not empty; the demo needs a fresh one"
        )
    try:
        run_demo(settings, click.echo, tickets=tickets, seed=seed, log=log_path, mapping=mapping)
    except MappingError as error:
        raise CliError("mapping_error", str(error), 2) from error
    except SourceError as error:
        raise CliError("source_error", str(error), 2) from error
    click.echo("")
    click.echo(f"data kept in {settings.home}; explore it with e.g.")
    click.echo(f"  ticketing --home {settings.home} queue --status solved")
    example_sql = "SELECT channel, count(*) FROM ticket_facts GROUP BY 1"
    click.echo(f'  ticketing --home {settings.home} sql "{example_sql}"')


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def status(obj: Context, as_json: bool) -> None:
    """Event store, stream and processes: positions, lag and who is reachable."""
    import asyncio

    from ticketing.runtime.status import failing_summary, gather_status

    report = asyncio.run(gather_status(obj.settings, obj.service.app))
    click.echo(json.dumps(report) if as_json else status_text(report))
    failing = failing_summary(report)
    if failing:
        raise CliError("process_failing", failing)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with NATS permissions).")
@pass_context
def principals(obj: Context, as_json: bool) -> None:
    """Who may send commands: each principal, the actors it may act as and its grants."""
    from ticketing.nats.roles import permissions_for
    from ticketing.runtime.bootstrap import load_principals

    try:
        found = list(load_principals(obj.settings))
    except PrincipalError as error:
        raise CliError("principals_error", str(error)) from error
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "role": p.role,
                        "act_as": list(p.act_as),
                        "accounts": list(p.accounts),
                        "grants": sorted(p.grants),
                        "nats": vars(permissions_for(p)),
                    }
                    for p in found
                ]
            )
        )
        return
    rows = [
        (
            p.name,
            p.role,
            ", ".join(p.act_as) or "-",
            ", ".join(p.accounts) or "-",
            ", ".join(sorted(p.grants)) or "-",
        )
        for p in found
    ]
    click.echo(output.table(rows, ["principal", "role", "act as", "customers of", "grants"]))


def status_text(report: dict[str, Any]) -> str:
    nats = report["nats"]
    stream = report.get("stream", {})
    last_stored = report["store"]["last_notification_id"]
    lag = report["relay_lag_events"]
    lines = [
        f"event store   {report['event_store']}  last notification {last_stored}",
        f"nats          {nats['url'] or '-'}  reachable={'yes' if nats['reachable'] else 'no'}",
        f"stream        TICKETING  last sequence {stream.get('last_sequence', '-')}  "
        f"last notification {stream.get('last_notification_id', '-')}",
        f"relay lag     {'unknown' if lag is None else lag} events",
    ]
    processes = report.get("processes", [])
    if not processes:
        return "\n".join([*lines, "no processes answered"])
    rows = [
        (
            p["name"],
            p["id"],
            p["stats"].get("position"),
            p.get("lag_events"),
            "FAILING" if p.get("state") == "failing" else "ok",
            p["stats"].get("requests"),
        )
        for p in processes
    ]
    table = output.table(rows, ["process", "id", "position", "lag", "state", "requests"])
    errors = [f"{f['name']}: {f['error']}" for f in report.get("failing", [])]
    return "\n".join([*lines, table, *errors])


# --- processes ---------------------------------------------------------------------------


@cli.group()
def run() -> None:
    """Run one long-lived process in the foreground (Ctrl-C or SIGTERM stops it)."""


def _run(target: str) -> None:
    from ticketing.runtime import processes

    obj = current_context()
    main = getattr(processes, target)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    processes.run_process(lambda stop: main(obj.settings, stop, click.echo))


@run.command("queue-projector")
def run_queue_projector() -> None:
    """Keep the live queue (SQLite) and answer ticketing.query.queue."""
    _run("queue_projector")


@run.command("analytics-projector")
def run_analytics_projector() -> None:
    """Keep the DuckDB analytics projection and publish the analysts' read-only snapshot."""
    _run("analytics_projector")


@run.command("sla-monitor")
def run_sla_monitor() -> None:
    """Keep every ticket's SLA clocks; record SlaWarning and SlaBreached when they pass."""
    _run("sla_monitor")


@run.command("triggers")
def run_triggers() -> None:
    """Apply the trigger rules (TICKETING_TRIGGERS) to every ticket event."""
    _run("triggers")


@run.command("router")
def run_router() -> None:
    """Assign tickets within their team by round-robin or least-loaded (TICKETING_ROUTING)."""
    _run("router")


@run.command("notifier")
def run_notifier() -> None:
    """Send customer updates by e-mail and signed webhooks (TICKETING_NOTIFIER)."""
    _run("notifier")


@cli.command()
@pass_context
def serve(obj: Context) -> None:
    """Run everything: embedded NATS (unless NATS_URL), command service, relay, projectors."""
    from ticketing.runtime.supervisor import serve as serve_stack

    serve_stack(obj.settings, click.echo)


@cli.command()
@click.option("--team", help="Only this team's tickets.")
@click.option("--agent", help="Only this agent's tickets.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status]),
    help="Statuses to list (repeatable); default: the unsolved ones.",
)
@click.option(
    "--priority",
    "priorities",
    multiple=True,
    type=click.Choice([p.value for p in Priority]),
    help="Priorities to list (repeatable).",
)
@click.option("--account", help="Only this account's tickets.")
@click.option("--waiting-on", type=click.Choice(["customer", "us"]), help="Who acts next.")
@click.option(
    "--breached/--not-breached",
    "sla_breached",
    default=None,
    help="Only tickets with (or without) a breached SLA.",
)
@click.option(
    "--sort",
    type=click.Choice(["priority", "age", "updated", "due"]),
    default="priority",
    show_default=True,
    help="due: the SLA that falls due first on top.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=100,
    show_default=True,
    help=f"At most this many tickets (1 to {MAX_LIMIT:,}).",
)
@click.option(
    "--as-of", help="The queue exactly as it was at this time: a replay of the event store."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tickets.")
@pass_context
def queue(
    obj: Context,
    team: str | None,
    agent: str | None,
    statuses: tuple[str, ...],
    priorities: tuple[str, ...],
    account: str | None,
    waiting_on: str | None,
    sla_breached: bool | None,
    sort: str,
    limit: int,
    as_of: str | None,
    as_json: bool,
) -> None:
    """The live queue, from the queue projection (or as it was, with --as-of)."""
    from projections.queue.queries import QueueNotReadyError, QueueQuery, list_queue, open_reader
    from ticketing.settings import queue_path

    query = QueueQuery.model_validate(
        {
            "team": team,
            "agent": agent,
            "status": list(statuses) or None,
            "priority": list(priorities) or None,
            "account": account,
            "waiting_on": waiting_on,
            "sla_breached": sla_breached,
            "sort": sort,
            "limit": limit,
        }
    )
    if as_of is not None:
        from replay.history import parse_time
        from replay.rebuild import queue_as_of

        reader = queue_as_of(obj.service.app, parse_time(as_of))
    else:
        obj.require_home()
        try:
            reader = open_reader(queue_path(obj.settings))
        except QueueNotReadyError as error:
            raise CliError("not_ready", str(error)) from error
    try:
        tickets = list_queue(reader, query)
    finally:
        reader.close()
    if as_json:
        click.echo(json.dumps(tickets))
        return
    click.echo(output.queue_table(tickets))


@run.command("nats")
def run_nats() -> None:
    """The embedded nats-server with JetStream and role users (skip it when NATS_URL is set)."""
    _run("nats_server")


@run.command("relay")
def run_relay() -> None:
    """Publish every stored event to the TICKETING stream, in order, exactly once."""
    _run("relay")


@run.command("command-service")
def run_command_service() -> None:
    """Answer ticketing.cmd.<name> requests (several instances may run)."""
    _run("command_service")


def _register_analyst_commands() -> None:
    from ticketing.cli import analytics, audit, importing
    from ticketing.cli.sla import sla

    analytics.register(cli)
    audit.register(cli)
    importing.register(cli)
    cli.add_command(sla)


_register_analyst_commands()


# --- entry point -------------------------------------------------------------------------


def _fail(code: str, message: str, exit_code: int) -> NoReturn:
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes one `error: CODE: message` line and a non-zero exit."""
    private_files()
    try:
        cli.main(args=argv, prog_name="ticketing", standalone_mode=False)
    except CliError as error:
        _fail(error.code, error.message, error.exit_code)
    except TicketingError as error:
        _fail(error.code, error.message, 1)
    except NatsUnavailableError as error:
        _fail("nats_unavailable", str(error), 1)
    except NatsServerError as error:
        _fail("nats_server_error", str(error), 1)
    except PrincipalError as error:
        _fail("principals_error", str(error), 1)
    except click.exceptions.Abort:
        _fail("aborted", "interrupted", 130)
    except click.exceptions.NoArgsIsHelpError as error:
        path = error.ctx.command_path
        _fail("usage_error", f"{path} needs a subcommand; see `{path} --help`", 2)
    except click.ClickException as error:
        message = " ".join(error.format_message().split())
        _fail("usage_error", message, error.exit_code)
    except Exception as error:
        _fail("internal_error", f"{type(error).__name__}: {error}", 3)


if __name__ == "__main__":
    main()
