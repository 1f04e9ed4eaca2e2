"""CWM data: tracer, trace and agent formats, tokenizer, Grain pipeline, generators. Never imports jax."""
