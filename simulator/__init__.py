"""The virtual ward: patient physiology, deterioration archetypes, bedside devices and their artefacts,
nurse observations, a live ward and the cohort writer.

The simulator knows only the reading schema (``models.schema``) and its sinks; it imports nothing
from ``app/``. Everything is a pure function of a seed: no wall clock, no global random state.

Modules
-------
- ``archetypes``  archetype names, the default ward mix, drawing a patient's archetype
- ``physiology``  baselines, circadian rhythm, autocorrelated variability, coupling, trajectories
- ``nurse``       NEWS2-paced full observation sets (her own RR count, SpO2, pulse, BP, temperature, ACVPU, O2)
- ``devices``     sampling rates, artefacts with quality flags, gaps, delivery delays and duplicates
- ``detect``      the sustained threshold crossing that defines an event onset (``models.labels``' own rule)
- ``patient``     one patient's stream, the unit every mode is built from
- ``cohort``      cohort mode: ``iter_cohort``, ``write_cohort``, ``load_cohort``
- ``ward``        live mode: ``Ward.advance`` returns readings by delivery time
- ``sinks``, ``live``  HTTP ingest, InfluxDB line protocol, Parquet; the accelerated-time loop
- ``report``      the realism report; ``cli`` the ``wardtwin simulate`` command
"""

__version__ = "0.5.0"

__all__ = ["__version__"]
