"""The lab: training, evaluation, PhysioNet import and validation, reports, alert-burden studies, replay, the demo's
driver and the one CLI tree. It imports the service (``app``), the runtime contract (``models``) and the simulator;
nothing in the service imports it."""
