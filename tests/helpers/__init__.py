"""Setup shared by several test modules (import as ``tests.helpers.<module>``)."""
