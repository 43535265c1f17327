"""Shipped rewards geometry plugins."""
