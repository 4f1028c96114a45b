"""Orders: the state machine, placement, queries, cancellation and the event log."""
