"""SLA measurement over the event stream: the policy catalog and per-ticket timelines that the
SLA monitor, the queue and analytics projectors and `sla what-if` all read the same way."""
