"""The vendor-neutral simulator framework (Starlette + uvicorn), exercised through real sockets and ``requests``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seccollect_dev.simulators.base import (
    FaultPlan,
    SimClock,
    SimulatorApp,
    SimulatorServer,
    merge_params,
    query_arg,
    request_params,
)


class ItemsApp(SimulatorApp):
    """A tiny vendor: paged items, a failing handler, and its own error/throttle shapes."""

    name = "items"

    def __init__(self) -> None:
        self.items = [{"id": i} for i in range(25)]
        super().__init__(
            routes=[
                Route("/items", self._items, methods=["GET"]),
                Route("/echo/{name}", self._echo, methods=["GET", "POST"]),
                Route("/boom", self._boom, methods=["GET"]),
            ]
        )

    def _items(self, request: Request) -> Response:
        offset = int(query_arg(request, "offset", "0"))
        limit = int(query_arg(request, "limit", "10"))
        return JSONResponse({"items": self.items[offset : offset + limit]})

    async def _echo(self, request: Request) -> Response:
        return JSONResponse(
            {
                "name": request.path_params["name"],
                "params": await request_params(request),
                "x_key": request.headers.get("X-KEY"),
            }
        )

    def _boom(self, request: Request) -> Response:
        raise RuntimeError("handler bug")

    def error_body(self, status: int, request: Request) -> Response:
        return JSONResponse({"vendor_error": status}, status_code=status)

    def throttle_response(self, request: Request) -> Response:
        return JSONResponse({"vendor_throttled": True}, status_code=429, headers={"Retry-After": "7"})


def build_request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Request:
    """A Starlette request without a socket (what the old ``SimRequest.build`` gave the tests)."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "method": method.upper(),
        "path": path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(ItemsApp()) as srv:
        yield srv


