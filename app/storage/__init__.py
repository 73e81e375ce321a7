"""Storage: the ``VitalStore`` protocol and its adapters (``sqlite`` embedded default, ``influx``)."""
