"""Prompt-set tools (``worldr1 data ...``)."""
