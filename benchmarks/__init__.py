"""Benchmarks of fapm-jax: run ``python -m benchmarks`` (see ``--help``)."""
