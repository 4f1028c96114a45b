"""Business events: one row per fact, written in the transaction of the change; the feed
that pages through them; the source of outgoing webhooks."""
