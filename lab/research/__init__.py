"""Research routes for ward data (issue 25): de-identified exports, differentially private aggregates, synthetic
cohorts. :mod:`lab.research.cohort` loads the per-patient windows every route starts from."""
