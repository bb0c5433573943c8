"""The README's and docs/security.md's security model is the code's: their tables are rendered
from the one home of each rule, and an operator's principals file is read strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.permissions import table_markdown
from ticketing.cli.app import cli
from ticketing.cli.context import CliError
from ticketing.nats.roles import command_subject, inbox_prefix
from ticketing.nats.server import EmbeddedNats
from ticketing.principals import PrincipalError, Principals, principals_markdown

README = Path(__file__).resolve().parents[2] / "README.md"
SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_readme_permission_table_is_the_code_s() -> None:
    assert table_markdown() in README.read_text()


def test_the_readme_principals_table_is_the_code_s() -> None:
    assert principals_markdown() in README.read_text()


def test_the_security_doc_s_permission_table_is_the_code_s() -> None:
    assert table_markdown() in SECURITY_DOC.read_text()


def test_the_security_doc_s_principals_table_is_the_code_s() -> None:
    assert principals_markdown() in SECURITY_DOC.read_text()


SERVICE = """
[[principal]]
name = "helpdesk-web"
act_as = ["customer:*", "agent:*"]
accounts = ["acme"]
description = "the portal"
"""


def test_an_operator_s_service_gets_a_nats_user_limited_to_its_own_subjects(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "principals.toml").write_text(SERVICE)
    server = EmbeddedNats(home)
    server.prepare()
    credentials = json.loads(server.credentials_path.read_text())
    config = json.loads(server.config_path.read_text())
    users = {u["user"]: u for u in config["authorization"]["users"]}
    web = users["helpdesk-web"]
    assert web["password"] == credentials["helpdesk-web"]["password"]
    assert web["permissions"]["publish"]["allow"][0] == command_subject("helpdesk-web", ">")
    assert web["permissions"]["subscribe"]["allow"] == [f"{inbox_prefix('helpdesk-web')}.>"]
    # a second prepare keeps every password
    server.prepare()
    assert json.loads(server.credentials_path.read_text()) == credentials


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[[principal]]\nname = "x"\ngrants = ["root"]\n', "principal.0.grants"),
        ('[[principal]]\nname = "x"\nact_as = ["boss"]\n', "principal.0.act_as"),
        ('[[principal]]\nname = "Bad Name"\n', "principal.0.name"),
        ('[[principal]]\nname = "caller"\n', "built in"),
        ("[[principal]\n", "principals.toml"),
    ],
)
def test_a_bad_principals_file_is_one_error_naming_the_field(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "principals.toml"
    path.write_text(text)
    with pytest.raises(PrincipalError, match=named.replace(".", r"\.")):
        Principals.load(path)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "principals"])
    assert isinstance(result.exception, CliError), result.output
    assert result.exception.code == "principals_error"


def test_the_principals_command_lists_the_operator_s_service(tmp_path: Path) -> None:
    (tmp_path / "principals.toml").write_text(SERVICE)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "principals", "--json"])
    assert result.exit_code == 0, result.output
    found = {p["name"]: p for p in json.loads(result.output)}
    assert found["helpdesk-web"]["accounts"] == ["acme"]
    assert found["caller"]["nats"]["subscribe"] == ["_INBOX.caller.>"]
