"""Delivering outbox items of kind "channel": a message for a named channel of the notifier
file (`[channels.<name>]`), sent to its webhook or e-mail address.

Any automation process may queue them (trigger rules' `notify`), with the body
`{"channel": name, "subject": str, "text": str, "ticket_id": str}`, and deliver them with
`channel_deliverer(load_notifier_config(settings))`. A channel that is not configured (or no
notifier file at all) is recorded as dropped, not retried: only a new file could change that."""

from __future__ import annotations

from ticketing.workers.notify.config import NotifierConfig
from ticketing.workers.notify.senders import SmtpSender, build_email, post_webhook, webhook_body
from ticketing.workers.outbox import OutboxItem
from ticketing.workers.runner import Deliver


def channel_deliverer(config: NotifierConfig | None) -> Deliver:
    """Deliver channel messages as `config` says; raises `RetryLater` for transient failures."""
    smtp = SmtpSender(config.smtp) if config is not None and config.smtp is not None else None

    async def deliver(item: OutboxItem) -> str:
        name = str(item.body.get("channel", ""))
        if config is None:
            return f"dropped: no notifier configuration for channel {name}"
        channel = config.channels.get(name)
        if channel is None:
            return f"dropped: unknown channel {name}"
        subject = str(item.body.get("subject", ""))
        text = str(item.body.get("text", ""))
        ticket_id = str(item.body.get("ticket_id", "")) or None
        if channel.webhook is not None:
            hook = config.webhook(channel.webhook)
            if hook is None:  # checked when the file is loaded
                return f"dropped: unknown webhook {channel.webhook}"
            content = {"channel": name, "subject": subject, "text": text, "ticket_id": ticket_id}
            return await post_webhook(
                hook.url,
                config.webhook_secret(hook.id),
                item.key,
                webhook_body(item.key, content),
                timeout=hook.timeout,
            )
        if smtp is None or channel.email is None:  # checked when the file is loaded
            return f"dropped: channel {name} has no destination"
        try:
            message = build_email(
                key=item.key,
                sender=smtp.config.sender,
                to=channel.email,
                subject=subject,
                text=text,
                ticket_id=ticket_id,
            )
        except (TypeError, ValueError) as error:  # retrying cannot mend it
            return f"dropped: cannot build the e-mail ({type(error).__name__}: {error})"
        return await smtp.send(message)

    return deliver
