"""Netskope simulator: dataset ground truth and the documented API behaviour over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from seccollect_dev.simulators.base import SimClock, SimulatorServer
from seccollect_dev.simulators.netskope import (
    MAPPED_ALERT_TYPES,
    QUERY_NOT_SIMULATED,
    V1_ALERTS_PATH,
    V1_EVENTS_PATH,
    V2_DATA_PATHS,
    V2_POPS_PATH,
    V2_TUNNELS_PATH,
    NetskopeDataset,
    NetskopeOptions,
    NetskopeSimulator,
)

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
T0 = int(START.timestamp())
T_END = int(END.timestamp())
V1 = "v1-secret"
V2 = "v2-secret"
ALERT = V2_DATA_PATHS["alert"]


class FakeMonotonic:
    """Frozen monotonic time so rate-limit windows do not depend on test speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dataset() -> NetskopeDataset:
    return NetskopeDataset(seed=11, start=START, end=END)


@pytest.fixture
def clock() -> SimClock:
    # Everything has been inserted by default (late records arrive up to 40 min after END,
    # duplicates up to 30 min after that).
    return SimClock(now=T_END + 3 * 3600)


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def sim(dataset: NetskopeDataset, clock: SimClock, mono: FakeMonotonic) -> NetskopeSimulator:
    return NetskopeSimulator(
        dataset,
        v1_token=V1,
        v2_tokens={V2: [*V2_DATA_PATHS.values(), V2_POPS_PATH, V2_TUNNELS_PATH]},
        clock=clock,
        monotonic=mono,
    )


@pytest.fixture
def url(sim: NetskopeSimulator) -> Iterator[str]:
    with SimulatorServer(sim) as srv:
        yield srv.url


def v2_get(url: str, path: str, token: str = V2, **params: Any) -> requests.Response:
    return requests.get(url + path, params=params, headers={"Netskope-Api-Token": token}, timeout=10)


