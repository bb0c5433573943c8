"""The notifier's TOML file (`TICKETING_NOTIFIER`): SMTP server, customer updates, webhooks
and the named channels trigger rules notify; every error names the file and the field.

Secrets (the SMTP password, webhook signing secrets) are given inline or, better, as the name
of an environment variable (`password_env`, `secret_env`) read when the file is loaded; they
are kept as `SecretStr`, so no repr, log line or outbox row ever shows them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from projections.wire import EventMessage
from ticketing.settings import Settings
from ticketing.toml_files import read_toml

CustomerEvent = Literal["opened", "public_reply", "pending", "solved", "sla_warning"]
CUSTOMER_EVENTS: tuple[CustomerEvent, ...] = get_args(CustomerEvent)
"""The updates a customer can get: an acknowledgement when the ticket is opened, each public
agent reply, a request for their reply (pending), solved (with the CSAT survey link) and a
"still working on it" when a reply SLA is about to pass."""

ReplyAuthor = Literal["agent", "ai", "automation", "system", "api"]
_AGENTS_ONLY: tuple[ReplyAuthor, ...] = ("agent",)

EVENT_TYPES: frozenset[str] = frozenset(
    get_args(cls.model_fields["type"].annotation)[0] for cls in get_args(get_args(EventMessage)[0])
)
"""Every event type on the wire, the names a webhook may subscribe to."""

_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_URL = re.compile(r"https?://[^\s]+")


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(value) > 2000 or not pattern.fullmatch(value):
            raise ValueError(f"not {what}")
        return value

    return check


Email = Annotated[str, AfterValidator(_matching(_EMAIL, "an e-mail address"))]
Url = Annotated[str, AfterValidator(_matching(_URL, "an http:// or https:// URL"))]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-:#.@]{0,63}$")]
Timeout = Annotated[float, Field(gt=0, le=120)]


class NotifierConfigError(ValueError):
    """The notifier file cannot be read or is invalid; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Strict):
    """The outgoing mail server; one connection per message (STARTTLS and login optional)."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: Email
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    starttls: bool = False
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _login_needs_both(self) -> Self:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if self.username is None and (self.password or self.password_env):
            raise ValueError("a password needs a username")
        return self


class CustomerConfig(_Strict):
    """Which updates customers get by e-mail, and what goes into them."""

    events: list[CustomerEvent] = Field(default_factory=lambda: list(CUSTOMER_EVENTS))
    survey_url: Url | None = None
    """The CSAT survey link in the solved e-mail; `{ticket_id}` is replaced."""
    reply_authors: list[ReplyAuthor] = Field(default_factory=lambda: list(_AGENTS_ONLY))
    """Whose public replies are e-mailed (never the customer's own, never internal notes)."""
    signature: str = Field(default="Your support team", max_length=500)
    max_age_hours: float = Field(default=24.0, gt=0)
    """Updates about events older than this are not e-mailed (imported history, a notifier
    started on an old stream, a long outage): customers hear about the present only."""

    @model_validator(mode="after")
    def _survey_placeholder(self) -> Self:
        if self.survey_url is not None:
            try:
                self.survey_url.format(ticket_id="x")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"survey_url may only use the placeholder {{ticket_id}} ({error!r})"
                ) from error
        return self


class WebhookConfig(_Strict):
    """A receiver of signed event deliveries (HMAC-SHA256, see `senders.sign`)."""

    id: Identifier
    url: Url
    secret: SecretStr | None = None
    secret_env: str | None = None
    events: list[str] = Field(min_length=1)
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _one_secret_and_known_events(self) -> Self:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret or secret_env")
        unknown = sorted(set(self.events) - EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types {', '.join(unknown)}")
        return self


class ChannelConfig(_Strict):
    """A named destination trigger rules can notify: a webhook (by id) or an e-mail address."""

    webhook: Identifier | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> Self:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("give exactly one of webhook or email")
        return self


class NotifierConfig(_Strict):
    """A checked notifier file with its secrets resolved."""

    smtp: SmtpConfig | None = None
    customer: CustomerConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    channels: dict[Identifier, ChannelConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Self:
        if self.customer is not None and self.customer.events and self.smtp is None:
            raise ValueError("customer e-mails need an [smtp] section")
        ids = [hook.id for hook in self.webhooks]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"webhook ids must be unique: {', '.join(duplicates)}")
        for name, channel in self.channels.items():
            if channel.webhook is not None and channel.webhook not in ids:
                raise ValueError(f"channels.{name}: no webhook with id {channel.webhook!r}")
            if channel.email is not None and self.smtp is None:
                raise ValueError(f"channels.{name}: an e-mail channel needs an [smtp] section")
        return self

    @property
    def customer_events(self) -> frozenset[str]:
        """The customer updates to send: the configured ones, all of them when `[customer]` is
        left out and `[smtp]` is given, none without `[smtp]`."""
        if self.customer is not None:
            return frozenset(self.customer.events)
        return frozenset(CUSTOMER_EVENTS) if self.smtp is not None else frozenset()

    @property
    def customer_settings(self) -> CustomerConfig:
        return self.customer or CustomerConfig()

    def webhook(self, webhook_id: str) -> WebhookConfig | None:
        return next((hook for hook in self.webhooks if hook.id == webhook_id), None)

    def webhook_secret(self, webhook_id: str) -> str:
        hook = self.webhook(webhook_id)
        if hook is None or hook.secret is None:
            raise KeyError(webhook_id)
        return hook.secret.get_secret_value()


def parse_notifier_config(data: Mapping[str, Any], environ: Mapping[str, str]) -> NotifierConfig:
    """Validate parsed TOML and resolve `*_env` secrets from `environ`."""
    try:
        config = NotifierConfig.model_validate(data)
    except ValidationError as error:
        raise NotifierConfigError(describe(error)) from None
    return _resolve_secrets(config, environ)


def load_notifier_config(settings: Settings) -> NotifierConfig | None:
    """The notifier file named by `TICKETING_NOTIFIER`, checked; None when none is set."""
    if settings.notifier_file is None:
        return None
    return load_notifier_file(settings.notifier_file, {**os.environ, **settings.extra_env})


def load_notifier_file(path: Path | str, environ: Mapping[str, str]) -> NotifierConfig:
    path = Path(path)
    data = read_toml(path, NotifierConfigError, "notifier configuration")
    try:
        return parse_notifier_config(data, environ)
    except NotifierConfigError as error:
        raise NotifierConfigError(f"{path}: {error}") from None


def describe(error: ValidationError) -> str:
    """pydantic's errors as `webhooks[0].url: message`, joined by '; ' (never the input value,
    which may be a secret)."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        location = ""
        for part in problem["loc"]:
            location += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = str(problem["msg"]).removeprefix("Value error, ")
        location = location.lstrip(".")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _resolve_secrets(config: NotifierConfig, environ: Mapping[str, str]) -> NotifierConfig:
    def from_env(where: str, name: str) -> SecretStr:
        value = environ.get(name)
        if not value:
            raise NotifierConfigError(f"{where}: the environment variable {name} is not set")
        return SecretStr(value)

    hooks = [
        hook.model_copy(
            update={"secret": from_env(f"webhooks[{index}].secret_env", hook.secret_env)}
        )
        if hook.secret_env is not None
        else hook
        for index, hook in enumerate(config.webhooks)
    ]
    smtp = config.smtp
    if smtp is not None and smtp.password_env is not None:
        smtp = smtp.model_copy(
            update={"password": from_env("smtp.password_env", smtp.password_env)}
        )
    return config.model_copy(update={"webhooks": hooks, "smtp": smtp})
