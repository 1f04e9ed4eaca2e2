"""Evaluations: trace prediction, CRUXEval output prediction (direct and via traces), math and HumanEval
pass@k. Each takes a Completer (cwm_jax/completion.py) and a tokenizer and returns a JSON-able result."""