def v2_fetch_all(url: str, path: str, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    pages, offset = [], 0
    while True:
        r = v2_get(url, path, offset=offset, limit=limit, **params)
        assert r.status_code == 200, r.text
        page = r.json()["result"]
        pages.append(page)
        if len(page) < limit:
            return pages
        offset += limit


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


def test_dataset_is_deterministic_per_seed_and_per_content_type() -> None:
    a = NetskopeDataset(seed=3, start=START, end=START + timedelta(minutes=30))
    b = NetskopeDataset(seed=3, start=START, end=START + timedelta(minutes=30))
    c = NetskopeDataset(seed=4, start=START, end=START + timedelta(minutes=30))
    for kind in ("alert", "application", "page", "pops", "tunnels"):
        assert a.records(kind) == b.records(kind)
    assert [r["_id"] for r in a.records("alert")] != [r["_id"] for r in c.records("alert")]
    # Changing one content type's rate leaves the others untouched.
    d = NetskopeDataset(seed=3, start=START, end=START + timedelta(minutes=30), rates={"alert": 10})
    assert d.records("page") == a.records("page")
    assert len(d.records("alert")) < len(a.records("alert"))


def test_dataset_generates_ten_thousand_records_quickly() -> None:
    t0 = time.perf_counter()
    ds = NetskopeDataset(
        seed=1,
        start=START,
        end=START + timedelta(hours=3),
        rates={"alert": 800, "application": 1000, "page": 1600},
    )
    elapsed = time.perf_counter() - t0
    assert sum(len(ds.records(k)) for k in ds.CONTENT_TYPES) >= 10_000
    assert elapsed < 1.0


def test_dataset_record_shape_delays_and_duplicates(dataset: NetskopeDataset) -> None:
    for kind, rtype in (("alert", None), ("application", "nspolicy"), ("page", "connection")):
        recs = dataset.records(kind)
        assert recs
        for r in recs:
            assert re.fullmatch(r"[0-9a-f]{24}", r["_id"])
            assert isinstance(r["timestamp"], int) and T0 <= r["timestamp"] < T_END
            assert r["_insertion_epoch_timestamp"] > r["timestamp"]
            assert r["timestamp"] <= r["_creation_timestamp"] <= r["_insertion_epoch_timestamp"]
            if rtype:
                assert r["type"] == rtype
        delays = [r["_insertion_epoch_timestamp"] - r["timestamp"] for r in recs]
        assert sorted(delays)[len(delays) // 2] <= 300  # usually fast
        assert dataset.late_records(kind)  # ...but some arrive 20-40 minutes late
        assert max(delays) <= 2400 + 1800
        dups = dataset.duplicate_ids(kind)
        assert dups
        for dup in dups:
            copies = [r for r in recs if r["_id"] == dup]
            assert len(copies) == 2
            first, second = sorted(copies, key=lambda r: r["_insertion_epoch_timestamp"])
            assert second["_insertion_epoch_timestamp"] > first["_insertion_epoch_timestamp"]
            assert {k: v for k, v in first.items() if k != "_insertion_epoch_timestamp"} == {
                k: v for k, v in second.items() if k != "_insertion_epoch_timestamp"
            }
    assert len(dataset.users) == 6


def test_dataset_mapped_alert_keys_repeat_and_some_ids_are_missing(dataset: NetskopeDataset) -> None:
    alerts = dataset.records("alert")
    types = Counter(r["type"] for r in alerts)
    assert {"nspolicy", "breach", "connection", "malsite"} <= set(types)
    assert {"DLP", "policy", "watchlist", "Malware", "Compromised Credential", "malsite"} <= {
        r["alert_type"] for r in alerts
    }
    for rtype, id_field in MAPPED_ALERT_TYPES.items():
        kind = [r for r in alerts if r["type"] == rtype]
        with_id = [r for r in kind if r.get(id_field) not in (None, "", 0)]
        assert len(with_id) < len(kind), f"{rtype}: some ids must be missing or 0"
        per_key = Counter((r["user"], r[id_field]) for r in with_id)
        repeated = [k for k, n in per_key.items() if n > 1]
        assert repeated, f"{rtype}: keys must repeat"
        # The same key recurs in different hours (so in different collection windows) ...
        hours = {r["timestamp"] // 3600 for r in with_id if (r["user"], r[id_field]) == repeated[0]}
        assert len(hours) >= 1
        assert any(
            len({r["timestamp"] // 3600 for r in with_id if (r["user"], r[id_field]) == k}) > 1
            for k in repeated
        )
        # ... and the same id is shared by several users.
        users_per_id = Counter(i for _, i in per_key)
        assert max(users_per_id.values()) > 1
    keys = dataset.alert_keys()
    assert keys and all(k[0] in MAPPED_ALERT_TYPES and k[2] not in ("", "0") for k in keys)
    # Policy alerts also carry non-zero connection ids: mapping must go by `type`.
    assert any(r["type"] == "nspolicy" and r["connection_id"] for r in alerts)


# --------------------------------------------------------------------------------------------
# v2 data endpoints
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["alert", "application", "page"])
def test_v2_insertion_window_paging_is_complete_without_overlap(
    url: str, dataset: NetskopeDataset, kind: str
) -> None:
    lo, hi = T0 + 1800, T0 + 5400
    window = {"insertionstarttime": lo, "insertionendtime": hi}
    count = v2_get(url, V2_DATA_PATHS[kind], fields="event_count:count(_id)", **window).json()
    expected = dataset.expected_records(kind, lo, hi)
    assert count == {"ok": 1, "result": [{"event_count": len(expected)}]}
    pages = v2_fetch_all(url, V2_DATA_PATHS[kind], limit=137, **window)
    served = [r for page in pages for r in page]
    as_pairs = Counter((r["_id"], r["_insertion_epoch_timestamp"]) for r in served)
    assert as_pairs == Counter((r["_id"], r["_insertion_epoch_timestamp"]) for r in expected)
    assert {r["_id"] for r in served} == dataset.expected_ids(kind, lo, hi)
    assert all(lo < r["_insertion_epoch_timestamp"] <= hi for r in served)


def test_v2_serves_both_copies_of_a_duplicate_in_one_window(url: str, dataset: NetskopeDataset) -> None:
    dup = sorted(dataset.duplicate_ids("alert"))[0]
    copies = sorted(r["_insertion_epoch_timestamp"] for r in dataset.records("alert") if r["_id"] == dup)
    served = [
        r
        for page in v2_fetch_all(
            url, ALERT, 10000, insertionstarttime=copies[0] - 1, insertionendtime=copies[1]
        )
        for r in page
    ]
    assert sum(r["_id"] == dup for r in served) == 2


def test_v2_event_time_window_excludes_start_and_includes_end(url: str, dataset: NetskopeDataset) -> None:
    ts_counts = Counter(r["timestamp"] for r in dataset.records("page"))
    boundary = next(t for t, n in sorted(ts_counts.items()) if n >= 1 and t > T0 + 600)
    after = [
        r
        for page in v2_fetch_all(
            url, V2_DATA_PATHS["page"], 10000, starttime=boundary, endtime=boundary + 300
        )
        for r in page
    ]
    before = [
        r
        for page in v2_fetch_all(
            url, V2_DATA_PATHS["page"], 10000, starttime=boundary - 300, endtime=boundary
        )
        for r in page
    ]
    assert all(r["timestamp"] > boundary for r in after)
    assert sum(r["timestamp"] == boundary for r in before) == ts_counts[boundary]
    assert Counter(r["_id"] for r in after) == Counter(
        r["_id"] for r in dataset.expected_records("page", boundary, boundary + 300, by="timestamp")
    )


def test_v2_paging_order_is_stable_across_requests(url: str) -> None:
    window = {"insertionstarttime": T0, "insertionendtime": T_END}
    first = [r["_id"] for r in v2_get(url, ALERT, offset=100, limit=50, **window).json()["result"]]
    again = [r["_id"] for r in v2_get(url, ALERT, offset=100, limit=50, **window).json()["result"]]
    assert first == again and len(first) == 50


def test_v2_alert_type_filter_and_query(url: str, dataset: NetskopeDataset) -> None:
    window = {"insertionstarttime": T0, "insertionendtime": T_END + 7200}
    dlp = [r for p in v2_fetch_all(url, ALERT, 500, type="DLP", **window) for r in p]
    assert dlp and {r["alert_type"] for r in dlp} == {"DLP"}
    assert {r["_id"] for r in dlp} == dataset.expected_ids("alert", T0, T_END + 7200, alert_type="DLP")
    cc = v2_get(url, ALERT, type="compromisedcredential", limit=10000, **window).json()["result"]
    assert cc and {r["type"] for r in cc} == {"breach"}

    r = v2_get(url, ALERT, type="nonsense", **window)
    assert r.status_code == 400 and "message" in r.json()

    # The `query` language is not simulated: a client relying on it must fail, not get unfiltered data.
    r = v2_get(
        url,
        ALERT,
        query="alert_type in [ 'Malware', 'malsite' ] and action eq 'block'",
        limit=10000,
        **window,
    )
    assert (r.status_code, r.json()) == (400, {"message": QUERY_NOT_SIMULATED})
    assert v2_get(url, ALERT, query="alert_type ~~ 'x'", **window).status_code == 400


def test_v2_fields_projection(url: str) -> None:
    r = v2_get(url, ALERT, fields="_id,timestamp", limit=5, insertionstarttime=T0, insertionendtime=T_END)
    assert [set(x) for x in r.json()["result"]] == [{"_id", "timestamp"}] * 5


@pytest.mark.parametrize(
    "params",
    [
        {},  # no time selector
        {"starttime": T0, "endtime": T_END, "insertionstarttime": T0, "insertionendtime": T_END},
        {"starttime": T0},
        {"insertionstarttime": T0, "insertionendtime": T_END, "limit": 10001},
        {"insertionstarttime": T0, "insertionendtime": T_END, "offset": -1},
        {"insertionstarttime": "yesterday", "insertionendtime": T_END},
    ],
)
def test_v2_bad_parameters_are_400_with_message(url: str, params: dict[str, Any]) -> None:
    r = v2_get(url, ALERT, **params)
    assert r.status_code == 400
    assert set(r.json()) == {"message"}


def test_v2_late_records_are_not_served_before_their_insertion_time(
    url: str, dataset: NetskopeDataset, clock: SimClock
) -> None:
    late = max(dataset.late_records("alert"), key=lambda r: r["_insertion_epoch_timestamp"])
    ins = late["_insertion_epoch_timestamp"]
    window = {"starttime": late["timestamp"] - 1, "endtime": late["timestamp"], "limit": 10000}

    clock.set(ins - 1)
    ids = {r["_id"] for r in v2_get(url, ALERT, **window).json()["result"]}
    assert late["_id"] not in ids
    count = v2_get(
        url, ALERT, fields="event_count:count(_id)", insertionstarttime=ins - 600, insertionendtime=ins + 600
    ).json()["result"][0]["event_count"]
    assert count == len(dataset.expected_records("alert", ins - 600, ins - 1))

    clock.set(ins)
    ids = {r["_id"] for r in v2_get(url, ALERT, **window).json()["result"]}
    assert late["_id"] in ids


# --------------------------------------------------------------------------------------------
# v2 auth and rate limits
# --------------------------------------------------------------------------------------------


def test_v2_auth_missing_unknown_expired_and_out_of_scope(url: str, sim: NetskopeSimulator) -> None:
    window = {"insertionstarttime": T0, "insertionendtime": T0 + 60}
    assert requests.get(url + ALERT, params=window).status_code == 401
    r = v2_get(url, ALERT, token="wrong", **window)
    assert r.status_code == 401 and "message" in r.json()

    sim.add_v2_token("pops-only", [V2_POPS_PATH])
    assert v2_get(url, V2_POPS_PATH, token="pops-only").status_code == 200
    r = v2_get(url, ALERT, token="pops-only", **window)
    assert r.status_code == 403
    assert ALERT in r.json()["message"]

    assert v2_get(url, ALERT, **window).status_code == 200
    sim.expire_token(V2)
    r = v2_get(url, ALERT, **window)
    assert r.status_code == 401 and r.json() == {"message": "Token expired"}


def test_v2_bearer_only_is_rejected_unless_enabled(dataset: NetskopeDataset, clock: SimClock) -> None:
    window = {"insertionstarttime": T0, "insertionendtime": T0 + 60}
    for accept, expected in ((False, 401), (True, 200)):
        sim = NetskopeSimulator(
            dataset, v2_tokens={V2: [ALERT]}, clock=clock, options=NetskopeOptions(v2_accept_bearer=accept)
        )
        with SimulatorServer(sim) as srv:
            r = requests.get(srv.url + ALERT, params=window, headers={"Authorization": f"Bearer {V2}"})
            assert r.status_code == expected


def test_v2_rate_limit_headers_and_documented_429(
    url: str, sim: NetskopeSimulator, mono: FakeMonotonic
) -> None:
    window = {"insertionstarttime": T0, "insertionendtime": T0 + 60}
    r = v2_get(url, ALERT, **window)
    assert int(r.headers["RateLimit-Limit"]) >= 100  # generous default
    assert "RateLimit-Remaining" in r.headers and "ratelimit-reset" in r.headers

    sim.set_rate_limit(ALERT, 2)
    r1, r2, r3 = (v2_get(url, ALERT, **window) for _ in range(3))
    assert (r1.status_code, r1.headers["RateLimit-Remaining"]) == (200, "1")
    assert (r2.status_code, r2.headers["RateLimit-Remaining"]) == (200, "0")
    assert r3.status_code == 429
    assert r3.json() == {"message": "API rate limit exceeded"}
    assert r3.headers["RateLimit-Limit"] == "2"
    assert r3.headers["RateLimit-Remaining"] == "0"
    assert int(r3.headers["Retry-After"]) >= 1 and int(r3.headers["RateLimit-Reset"]) >= 1
    # Limits are per endpoint: another path is unaffected.
    assert v2_get(url, V2_DATA_PATHS["page"], **window).status_code == 200
    mono.now += 1.0
    assert v2_get(url, ALERT, **window).status_code == 200


# --------------------------------------------------------------------------------------------
# v1
# --------------------------------------------------------------------------------------------


def test_v1_token_and_parameters_from_query_json_or_form(url: str, dataset: NetskopeDataset) -> None:
    params = {"insertionstarttime": T0 + 600, "insertionendtime": T0 + 900, "limit": 9999}
    expected = dataset.expected_ids("alert", T0 + 600, T0 + 900)
    via_get = requests.get(url + V1_ALERTS_PATH, params={"token": V1, **params}).json()
    via_json = requests.post(url + V1_ALERTS_PATH, params={"token": V1}, json=params).json()
    via_body_token = requests.post(url + V1_ALERTS_PATH + "?limit=9999", json={"token": V1, **params}).json()
    via_form = requests.post(url + V1_ALERTS_PATH, data={"token": V1, **params}).json()
    for resp in (via_get, via_json, via_body_token, via_form):
        assert resp["status"] == "success" and resp["msg"] == ""
        assert {r["_id"] for r in resp["data"]} == expected


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"token": "wrong", "timeperiod": 3600}, "Authorization Error"),
        ({"timeperiod": 3600}, "Authorization Error"),
        ({"token": V1, "timeperiod": 3600, "starttime": T0, "endtime": T_END}, "Only one"),
        ({"token": V1}, "required"),
        ({"token": V1, "starttime": T0}, "together"),
        ({"token": V1, "timeperiod": 3600, "limit": 10001}, "limit"),
        ({"token": V1, "timeperiod": 1234}, "timeperiod"),
        ({"token": V1, "timeperiod": 3600, "type": "bogus"}, "alert type"),
    ],
)
def test_v1_errors_are_http_200_with_status_error(url: str, params: dict[str, Any], needle: str) -> None:
    r = requests.post(url + V1_ALERTS_PATH, json=params)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "error"
    assert set(body) == {"status", "errorCode", "errors"}
    assert needle in body["errorCode"] + " ".join(body["errors"])


