"""TrendMicroCasCollectOperator and the instance schema: waiting for the shared budget frees the worker
slot (a deferral) before anything is fetched; records that cannot be handled are quarantined; the
instance file accepts the guide's names for event types."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from seccollect.vendors.trendmicro.instance import TrendMicroCasInstance


def _operator(**kwargs):
    from airflow.sdk import DAG

    from seccollect.vendors.trendmicro.operators import TrendMicroCasCollectOperator

    with DAG("acme-trendmicro_cas-unit", schedule=None):
        return TrendMicroCasCollectOperator(task_id="collect_sharepoint_dlp", tenant="acme", instance_name="unit",
                                            content_type="sharepoint", event_type="dlp", warehouse_conn_id=None,
                                            settle_lag_seconds=0, **kwargs)


def test_a_spent_budget_defers_the_task_before_its_first_request(cas_sim, cas_now, monkeypatch, staging):
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from seccollect.http.shared_budget import shared_budget
    from seccollect.vendors.trendmicro.hook import TrendMicroCasHook

    monkeypatch.setenv("AIRFLOW_CONN_CAS_SLOW", json.dumps(
        {"conn_type": "trendmicro_cas", "host": cas_sim.url, "password": cas_sim.token, "extra": {"requests_per_minute": 2}}))
    key, limits, _ = TrendMicroCasHook("cas_slow").budget_settings()
    spender = shared_budget(key, limits)
    spender.acquire(max_wait=0)
    spender.acquire(max_wait=0)  # another task spent this minute's two requests
    op = _operator(trendmicro_cas_conn_id="cas_slow", max_budget_wait_seconds=5,
                   window_start=(cas_now - timedelta(hours=2)).isoformat(), window_end=(cas_now - timedelta(hours=1)).isoformat())
    from datetime import UTC, datetime

    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    wait = (deferred.value.trigger._moment - datetime.now(UTC)).total_seconds()
    assert isinstance(deferred.value.trigger, TimeDeltaTrigger)
    assert deferred.value.method_name == "resume_after_budget"
    assert 45 < wait <= 62  # until the minute of the two spent requests has passed
    assert cas_sim.request_log == [], "nothing was fetched, so nothing is thrown away"


def test_records_that_cannot_be_handled_are_quarantined_and_the_rest_staged(cas_sim, cas_now, staging):
    good = {"event": "dlp", "log_item_id": "0f1e2d3c-0000-4000-8000-000000000001", "service": "SharePoint",
            "message": {"detection_time": "2026-01-01T00:00:00.000Z"}}
    body = {"current_link": "", "next_link": "", "traceId": "t", "last_log_item_generation_time": "",
            "security_events": [good, {"event": "dlp", "message": {}}, "not an object",
                                {**good, "log_item_id": "0f1e2d3c-0000-4000-8000-000000000002",
                                 "message": {"detection_time": "yesterday"}}]}
    cas_sim.faults.add("status", status=200, path="/v1/siem", body=json.dumps(body))
    op = _operator(trendmicro_cas_conn_id="trendmicro_test",
                   window_start=(cas_now - timedelta(hours=2)).isoformat(), window_end=(cas_now - timedelta(hours=1)).isoformat())
    staged = op.execute({})
    assert (staged.figures["fetched"], staged.figures["staged"], staged.figures["quarantined"]) == (4, 1, 3)


def _instance(**settings):
    return TrendMicroCasInstance(name="cas", tenant="acme", type="trendmicro_cas", conn_id="c", **settings)


def test_instance_defaults_follow_the_guide():
    instance = _instance()
    assert instance.selected_content_types == ("sharepoint",)
    assert instance.event_types == ("dlp", "ransomware", "securityrisk", "virtualanalyzer")
    assert instance.interval == 5


def test_instance_accepts_the_guides_event_type_names_and_other_services():
    instance = _instance(event_types=["Security Risk", "virtualanalyzer"], content_types=["sharepoint", "teams"])
    assert instance.event_types == ("securityrisk", "virtualanalyzer")
    assert instance.selected_content_types == ("sharepoint", "teams")


@pytest.mark.parametrize("settings", [{"event_types": []}, {"event_types": ["dlp", "dlp"]},
                                      {"event_types": ["malware"]}, {"page_size": 501}, {"content_types": ["slack"]}])
def test_instance_refuses_what_the_api_does_not_serve(settings):
    with pytest.raises(ValidationError):
        _instance(**settings)


def test_dag_has_one_collect_per_event_type_and_one_load_per_content_type():
    from seccollect.dag_factory.builder import build_dag

    dag = build_dag(_instance(content_types=["sharepoint", "onedrive"], event_types=["dlp", "ransomware"]))
    ids = set(dag.task_dict)
    assert {"collect_sharepoint_dlp", "collect_sharepoint_ransomware", "collect_onedrive_dlp",
            "collect_onedrive_ransomware", "load_sharepoint", "load_onedrive"} <= ids
    assert dag.task_dict["load_sharepoint"].upstream_task_ids == {"collect_sharepoint_dlp", "collect_sharepoint_ransomware"}
