"""`ticketing search` and `ticketing queue --requester` on a home whose queue was rebuilt."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest

from commands import models as m
from replay.rebuild import rebuild_queue
from ticketing.cli.app import main
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings, queue_path

pytestmark = pytest.mark.integration

AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, str]:
    settings = Settings(home=tmp_path / "home")
    service = build_command_service(settings)
    try:
        for command in (
            m.CreateAccount(account_id="acme", account_name="Acme", tier="business", actor=AGENT),
            m.OpenTicket(
                account_id="acme",
                requester="carol@acme.example",
                subject="Printer jam on floor 3",
                actor=CUSTOMER,
            ),
        ):
            assert service.execute(command).ok
        reply = service.execute(
            m.OpenTicket(
                account_id="acme",
                requester="bob@acme.example",
                subject="Wireguard tunnel flaps every hour",
                description="Since Monday the tunnel resets.",
                actor=CUSTOMER,
            )
        )
        assert reply.ok and reply.ticket_id
        ticket = reply.ticket_id
        note = m.AddComment(
            ticket_id=UUID(ticket),
            body="MTU mismatch on the gateway",
            visibility="internal",
            actor=AGENT,
        )
        assert service.execute(note).ok
        rebuild_queue(service.app, queue_path(settings))
    finally:
        service.app.close()
    return settings.home, ticket


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--home", str(home), *args])
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_a_table_of_hits_with_where_they_matched(
    home: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, home[0], "search", "wireguard")
    assert code == 0
    assert home[1][:8] in out and "Wireguard tunnel flaps" in out
    assert "[Wireguard] tunnel flaps every hour" in out
    code, out, _ = run(capsys, home[0], "search", "gateway", "--json")
    (hit,) = json.loads(out)
    assert (hit["ticket_id"], hit["matched_in"], hit["internal_only"]) == (
        home[1],
        ["internal note"],
        True,
    )
    code, out, _ = run(capsys, home[0], "search", "gateway", "--public-only")
    assert (code, out.strip()) == (0, "no tickets match")


def test_search_filters_by_requester_account_and_status(
    home: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    def ids(*args: str) -> list[str]:
        code, out, err = run(capsys, home[0], "search", *args, "--json")
        assert code == 0, err
        return [hit["ticket_id"] for hit in json.loads(out)]

    assert ids("tunnel", "--requester", "BOB@acme.example", "--account", "acme") == [home[1]]
    assert ids("tunnel", "--requester", "carol@acme.example") == []
    assert ids("tunnel", "--status", "solved", "--status", "closed") == []


def test_hostile_text_is_words_or_one_validation_error_naming_the_field(
    home: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, home[0], "search", '"')
    assert code != 0 and out == ""
    assert err.startswith("error: validation_error: text: nothing to search for")
    code, out, err = run(capsys, home[0], "search", "AND (")
    assert (code, out.strip(), err) == (0, "no tickets match", "")


def test_queue_lists_one_requesters_tickets(
    home: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, home[0], "queue", "--requester", "Bob@Acme.Example", "--json")
    assert code == 0, err
    assert [t["ticket_id"] for t in json.loads(out)] == [home[1]]