def test_v1_limit_is_less_than_10000(url: str, dataset: NetskopeDataset) -> None:
    """Doc §2.2: "a positive integer less than 10000"; a strict tenant answers 10000 with its v1 error."""
    params = {"token": V1, "insertionstarttime": T0, "insertionendtime": T_END + 7200}
    ok = requests.post(url + V1_ALERTS_PATH, json={**params, "limit": 9999})
    assert ok.status_code == 200 and ok.json()["status"] == "success"
    assert len(ok.json()["data"]) == len(dataset.expected_records("alert", T0, T_END + 7200)) < 9999
    for send in (
        lambda: requests.post(url + V1_ALERTS_PATH, json={**params, "limit": 10000}),
        lambda: requests.get(url + V1_ALERTS_PATH, params={**params, "limit": 10000}),
        lambda: requests.post(url + V1_EVENTS_PATH, data={**params, "limit": 10000}),
    ):
        r = send()
        assert r.status_code == 200  # v1 reports errors in the body
        body = r.json()
        assert set(body) == {"status", "errorCode", "errors"} and body["status"] == "error"
        assert body["errorCode"] == "Invalid Request" and "limit" in body["errors"][0]


def test_v1_query_filter_is_rejected_not_ignored(url: str) -> None:
    r = requests.post(
        url + V1_ALERTS_PATH, json={"token": V1, "timeperiod": 3600, "query": "alert_type in [ 'DLP' ]"}
    )
    assert r.status_code == 200
    assert r.json() == {"status": "error", "errorCode": "Invalid Request", "errors": [QUERY_NOT_SIMULATED]}


