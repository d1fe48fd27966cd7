"""NetskopeHook against the live Netskope simulator: paging, auth failures, throttling, connection test.

Ground truth comes from the simulator's dataset; the simulator's request statistics show how the hook
used the API (pages, retries, methods).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seccollect_dev.simulators.netskope import (
    ALL_V2_SCOPES,
    V1_ALERTS_PATH,
    V1_EVENTS_PATH,
    V2_DATA_PATHS,
    V2_POPS_PATH,
    V2_TUNNELS_PATH,
)
from tests.conftest import NETSKOPE_START, NETSKOPE_V1_TOKEN, NETSKOPE_V2_TOKEN

#: content type -> dataset endpoint holding its ground truth
GROUND_TRUTH = {"alert": "alert", "event": "application", "page": "page"}
V2_PATH = {"alert": V2_DATA_PATHS["alert"], "event": V2_DATA_PATHS["application"], "page": V2_DATA_PATHS["page"]}


def _add_connection(monkeypatch, sim_url: str, conn_id: str, token: str, version: str) -> str:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "netskope", "password": token, "extra": {"base_url": sim_url, "api_version": version}}),
    )
    return conn_id


@pytest.fixture
def sim_url(netskope_sim) -> str:
    return json.loads(os.environ["AIRFLOW_CONN_NETSKOPE_TEST"])["extra"]["base_url"]


def _hook(conn_id: str = "netskope_test", **kwargs):
    from seccollect.vendors.netskope.hook import NetskopeHook

    return NetskopeHook(conn_id, **kwargs)


def _ids(pages) -> Counter:
    return Counter(r["_id"] for page in pages for r in page)


def _window_on_records(dataset, endpoint: str, first: int, last: int) -> tuple[datetime, datetime]:
    """A window whose both ends fall exactly on a record's insertion second (edges are exercised)."""
    inserted = sorted({r["_insertion_epoch_timestamp"] for r in dataset.records(endpoint)})
    start = next(t for t in inserted if t >= int((NETSKOPE_START + timedelta(minutes=first)).timestamp()))
    end = next(t for t in inserted if t >= int((NETSKOPE_START + timedelta(minutes=last)).timestamp()))
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def _requests(sim, path: str) -> list[dict]:
    return [r for r in sim.stats.snapshot()["recent"] if r["path"] == path]


# --- paging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["alert", "event", "page"])
def test_v2_paging_returns_exactly_the_window(content_type, netskope_sim, netskope_dataset) -> None:
    endpoint = GROUND_TRUTH[content_type]
    start, end = _window_on_records(netskope_dataset, endpoint, 10, 40)
    expected = netskope_dataset.expected_records(endpoint, start, end)
    assert len(expected) > 100
    # Edge semantics: a record inserted in the window's first second belongs to the previous window.
    at_start = {r["_id"] for r in netskope_dataset.records(endpoint)
                if r["_insertion_epoch_timestamp"] == int(start.timestamp())}
    at_end = {r["_id"] for r in expected if r["_insertion_epoch_timestamp"] == int(end.timestamp())}
    only_at_start = at_start - {r["_id"] for r in expected}
    assert only_at_start and at_end

    page_size = 37
    pages = list(_hook(page_size=page_size).iter_window(content_type, start, end))
    got = _ids(pages)
    assert got == Counter(r["_id"] for r in expected), "gap or overlap between pages"
    assert at_end <= set(got), "the window's last second is inclusive"
    assert not only_at_start & set(got), "the window's first second is exclusive"
    assert all(len(p) == page_size for p in pages[:-1])

    sent = _requests(netskope_sim, V2_PATH[content_type])
    assert len(sent) == len(expected) // page_size + 1
    assert [int(r["query"]["offset"][0]) for r in sent] == [i * page_size for i in range(len(sent))]
    assert {(r["query"]["insertionstarttime"][0], r["query"]["insertionendtime"][0]) for r in sent} == {
        (str(int(start.timestamp())), str(int(end.timestamp())))
    }
    assert all(r["method"] == "GET" and r["status"] == "200" for r in sent)
    # The v2 token travels in the Netskope-Api-Token header (the simulator rejects anything else).
    assert all("token" not in r["query"] for r in sent)


def test_v2_page_size_dividing_the_window_exactly_ends_on_an_empty_page(netskope_sim, netskope_dataset) -> None:
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(minutes=30)
    expected = netskope_dataset.expected_records("alert", start, end)
    page_size = len(expected)
    pages = list(_hook(page_size=page_size).iter_window("alert", start, end))
    assert _ids(pages) == Counter(r["_id"] for r in expected)
    assert len(_requests(netskope_sim, V2_DATA_PATHS["alert"])) == 2


