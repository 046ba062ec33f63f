"""Benchmarks of spacetasks_async against a local Unpod server: ``python -m benchmarks.run``."""
