"""The notifier file: checked, with errors naming the file and the field, secrets resolved from
the environment and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketing.settings import Settings
from ticketing.workers.notify.config import (
    CUSTOMER_EVENTS,
    NotifierConfigError,
    load_notifier_config,
    load_notifier_file,
)

EXAMPLE = Path(__file__).parents[2] / "mappings" / "notifier.example.toml"
SMTP = '[smtp]\nhost = "127.0.0.1"\nport = 2525\nsender = "support@example.com"\n'
HOOK = (
    '[[webhooks]]\nid = "crm"\nurl = "http://127.0.0.1:8080/hook"\n'
    'secret_env = "CRM_SECRET"\nevents = ["TicketOpened"]\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(NotifierConfigError) as raised:
        load_notifier_file(path, {"CRM_SECRET": "s3cret-value"} if env is None else env)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_the_example_file_loads_with_its_secret_from_the_environment() -> None:
    config = load_notifier_file(EXAMPLE, {"CRM_WEBHOOK_SECRET": "s3cret-value"})
    assert config.customer_events == frozenset(CUSTOMER_EVENTS)
    assert config.webhook_secret("crm") == "s3cret-value"
    assert set(config.channels) == {"oncall", "escalations"}
    assert "s3cret-value" not in repr(config)


def test_no_notifier_file_means_no_configuration(tmp_path: Path) -> None:
    assert load_notifier_config(Settings(home=tmp_path)) is None


def test_settings_name_the_file_and_supply_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, SMTP + HOOK)
    settings = Settings(home=tmp_path, notifier_file=path, extra_env={"CRM_SECRET": "abc"})
    config = load_notifier_config(settings)
    assert config is not None
    assert config.webhook_secret("crm") == "abc"


def test_smtp_alone_sends_every_customer_update_and_no_smtp_sends_none(tmp_path: Path) -> None:
    assert load_notifier_file(write(tmp_path, SMTP), {}).customer_events == set(CUSTOMER_EVENTS)
    hooks_only = load_notifier_file(write(tmp_path, HOOK), {"CRM_SECRET": "x"})
    assert hooks_only.customer_events == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[smtp]\nhost = "h"\nsender = "not an address"\n', "smtp.sender: not an e-mail address"),
        (SMTP + '[customer]\nevents = ["opened", "waved"]\n', "customer.events[1]: Input should"),
        (SMTP + '[customer]\nsurvey_url = "https://x/{ticket}"\n', "customer: survey_url may"),
        (SMTP + "[customer]\nsurvey = 1\n", "customer.survey: Extra inputs are not permitted"),
        (HOOK.replace('"TicketOpened"', '"TicketOpend"'), "webhooks[0]: unknown event types"),
        (HOOK.replace("http://", "ftp://"), "webhooks[0].url: not an http:// or https:// URL"),
        (HOOK + 'secret = "x"\n', "webhooks[0]: give exactly one of secret or secret_env"),
        (HOOK + HOOK, "webhook ids must be unique: crm"),
        (HOOK + '[channels.oncall]\nwebhook = "pager"\n', "channels.oncall: no webhook with id"),
        (HOOK + '[channels.oncall]\nemail = "a@b.c"\n', "channels.oncall: an e-mail channel"),
        ('[channels.oncall]\nwebhook = "a"\nemail = "a@b.c"\n', "channels.oncall: give exactly"),
        ('[customer]\nevents = ["opened"]\n', "customer e-mails need an [smtp] section"),
        ("[smtp\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_file_and_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in error_for(tmp_path, text)


def test_a_missing_secret_variable_names_the_field_and_the_variable(tmp_path: Path) -> None:
    message = error_for(tmp_path, HOOK, env={})
    assert "webhooks[0].secret_env: the environment variable CRM_SECRET is not set" in message


def test_an_invalid_file_never_echoes_a_secret(tmp_path: Path) -> None:
    text = HOOK.replace('secret_env = "CRM_SECRET"', 'secret = "s3cret-value"') + "colour = 1\n"
    message = error_for(tmp_path, text)
    assert "s3cret-value" not in message
    assert "webhooks[0].colour" in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotifierConfigError, match="cannot read the notifier configuration"):
        load_notifier_file(tmp_path / "nope.toml", {})
