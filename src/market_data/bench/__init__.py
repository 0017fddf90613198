"""Benchmarks (``market-data bench``): each figure beside a plain baseline from the same run.

Imported only by the ``bench`` command; some need the ``bench`` extra (psutil, orjson,
sortedcontainers).
"""
