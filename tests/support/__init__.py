"""Helpers shared by the test folders (plain functions and classes; fixtures stay in the conftest files).

The throwaway ``influxd`` launcher is not here but in ``app/storage/influxd_local.py``: the benchmarks use it too,
and ``bench/`` imports nothing from ``tests/``.
"""
