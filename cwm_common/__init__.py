"""Pieces every cwm package shares; imports nothing of ours and no jax."""
