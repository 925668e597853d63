"""Exercises of notebook: (being written)."""
