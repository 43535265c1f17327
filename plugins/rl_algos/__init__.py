"""Shipped rl_algos plugins."""
