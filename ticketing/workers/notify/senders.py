"""Sending: e-mail over SMTP (stdlib `smtplib` in a thread) and signed webhooks (`urllib`).

Both are at least once; a resend after a crash is recognisable as the same message, so a
receiver sees each once if it deduplicates: an e-mail's `Message-ID` is derived from its outbox
key, a webhook carries the key in `X-Ticketing-Delivery`.

A webhook is signed like Stripe's and GitHub's: `X-Ticketing-Signature: sha256=<hex>` is the
HMAC-SHA256, keyed with the webhook's secret, of `"<X-Ticketing-Timestamp>.<body>"`. Receivers
check it with `verify_signature` (and may refuse old timestamps to stop replays).

Transient failures (connection refused or reset, timeouts, SMTP 4xx, HTTP 408/429/5xx) raise
`RetryLater`; a permanent refusal (SMTP 5xx for the message, HTTP 4xx) is delivered with a
"refused" outcome, since retrying cannot change it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from ticketing.workers.notify.config import SmtpConfig
from ticketing.workers.runner import RetryLater

SIGNATURE_HEADER = "X-Ticketing-Signature"
TIMESTAMP_HEADER = "X-Ticketing-Timestamp"
DELIVERY_HEADER = "X-Ticketing-Delivery"
MESSAGE_ID_DOMAIN = "ticketing"


# --- e-mail ---------------------------------------------------------------------------------


def message_id(key: str) -> str:
    """The Message-ID of the e-mail with this outbox key: the same on every resend."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


def thread_id(ticket_id: str) -> str:
    """A per-ticket id every e-mail about the ticket refers to, so mail clients thread them."""
    return f"<ticket-{ticket_id}@{MESSAGE_ID_DOMAIN}>"


def build_email(
    *, key: str, sender: str, to: str, subject: str, text: str, ticket_id: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = " ".join(subject.split())
    message["Message-ID"] = message_id(key)
    message["Date"] = formatdate(usegmt=True)
    if ticket_id:
        message["In-Reply-To"] = thread_id(ticket_id)
        message["References"] = thread_id(ticket_id)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders stay quiet
    message.set_content(text)
    return message


class SmtpSender:
    """Sends one message per connection to the configured server."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, message: EmailMessage) -> str:
        """The outcome to record; raises `RetryLater` when the server may accept it later."""
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> str:
        config = self.config
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.username and config.password:
                    smtp.login(config.username, config.password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            if all(code >= 500 for code in codes):
                return f"refused: recipient refused ({', '.join(map(str, codes))})"
            raise RetryLater(f"smtp: recipient deferred ({codes})") from error
        except smtplib.SMTPDataError as error:
            if error.smtp_code >= 500:
                return f"refused: message refused ({error.smtp_code})"
            raise RetryLater(f"smtp: message deferred ({error.smtp_code})") from error
        except smtplib.SMTPResponseException as error:
            # Sender refused, authentication failed, ...: the server's or our configuration's
            # problem, not this message's, so keep it queued until it is fixed.
            raise RetryLater(f"smtp: {type(error).__name__} ({error.smtp_code})") from error
        except (smtplib.SMTPException, OSError) as error:
            raise RetryLater(f"smtp: {type(error).__name__}: {error}") from error
        except UnicodeError as error:  # an address the server cannot take (no SMTPUTF8)
            return f"refused: cannot encode the message ({type(error).__name__})"
        return f"sent: {message['Message-ID']}"


# --- webhooks -------------------------------------------------------------------------------


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The `X-Ticketing-Signature` value for `body` sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_s: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether `header` is our signature of `body` at `timestamp` (constant-time compare);
    with `tolerance_s`, also whether the timestamp is that recent (replay protection)."""
    if not header or not timestamp:
        return False
    if tolerance_s is not None:
        try:
            sent = int(timestamp)
        except ValueError:
            return False
        if abs((time.time() if now is None else now) - sent) > tolerance_s:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def webhook_body(key: str, content: Mapping[str, Any]) -> bytes:
    """The JSON posted: the delivery id and the content (an event, or a channel message)."""
    return json.dumps(
        {"delivery": key, **content}, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A signed POST is never re-sent elsewhere: a redirect is the receiver's answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


async def post_webhook(
    url: str, secret: str, key: str, body: bytes, *, timeout: float = 10.0
) -> str:
    """POST `body` signed; the outcome to record, or `RetryLater`."""
    return await asyncio.to_thread(_post, url, secret, key, body, timeout)


def _post(url: str, secret: str, key: str, body: bytes, timeout: float) -> str:
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "ticketing-notifier",
            DELIVERY_HEADER: key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return f"delivered: {response.status}"
    except urllib.error.HTTPError as error:
        error.close()
        if error.code in (408, 429) or error.code >= 500:
            raise RetryLater(f"webhook: HTTP {error.code}") from error
        return f"refused: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:  # refused, reset, DNS, timeout
        raise RetryLater(f"webhook: {type(error).__name__}: {error}") from error
    except ValueError as error:  # a URL urllib cannot use; its text may hold a token
        return f"refused: invalid URL ({type(error).__name__})"
