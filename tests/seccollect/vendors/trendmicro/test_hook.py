"""TrendMicroCasHook against the simulator: the request as documented, paging by next_link in every
variant, the errors a person must understand (naming the connection), throttling retried without
skipping a page, and the Test button."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from seccollect.http.errors import VendorApiError
from seccollect.vendors.trendmicro.hook import TrendMicroCasHook, check_base_url, format_time, parse_page


def _conn(monkeypatch, conn_id, host, token, **extra):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                       json.dumps({"conn_type": "trendmicro_cas", "host": host, "password": token, "extra": extra}))


def _ids(pages):
    return [r["log_item_id"] for page in pages for r in page]


def test_window_pages_equal_ground_truth_with_both_bounds_in_the_documented_format(cas_sim, cas_dataset, cas_now):
    start, end = cas_now - timedelta(hours=5), cas_now - timedelta(hours=3)
    hook = TrendMicroCasHook("trendmicro_test", page_size=9)
    ids = _ids(hook.iter_events("sharepoint", "securityrisk", start, end))
    assert set(ids) == cas_dataset.expected_ids("sharepoint", "securityrisk", start, end) and len(ids) == len(set(ids))
    first = cas_sim.request_log[0].params
    assert first["start"] == format_time(start) and first["end"] == format_time(end)
    assert first["start"].endswith(".000Z") and len(first["start"]) == 24  # never microseconds
    assert first["limit"] == "9" and first["service"] == "sharepoint" and first["event"] == "securityrisk"
    assert len(cas_sim.request_log) > 2  # paged by next_link


@pytest.mark.parametrize("last_link", ["", "null", None, "missing"])
@pytest.mark.parametrize("style", ["absolute", "schemeless"])
def test_every_end_of_paging_and_link_style(cas_sim, cas_dataset, cas_now, last_link, style):
    cas_sim.options.last_link, cas_sim.options.link_style = last_link, style
    start, end = cas_now - timedelta(hours=2), cas_now - timedelta(hours=1)
    ids = _ids(TrendMicroCasHook("trendmicro_test", page_size=10).iter_events("onedrive", "dlp", start, end))
    assert set(ids) == cas_dataset.expected_ids("onedrive", "dlp", start, end)


def test_a_next_link_to_another_host_is_not_followed(cas_sim, cas_now, monkeypatch):
    hook = TrendMicroCasHook("trendmicro_test", page_size=5)
    client = hook.get_conn()
    real = client.request

    def evil(method, path, **kw):
        page, link = real(method, path, **kw)
        return page, (link.replace("127.0.0.1", "evil.example.com") if link else link)

    monkeypatch.setattr(client, "request", evil)
    with pytest.raises(VendorApiError) as failed:
        list(hook.iter_events("sharepoint", "dlp", cas_now - timedelta(hours=3), cas_now - timedelta(hours=1)))
    assert "evil.example.com" in str(failed.value) and "trendmicro_test" in str(failed.value) and failed.value.fatal


def test_bad_key_fails_for_good_naming_the_connection(cas_sim, cas_now, monkeypatch):
    _conn(monkeypatch, "cas_badkey", cas_sim.url, "not-the-key")
    with pytest.raises(VendorApiError) as failed:
        list(TrendMicroCasHook("cas_badkey").iter_events("sharepoint", "dlp", cas_now - timedelta(hours=1), cas_now))
    message = str(failed.value)
    assert failed.value.status == 401 and failed.value.fatal and failed.value.attempts == 1
    assert "cas_badkey" in message and "Authentication token not found" in message and "not-the-key" not in message


@pytest.mark.parametrize(
    "host, hint",
    [
        ("", "no Base URL"),
        ("http://api.tmcas.trendmicro.com", "plain http"),
        ("ftp://api.tmcas.trendmicro.com", "not an http(s) URL"),
        ("https://api.tmcas.trendmicro.com/v1/siem/security_events", "only the region's service URL"),
    ],
)
def test_bad_base_url_is_refused_naming_the_connection(host, hint):
    with pytest.raises(ValueError) as refused:
        check_base_url(host, "cas_conn")
    assert hint in str(refused.value) and "cas_conn" in str(refused.value)


def test_base_urls_accepted_and_an_undocumented_host_warns(monkeypatch):
    from seccollect.vendors.trendmicro import hook

    warnings = []
    monkeypatch.setattr(hook.log, "warning", lambda msg, *args: warnings.append(msg % args))
    assert check_base_url("https://api-eu.tmcas.trendmicro.com/", "c") == "https://api-eu.tmcas.trendmicro.com"
    assert check_base_url("api.tmcas.trendmicro.co.jp", "c") == "https://api.tmcas.trendmicro.co.jp"
    assert check_base_url("http://127.0.0.1:8080", "c") == "http://127.0.0.1:8080"
    assert not warnings
    assert check_base_url("https://cas.proxy.example.org", "c") == "https://cas.proxy.example.org"
    assert len(warnings) == 1 and "not one of the documented" in warnings[0] and "'c'" in warnings[0]


def test_unreachable_base_url_explains_itself(monkeypatch, budget_file, cas_now):
    from seccollect_dev.airflow_stack import free_port

    _conn(monkeypatch, "cas_nowhere", f"http://127.0.0.1:{free_port()}", "k")
    hook = TrendMicroCasHook("cas_nowhere")
    hook.get_conn().retry = type(hook.get_conn().retry)(max_attempts=2, backoff_base=0.01)
    with pytest.raises(VendorApiError) as failed:
        list(hook.iter_events("sharepoint", "dlp", cas_now - timedelta(minutes=5), cas_now))
    assert "cas_nowhere" in str(failed.value) and "ConnectionError" in str(failed.value)


def test_a_429_is_waited_out_and_the_same_page_asked_again(cas_sim, cas_dataset, cas_now, monkeypatch):
    _conn(monkeypatch, "cas_fast", cas_sim.url, cas_sim.token, requests_per_minute=600, rate_period_seconds=1)
    cas_sim.faults.add("throttle", path="/v1/siem", after=1, count=2)  # the 2nd page is throttled twice
    start, end = cas_now - timedelta(hours=4), cas_now - timedelta(hours=2)
    ids = _ids(TrendMicroCasHook("cas_fast", page_size=10).iter_events("sharepoint", "ransomware", start, end))
    assert set(ids) == cas_dataset.expected_ids("sharepoint", "ransomware", start, end) and len(ids) == len(set(ids))
    statuses = [r.status for r in cas_sim.request_log]
    assert statuses.count(429) == 0  # the faults answer before the route: the log holds only what passed
    assert cas_sim.stats.snapshot()["by_status"].get("429") == 2


def test_parse_page_reads_the_documented_example_and_rejects_wrong_shapes():
    """§5's example response (the documented structure; no verbatim vendor sample exists, see
    shared/samples/trendmicro_cas/SOURCES.txt) and the shapes that must be retried."""
    import requests

    from seccollect.http.client import PageShapeError
    from seccollect.vendors.trendmicro.operators import TrendMicroCasCollectOperator

    body = {
        "current_link": "", "next_link": "", "last_log_item_generation_time": "2024-05-29T10:03:12.000Z",
        "traceId": "2b7f6c1e-0d4a-4c8e-9a53-7e1f0b6d2c11",
        "security_events": [
            {"event": "security_risk_scan", "log_item_id": "6d1b2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "service": "Exchange",
             "message": {"log_item_id": "6d1b2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "detection_time": "2024-05-29T10:02:58.000Z",
                         "affected_user": "ana@example.org", "file_upload_time": "2024-05-28T22:02:58.000Z"}},
        ],
    }

    def response(payload):
        r = requests.Response()
        r.status_code, r._content = 200, json.dumps(payload).encode()
        return r

    events, link = parse_page(response(body))
    assert link is None and len(events) == 1
    op = TrendMicroCasCollectOperator(task_id="t", tenant="t", instance_name="i", content_type="exchange",
                                      event_type="securityrisk", trendmicro_cas_conn_id="c")
    fields = op.extract(events[0])
    assert fields.vendor_id == "6d1b2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    assert fields.event_time.isoformat() == "2024-05-29T10:02:58+00:00"  # detection_time, not file_upload_time
    for bad in ([], {"next_link": ""}, {"security_events": {}}, {"security_events": [], "next_link": 5}):
        with pytest.raises(PageShapeError):
            parse_page(response(bad))


def test_test_button_checks_auth_and_one_request_per_event_type(cas_sim, monkeypatch):
    ok, message = TrendMicroCasHook("trendmicro_test").test_connection()
    assert ok, message
    assert sorted(r.params["event"] for r in cas_sim.request_log) == ["dlp", "ransomware", "securityrisk", "virtualanalyzer"]
    assert all(r.params["limit"] == "1" for r in cas_sim.request_log)
    _conn(monkeypatch, "cas_badkey", cas_sim.url, "nope")
    ok, message = TrendMicroCasHook("cas_badkey").test_connection()
    assert not ok and "cas_badkey" in message and "401" in message


def test_test_button_spends_from_the_shared_budget(cas_sim, monkeypatch):
    """The Test button's requests count against the key like a collect's: with 3 per (sped-up) minute,
    its 4 requests wait for the next minute instead of drawing a 429."""
    import time

    _conn(monkeypatch, "cas_small", cas_sim.url, cas_sim.token, requests_per_minute=3, rate_period_seconds=1)
    cas_sim.options.rate_limit, cas_sim.options.rate_period = 3, 1.0
    began = time.monotonic()
    ok, message = TrendMicroCasHook("cas_small").test_connection()
    assert ok, message
    assert time.monotonic() - began >= 1.0
    assert [r.status for r in cas_sim.request_log] == [200] * 4


def test_a_key_the_vendor_echoes_never_reaches_the_message(cas_sim, cas_now):
    body = json.dumps({"code": -4000001, "traceId": "t", "msg": f"bad request for token {cas_sim.token}"})
    cas_sim.faults.add("status", status=400, path="/v1/siem", body=body)
    with pytest.raises(VendorApiError) as failed:
        list(TrendMicroCasHook("trendmicro_test").iter_events("sharepoint", "dlp", cas_now - timedelta(hours=1), cas_now))
    assert failed.value.status == 400 and cas_sim.token not in str(failed.value) and "trendmicro_test" in str(failed.value)


def test_provider_registers_the_trendmicro_cas_connection_type():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks["trendmicro_cas"]
    assert hook_info is not None and hook_info.connection_testable is True
    assert hook_info.hook_class_name == f"{TrendMicroCasHook.__module__}.{TrendMicroCasHook.__qualname__}"
    behaviour = ProvidersManager().field_behaviours["trendmicro_cas"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
