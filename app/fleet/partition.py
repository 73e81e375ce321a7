"""How patients are split among instances: pure functions, no database.

**Hash buckets, not wards.** A patient belongs to bucket ``blake2b(patient_id) mod buckets`` (64 by default). Buckets
rather than wards because the reading contract carries a patient id and no ward (a ward would need a lookup every
instance agrees on, kept current through transfers), because wards differ in size (a 40-bed acute unit beside an
8-bed side ward cannot be balanced over three instances) while a stable hash spreads any ward evenly, and because
the number of leases stays fixed (64 rows) whatever the number of patients: an instance joining or dying moves whole
buckets, never individual patients. A patient keeps its bucket for life (the hash is stable across processes and
releases: ``hash()`` is salted per process and must not be used), so a takeover moves its scoring, never its data.

**Fair share.** With ``live`` instances each may hold at most ``ceil(buckets / live)`` buckets: an instance above
its share releases its highest-numbered extras, one below it claims free or expired buckets, lowest first. Every
bucket is owned once each live instance has renewed twice (its share is recomputed at every renewal).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

#: Buckets patients are hashed into (a lease each). 64: well above any fleet size here (3–10 instances), so shares
#: differ by at most one bucket (1.6 % of the patients), and few enough rows to renew in one statement.
BUCKETS = 64


def bucket_of(patient_id: str, buckets: int = BUCKETS) -> int:
    """The patient's bucket: a stable hash of its id (the same in every process and release)."""
    digest = hashlib.blake2b(patient_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def fair_share(buckets: int, live: int) -> int:
    """The most buckets one of ``live`` instances may hold (all of them for a lone instance)."""
    return buckets if live <= 1 else math.ceil(buckets / live)


def rebalance(held: Iterable[int], free: Iterable[int], live: int,
              buckets: int = BUCKETS) -> tuple[list[int], list[int]]:
    """What an instance holding ``held`` does at a renewal, given the ``free`` buckets (unowned or expired) and the
    ``live`` instance count: ``(to_release, to_claim)``. Releases its highest-numbered buckets above its fair share;
    claims free buckets, lowest first, up to it."""
    share = fair_share(buckets, live)
    mine = sorted(set(held))
    if len(mine) > share:
        return mine[share:], []
    return [], sorted(set(free) - set(mine))[: share - len(mine)]


def select(patient_ids: Sequence[str], owned: frozenset[int], buckets: int = BUCKETS) -> list[str]:
    """The patients of ``owned`` buckets, in the given order."""
    return [p for p in patient_ids if bucket_of(p, buckets) in owned]
