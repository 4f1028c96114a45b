"""Shipments of an order: their state machine (``state``) and persistence (``repository``).
What a shipment's change does to its order is the pipeline side's: ``fulfilment.shipping``."""
