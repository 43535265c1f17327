"""Shipped camera plugins."""
