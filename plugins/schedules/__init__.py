"""Shipped schedules plugins."""