def test_v1_skip_paging_newest_first_is_complete(url: str, dataset: NetskopeDataset) -> None:
    lo, hi = T0, T0 + 1800
    served: list[dict[str, Any]] = []
    skip = 0
    while True:
        data = requests.post(
            url + V1_EVENTS_PATH,
            params={"token": V1},
            json={"type": "page", "starttime": lo, "endtime": hi, "limit": 97, "skip": skip},
        ).json()["data"]
        if not data:
            break
        served.extend(data)
        skip += len(data)
    stamps = [r["timestamp"] for r in served]
    assert stamps == sorted(stamps, reverse=True)
    assert Counter(r["_id"] for r in served) == Counter(
        r["_id"] for r in dataset.expected_records("page", lo, hi, by="timestamp")
    )
    assert {r["type"] for r in served} == {"connection"}


def test_v1_timeperiod_is_relative_to_clock(url: str, dataset: NetskopeDataset, clock: SimClock) -> None:
    clock.set(T0 + 3600)
    data = requests.get(
        url + V1_ALERTS_PATH, params={"token": V1, "timeperiod": 3600, "limit": 9999}
    ).json()["data"]
    inserted = [r for r in dataset.records("alert") if r["_insertion_epoch_timestamp"] <= T0 + 3600]
    assert Counter(r["_id"] for r in data) == Counter(
        r["_id"] for r in inserted if T0 < r["timestamp"] <= T0 + 3600
    )


