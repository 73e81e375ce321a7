"""The fleet's leases and window claims against a real PostgreSQL (``app.fleet.leases``): fair shares, expiry and
takeover, two instances racing for the same buckets, each (bucket, window) claimed and finished once, the catch-up a
takeover owes, and the shared aggregation marks (hazard H16). Waits are on conditions, never durations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import psycopg
import pytest

from app.errors import StoreUnavailableError
from app.fleet import schema
from app.fleet.leases import Claims, Leases
from app.fleet.partition import BUCKETS, fair_share
from models.windows import WINDOW

pytestmark = pytest.mark.postgres

W = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Await ``check()`` until true; fail naming ``what`` after ``timeout`` (only a guard against a hang)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fleet(postgres_dsn: str) -> AsyncIterator[Callable[..., Awaitable[Leases]]]:
    made: list[Leases] = []

    async def make(name: str, lease_s: float = 15.0) -> Leases:
        leases = Leases(postgres_dsn, name, lease_s=lease_s)
        await leases.connect()
        made.append(leases)
        return leases

    yield make
    for leases in made:
        await leases.close()


async def test_a_lone_instance_holds_every_bucket_and_the_view_says_so(fleet) -> None:
    a = await fleet("a")
    assert await a.renew() == frozenset(range(BUCKETS))
    assert a.held() == frozenset(range(BUCKETS))
    health = a.health()
    assert health["fleet"]["instances_alive"] == 1 and health["fleet"]["unowned_buckets"] == 0
    assert health["fleet"]["buckets_per_instance"] == {"a": BUCKETS}


async def test_instances_share_the_buckets_fairly_and_disjointly(fleet) -> None:
    a, b, c = await fleet("a"), await fleet("b"), await fleet("c")
    await a.renew()
    for _ in range(2):
        for inst in (b, c, a):
            await inst.renew()
    held = [x.held() for x in (a, b, c)]
    assert sum(len(h) for h in held) == BUCKETS and frozenset().union(*held) == frozenset(range(BUCKETS))
    assert max(len(h) for h in held) == fair_share(BUCKETS, 3) == 22
    assert a.view.unowned_buckets == 0 and a.view.instances_alive == 3


async def test_a_clean_release_hands_the_buckets_over_at_the_next_renewal(fleet) -> None:
    a, b = await fleet("a"), await fleet("b")
    await a.renew()
    await b.renew()
    await a.release_all()
    assert await b.renew() == frozenset(range(BUCKETS))  # a left: b is alone, its share is every bucket


async def test_an_expired_lease_is_taken_over_and_its_holder_stops_trusting_it(fleet) -> None:
    a, b = await fleet("a", lease_s=1.0), await fleet("b", lease_s=1.0)
    await a.renew()
    began = time.monotonic()
    await until(lambda: _holds(b, BUCKETS), "b to take every bucket after a stopped renewing")
    took = time.monotonic() - began
    assert took >= 1.0 - 0.05  # never before a's lease could have expired (the database's clock decides)
    assert a.held() == frozenset()  # a's own view lapsed by its monotonic clock before the database's did
    assert b.view.instances_alive == 1


async def _holds(leases: Leases, n: int) -> bool:
    return len(await leases.renew()) == n


async def test_two_instances_racing_for_free_buckets_never_both_win_one(fleet) -> None:
    for round_ in range(5):
        racers = [await fleet(f"r{round_}-{i}", lease_s=15.0) for i in range(2)]
        won = await asyncio.gather(*(r.renew() for r in racers))
        assert not (won[0] & won[1]), f"round {round_}: both won {sorted(won[0] & won[1])}"
        await asyncio.gather(*(r.release_all() for r in racers))


async def test_each_window_of_a_bucket_is_claimed_once_and_a_finished_claim_never_again(fleet, postgres_dsn) -> None:
    a, b = await fleet("a", lease_s=1.0), await fleet("b", lease_s=1.0)
    ca, cb = Claims(postgres_dsn, "a"), Claims(postgres_dsn, "b")
    await ca.connect()
    await cb.connect()
    try:
        everything = frozenset(range(BUCKETS))
        await a.renew()
        assert await ca.claim(W, everything) == everything
        assert await cb.claim(W, everything) == frozenset()  # b holds no lease: the database refuses it
        assert await ca.claim(W, everything) == everything  # a retrying its own unfinished claim (a failed cycle)
        await ca.done(W, {bucket: 3 for bucket in range(40)})  # a dies after finishing 40 of the 64 buckets
        await ca.claim(W + WINDOW, frozenset(range(10)))
        await ca.done(W + WINDOW, {bucket: 3 for bucket in range(10)})
        await until(lambda: _holds(b, BUCKETS), "b to take over")
        assert await cb.claim(W, everything) == frozenset(range(40, BUCKETS))  # only the unfinished ones
        await cb.done(W, {bucket: 3 for bucket in range(40, BUCKETS)})
        # what b owes at W + 3 windows: each bucket's windows after its last finished one
        owed = await cb.unscored(W + 3 * WINDOW, everything, max_windows=12)
        assert owed == {W + WINDOW: set(range(10, BUCKETS)), W + 2 * WINDOW: set(range(BUCKETS))}
        assert await cb.unscored(W + 3 * WINDOW, everything, max_windows=1) == {W + 2 * WINDOW: set(range(BUCKETS))}
        finished = await cb.scored_by_window()
        at_w = [(bucket, owner) for end, bucket, owner, _ in finished if end == W]
        assert sorted(bucket for bucket, _ in at_w) == list(range(BUCKETS))  # each once
        assert {owner for bucket, owner in at_w if bucket < 40} == {"a"}
        assert {owner for bucket, owner in at_w if bucket >= 40} == {"b"}
    finally:
        await ca.close()
        await cb.close()


async def test_a_finished_window_is_never_claimed_again_by_racing_claims(fleet, postgres_dsn) -> None:
    """Only the lease holder can claim (another instance is refused above); its own racing claims (four
    connections at once) may retry an unfinished claim, and none wins a finished one. (In the service one
    instance's runs are serialised too: ``FleetCycle`` holds a lock around claim, score, done.)"""
    a = await fleet("a")
    await a.renew()
    claims = [Claims(postgres_dsn, "a") for _ in range(4)]
    for c in claims:
        await c.connect()
    try:
        for k in range(5):
            end = W + k * WINDOW
            won = await asyncio.gather(*(c.claim(end, frozenset(range(BUCKETS))) for c in claims))
            await claims[0].done(end, dict.fromkeys(range(BUCKETS), 1))
            again = await asyncio.gather(*(c.claim(end, frozenset(range(BUCKETS))) for c in claims))
            assert all(w == frozenset(range(BUCKETS)) for w in won)  # the unfinished claim is its holder's to retry
            assert again == [frozenset()] * 4  # once finished, never again
    finally:
        for c in claims:
            await c.close()


async def test_aggregation_marks_reach_every_instance_once(postgres_dsn) -> None:
    """H16: a window re-aggregated by one instance is read back by every other's kept grid at its next cycle."""
    ca, cb = Claims(postgres_dsn, "a"), Claims(postgres_dsn, "b")
    await ca.connect()
    await cb.connect()
    inside = 0
    overlaps = 0

    def store_taking(starts: list[datetime]) -> Callable[[datetime], Awaitable[list[datetime]]]:
        async def materialize(_end: datetime) -> list[datetime]:
            nonlocal inside, overlaps
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.01)  # hold the lock a moment, so an unserialised second would overlap
            inside -= 1
            return starts
        return materialize

    try:
        s1, s2, s3 = (W - k * WINDOW for k in (3, 2, 1))
        assert await ca.aggregate(store_taking([s1]), W) == [s1]
        assert await cb.aggregate(store_taking([]), W) == []  # b's first cycle reads its span whole
        assert await ca.aggregate(store_taking([s2]), W + WINDOW) == [s2]
        assert await cb.aggregate(store_taking([s3]), W + WINDOW) == [s2, s3]  # a's mark and its own
        assert await ca.aggregate(store_taking([]), W + 2 * WINDOW) == [s3]
        assert await cb.aggregate(store_taking([]), W + 2 * WINDOW) == []  # each mark once
        await asyncio.gather(*(c.aggregate(store_taking([]), W) for c in (ca, cb) for _ in range(3)))
        assert overlaps == 0
    finally:
        await ca.close()
        await cb.close()


async def test_the_schema_is_applied_once_and_a_newer_one_refused(postgres_dsn) -> None:
    assert await schema.migrate(postgres_dsn) == len(schema.STEPS)
    assert await schema.migrate(postgres_dsn) == 0
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute("UPDATE schema_versions SET version = version + 1 WHERE name = 'fleet'")
    with pytest.raises(StoreUnavailableError, match="newer than this code"):
        await schema.migrate(postgres_dsn)
