"""Shipped rewards plugins."""
