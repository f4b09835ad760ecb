"""Benchmarks: micro (per request and per chunk, in-process) and load (over loopback)."""
