"""Shipped base_models plugins."""
