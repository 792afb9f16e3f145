"""Scripts that measure and report figures (not tests): `python -m benchmarks.quality`."""
