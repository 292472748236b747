"""Development tools: the whole stack as processes (tests, demo, benchmarks).

Not part of the worker's runtime; the production image does not install it.
"""
