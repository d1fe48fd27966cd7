"""The CAS simulator against the reference (vendor-apis/trendmicro-cas.md): auth, validation, defaults,
the 72-hour rules, paging, the rate window, the request log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from seccollect_dev.simulators.base import SimulatorServer
from seccollect_dev.simulators.trendmicro import PATH, CasDataset, CasOptions, CasSimulator, max_in_window

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = "sim-test-token"


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Ticker:
    """The limiter's clock, moved by the test (no real waiting, no timing dependence)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    dataset = CasDataset(1, NOW - timedelta(hours=80), NOW, per_hour=30, services=("sharepoint",))
    ticker = Ticker()
    app = CasSimulator(dataset, [TOKEN], CasOptions(rate_limit=5, rate_period=60.0), clock=lambda: NOW.timestamp(),
                       rate_clock=ticker)
    app.ticker = ticker
    with SimulatorServer(app) as server:
        app.url = server.url
        yield app


def get(sim, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(sim.url + PATH, params=params, headers=headers, timeout=10)


def test_bad_or_missing_token_is_401_with_the_documented_body(sim):
    for token in (None, "wrong"):
        r = get(sim, token=token, service="sharepoint", event="dlp")
        assert r.status_code == 401
        body = r.json()
        assert set(body) == {"code", "traceId", "msg"} and body["msg"] == "Authentication token not found"


@pytest.mark.parametrize(
    "params",
    [
        {"event": "dlp"},
        {"service": "sharepoint"},
        {"service": "sharepoint", "event": "ransomware_detection"},
        {"service": "nope", "event": "dlp"},
        {"service": "sharepoint", "event": "dlp", "start": "2026-06-01T10:00:00.123456Z"},  # microseconds
        {"service": "sharepoint", "event": "dlp", "start": "2026-06-01 10:00:00"},
        {"service": "sharepoint", "event": "dlp", "start": fmt(NOW - timedelta(minutes=1)), "end": fmt(NOW - timedelta(minutes=2))},
        {"service": "sharepoint", "event": "dlp", "limit": "501"},
        {"service": "sharepoint", "event": "dlp", "limit": "0"},
        {"service": "sharepoint", "event": "dlp", "start": fmt(NOW - timedelta(hours=73)), "end": fmt(NOW - timedelta(hours=72))},
        {"service": "sharepoint", "event": "dlp", "start": fmt(NOW - timedelta(hours=71)), "end": fmt(NOW + timedelta(hours=2))},
    ],
)
def test_invalid_parameters_are_400_with_the_documented_body(sim, params):
    r = get(sim, **params)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"code", "traceId", "msg"}


def test_both_documented_time_formats_are_accepted(sim):
    for start in ("2026-06-01T10:00:00Z", "2026-06-01T10:00:00.000Z"):
        assert get(sim, service="sharepoint", event="dlp", start=start, end="2026-06-01T10:05:00Z").status_code == 200


def _window(r):
    link = r.json()["current_link"]
    from urllib.parse import parse_qs, urlsplit

    q = parse_qs(urlsplit(link).query)
    return q["start"][0], q["end"][0]


def test_five_minute_defaults(sim):
    assert _window(get(sim, service="sharepoint", event="dlp")) == (fmt(NOW - timedelta(minutes=5)), fmt(NOW))
    start = NOW - timedelta(hours=1)
    assert _window(get(sim, service="sharepoint", event="dlp", start=fmt(start))) == (fmt(start), fmt(start + timedelta(minutes=5)))
    assert _window(get(sim, service="sharepoint", event="dlp", end=fmt(start))) == (fmt(start - timedelta(minutes=5)), fmt(start))


def test_next_link_pages_oldest_first_until_empty(sim):
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    r = get(sim, service="sharepoint", event="securityrisk", start=fmt(start), end=fmt(end), limit=7)
    ids, pages = [], 0
    while True:
        body = r.json()
        pages += 1
        ids += [e["log_item_id"] for e in body["security_events"]]
        if not body["next_link"]:
            break
        assert body["next_link"].startswith(sim.url)
        r = requests.get(body["next_link"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 200
    expected = sim.dataset.select("sharepoint", "securityrisk", start.timestamp(), end.timestamp())
    assert ids == [rec.log_item_id for rec in expected] and pages > 2
    times = [rec.generated for rec in expected]
    assert times == sorted(times)


def test_fields_of_other_event_types_are_absent(sim):
    body = get(sim, service="sharepoint", event="ransomware", start=fmt(NOW - timedelta(hours=3)), end=fmt(NOW)).json()
    assert body["security_events"]
    for record in body["security_events"]:
        assert record["event"] == "ransomware"
        assert "triggered_dlp_template" not in record["message"] and "ransomware_name" in record["message"]


def test_fixed_rate_window_answers_429_with_the_documented_body(sim):
    statuses = [get(sim, service="sharepoint", event="dlp").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    body = get(sim, service="sharepoint", event="dlp").json()
    assert body["code"] == -4290001 and body["msg"] == "Maximum allowed requests exceeded"
    sim.ticker.now += 59.9  # still the window that opened at the first request
    assert get(sim, service="sharepoint", event="dlp").status_code == 429
    sim.ticker.now += 0.1  # a minute after the first request: a new window
    assert get(sim, service="sharepoint", event="dlp").status_code == 200
    log = sim.request_log
    assert [r.status for r in log].count(429) == 4
    assert all(TOKEN not in str(vars(r)) for r in log)
    ok = [r.at for r in log if r.status == 200]
    assert max_in_window(ok, 60.0) <= 5


def test_rate_scope_per_customer_counts_every_token():
    dataset = CasDataset(1, NOW - timedelta(hours=1), NOW, services=("sharepoint",))
    app = CasSimulator(dataset, ["a", "b"], CasOptions(rate_limit=2, rate_period=30, rate_scope="customer"),
                       clock=lambda: NOW.timestamp())
    with SimulatorServer(app) as server:
        app.url = server.url
        assert [get(app, token=t, service="sharepoint", event="dlp").status_code for t in "aba"] == [200, 200, 429]


@pytest.mark.parametrize("last_link", ["", "null", None, "missing"])
def test_last_page_link_variants(sim, last_link):
    sim.options.last_link = last_link
    body = get(sim, service="sharepoint", event="dlp", start=fmt(NOW - timedelta(minutes=5)), end=fmt(NOW)).json()
    if last_link == "missing":
        assert "next_link" not in body
    else:
        assert body["next_link"] == last_link


def test_control_endpoint_serves_the_request_log(sim):
    get(sim, service="sharepoint", event="dlp")
    rows = requests.get(sim.url + "/_sim/trendmicro/requests", timeout=5).json()["requests"]
    assert rows and rows[-1]["params"]["service"] == "sharepoint" and rows[-1]["status"] == 200
