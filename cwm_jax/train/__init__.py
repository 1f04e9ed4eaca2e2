"""Training: config checks, optimizer recipe, sharded train step, checkpoints, metrics, the loop."""
