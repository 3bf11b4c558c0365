"""Benchmarks: a grid runner over use cases, a results store, figures and a strong-scaling model."""
