"""History and windows paging (issue 22): bytes of ``GET /v1/patients/{id}/risk/history`` and ``/windows``, whole and
per page, and the pages a client follows, on the tests' sick patient (3 h of readings, scored at its 36 window ends),
in process (``create_app`` under TestClient, embedded SQLite). Run: ``PYTHONPATH=. python bench/bench_paging.py``."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from app.api.paging import DEFAULT_LIMIT, MAX_LIMIT
from tests.support.api import SICK, T0, WINDOW_ENDS, iso, post_readings, run_cycle, serve
from tests.support.synthetic_readings import trajectory


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp)) as client:
        post_readings(client, trajectory(SICK, T0, True, 2))
        for end in WINDOW_ENDS:
            run_cycle(client, end)
        three_hours = {"since": iso(T0 - timedelta(hours=3)), "until": iso(T0)}
        for route, params in (("risk/history", three_hours), ("windows", three_hours)):
            path = f"/v1/patients/{SICK}/{route}"
            whole = client.get(path, params=params)
            n = len(whole.json())
            pages, sizes, response = 0, [], client.get(path, params={**params, "limit": 12})
            while True:
                pages, sizes = pages + 1, [*sizes, len(response.content)]
                if "next" not in response.links:
                    break
                response = client.get(response.links["next"]["url"])
            per_item = len(whole.content) / n
            print(f"{route:13s} items={n} whole={len(whole.content)} B ({per_item:.0f} B/item); limit=12: {pages} "
                  f"pages of {min(sizes)}–{max(sizes)} B; a default page ({DEFAULT_LIMIT}) ≈ "
                  f"{per_item * DEFAULT_LIMIT / 1e3:.0f} kB, the largest ({MAX_LIMIT}) ≈ "
                  f"{per_item * MAX_LIMIT / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
