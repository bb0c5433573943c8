"""The `ticketing` command line: turns arguments into one command, runs it, prints the reply."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ticketing.cli import exit_codes, output
from ticketing.cli.context import CliError, Context, current_context, default_actor
from ticketing.cli.times import parse_moment
from ticketing.domain.values import Channel, Priority, SlaTier, Status
from ticketing.settings import Settings, SettingsError, time_zone

if TYPE_CHECKING:
    from commands.replies import Reply

F = TypeVar("F", bound=Callable[..., Any])


pass_context = click.make_pass_decorator(Context)

LAZY_COMMANDS = {
    "show": "ticketing.cli.reading:show",
    "sql": "ticketing.cli.analytics:sql_command",
    "kpi": "ticketing.cli.analytics:kpi_command",
    "history": "ticketing.cli.audit:history",
    "log": "ticketing.cli.audit:history",
    "verify": "ticketing.cli.audit:verify",
    "rebuild": "ticketing.cli.audit:rebuild",
    "export": "ticketing.cli.audit:export",
    "checkpoint": "ticketing.cli.audit:checkpoint",
    "import": "ticketing.cli.importing:import_command",
    "search": "ticketing.cli.search:search_command",
    "sla": "ticketing.cli.sla:sla",
}
"""Commands of the area modules, imported only when run (or listed by --help): a CLI call
loads what it uses, so `ticketing --version` and `show` start fast."""


class LazyGroup(click.Group):
    """click's lazy-loading group: `LAZY_COMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            from importlib import import_module

            module, attribute = LAZY_COMMANDS[cmd_name].split(":")
            self.add_command(getattr(import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


class QueueLimit(click.ParamType):  # type: ignore[type-arg]
    """`queue --limit`: the queue's own range, read when the option is used (a faster start)."""

    name = "integer range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from projections.queue.queries import MAX_LIMIT

        return click.IntRange(1, MAX_LIMIT).convert(value, param, ctx)


@click.group(cls=LazyGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="TICKETING_HOME",
    help="Data directory (event store, NATS store, projections). Default ./.ticketing.",
)
@click.option(
    "--tz",
    help="Show times in this IANA zone (e.g. Europe/Paris; env TICKETING_TZ; default UTC); "
    "times typed without a zone are read in it too.",
)
@click.version_option(package_name="ticketing")
@click.pass_context
def cli(ctx: click.Context, home: str | None, tz: str | None) -> None:
    """Event-sourced support ticketing: every change is an immutable event.

    Tickets are named by their id or any unique prefix of it (at least 4 hex digits). Times
    are ISO 8601 (2026-11-24T09:30:00+01:00; without a zone: in --tz; a date alone: its
    midnight). Exit codes: 0 ok, 1 refused or failed, 2 usage or configuration, 3 internal."""
    from dataclasses import replace

    try:
        settings = Settings.from_env().with_home(home)
        if tz is not None:
            settings = replace(settings, timezone=time_zone(tz, "--tz"))
    except SettingsError as error:
        raise CliError("configuration_error", str(error), exit_codes.USAGE) from error
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
            "--at",
            "occurred_at",
            help="When it happened (ISO 8601; without a zone: in --tz); default now.",
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
        payload["occurred_at"] = parse_moment(
            occurred_at, "--at", current_context().zone
        ).isoformat()
    if expected_version is not None:
        payload["expected_version"] = expected_version
    return payload


def run_command(name: str, fields: dict[str, Any], common: dict[str, Any]) -> None:
    """Validate and execute one command, then print its reply for people or machines."""
    as_json = common.pop("as_json")
    obj = current_context()
    service = obj.writer
    if "ticket_id" in fields:
        fields = {**fields, "ticket_id": str(obj.ticket_id(fields["ticket_id"]))}
    if fields.get("follow_up_of"):
        fields = {**fields, "follow_up_of": str(obj.ticket_id(fields["follow_up_of"]))}
    payload = {**_envelope(**common), **{k: v for k, v in fields.items()}}
    reply = service.execute_raw(name, payload)
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


def text_input(text: str, path: Path | None, option: str) -> str:
    """A long text given inline, as '-' (stdin) or as a file (`{option}-file`), not two ways."""
    if path is not None:
        if text:
            raise CliError(
                "usage_error", f"give {option} or {option}-file, not both", exit_codes.USAGE
            )
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CliError("usage_error", f"{option}-file: {error}", exit_codes.USAGE) from None
    return sys.stdin.read() if text == "-" else text


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
@click.option(
    "--description", default="", help="The full problem description ('-' reads it from stdin)."
)
@click.option(
    "--description-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the description from this file (UTF-8).",
)
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
    description_file: Path | None,
    channel: str,
    priority: str,
    category: str | None,
    tags: tuple[str, ...],
    follow_up_of: str | None,
    **common: Any,
) -> None:
    """Open a ticket and print its id."""
    description = text_input(description, description_file, "--description")
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
@click.option("--body", help="The text (at most 64 KiB; '-' reads it from stdin).")
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the text from this file (UTF-8).",
)
@click.option("--internal", is_flag=True, help="An internal note instead of a public reply.")
@command_options
def comment(
    ticket: str, body: str | None, body_file: Path | None, internal: bool, **common: Any
) -> None:
    """Add a public reply or an internal note."""
    if body is None and body_file is None:
        raise CliError(
            "usage_error",
            "comment needs --body TEXT, --body - or --body-file PATH",
            exit_codes.USAGE,
        )
    body = text_input(body or "", body_file, "--body")
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
    from ticketing.principals import PrincipalError
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
    quiet = _quiet_children(report)
    if not processes and not quiet:
        return "\n".join([*lines, "no processes answered"])
    rows: list[tuple[Any, ...]] = [
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
    rows += [
        (c["name"], f"pid {c['pid']}", None, None, "FAILING" if c["failing"] else "idle", None)
        for c in quiet
    ]
    table = output.table(rows, ["process", "id", "position", "lag", "state", "requests"])
    if any(not c["failing"] for c in quiet):
        table += (
            "\nidle: running under `serve` but answering no queries (a worker without its "
            "rules file, the nats-server); see <home>/logs/<process>.log"
        )
    errors = [f"{f['name']}: {f['error']}" for f in report.get("failing", [])]
    return "\n".join([*lines, table, *errors])


def _quiet_children(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The children of `serve` that answered no discovery: idle workers (no rules file), the
    nats-server, or ones failing to start."""
    answered = {str(p["name"]).removeprefix("ticketing-") for p in report.get("processes", [])}
    answered |= {"command-service"} if "commands" in answered else set()
    children = (report.get("serve") or {}).get("children") or []
    return [c for c in children if c["name"] not in answered and c.get("pid") is not None]


# --- processes ---------------------------------------------------------------------------


@cli.group()
def run() -> None:
    """Run one long-lived process in the foreground (Ctrl-C or SIGTERM stops it)."""


def _run(target: str) -> None:
    import logging

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
    """Run everything: embedded NATS (unless NATS_URL), command service, relay, projectors
    and workers, restarting a child that dies; Ctrl-C stops all. One per data directory.

    \b
    Logs, one file per process:
      <home>/logs/command-service.log, relay.log, queue-projector.log,
        analytics-projector.log, sla-monitor.log, triggers.log, router.log,
        notifier.log
      <home>/logs/supervisor.json   each child's pid, restarts and last failure
      <home>/nats/server.log        the embedded nats-server
    `ticketing status` shows who is up, idle, lagging or failing."""
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
@click.option("--requester", help="Only this requester's tickets (e-mail, any case).")
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
    type=QueueLimit(),
    default=100,
    show_default=True,
    help="At most this many tickets (1 to 10,000: the queue's MAX_LIMIT).",
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
    requester: str | None,
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
            "requester": requester,
            "waiting_on": waiting_on,
            "sla_breached": sla_breached,
            "sort": sort,
            "limit": limit,
        }
    )
    if as_of is not None:
        from replay.rebuild import queue_as_of

        reader = queue_as_of(obj.service.app, parse_moment(as_of, "--as-of", obj.zone))
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
    click.echo(output.queue_table(tickets, obj.zone))


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


# --- entry point -------------------------------------------------------------------------


def _fail(code: str, message: str, exit_code: int) -> NoReturn:
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes one `error: CODE: message` line and a non-zero exit
    from the one table in `exit_codes`."""
    from ticketing.home import private_files

    private_files()
    try:
        cli.main(args=argv, prog_name="ticketing", standalone_mode=False)
    except Exception as error:
        code, message, exit_code = failure(error)
        _fail(code, message, exit_code)


def failure(error: BaseException) -> tuple[str, str, int]:
    """(code, message, exit code) of anything a command raised."""
    from ticketing.domain.errors import TicketingError
    from ticketing.nats.connect import NatsUnavailableError
    from ticketing.nats.server import NatsServerError
    from ticketing.principals import PrincipalError

    if isinstance(error, CliError):
        return error.code, error.message, error.exit_code
    if isinstance(error, SettingsError):  # e.g. a missing TICKETING_POSTGRES_URL
        return "configuration_error", str(error), exit_codes.USAGE
    if isinstance(error, TicketingError):
        return error.code, error.message, exit_codes.FAILED
    if isinstance(error, NatsUnavailableError):
        return "nats_unavailable", str(error), exit_codes.FAILED
    if isinstance(error, NatsServerError):
        return "nats_server_error", str(error), exit_codes.FAILED
    if isinstance(error, PrincipalError):
        return "principals_error", str(error), exit_codes.FAILED
    if isinstance(error, click.exceptions.Abort):
        return "aborted", "interrupted", exit_codes.INTERRUPTED
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        path = error.ctx.command_path
        return "usage_error", f"{path} needs a subcommand; see `{path} --help`", exit_codes.USAGE
    if isinstance(error, click.ClickException):  # usage errors exit 2 (a file error 1)
        return "usage_error", " ".join(error.format_message().split()), error.exit_code
    return "internal_error", f"{type(error).__name__}: {error}", exit_codes.INTERNAL


if __name__ == "__main__":
    main()
