"""Batching helpers over more-itertools (a repository whose code and tests import a PyPI package)."""
