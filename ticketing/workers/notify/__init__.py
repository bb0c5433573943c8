"""The customer-update notifier: events to e-mails and signed webhooks through an outbox."""
