"""Shipped lifecycle-hook plugins (callbacks)."""