def test_request_helpers_multi_valued_query_case_insensitive_headers_and_bodies() -> None:
    req = build_request(
        "post", "/x?a=1&a=2&b=", headers={"Content-Type": "application/json"}, body=b'{"c": 3, "flag": true}'
    )
    assert {k: req.query_params.getlist(k) for k in req.query_params} == {"a": ["1", "2"], "b": [""]}
    assert query_arg(req, "a") == "1"
    assert req.headers.get("content-TYPE") == "application/json"
    assert asyncio.run(req.json()) == {"c": 3, "flag": True}
    assert asyncio.run(request_params(req)) == {"a": ["1", "2"], "b": [""], "c": ["3"], "flag": ["true"]}

    form = build_request(
        "POST", "/x?a=1", headers={"content-type": "application/x-www-form-urlencoded"}, body=b"a=9&d=4&d=5"
    )
    assert merge_params({}, b"a=9&d=4&d=5", "application/x-www-form-urlencoded") == {"a": ["9"], "d": ["4", "5"]}
    assert asyncio.run(request_params(form)) == {"a": ["9"], "d": ["4", "5"]}
    with pytest.raises(ValueError):
        asyncio.run(form.json())

    h = Headers(raw=[(b"ratelimit-remaining", b"3"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert h["RateLimit-Remaining"] == "3"
    assert h.getlist("X-A") == ["1", "2"]
    assert "x-a" in h and "nope" not in h


def test_server_serves_routes_and_reuses_keep_alive_connection(server: SimulatorServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    with requests.Session() as s:
        r1 = s.post(f"{server.url}/echo/abc?q=1", json={"k": "v"}, headers={"x-key": "K"})
        r2 = s.get(f"{server.url}/items?offset=20&limit=10")
    assert r1.json() == {"name": "abc", "params": {"q": ["1"], "k": ["v"]}, "x_key": "K"}
    assert [i["id"] for i in r2.json()["items"]] == [20, 21, 22, 23, 24]
    assert server.app.stats.count("/echo/abc", 200) == 1


def test_unknown_path_and_method_use_vendor_error_body(server: SimulatorServer) -> None:
    r = requests.get(f"{server.url}/nowhere")
    assert (r.status_code, r.json()) == (404, {"vendor_error": 404})
    r = requests.delete(f"{server.url}/items")
    assert (r.status_code, r.json()) == (405, {"vendor_error": 405})


def test_handler_exception_becomes_vendor_500_and_is_counted(server: SimulatorServer) -> None:
    r = requests.get(f"{server.url}/boom")
    assert (r.status_code, r.json()) == (500, {"vendor_error": 500})
    assert server.app.stats.snapshot()["errors"] == 1


def test_status_fault_after_skips_first_matching_requests(server: SimulatorServer) -> None:
    server.app.faults.add("status", status=503, path="/items", after=2, count=2)
    codes = [requests.get(f"{server.url}/items").status_code for _ in range(5)]
    assert codes == [200, 200, 503, 503, 200]
    # Other paths never matched the fault and never consumed it.
    assert requests.get(f"{server.url}/echo/x").status_code == 200
    r = requests.get(f"{server.url}/items")
    assert r.status_code == 200
    server.app.faults.add("status", status=502, body='{"custom": 1}', headers={"Retry-After": "3"})
    r = requests.get(f"{server.url}/items")
    assert (r.status_code, r.json(), r.headers["retry-after"]) == (502, {"custom": 1}, "3")


def test_faults_fire_in_queue_order_one_per_request(server: SimulatorServer) -> None:
    server.app.faults.add("status", status=500)
    server.app.faults.add("throttle")
    r1, r2, r3 = (requests.get(f"{server.url}/items") for _ in range(3))
    assert r1.status_code == 500
    assert (r2.status_code, r2.json(), r2.headers["Retry-After"]) == (429, {"vendor_throttled": True}, "7")
    assert r3.status_code == 200
    assert server.app.stats.snapshot()["faults"] == {"status": 1, "throttle": 1}


def test_drop_fault_closes_connection_without_response(server: SimulatorServer) -> None:
    server.app.faults.add("drop", path="/items")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/items")
    assert requests.get(f"{server.url}/items").status_code == 200
    assert server.app.stats.count("/items", "dropped") == 1


def test_drop_fault_resets_the_connection_before_any_response_byte(server: SimulatorServer) -> None:
    import socket

    server.app.faults.add("drop", path="/items")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /items HTTP/1.1\r\nHost: sim\r\n\r\n")
        received = b""
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(4096):
                received += chunk
    assert received == b""  # not even a status line: like a crashed balancer


def test_drop_fault_on_a_reused_keep_alive_connection(server: SimulatorServer) -> None:
    with requests.Session() as s:
        assert s.get(f"{server.url}/items").status_code == 200
        server.app.faults.add("drop", path="/items")
        with pytest.raises(requests.ConnectionError):
            s.get(f"{server.url}/items")
        assert s.get(f"{server.url}/items").status_code == 200
    assert server.app.stats.snapshot()["by_status"] == {"200": 2, "dropped": 1}


def test_unknown_control_endpoint_is_ours_and_not_counted(server: SimulatorServer) -> None:
    r = requests.get(f"{server.url}/_sim/nope")
    assert (r.status_code, r.json()) == (404, {"error": "unknown control endpoint"})
    r = requests.put(f"{server.url}/_sim/faults")
    assert r.status_code == 404
    assert server.app.stats.total == 0


def test_truncate_fault_cuts_body_below_content_length(server: SimulatorServer) -> None:
    server.app.faults.add("truncate", fraction=0.5)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.url}/items")
    # Streaming shows the declared length really exceeds what arrived.
    server.app.faults.add("truncate", fraction=0.3)
    r = requests.get(f"{server.url}/items", stream=True)
    declared = int(r.headers["Content-Length"])
    got = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in r.iter_content(1):
            got += chunk
    assert 0 < len(got) < declared


def test_malformed_fault_is_200_with_unparseable_body(server: SimulatorServer) -> None:
    server.app.faults.add("malformed")
    r = requests.get(f"{server.url}/items")
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()
    import xml.etree.ElementTree as ET

    with pytest.raises(ET.ParseError):
        ET.fromstring(r.content)


def test_slow_fault_triggers_client_timeout_then_recovers(server: SimulatorServer) -> None:
    server.app.faults.add("slow", seconds=2.0)
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(f"{server.url}/items", timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    assert requests.get(f"{server.url}/items", timeout=2).status_code == 200


def test_slow_fault_shorter_than_timeout_still_answers(server: SimulatorServer) -> None:
    server.app.faults.add("slow", seconds=0.2)
    t0 = time.monotonic()
    r = requests.get(f"{server.url}/items", timeout=2)
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.2


def test_http_control_endpoints_add_faults_report_stats_and_reset(server: SimulatorServer) -> None:
    url = server.url
    r = requests.post(
        f"{url}/_sim/faults",
        json=[
            {"kind": "status", "status": 500, "path": "/items", "after": 1},
            {"kind": "drop", "path": "/echo"},
        ],
    )
    assert r.status_code == 200 and r.json()["added"] == 2
    assert requests.get(f"{url}/items").status_code == 200
    assert requests.get(f"{url}/items").status_code == 500
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/echo/a")
    stats = requests.get(f"{url}/_sim/stats").json()
    assert stats["total"] == 3  # control calls are not counted
    assert stats["by_path"] == {"/items": 2, "/echo/a": 1}
    assert stats["by_status"] == {"200": 1, "500": 1, "dropped": 1}
    assert stats["faults"] == {"status": 1, "drop": 1}
    assert [f["applied"] for f in requests.get(f"{url}/_sim/faults").json()["faults"]] == [1, 1]

    requests.post(f"{url}/_sim/faults", json={"kind": "status", "status": 503})
    assert requests.post(f"{url}/_sim/reset").status_code == 200
    assert requests.get(f"{url}/items").status_code == 200  # fault cleared
    assert requests.get(f"{url}/_sim/stats").json()["total"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        [{"kind": "explode"}],
        [{"kind": "status"}],
        [{"kind": "drop", "count": 0}],
        [{"kind": "drop", "colour": "red"}],
        "not a fault",
    ],
)
def test_invalid_fault_json_is_rejected_atomically(server: SimulatorServer, payload: object) -> None:
    # A valid fault first: a bad list must not be half-applied.
    body = [{"kind": "drop"}, *payload] if isinstance(payload, list) else payload
    r = requests.post(f"{server.url}/_sim/faults", json=body)
    assert r.status_code == 400
    assert server.app.faults.pending() == []


def test_fault_plan_is_exact_under_concurrency(server: SimulatorServer) -> None:
    server.app.faults.add("status", status=500, count=5)
    codes: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        code = requests.get(f"{server.url}/items").status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 15 + [500] * 5


def test_fault_plan_method_filter_without_server() -> None:
    plan = FaultPlan()
    plan.add("drop", method="post")
    assert plan.take("GET", "/a") is None
    fault = plan.take("POST", "/a")
    assert fault is not None and fault.kind == "drop"
    assert plan.take("POST", "/a") is None


def test_clock_control_freezes_and_advances(server: SimulatorServer) -> None:
    r = requests.post(f"{server.url}/_sim/clock", json={"now": 1000})
    assert r.json() == {"now": 1000.0, "frozen": True}
    requests.post(f"{server.url}/_sim/clock", json={"advance": 60})
    assert server.app.clock() == 1060.0
    requests.post(f"{server.url}/_sim/clock", json={"real": True})
    assert abs(server.app.clock() - time.time()) < 5

    clock = SimClock(now=5.0)
    clock.advance(2.5)
    assert clock() == 7.5


def test_stop_is_clean_with_idle_keep_alive_and_pending_slow_request() -> None:
    app = ItemsApp()
    srv = SimulatorServer(app).start()
    session = requests.Session()
    assert session.get(f"{srv.url}/items").status_code == 200  # leaves an idle keep-alive socket
    app.faults.add("slow", seconds=30)
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            requests.get(f"{srv.url}/items", timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.stop()
    t.join(timeout=5)
    assert time.monotonic() - t0 < 3
    assert not t.is_alive()
    # The request sleeping in the `slow` fault is woken too, not left behind for 30 s: uvicorn waits
    # for in-flight requests before its thread ends, so no server thread may be left running.
    deadline = time.monotonic() + 3
    while any(th.name == f"sim-items-{srv.port}" for th in threading.enumerate()):
        assert time.monotonic() < deadline, "simulator handler threads still running after stop()"
        time.sleep(0.05)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{srv.port}/items", timeout=1)
    session.close()