@pytest.mark.parametrize(("content_type", "path"), [("alert", V1_ALERTS_PATH), ("event", V1_EVENTS_PATH)])
def test_v1_skip_paging_returns_exactly_the_window(content_type, path, netskope_sim, netskope_dataset) -> None:
    endpoint = GROUND_TRUTH[content_type]
    start, end = _window_on_records(netskope_dataset, endpoint, 20, 35)
    expected = netskope_dataset.expected_records(endpoint, start, end)
    page_size = 41
    pages = list(_hook("netskope_test_v1", page_size=page_size).iter_window(content_type, start, end))
    assert _ids(pages) == Counter(r["_id"] for r in expected)
    # v1 events carry page and application events; only application events are asked for.
    assert all(r["type"] == "nspolicy" for p in pages for r in p) or content_type == "alert"
    sent = _requests(netskope_sim, path)
    assert len(sent) == len(expected) // page_size + 1
    # The token travels in the POST body, never in the query string.
    assert all(r["method"] == "POST" and "token" not in r["query"] for r in sent)


def test_v1_stays_within_24_requests_per_5_seconds(netskope_sim, netskope_dataset) -> None:
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(hours=1)
    expected = netskope_dataset.expected_records("alert", start, end)
    page_size = len(expected) // 27 + 1  # 28 requests: more than the 24 the API serves per 5 s
    pages = list(_hook("netskope_test_v1", page_size=page_size).iter_window("alert", start, end))
    assert _ids(pages) == Counter(r["_id"] for r in expected)
    stats = netskope_sim.stats.snapshot()
    assert stats["by_path"][V1_ALERTS_PATH] > 24
    assert stats["by_status"] == {"200": stats["total"]}, "the hook exceeded the v1 rate limit"


# --- failures -------------------------------------------------------------------------------------


def test_v1_bad_token_is_fatal_401_from_a_200_error_body(monkeypatch, netskope_sim, sim_url) -> None:
    from seccollect.http.errors import VendorApiError

    conn_id = _add_connection(monkeypatch, sim_url, "netskope_bad_v1", "not-the-v1-token", "v1")
    with pytest.raises(VendorApiError) as info:
        list(_hook(conn_id).iter_window("alert", NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5)))
    exc = info.value
    assert exc.fatal and exc.status == 401 and exc.attempts == 1
    assert "POST /api/v1/alerts" in str(exc)
    assert "invalid credential" in str(exc) and "Authorization Error" in str(exc)
    # The simulator answered HTTP 200 (status "error" in the body), once: no retries.
    assert netskope_sim.stats.snapshot()["by_path_status"] == {V1_ALERTS_PATH: {"200": 1}}


def test_v2_token_without_scope_is_fatal_403_naming_the_endpoint(monkeypatch, netskope_sim, sim_url) -> None:
    from seccollect.http.errors import VendorApiError

    netskope_sim.add_v2_token("token-without-page-scope", [s for s in ALL_V2_SCOPES if s != V2_DATA_PATHS["page"]])
    conn_id = _add_connection(monkeypatch, sim_url, "netskope_noscope", "token-without-page-scope", "v2")
    hook = _hook(conn_id)
    window = (NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5))
    assert list(hook.iter_window("alert", *window)), "the token works for the alert endpoint"
    with pytest.raises(VendorApiError) as info:
        list(hook.iter_window("page", *window))
    exc = info.value
    assert exc.fatal and exc.status == 403 and exc.attempts == 1
    assert "GET /api/v2/events/data/page" in str(exc)
    assert "the permission or scope of a valid credential is not right" in str(exc)
    assert netskope_sim.stats.count(V2_DATA_PATHS["page"]) == 1


def test_v2_expired_token_is_fatal_401(netskope_sim) -> None:
    from seccollect.http.errors import VendorApiError

    netskope_sim.expire_token(NETSKOPE_V2_TOKEN)
    with pytest.raises(VendorApiError) as info:
        list(_hook().iter_window("alert", NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5)))
    assert info.value.fatal and info.value.status == 401
    assert "Token expired" in str(info.value) and "Expired?" in str(info.value)
    assert netskope_sim.stats.count(V2_DATA_PATHS["alert"], 401) == 1
    assert netskope_sim.stats.total == 1


def test_429_burst_is_waited_out(netskope_sim, netskope_dataset) -> None:
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(minutes=15)
    netskope_sim.faults.add("throttle", path=V2_DATA_PATHS["alert"], count=2)
    pages = list(_hook(page_size=50).iter_window("alert", start, end))
    assert _ids(pages) == Counter(r["_id"] for r in netskope_dataset.expected_records("alert", start, end))
    assert netskope_sim.stats.count(V2_DATA_PATHS["alert"], 429) == 2


