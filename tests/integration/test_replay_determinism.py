"""Same seed and inputs → byte-identical scores, through ingest validation, a real SQLite store and the cycle."""

from datetime import datetime

from app.replay import DEFAULT_START, digest, replay
from app.storage.codec import score_to_json


async def test_two_runs_give_byte_identical_scores(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await replay(6, 7, 2.0, DEFAULT_START, None, tmp_path / "a")
    second = await replay(6, 7, 2.0, DEFAULT_START, None, tmp_path / "b")
    assert len(first) == 6 * 24  # one score per patient per window end
    assert [score_to_json(s) for s in first] == [score_to_json(s) for s in second]
    assert digest(first) == digest(second)
    for score in first:  # contributions plus intercept are the logit
        assert abs(score.intercept + sum(c.points for c in score.contributions) - score.logit) < 1e-9


async def test_a_different_seed_gives_different_scores(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    start = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
    assert digest(await replay(3, 1, 1.0, start, None, tmp_path / "a")) != digest(
        await replay(3, 2, 1.0, start, None, tmp_path / "b"))
