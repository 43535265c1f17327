"""Plugins shipped with worldr1 (installed as ``worldr1_plugins``), listed in ``registry.toml``."""
