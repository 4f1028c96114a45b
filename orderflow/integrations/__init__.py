"""Integration keys: how machines (an ERP, a warehouse system) authenticate."""
