"""Tiny offline components and fixtures that plugin authors reuse in their tests."""
