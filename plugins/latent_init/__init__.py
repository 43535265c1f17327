"""Shipped latent_init plugins."""
