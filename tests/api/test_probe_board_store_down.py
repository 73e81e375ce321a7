"""Issue 21, finding 10 (H24): while the vital store cannot be read, ``GET /v1/board`` answered 503 and the board
showed nothing. Now it answers with what the read model and the alert store hold (every bed's last score, its open
alerts), no vitals, and ``store.ok`` false with the reason; once the store answers again, ``store.ok`` is true."""

from __future__ import annotations

from app.errors import StoreUnavailableError
from tests.support.api import SICK, STABLE, WINDOW_ENDS, post_readings, raise_alerts, run_cycle


def test_the_board_says_the_store_is_down_and_keeps_the_last_scores(client, sick_readings, stable_readings,
                                                                     monkeypatch) -> None:
    post_readings(client, sick_readings + stable_readings)
    for end in WINDOW_ENDS[-3:]:
        run_cycle(client, end)
    raise_alerts(client)
    before = client.get("/v1/board").json()
    assert before["store"] == {"ok": True, "error": None}
    inner = client.app.state.wardtwin.store.inner  # type: ignore[attr-defined]

    async def down(*args, **kwargs):
        raise StoreUnavailableError("influx http://127.0.0.1:8086: ConnectError: All connection attempts failed")

    for name in ("patient_ids", "windows", "readings", "score_history"):
        monkeypatch.setattr(inner, name, down)
    response = client.get("/v1/board")
    assert response.status_code == 200, response.text  # today's main: 503
    board = response.json()
    assert board["store"]["ok"] is False and "ConnectError" in board["store"]["error"]
    beds = {b["patient_id"]: b for b in board["beds"]}
    assert set(beds) == {SICK, STABLE}
    assert beds[SICK]["risk"] == next(b["risk"] for b in before["beds"] if b["patient_id"] == SICK)
    assert beds[SICK]["alerts"] and beds[SICK]["level"] == next(b["level"] for b in before["beds"]
                                                                if b["patient_id"] == SICK)
    monkeypatch.undo()
    assert client.get("/v1/board").json()["store"]["ok"] is True
