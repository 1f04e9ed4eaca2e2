"""Trace corpus generators: function-level (fuzzed inputs), stdin/stdout programs, repository test suites."""
