"""Aids the tests and the benchmarks share, importable from both without path set-up.

``feedgen``: synthetic, deterministic news feeds (RSS 2.0, realistic in size and shape). Nothing
in the service imports this package.
"""
