"""The rollout engine (continuous batching over a paged KV cache) and `generate`, which it serves."""
