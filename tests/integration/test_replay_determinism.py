"""Same seed and inputs → byte-identical scores through the served path (``wardtwin replay``: the app built by
``create_app`` with its settings and challenger, ingest, the store, the cycle and the risk-history route)."""

from datetime import datetime

from lab.replay import DEFAULT_START, canonical, digest, replay


async def test_two_runs_give_byte_identical_scores(tmp_path):
    first = await replay(6, 7, 2.0, DEFAULT_START, tmp_path / "a")
    second = await replay(6, 7, 2.0, DEFAULT_START, tmp_path / "b")
    assert len(first) == 6 * 24  # one score per patient per window end
    assert len({(s["patient_id"], s["window_end"]) for s in first}) == len(first)
    assert [canonical(s) for s in first] == [canonical(s) for s in second]
    assert digest(first) == digest(second)
    assert all(s["challenger_risk"] is not None for s in first)  # the served path includes the shadow challenger
    for score in first:  # contributions plus intercept are the logit
        assert abs(score["intercept"] + sum(c["points"] for c in score["contributions"]) - score["logit"]) < 1e-9


async def test_a_different_seed_gives_different_scores(tmp_path):
    start = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
    first = await replay(3, 1, 1.0, start, tmp_path / "a")
    assert digest(first) != digest(await replay(3, 2, 1.0, start, tmp_path / "b"))


async def test_a_stray_environment_changes_neither_the_store_nor_the_scores(tmp_path, monkeypatch):
    start = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
    clean = await replay(3, 1, 1.0, start, tmp_path / "clean")
    monkeypatch.setenv("WARDTWIN_INFLUX_URL", "http://127.0.0.1:9")  # nothing listens: reading it would fail
    monkeypatch.setenv("WARDTWIN_DATA_DIR", str(tmp_path / "stray"))
    monkeypatch.setenv("WARDTWIN_CHALLENGER_ENABLED", "false")
    monkeypatch.setenv("WARDTWIN_STALE_AFTER_MIN", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("WARDTWIN_ALERT_THRESHOLD=0.01\n")
    assert digest(await replay(3, 1, 1.0, start, tmp_path / "stray-run")) == digest(clean)
    assert not (tmp_path / "stray").exists()
