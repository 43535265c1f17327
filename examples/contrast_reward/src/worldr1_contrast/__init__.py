"""Example third-party worldr1 plugin (see plugin.py)."""
