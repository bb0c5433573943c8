"""An analytics rebuild spread over worker processes gives exactly what one process gives, and
fails whole when a worker dies: an error naming it, no half-built file, the old file kept."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.policy_publishing import publish_commands
from projections.analytics import row_groups
from projections.analytics.store import AnalyticsStore
from replay import rebuild_workers
from replay.rebuild import rebuild_analytics
from replay.rebuild_workers import RebuildWorkerError, RebuildWorkers
from replay.stream import published_after
from tests.integration.test_rebuild_fast_paths import TRICKY_BODIES
from tests.integration.test_schema_evolution import FIXTURE as V1_STORE
from tests.projection_checks import Tables, dump
from ticketing.cli.demo_day import DEMO_DAY, support_day
from ticketing.runtime.bootstrap import build_application, build_command_service
from ticketing.settings import Settings
from ticketing.sla.policy_file import load_policy_file
from ticketing.store.application import TicketingApplication

pytestmark = pytest.mark.integration

AGENT = {"kind": "agent", "id": "ana"}
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "mappings" / "sla.example.toml"
SLA_DUMP = {
    "ticket_sla": "SELECT * FROM ticket_sla ORDER BY ticket_id, metric, cycle",
    "sla_state": "SELECT * FROM sla_state ORDER BY ticket_id",
}


def ok(reply: Any) -> Any:
    assert reply.ok, reply.as_dict()
    return reply


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day under a published SLA policy, comments with awkward text, a redaction and a tier
    change: everything the fold and the fact rows treat specially."""
    home = tmp_path_factory.mktemp("workers") / "home"
    service = build_command_service(Settings(home=home))
    try:
        actor = m.ActorModel(kind="system", id="test")
        for command in publish_commands(
            load_policy_file(EXAMPLE_POLICY), actor, DEMO_DAY - timedelta(hours=1)
        ):
            ok(service.execute(command))
        support_day(service.execute, tickets=40, seed=11)
        ticket = UUID(
            ok(
                service.execute(
                    m.OpenTicket(account_id="acme", requester="bob@acme.example", subject="Grüße ✓")
                )
            ).ticket_id
        )
        for body in TRICKY_BODIES:
            ok(service.execute(m.AddComment(ticket_id=ticket, body=body, actor=AGENT)))
        ok(service.execute(m.RedactComment(ticket_id=ticket, comment_id="c2", reason="GDPR")))
        ok(service.execute(m.ChangeAccountTier(account_id="acme", tier="business", actor=AGENT)))
    finally:
        service.app.close()
    return home


