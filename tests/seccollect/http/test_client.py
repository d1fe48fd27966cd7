"""The shared HTTP layer against a real loopback simulator: every injectable fault, retried or explained."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seccollect.http.budget import ProcessBudget
from seccollect.http.client import (
    ResponsePolicy,
    RetryPolicy,
    VendorHttpClient,
    Verdict,
    retry_after,
)
from seccollect.http.errors import GUIDE_TABLE, VendorApiError, explain_status
from seccollect_dev.simulators.base import FAULT_KINDS, SimulatorApp, SimulatorServer

PATH = "/api/items"
BODY = {"result": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(300)], "total": 300}
ATTEMPTS = 3


class ItemsApp(SimulatorApp):
    """A tiny vendor: one JSON page, vendor-shaped errors, a throttle asking for 7 s."""

    name = "items"

    def __init__(self) -> None:
        self.calls = 0
        super().__init__(
            routes=[
                Route(PATH, self._items, methods=["GET"]),
                Route(
                    "/api/hidden-error",
                    lambda r: JSONResponse({"status": "error", "errorCode": "Forbidden"}),
                    methods=["GET"],
                ),
                Route("/api/hidden-throttle", self._hidden_throttle, methods=["GET"]),
            ]
        )

    def _items(self, request: Request) -> Response:
        self.calls += 1
        return JSONResponse(BODY)

    def _hidden_throttle(self, request: Request) -> Response:
        self.calls += 1
        if self.calls == 1:
            return JSONResponse({"status": "error", "errors": ["rate limit exceeded, wait 3s"]})
        return JSONResponse({"status": "success", "data": [1, 2]})

    def error_body(self, status: int, request: Request) -> Response:
        return JSONResponse({"message": f"vendor says {status} for {request.url.path}"}, status_code=status)

    def throttle_response(self, request: Request) -> Response:
        return JSONResponse({"message": "slow down"}, status_code=429, headers={"Retry-After": "7"})


@pytest.fixture
def app() -> ItemsApp:
    return ItemsApp()


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy and CA-bundle variables of the machine must not change what these tests see."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def server(app: ItemsApp) -> Iterator[SimulatorServer]:
    with SimulatorServer(app) as srv:
        yield srv


class Sleeps(list):
    """A fake ``sleep`` recording every requested wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(base_url: str, sleeps: Sleeps | None = None, **kwargs: Any) -> VendorHttpClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=ATTEMPTS, backoff_base=0.01))
    kwargs.setdefault("timeout", (1.0, 0.3))
    return VendorHttpClient(
        vendor="Items", base_url=base_url, sleep=sleeps if sleeps is not None else Sleeps(), **kwargs
    )


#: fault kind -> (FaultPlan.add kwargs, text the final error must contain besides endpoint and attempts)
FAULTS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "status": (
        {"status": 503},
        [
            explain_status(503),
            "the vendor service failed or is unavailable",
            "Items said: vendor says 503 for /api/items",
        ],
    ),
    "throttle": ({}, [GUIDE_TABLE[429][0], GUIDE_TABLE[429][1], "Items said: slow down"]),
    "slow": ({"seconds": 1.0}, ["ReadTimeout", "no complete response"]),
    "drop": ({}, ["ConnectionError", "no complete response"]),
    "malformed": ({}, ["the response body could not be parsed", "JSONDecodeError"]),
    "truncate": ({"fraction": 0.5}, ["ChunkedEncodingError", "no complete response"]),
}


