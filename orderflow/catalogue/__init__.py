"""Products and their stock."""
