"""``VitalStore.latest_scores(not_after)`` on every adapter (issue 21, H17): the latest score of each patient whose
window end is at or before the bound, so scores made while the clock ran ahead are never loaded as a latest."""

from __future__ import annotations

from datetime import timedelta

from app.storage.base import VitalStore
from tests.integration.test_store_contract import T0, make_score

DAY, WINDOW = timedelta(days=1), timedelta(minutes=5)


async def test_latest_scores_up_to_a_bound(store: VitalStore, patient_prefix: str) -> None:
    a, b = f"{patient_prefix}-a", f"{patient_prefix}-b"
    await store.save_scores([make_score(a, T0 - 2 * WINDOW, 0.2), make_score(a, T0, 0.3),
                             make_score(a, T0 + DAY, 0.9), make_score(b, T0 + DAY, 0.4)])

    def ends(scores: list) -> dict:
        return {s.patient_id: s.window_end for s in scores if s.patient_id.startswith(patient_prefix)}

    assert ends(await store.latest_scores()) == {a: T0 + DAY, b: T0 + DAY}
    assert ends(await store.latest_scores(T0 + WINDOW)) == {a: T0}
    assert ends(await store.latest_scores(T0)) == {a: T0}  # the bound itself is included
    assert ends(await store.latest_scores(T0 - WINDOW)) == {a: T0 - 2 * WINDOW}
    assert (await store.latest_scores(T0 + WINDOW))[0] == make_score(a, T0, 0.3)
