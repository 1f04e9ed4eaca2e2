"""The Grain input pipeline: sources -> documents (tokens + loss mask) -> mixture -> packed batches."""
