"""Benchmarks of metarl (run them with ``metarl bench ...``)."""