def test_v1_rate_limit_24_per_5_seconds(url: str, mono: FakeMonotonic) -> None:
    params = {"token": V1, "timeperiod": 3600, "limit": 1}
    codes = [requests.get(url + V1_ALERTS_PATH, params=params).status_code for _ in range(25)]
    assert codes == [200] * 24 + [429]
    r = requests.get(url + V1_ALERTS_PATH, params=params)
    assert r.status_code == 429 and r.json()["status"] == "error"
    mono.now += 5.01
    assert requests.get(url + V1_ALERTS_PATH, params=params).json()["status"] == "success"


# --------------------------------------------------------------------------------------------
# Faults with Netskope-shaped bodies
# --------------------------------------------------------------------------------------------


def test_fault_bodies_use_v1_and_v2_shapes(url: str, sim: NetskopeSimulator) -> None:
    sim.faults.add("status", status=503, path="/api/v1/")
    sim.faults.add("status", status=500, path="/api/v2/")
    sim.faults.add("throttle", path="/api/v2/")
    r = requests.get(url + V1_ALERTS_PATH, params={"token": V1, "timeperiod": 3600})
    assert r.status_code == 503
    assert r.json() == {
        "status": "error",
        "errorCode": "Service Unavailable",
        "errors": ["Service Unavailable"],
    }
    window = {"insertionstarttime": T0, "insertionendtime": T0 + 60}
    r = v2_get(url, ALERT, **window)
    assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    r = v2_get(url, ALERT, **window)
    assert (r.status_code, r.json()) == (429, {"message": "API rate limit exceeded"})
    assert r.headers["Retry-After"] == "1" and r.headers["RateLimit-Remaining"] == "0"


