"""Small offline helpers for tests of worldr1 and of third-party plugins (no downloads, no GPU)."""
