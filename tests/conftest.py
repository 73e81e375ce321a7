"""Suite-wide settings: the Hypothesis profiles.

Shared CI machines are slow and noisy (two busy cores are normal), so no profile measures wall-clock time:
no per-example deadline and no "too slow" health check. Select a profile with ``HYPOTHESIS_PROFILE``:

    ci    (default) reproducible: the same examples on every run and machine, no example database
    dev   random examples each run, failures remembered in ``.hypothesis/`` (explore locally)
    deep  like dev, ten times the examples (before a release, or after touching a property's code)

Tests set only what is theirs (``max_examples`` for a cheap property, a health check a fixture needs);
never a deadline.
"""

from __future__ import annotations

import os

# One native thread per process (OpenMP: scikit-learn's gradient boosting; OpenBLAS falls back to it too). On two
# shared, busy cores OpenMP's spinning worker threads fight the other processes: fitting the report test's
# challenger took 12.9 s with the default threads and 1.0 s with one, the same trees to the bit. Set before
# numpy or scikit-learn load their runtimes; a value already in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings

_no_wall_clock = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_no_wall_clock)
settings.register_profile("dev", max_examples=100, **_no_wall_clock)
settings.register_profile("deep", max_examples=1000, **_no_wall_clock)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A real PostgreSQL (session cluster, fresh database per test) for every directory: `postgres_server`, `postgres_dsn`.
pytest_plugins = ["tests.support.postgres"]
