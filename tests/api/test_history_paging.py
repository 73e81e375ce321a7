"""Paging of the history and windows reads (``app.api.paging``): following ``Link: rel="next"`` from the first page
yields exactly the unpaged answer, page by page, with no gap and no duplicate."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app.api.paging import DEFAULT_LIMIT, MAX_LIMIT
from models.windows import WINDOW
from tests.support.api import NOW, SICK, STABLE, T0, WINDOW_ENDS, assert_422, assert_domain_error, iso, parse
from tests.support.synthetic_readings import HOURS


def pages(client, path: str, params: dict) -> list[httpx.Response]:
    """Every page, following the ``next`` links from the first request until there is none."""
    answers = [client.get(path, params=params)]
    while "next" in answers[-1].links:
        assert answers[-1].status_code == 200, answers[-1].text
        answers.append(client.get(answers[-1].links["next"]["url"]))
        assert len(answers) <= 1000, "the next links do not end"
    assert answers[-1].status_code == 200, answers[-1].text
    return answers


@pytest.mark.parametrize("limit", [1, 5, 7, 35, 36, 37])
def test_history_pages_join_into_the_whole_history(ward, limit):
    path = f"/v1/patients/{SICK}/risk/history"
    whole = ward.client.get(path).json()
    assert [parse(s["window_end"]) for s in whole] == list(WINDOW_ENDS)  # one page by default (36 < DEFAULT_LIMIT)
    answers = pages(ward.client, path, {"limit": limit})
    assert len(answers) == -(-len(whole) // limit)  # no empty last page
    assert all(len(a.json()) <= limit for a in answers)
    assert [s for a in answers for s in a.json()] == whole  # no gap, no duplicate, same order, same scores
    assert "next" not in answers[-1].links


@pytest.mark.parametrize("limit", [1, 7, 12, 36, 2016])
def test_windows_pages_join_into_the_whole_range(ward, limit):
    path = f"/v1/patients/{STABLE}/windows"
    params = {"since": iso(T0 - timedelta(hours=HOURS)), "until": iso(T0)}
    whole = ward.client.get(path, params=params).json()
    starts = [parse(w["start"]) for w in whole]
    assert starts == [T0 - timedelta(hours=HOURS) + WINDOW * i for i in range(HOURS * 12)]
    answers = pages(ward.client, path, {**params, "limit": limit})
    assert len(answers) == -(-len(whole) // limit)
    assert all(len(a.json()) <= limit for a in answers)
    assert [w for a in answers for w in a.json()] == whole


def test_the_next_link_pins_the_range_and_carries_the_cursor(ward):
    first = ward.client.get(f"/v1/patients/{SICK}/risk/history", params={"limit": 10})
    link = httpx.URL(first.links["next"]["url"])
    assert link.path == f"/v1/patients/{SICK}/risk/history"
    # "now" resolved once: the next pages read the same range even if the clock moves on
    assert parse(link.params["until"]) == NOW and parse(link.params["since"]) == NOW - timedelta(hours=24)
    assert link.params["limit"] == "10" and parse(link.params["after"]) == parse(first.json()[-1]["window_end"])
    assert first.headers["link"].endswith('; rel="next"')


def test_a_sparse_history_still_fills_its_page(ward):
    """Ten days with no score before the three scored hours: the page still starts at the first score."""
    since = T0 - timedelta(days=10)
    answers = pages(ward.client, f"/v1/patients/{SICK}/risk/history",
                    {"since": iso(since), "until": iso(T0), "limit": 5})
    assert [parse(s["window_end"]) for s in answers[0].json()] == list(WINDOW_ENDS[:5])
    assert [parse(s["window_end"]) for a in answers for s in a.json()] == list(WINDOW_ENDS)


def test_a_cursor_past_the_range_is_an_empty_last_page(ward):
    for route in ("risk/history", "windows"):
        response = ward.client.get(f"/v1/patients/{SICK}/{route}", params={"after": iso(NOW + timedelta(hours=1))})
        assert response.status_code == 200 and response.json() == [] and "next" not in response.links
        assert_domain_error(ward.client.get(f"/v1/patients/nobody/{route}", params={"after": iso(NOW)}), 404,
                            "patient_not_found")


def test_a_cursor_before_the_range_reads_from_its_start(ward):
    params = {"since": iso(T0 - timedelta(minutes=30)), "until": iso(T0), "after": iso(T0 - timedelta(days=2))}
    history = ward.client.get(f"/v1/patients/{SICK}/risk/history", params=params).json()
    assert parse(history[0]["window_end"]) == T0 - timedelta(minutes=30)


@pytest.mark.parametrize("route", ["risk/history", "windows"])
@pytest.mark.parametrize(("params", "loc"), [
    ({"limit": 0}, ["query", "limit"]), ({"limit": MAX_LIMIT + 1}, ["query", "limit"]),
    ({"limit": "many"}, ["query", "limit"]), ({"after": "2026-03-02T11:00:00"}, ["query", "after"]),
    ({"after": "soon"}, ["query", "after"])])
def test_a_bad_limit_or_cursor_is_422_naming_it(ward, route, params, loc):
    assert_422(ward.client.get(f"/v1/patients/{SICK}/{route}", params=params), loc)


def test_the_openapi_document_states_the_paging(ward):
    paths = ward.client.get("/openapi.json").json()["paths"]
    for path in ("/v1/patients/{patient_id}/risk/history", "/v1/patients/{patient_id}/windows"):
        op = paths[path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert params["limit"]["schema"]["maximum"] == MAX_LIMIT
        assert params["limit"]["schema"]["default"] == DEFAULT_LIMIT
        assert "after" in params and "Link" in op["responses"]["200"]["headers"]
        assert "next" in op["description"]
