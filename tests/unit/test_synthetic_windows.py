"""The synthetic windows the model unit tests are built on (tests/support/synthetic_windows.py)."""

from __future__ import annotations

import pandas as pd

from tests.support.synthetic_windows import synthetic_windows


def test_synthetic_windows_are_on_the_grid_and_deterministic() -> None:
    a, pa = synthetic_windows(5, 6, seed=3)
    b, _ = synthetic_windows(5, 6, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5 * 72 and len(pa) == 5
    assert (a.groupby("patient_id")["start"].diff().dropna() == pd.Timedelta(minutes=5)).all()
