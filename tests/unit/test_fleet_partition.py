"""The fleet's partition logic (``app.fleet.partition``), pure: stable buckets, fair shares, and the renewal rule
converging to every bucket owned once, each instance within its share, whatever order instances renew and die in."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from app.fleet.partition import BUCKETS, bucket_of, fair_share, rebalance, select


def test_a_bucket_is_the_same_in_every_process() -> None:
    ids = [f"bed-{i:03d}" for i in range(50)]
    code = ("import sys; from app.fleet.partition import bucket_of; "
            "print(','.join(str(bucket_of(p)) for p in sys.argv[1:]))")
    for seed in ("0", "12345"):  # str hash() differs by PYTHONHASHSEED; the bucket must not
        out = subprocess.run([sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        assert out == ",".join(str(bucket_of(p)) for p in ids)


def test_buckets_spread_a_ward_evenly() -> None:
    counts = Counter(bucket_of(f"patient-{i}") for i in range(10_000))
    assert set(counts) == set(range(BUCKETS))
    mean = 10_000 / BUCKETS  # 156: a binomial sd of about 12.4, so 5 sd either side
    assert all(abs(n - mean) < 5 * math.sqrt(mean) for n in counts.values()), counts


@given(st.integers(1, 256), st.integers(1, 300))
def test_fair_shares_cover_every_bucket_and_differ_by_at_most_one(buckets: int, live: int) -> None:
    share = fair_share(buckets, live)
    assert share * live >= buckets
    assert share <= buckets // live + 1 or live == 1


def test_an_instance_above_its_share_releases_its_highest_buckets() -> None:
    assert rebalance(range(64), [], live=2) == (list(range(32, 64)), [])
    assert rebalance(range(10), range(10, 64), live=2) == ([], list(range(10, 32)))
    assert rebalance([], [5, 3, 9], live=64) == ([], [3])


def test_select_keeps_the_patients_of_owned_buckets_in_order() -> None:
    ids = [f"p{i}" for i in range(200)]
    owned = frozenset({bucket_of("p7"), bucket_of("p150")})
    chosen = select(ids, owned)
    assert chosen == [p for p in ids if bucket_of(p) in owned] and "p7" in chosen and "p150" in chosen


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["renew", "renew", "renew", "die", "join"]), st.integers(0, 7)),
                min_size=1, max_size=120))
def test_renewals_in_any_order_converge_to_one_owner_per_bucket(events: list[tuple[str, int]]) -> None:
    """A model of the lease table: each renewal applies ``rebalance`` with the buckets free at that moment; a dead
    instance's buckets become free (its lease expired) and it stops counting as live. After every live instance
    renews twice in a row, each bucket has one owner and nobody holds more than its share."""
    owners: dict[int, int | None] = dict.fromkeys(range(BUCKETS))
    live = {0}

    def renew(i: int) -> None:
        held = [b for b, o in owners.items() if o == i]
        free = [b for b, o in owners.items() if o is None]
        release, claim = rebalance(held, free, len(live))
        for b in release:
            owners[b] = None
        for b in claim:
            assert owners[b] is None
            owners[b] = i

    for what, i in events:
        if what == "join":
            live.add(i)
        elif what == "die" and i in live and len(live) > 1:
            live.discard(i)
            owners.update({b: None for b, o in owners.items() if o == i})
        elif i in live:
            renew(i)
    for _ in range(2):
        for i in sorted(live):
            renew(i)
    held = Counter(o for o in owners.values())
    assert None not in held, f"unowned buckets: {held[None]}"
    assert set(held) <= live
    assert max(held.values()) <= fair_share(BUCKETS, len(live))