@pytest.fixture
def app(home: Path) -> Iterator[TicketingApplication]:
    app = build_application(Settings(home=home))
    yield app
    app.close()


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 37 notification ids: dozens of them, some holding no published event; and
    row groups of 64 rows, so that the file gets a lead, whole groups and a tail, and the
    store is counted on the writer thread."""
    monkeypatch.setattr(rebuild_workers, "RANGE", 37)
    monkeypatch.setattr(row_groups, "ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(row_groups, "SHORTEST_TAIL", 21)


def built(app: TicketingApplication, target: Path, **options: Any) -> Tables:
    rebuild_analytics(app, target, **options)
    store = AnalyticsStore(target)
    try:
        tables = dump(store)
        cursor = store.connection().cursor()
        tables.update({name: cursor.execute(sql).fetchall() for name, sql in SLA_DUMP.items()})
        return tables
    finally:
        store.close()


@pytest.mark.usefixtures("small_ranges")
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_build_the_rows_one_process_builds(
    app: TicketingApplication, tmp_path: Path, workers: int
) -> None:
    # Given the projection rebuilt in this process
    expected = built(app, tmp_path / "one.duckdb", workers=0)
    # When it is rebuilt by workers
    tables = built(app, tmp_path / "workers.duckdb", workers=workers)
    # Then every table is the same, row for row
    assert tables == expected
    assert len(expected["event_facts"]) == published_after(app, 0)[0] > 400
    assert expected["ticket_sla"], "the policy measured nothing"
    redacted = [row for row in expected["event_facts"] if '"body":""' in row[-1]]
    assert redacted, "the redaction left no trace in the facts"


@pytest.mark.usefixtures("small_ranges")
def test_workers_stop_at_the_same_event_as_one_process(
    app: TicketingApplication, tmp_path: Path
) -> None:
    # Given a stopping point inside a range
    upto = published_after(app, 0)[0] // 2 + 3
    # When
    tables = built(app, tmp_path / "workers.duckdb", workers=2, upto_sequence=upto)
    # Then
    assert tables == built(app, tmp_path / "one.duckdb", workers=0, upto_sequence=upto)
    assert tables["projection_position"] == [("analytics", upto)]


@pytest.mark.usefixtures("small_ranges")
def test_workers_upcast_a_v1_store_as_one_process_does(tmp_path: Path) -> None:
    # Given a store written by version 1 code (ratings stored at class version 1)
    home = tmp_path / "v1"
    home.mkdir()
    shutil.copyfile(V1_STORE, home / "events.sqlite")
    app = build_application(Settings(home=home))
    try:
        # When / Then
        tables = built(app, tmp_path / "workers.duckdb", workers=2)
        assert tables == built(app, tmp_path / "one.duckdb", workers=0)
        assert any(row[5] == "TicketRated" for row in tables["event_facts"])
    finally:
        app.close()


@pytest.mark.usefixtures("small_ranges")
def test_a_killed_worker_fails_the_rebuild_and_keeps_the_old_file(
    app: TicketingApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a projection file from an earlier rebuild
    target = tmp_path / "analytics.duckdb"
    before = built(app, target, workers=0)
    teams: list[RebuildWorkers] = []
    start = RebuildWorkers.__init__

    def remember(self: RebuildWorkers, *args: Any, **kwargs: Any) -> None:
        start(self, *args, **kwargs)
        teams.append(self)

    monkeypatch.setattr(RebuildWorkers, "__init__", remember)

    def kill_a_worker(_events: int) -> None:
        worker = teams[0]._workers[1]._process
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)

    # When a worker is killed while the rebuild runs
    with pytest.raises(RebuildWorkerError, match="exit code -9") as failure:
        rebuild_analytics(app, target, workers=2, progress=kill_a_worker)
    # Then the error carries its code, nothing half-built is left, the old file is intact
    assert failure.value.code == "rebuild_worker_failed"
    assert not list(tmp_path.glob("*.building*"))
    store = AnalyticsStore(target)
    try:
        assert dump(store) == {k: v for k, v in before.items() if k not in SLA_DUMP}
    finally:
        store.close()
    assert all(w._process.poll() is not None for w in teams[0]._workers)


def test_workers_need_a_store_another_process_can_open(tmp_path: Path) -> None:
    app = build_application(Settings(home=tmp_path / "home", event_store="memory"))
    try:
        with pytest.raises(RebuildWorkerError, match="another process") as refusal:
            rebuild_analytics(app, tmp_path / "analytics.duckdb", workers=2)
        assert refusal.value.code == "rebuild_workers_unavailable"
    finally:
        app.close()


def rebuild_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`ticketing rebuild analytics ARGS` as an operator's shell runs it."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("ticketing")), "rebuild", "analytics", *args],
        capture_output=True,
        text=True,
        env={**plain, "TICKETING_HOME": str(home), **env},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["--workers", "-1"], {}, "usage_error"),
        (["--workers", "two"], {}, "usage_error"),
        (["--workers", "2"], {"TICKETING_EVENT_STORE": "memory"}, "rebuild_workers_unavailable"),
    ],
)
def test_the_cli_refuses_bad_workers_and_writes_nothing(
    tmp_path: Path, args: list[str], env: dict[str, str], code: str
) -> None:
    target = tmp_path / "analytics.duckdb"
    # When
    result = rebuild_cli(tmp_path / "home", *args, "--to", str(target), **env)
    # Then one error line with its stable code, and no file
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: {code}: "), result.stderr
    assert "--workers" in result.stderr or "another process" in result.stderr
    assert not list(tmp_path.glob("analytics.duckdb*"))


def test_the_cli_rebuilds_with_workers(home: Path, tmp_path: Path) -> None:
    # Given a copy of the store (the CLI writes the live projection files)
    own = tmp_path / "home"
    shutil.copytree(home, own)
    # When
    result = rebuild_cli(own, "--workers", "2", "--to", str(tmp_path / "workers.duckdb"))
    # Then
    assert result.returncode == 0, result.stderr
    assert "2 workers" in result.stdout
    app = build_application(Settings(home=own))
    try:
        store = AnalyticsStore(tmp_path / "workers.duckdb")
        try:
            assert dump(store) == {
                k: v
                for k, v in built(app, tmp_path / "one.duckdb", workers=0).items()
                if k not in SLA_DUMP
            }
        finally:
            store.close()
    finally:
        app.close()


@pytest.mark.usefixtures("small_ranges")
def test_workers_read_every_durable_store(store_settings: Settings, tmp_path: Path) -> None:
    # Given a day in SQLite or PostgreSQL
    service = build_command_service(store_settings)
    try:
        support_day(service.execute, tickets=12, seed=3)
        # When / Then
        tables = built(service.app, tmp_path / "workers.duckdb", workers=2)
        assert tables == built(service.app, tmp_path / "one.duckdb", workers=0)
        assert len(tables["event_facts"]) > 100
    finally:
        service.app.close()
