"""textkit: a tiny text-processing package, traced through its own test suite."""