# --- snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "path", "page_size"), [
    ("pops", V2_POPS_PATH, 4),
    ("tunnels", V2_TUNNELS_PATH, 3),
    ("pops", V2_POPS_PATH, 14),  # exactly the total: the hook stops without an extra request
])
def test_snapshot_paging_returns_every_item_once(content_type, path, page_size, netskope_sim, netskope_dataset) -> None:
    truth = getattr(netskope_dataset, content_type)
    pages = list(_hook(page_size=page_size).iter_snapshot(content_type))
    ids = [item["id"] for page in pages for item in page]
    assert ids == [item["id"] for item in truth]
    assert [len(p) for p in pages] == [min(page_size, len(truth) - i) for i in range(0, len(truth), page_size)]
    sent = _requests(netskope_sim, path)
    assert len(sent) == -(-len(truth) // page_size)
    assert [int(r["query"]["offset"][0]) for r in sent] == list(range(0, len(truth), page_size))
    if content_type == "pops":
        assert all(not k.startswith("_") for page in pages for item in page for k in item)


# --- connection test ------------------------------------------------------------------------------


def test_connection_test_reports_each_content_type_and_writes_nothing(monkeypatch, netskope_sim, sim_url) -> None:
    from seccollect.staging.store import staging_root

    netskope_sim.add_v2_token("token-without-page-scope", [s for s in ALL_V2_SCOPES if s != V2_DATA_PATHS["page"]])
    conn_id = _add_connection(monkeypatch, sim_url, "netskope_noscope", "token-without-page-scope", "v2")
    root = Path(staging_root().path)
    before = sorted(root.rglob("*")) if root.exists() else []

    ok, message = _hook(conn_id).test_connection()

    assert ok is False
    header, *rest = message.splitlines()
    assert header == "Netskope API v2:"
    lines = dict(line.removeprefix("• ").split(": ", 1) for line in rest)
    assert list(lines) == ["alert", "event", "page", "pops", "tunnels"]
    assert {ct: line for ct, line in lines.items() if ct != "page"} == dict.fromkeys(
        ["alert", "event", "pops", "tunnels"], "OK")
    assert lines["page"].startswith("FAILED")
    assert "HTTP 403 Forbidden" in lines["page"]
    stats = netskope_sim.stats.snapshot()
    assert stats["total"] == 5, "one small request per content type"
    assert {r["method"] for r in stats["recent"]} == {"GET"}
    assert all(r["query"].get("limit") == ["1"] for r in stats["recent"])
    assert (sorted(root.rglob("*")) if root.exists() else []) == before, "the test staged something"
    assert "token-without-page-scope" not in message


def test_connection_test_v1_passes_with_two_requests(netskope_sim) -> None:
    ok, message = _hook("netskope_test_v1").test_connection()
    assert ok is True
    assert message == "Netskope API v1:\n• alert: OK\n• event: OK"
    assert netskope_sim.stats.snapshot()["by_path"] == {V1_ALERTS_PATH: 1, V1_EVENTS_PATH: 1}
    assert NETSKOPE_V1_TOKEN not in message


def test_connection_test_with_a_wrong_key_says_the_401_once(monkeypatch, netskope_sim, sim_url) -> None:
    conn_id = _add_connection(monkeypatch, sim_url, "netskope_wrong_key", "not-the-right-key-123", "v2")
    ok, message = _hook(conn_id).test_connection()
    assert ok is False
    header, first, *others = message.splitlines()
    assert header == "Netskope API v2:"
    assert first.startswith("• alert: FAILED — HTTP 401 Unauthorized: invalid credential")
    assert others == [f"• {ct}: FAILED — same as alert" for ct in ("event", "page", "pops", "tunnels")]
    assert message.count("401") == 1
    assert "not-the-right-key-123" not in message
    # One attempt per content type (the Test button does not run the retry schedule).
    assert netskope_sim.stats.snapshot()["total"] == 5


def test_connection_test_against_a_refusing_port_answers_at_once_with_the_cause(monkeypatch) -> None:
    import time

    from seccollect_dev.airflow_stack import free_port

    conn_id = _add_connection(monkeypatch, f"http://127.0.0.1:{free_port()}", "netskope_refused", "k" * 20, "v2")
    started = time.monotonic()
    ok, message = _hook(conn_id).test_connection()
    elapsed = time.monotonic() - started
    assert ok is False
    assert elapsed < 15, f"the Test answered after {elapsed:.0f}s"
    lines = message.splitlines()
    assert len(lines) == 6 and lines[1].startswith("• alert: FAILED — ConnectionError: [Errno 111] Connection refused")
    assert message.count("Connection refused") == 1
    assert "k" * 20 not in message


def test_connection_test_against_a_silent_host_answers_within_15_seconds(monkeypatch) -> None:
    """A host that accepts the connection and never answers (a black-holing proxy, a hung tenant)."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # never accepted: the kernel completes the handshake, nobody answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        conn_id = _add_connection(monkeypatch, url, "netskope_silent", "k" * 20, "v2")
        started = time.monotonic()
        ok, message = _hook(conn_id).test_connection()
        elapsed = time.monotonic() - started
    assert ok is False
    assert elapsed < 15, f"the Test answered after {elapsed:.0f}s"
    assert "timed out" in message.splitlines()[1] and message.count("timed out") == 1


# --- connection type registration ---------------------------------------------------------------


def test_provider_registers_the_netskope_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from seccollect.vendors.netskope.hook import NetskopeHook

    hook_info = ProvidersManagerTaskRuntime().hooks["netskope"]
    assert hook_info is not None
    assert hook_info.hook_class_name == f"{NetskopeHook.__module__}.{NetskopeHook.__qualname__}"
    assert hook_info.package_name == "seccollect"
    assert hook_info.connection_testable is True
    manager = ProvidersManager()
    behaviour = manager.field_behaviours["netskope"]
    assert behaviour["relabeling"]["password"] == "API Key"
    assert behaviour["relabeling"]["host"] == "Netskope Tenant Name"
    widgets = {w.field_name for w in manager.connection_form_widgets.values()
               if w.hook_class_name == hook_info.hook_class_name}
    assert {"api_version", "base_url"} <= widgets


def _cli_connections_test(conn_id: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(airflow), "connections", "test", conn_id], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_connections_test_succeeds_and_reports_a_scope_failure(
    monkeypatch, airflow_db, netskope_sim, sim_url
) -> None:
    result = _cli_connections_test("netskope_test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout

    netskope_sim.add_v2_token("token-without-tunnels", [s for s in ALL_V2_SCOPES if s != V2_TUNNELS_PATH])
    _add_connection(monkeypatch, sim_url, "netskope_no_tunnels", "token-without-tunnels", "v2")
    failed = _cli_connections_test("netskope_no_tunnels")
    assert failed.returncode == 1
    assert "Connection failed!" in failed.stdout
    assert "tunnels: FAILED" in failed.stdout and "alert: OK" in failed.stdout
    for output in (result.stdout + result.stderr, failed.stdout + failed.stderr):
        assert NETSKOPE_V2_TOKEN not in output and "token-without-tunnels" not in output


# --- tenant name --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["companya.goskope.com", "https://companya.goskope.com", "companya.goskope.com/"])
def test_a_host_name_as_tenant_is_rejected_with_a_hint_before_any_request(monkeypatch, host) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_URL_TENANT",
                       json.dumps({"conn_type": "netskope", "host": host, "password": "k" * 16}))
    ok, message = _hook("netskope_url_tenant").test_connection()
    assert ok is False
    assert "enter only the tenant name" in message and "https://companya.goskope.com" in message
    assert "k" * 16 not in message


def test_tenant_name_builds_the_goskope_host(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_TENANT",
                       json.dumps({"conn_type": "netskope", "host": "companya", "password": "k" * 16}))
    assert _hook("netskope_tenant").get_conn().base_url == "https://companya.goskope.com"
    # The instance's tenant name wins over the connection's.
    assert _hook("netskope_tenant", tenant="companyb").get_conn().base_url == "https://companyb.goskope.com"


# --- base URL override ---------------------------------------------------------------------------


def test_a_plain_http_base_url_override_to_a_remote_host_is_refused(monkeypatch) -> None:
    """The override sends the API key where it points: the shared rule (plain http only on loopback)."""
    monkeypatch.delenv("SECCOLLECT_INSECURE_HTTP_HOSTS", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_HTTP_OVERRIDE", json.dumps(
        {"conn_type": "netskope", "password": "k" * 16, "extra": {"base_url": "http://netskope.example.org"}}))
    with pytest.raises(ValueError) as refused:
        _hook("netskope_http_override").get_conn()
    message = str(refused.value)
    assert "netskope_http_override" in message and "must use https" in message and "k" * 16 not in message


@pytest.mark.parametrize(("override", "base_url"), [
    ("http://127.0.0.1:18801/", "http://127.0.0.1:18801"),
    ("https://netskope-proxy.example.org", "https://netskope-proxy.example.org"),
])
def test_a_base_url_override_on_loopback_or_https_is_used(monkeypatch, override, base_url) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_OVERRIDE", json.dumps(
        {"conn_type": "netskope", "password": "k" * 16, "extra": {"base_url": override}}))
    assert _hook("netskope_override").get_conn().base_url == base_url