def test_every_simulator_fault_kind_is_covered() -> None:
    assert set(FAULTS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", list(FAULTS))
def test_transient_fault_is_retried_and_the_full_body_returned(
    kind: str, app: ItemsApp, server: SimulatorServer
) -> None:
    fault = app.faults.add(kind, path=PATH, count=ATTEMPTS - 1, **FAULTS[kind][0])
    sleeps = Sleeps()
    client = make_client(server.url, sleeps)
    assert client.get_json(PATH) == BODY
    assert fault.applied == ATTEMPTS - 1
    assert client.attempts_made == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1
    if kind == "throttle":
        assert sleeps == [7.0, 7.0]  # the vendor's Retry-After, not the backoff
    else:
        assert all(s <= 0.02 for s in sleeps)


@pytest.mark.parametrize("kind", list(FAULTS))
def test_persistent_fault_ends_in_an_explained_vendor_api_error(
    kind: str, app: ItemsApp, server: SimulatorServer
) -> None:
    fault = app.faults.add(kind, path=PATH, count=100, **FAULTS[kind][0])
    client = make_client(server.url)
    with pytest.raises(VendorApiError) as info:
        client.get_json(PATH, params={"token": "s3cr3t-query-token"})
    error = info.value
    message = str(error)
    assert message.startswith(f"Items API GET {PATH} failed after {ATTEMPTS} attempt(s)")
    for fragment in FAULTS[kind][1]:
        assert fragment in message
    assert error.attempts == ATTEMPTS and fault.applied == ATTEMPTS
    assert error.fatal is False
    assert error.status == {"status": 503, "throttle": 429}.get(kind)
    assert "s3cr3t-query-token" not in message  # the query string is never part of the message


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_configuration_errors_fail_fast(status: int, app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("status", path=PATH, status=status, count=100)
    sleeps = Sleeps()
    client = make_client(server.url, sleeps, retry=RetryPolicy(max_attempts=6, backoff_base=0.01))
    with pytest.raises(VendorApiError) as info:
        client.get_json(PATH)
    error = info.value
    assert error.attempts == 1 and error.fatal is True and error.status == status
    assert app.stats.count(PATH) == 1 and sleeps == []
    meaning, check = GUIDE_TABLE[status]
    message = str(error)
    assert "failed after 1 attempt(s)" in message
    assert meaning in message and check in message
    assert f"Items said: vendor says {status} for {PATH}" in message


def test_unrouted_path_is_a_404_fail_fast(server: SimulatorServer) -> None:
    with pytest.raises(VendorApiError, match="Is the API URL entered correctly") as info:
        make_client(server.url).get_json("/api/nope")
    assert info.value.fatal and info.value.attempts == 1 and "GET /api/nope" in str(info.value)


def test_other_4xx_fails_at_once_without_being_fatal(app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("status", path=PATH, status=422, count=100)
    with pytest.raises(VendorApiError, match="unexpected response") as info:
        make_client(server.url).get_json(PATH)
    assert info.value.attempts == 1 and info.value.fatal is False


def test_fault_after_filter_fails_the_second_call_only(app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("status", path=PATH, status=401, after=1)
    client = make_client(server.url)
    assert client.get_json(PATH) == BODY
    with pytest.raises(VendorApiError):
        client.get_json(PATH)
    assert client.get_json(PATH) == BODY


def test_mixed_faults_in_sequence_then_success(app: ItemsApp, server: SimulatorServer) -> None:
    for kind in ("drop", "truncate", "malformed", "throttle", "status"):
        app.faults.add(kind, path=PATH, **FAULTS[kind][0])
    client = make_client(server.url, retry=RetryPolicy(max_attempts=6, backoff_base=0.01))
    assert client.get_json(PATH) == BODY
    assert client.attempts_made == 6


# --- throttling ----------------------------------------------------------------------------------


def test_retry_after_capped_by_max_throttle_wait(app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("throttle", path=PATH, count=2)
    sleeps = Sleeps()
    client = make_client(
        server.url, sleeps, retry=RetryPolicy(max_attempts=3, backoff_base=0.01, max_throttle_wait=2)
    )
    assert client.get_json(PATH) == BODY
    assert sleeps == [2, 2]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "0"}, 0.0),
        ({"RateLimit-Reset": "9"}, 9.0),
        ({"Retry-After": "4", "RateLimit-Reset": "9"}, 4.0),
    ],
)
def test_throttle_waits_what_the_vendor_asked(
    app: ItemsApp, server: SimulatorServer, headers: dict[str, str], expected: float
) -> None:
    app.faults.add("status", path=PATH, status=429, headers=headers)
    sleeps = Sleeps()
    assert make_client(server.url, sleeps).get_json(PATH) == BODY
    assert sleeps == [expected]


def test_retry_after_http_date(app: ItemsApp, server: SimulatorServer) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    app.faults.add("status", path=PATH, status=429, headers={"Retry-After": when})
    sleeps = Sleeps()
    assert make_client(server.url, sleeps).get_json(PATH) == BODY
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 31


def test_unparseable_retry_after_falls_back_to_backoff(app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("status", path=PATH, status=429, headers={"Retry-After": "soon-ish"})
    sleeps = Sleeps()
    assert make_client(server.url, sleeps).get_json(PATH) == BODY
    assert len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01


def _response(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response


def test_retry_after_parsing() -> None:
    assert retry_after(_response({})) is None
    assert retry_after(_response({"Retry-After": "-5"})) == 0.0
    assert retry_after(_response({"Retry-After": "garbage"})) is None
    assert retry_after(_response({"Retry-After": "garbage", "RateLimit-Reset": "3"})) == 3.0
    assert retry_after(_response({"RateLimit-Reset": "x"})) is None
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert retry_after(_response({"Retry-After": past})) == 0.0
    # "-0000" yields a naive datetime: still UTC, whatever the machine's timezone.
    minus_zero = email.utils.formatdate(time.time() + 60).rsplit(" ", 1)[0] + " -0000"
    assert 55 <= retry_after(_response({"Retry-After": minus_zero})) <= 61


# --- backoff and budget --------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
    rng = random.Random(42)
    for attempt, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 4: (4, 8), 5: (4, 8), 30: (4, 8)}.items():
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(low <= s <= high for s in samples), attempt
        assert max(samples) - min(samples) > (high - low) / 3  # jittered, not constant
    assert policy.backoff(3, random.Random(1)) == policy.backoff(3, random.Random(1))


def test_client_backoff_sleeps_grow_between_attempts(app: ItemsApp, server: SimulatorServer) -> None:
    app.faults.add("status", path=PATH, status=500, count=4)
    sleeps = Sleeps()
    client = make_client(
        server.url, sleeps, retry=RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.03)
    )
    assert client.get_json(PATH) == BODY
    assert len(sleeps) == 4
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02
    assert 0.015 <= sleeps[2] <= 0.03 and 0.015 <= sleeps[3] <= 0.03  # capped at backoff_max


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("max_calls", "period"), [(5, 10.0), (1, 3.0), (20, 60.0)])
def test_sliding_window_budget_never_exceeds_n_per_period(max_calls: int, period: float) -> None:
    clock = FakeClock()
    budget = ProcessBudget("test", max_calls, period, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    rng = random.Random(7)
    for _ in range(max_calls * 6):
        budget.acquire()
        sent.append(clock.now)
        clock.now += rng.choice([0.0, 0.0, 0.1, period / 7])
    for t in sent:
        assert sum(1 for s in sent if t <= s < t + period) <= max_calls


def test_sliding_window_budget_waits_no_longer_than_needed() -> None:
    clock = FakeClock()
    budget = ProcessBudget("test", 5, 10.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(15):  # a burst: 5 at once, then 5 per period
        budget.acquire()
        sent.append(clock.now - 1000.0)
    assert sent[:5] == [0.0] * 5
    assert all(10.0 <= t <= 10.1 for t in sent[5:10])
    assert all(20.0 <= t <= 20.2 for t in sent[10:])


def test_budget_is_acquired_before_every_attempt(app: ItemsApp, server: SimulatorServer) -> None:
    class Counting:
        calls = 0

        key = "counting"

        def acquire(self, *, max_wait: float | None = None) -> None:
            self.calls += 1

    budget = Counting()
    app.faults.add("status", path=PATH, status=502, count=2)
    assert make_client(server.url, budget=budget).get_json(PATH) == BODY
    assert budget.calls == 3


def test_budget_paces_real_requests() -> None:
    app = ItemsApp()
    clock = FakeClock()
    budget = ProcessBudget("test", 2, 60.0, clock=clock, sleep=clock.sleep)
    with SimulatorServer(app) as srv:
        client = make_client(srv.url, budget=budget)
        for _ in range(5):
            assert client.get_json(PATH) == BODY
    assert app.calls == 5
    assert clock.now - 1000.0 >= 120  # 5 calls at 2 per minute need two full waits


# --- vendor policy -------------------------------------------------------------------------------


class HiddenErrorPolicy(ResponsePolicy):
    """A vendor that answers 200 with an error object: 403-like errors and throttling in the body."""

    def classify(self, response: requests.Response) -> Verdict:
        verdict = super().classify(response)
        if verdict.kind != "ok":
            return verdict
        body = response.json()
        if body.get("status") == "error":
            if "rate limit" in str(body.get("errors")):
                return Verdict("throttled", self.vendor_message(response), wait=3.0)
            return Verdict("error", body.get("errorCode"), status=403)
        return verdict


def test_vendor_policy_error_in_200_body_is_fatal(server: SimulatorServer) -> None:
    client = make_client(server.url, policy=HiddenErrorPolicy())
    with pytest.raises(VendorApiError) as info:
        client.get_json("/api/hidden-error")
    assert info.value.status == 403 and info.value.fatal and info.value.attempts == 1
    assert GUIDE_TABLE[403][0] in str(info.value) and "Items said: Forbidden" in str(info.value)


def test_vendor_policy_throttle_in_200_body_is_waited_out(app: ItemsApp, server: SimulatorServer) -> None:
    sleeps = Sleeps()
    client = make_client(server.url, sleeps, policy=HiddenErrorPolicy())
    assert client.get_json("/api/hidden-throttle") == {"status": "success", "data": [1, 2]}
    assert sleeps == [3.0] and app.calls == 2


def test_vendor_message_shapes() -> None:
    policy = ResponsePolicy()

    def resp(body: bytes) -> requests.Response:
        r = requests.Response()
        r.status_code = 500
        r._content = body
        return r

    assert policy.vendor_message(resp(b'{"errors": ["a", "b"]}')) == "a; b"
    assert policy.vendor_message(resp(b'{"msg": "m"}')) == "m"
    assert policy.vendor_message(resp(b"<html>" + b"x" * 1000)).startswith("<html>")
    assert len(policy.vendor_message(resp(b"<html>" + b"x" * 1000))) == 300
    assert policy.vendor_message(resp(b"")) is None
    assert policy.vendor_message(resp(b'{"data": 1}')) is None


# --- TLS opt-out and proxy -----------------------------------------------------------------------


@pytest.fixture
def client_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the client's logger (pytest's logging plugin is off in this project's test runs)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("seccollect.http.client")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_disabling_ssl_verification_logs_a_warning(client_log: list[logging.LogRecord]) -> None:
    client = VendorHttpClient(vendor="Items", base_url="https://items.example", verify_ssl=False)
    assert client.session.verify is False
    warnings = [r for r in client_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "SSL certificate verification is DISABLED" in message and "https://items.example" in message


def test_ssl_verification_is_on_by_default_without_warning(client_log: list[logging.LogRecord]) -> None:
    client = VendorHttpClient(vendor="Items", base_url="https://items.example/")
    assert client.session.verify is True and client.base_url == "https://items.example"
    assert not [r for r in client_log if "SSL" in r.getMessage()]


def test_ssl_opt_out_beats_a_ca_bundle_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: SimulatorServer
) -> None:
    # requests lets REQUESTS_CA_BUNDLE replace Session.verify; the instance's choice must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    seen: list[Any] = []
    real_send = requests.adapters.HTTPAdapter.send

    def spy(self, request, **kwargs):
        seen.append(kwargs["verify"])
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    assert make_client(server.url, verify_ssl=False).get_json(PATH) == BODY
    assert seen == [False]


def test_proxy_setting_lands_in_the_session() -> None:
    client = VendorHttpClient(
        vendor="Items", base_url="https://items.example", proxy="http://proxy.corp:3128"
    )
    assert client.session.proxies == {"http": "http://proxy.corp:3128", "https": "http://proxy.corp:3128"}
    assert VendorHttpClient(vendor="Items", base_url="https://items.example").session.proxies == {}


def test_requests_go_through_the_proxy(app: ItemsApp, server: SimulatorServer) -> None:
    # The simulator doubles as a forward proxy: it receives the absolute URI and serves its path.
    client = make_client("http://vendor.invalid", proxy=server.url)
    assert client.get_json(PATH) == BODY
    assert app.stats.count(PATH) == 1


def test_instance_proxy_beats_proxy_environment_variables(
    app: ItemsApp, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    client = make_client("http://vendor.invalid", proxy=server.url)
    assert client.get_json(PATH) == BODY
    assert app.stats.count(PATH) == 1


def test_unreachable_host_is_explained() -> None:
    client = make_client("http://127.0.0.1:9")
    with pytest.raises(VendorApiError, match=r"GET /x failed after 3 attempt\(s\) — ConnectionError") as info:
        client.get_json("/x")
    assert info.value.status is None and not info.value.fatal


def test_headers_sent_and_post_json(app: ItemsApp, server: SimulatorServer) -> None:
    seen: dict[str, Any] = {}

    async def echo(request: Request) -> Response:
        seen.update(
            auth=request.headers.get("Netskope-Api-Token"),
            ua=request.headers.get("User-Agent"),
            body=await request.json(),
        )
        return JSONResponse({"ok": True})

    app.add_route("/api/echo", echo, methods=["POST"])
    client = make_client(server.url, headers={"Netskope-Api-Token": "tok"})
    assert client.post_json("/api/echo", json={"a": 1}) == {"ok": True}
    assert seen == {"auth": "tok", "ua": "seccollect-airflow/0.1", "body": {"a": 1}}
