"""Task families, one module each: its data, its prompt and its grader (jax-free; evals and RL use them)."""
