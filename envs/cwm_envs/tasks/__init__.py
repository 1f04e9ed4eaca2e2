"""Verifiable tasks and their rewards: unit-tested functions, stdin/stdout programs, math answers, SWE repos."""