def test_third_page_truncated_then_resent(url: str, sim: NetskopeSimulator) -> None:
    sim.faults.add("truncate", path=ALERT, after=2)
    window = {"insertionstarttime": T0, "insertionendtime": T_END, "limit": 50}
    for offset in (0, 50):
        assert v2_get(url, ALERT, offset=offset, **window).status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        v2_get(url, ALERT, offset=100, **window)
    assert len(v2_get(url, ALERT, offset=100, **window).json()["result"]) == 50


# --------------------------------------------------------------------------------------------
# Steering
# --------------------------------------------------------------------------------------------


def test_pops_envelope_paging_and_distance_order(url: str, dataset: NetskopeDataset) -> None:
    body = v2_get(url, V2_POPS_PATH).json()
    assert set(body) == {"total", "result"}
    assert body["total"] == len(dataset.pops) == len(body["result"])
    pop = body["result"][0]
    assert {
        "id",
        "name",
        "region",
        "location",
        "gateway",
        "probeip",
        "distance",
        "acceptingtunnels",
        "options",
        "bandwidth",
        "releasedeploymentday",
    } == set(pop)
    assert set(pop["options"]) == {"phase1", "phase2"}
    paged = [
        p["name"]
        for off in range(0, body["total"], 4)
        for p in v2_get(url, V2_POPS_PATH, offset=off, limit=4).json()["result"]
    ]
    assert paged == [p["name"] for p in body["result"]]
    near_london = v2_get(url, V2_POPS_PATH, lat=51.5, long=-0.1).json()["result"]
    miles = [int(p["distance"].split()[0]) for p in near_london]
    assert near_london[0]["name"] == "lon2" and miles == sorted(miles)


def test_tunnels_envelope_paging_and_filters(url: str, dataset: NetskopeDataset) -> None:
    body = v2_get(url, V2_TUNNELS_PATH, offset=0, limit=3).json()
    assert body["status"] == 200 and body["total"] == len(dataset.tunnels)
    assert len(body["result"]) == 3
    rest = v2_get(url, V2_TUNNELS_PATH, offset=3, limit=100).json()["result"]
    assert [t["id"] for t in body["result"] + rest] == [t["id"] for t in dataset.tunnels]
    t = rest[0]
    assert "psk" not in t and {"site", "pops", "options", "bandwidth", "version"} <= set(t)
    assert {p["status"] for p in t["pops"]} <= {"up", "down"}
    only = v2_get(url, V2_TUNNELS_PATH, **{"query.site": "site-02"}).json()
    assert only["total"] == 1 and only["result"][0]["site"] == "site-02"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def test_cli_writes_state_file_serves_env_tokens_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    plugins = Path(__file__).resolve().parents[3] / "plugins"
    env = {
        **os.environ,
        "PYTHONPATH": f"{plugins}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SIM_NETSKOPE_V1_TOKEN": "cli-v1",
        "SIM_NETSKOPE_V2_TOKEN": "cli-v2",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seccollect_dev.simulators",
            "--netskope-port",
            "0",
            "--seed",
            "7",
            "--hours",
            "0.5",
            "--state-file",
            str(state),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        info = json.loads(state.read_text())["netskope"]
        assert info["pid"] == proc.pid
        now = int(time.time())
        r = requests.get(
            info["url"] + ALERT,
            headers={"Netskope-Api-Token": "cli-v2"},
            params={"insertionstarttime": now - 3600, "insertionendtime": now, "limit": 5},
        )
        assert r.status_code == 200 and len(r.json()["result"]) == 5
        r = requests.get(info["url"] + V1_ALERTS_PATH, params={"token": "cli-v1", "timeperiod": 3600})
        assert r.json()["status"] == "success"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not state.exists()
