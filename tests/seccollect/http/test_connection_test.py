"""The Test button's shared behaviour: one line per item, a repeated error said once, a dead host not retried."""

from __future__ import annotations

from seccollect.http.connection_test import CheckResult, run_checks, short_reason, summarize
from seccollect.http.errors import VendorApiError


def _refused(path: str) -> VendorApiError:
    return VendorApiError(
        vendor="Acme", endpoint=f"GET {path}", conn_id="acme_conn",
        detail="ConnectionError: no complete response ([Errno 111] Connection refused)")


def test_a_repeated_error_is_written_once_and_every_item_has_its_line() -> None:
    def unauthorized(path: str):
        def check() -> None:
            raise VendorApiError(vendor="Acme", endpoint=f"GET {path}", status=401, vendor_message="bad token",
                                 conn_id="random_transient_id")
        return check

    results = run_checks({"alert": unauthorized("/a"), "event": unauthorized("/e"), "page": lambda: None})
    ok, message = summarize("Acme API v2:", results)
    assert ok is False
    lines = message.splitlines()
    assert lines[0] == "Acme API v2:"
    assert lines[1].startswith("• alert: FAILED — HTTP 401 Unauthorized") and "Acme said: bad token" in lines[1]
    assert lines[2:] == ["• event: FAILED — same as alert", "• page: OK"]
    assert message.count("401") == 1
    assert "random_transient_id" not in message and "/a" not in message


def test_after_the_host_did_not_answer_no_further_check_is_tried() -> None:
    tried: list[str] = []

    def check(name: str):
        def run() -> None:
            tried.append(name)
            raise _refused(f"/{name}")
        return run

    results = run_checks({n: check(n) for n in ("alert", "event", "page")})
    assert tried == ["alert"]
    assert {r.reason for r in results.values()} == {results["alert"].reason}
    assert results["alert"].reason.startswith("ConnectionError: [Errno 111] Connection refused")
    ok, message = summarize("Acme:", results)
    assert not ok and message.count("Connection refused") == 1


def test_checks_left_when_the_time_budget_is_spent_are_not_started() -> None:
    now = [0.0]
    tried: list[str] = []

    def slow(name: str):
        def run() -> None:
            tried.append(name)
            now[0] += 7.0
        return run

    results = run_checks({n: slow(n) for n in ("a", "b", "c")}, budget=12.0, clock=lambda: now[0])
    assert tried == ["a", "b"]
    assert results["a"] == CheckResult(True) and results["b"] == CheckResult(True)
    assert not results["c"].ok and "not tested" in results["c"].reason


def test_short_reason_of_other_errors_is_their_text() -> None:
    assert short_reason(ValueError("no API key")) == "no API key"
    assert short_reason(VendorApiError(vendor="Acme", endpoint="GET /x", status=503)).startswith("HTTP 503")


def test_the_http_layer_keeps_the_innermost_cause_of_a_long_urllib3_text() -> None:
    from seccollect.http.client import _cause

    long = ("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /api/v2/" + "x" * 300
            + " (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a "
            "new connection: [Errno 111] Connection refused\"))")
    assert _cause(Exception(long)) == "[Errno 111] Connection refused"
    assert _cause(Exception("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=8.0)")) == "Read timed out"
    assert _cause(Exception("short")) == "short"
