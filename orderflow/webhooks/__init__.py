"""Outgoing webhooks: endpoints subscribed to event types, signed deliveries per the
Standard Webhooks specification, retried for days, in order per (endpoint, subject)."""
