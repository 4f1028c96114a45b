"""Invoices: gapless numbers per year, a view model, and a PDF that never changes once issued."""
