"""ConnectSecureHook against the simulator: authorize, paging, re-authentication and every error the
reference lists."""

from __future__ import annotations

import base64
import json

import pytest

from seccollect.http.errors import VendorApiError
from seccollect.vendors.connectsecure.hook import (
    ConnectSecureHook,
    IdentityError,
    check_base_url,
    endpoint_for,
    identity,
)
from tests.seccollect.vendors.connectsecure.conftest import (
    CS_CLIENT_ID,
    CS_CLIENT_SECRET,
    CS_CONN_ID,
    CS_TENANT,
)

ASSETS = "/r/asset/assets"


def _pull(hook: ConnectSecureHook, content_type: str = "asset") -> list[dict]:
    return [row for page in hook.iter_records(content_type) for row in page]


def _ids(hook: ConnectSecureHook, rows: list[dict], content_type: str = "asset") -> list[str]:
    return [hook.identity(content_type, row) for row in rows]


def _truth(hook: ConnectSecureHook, dataset, collection: str, content_type: str) -> set[str]:
    return {hook.identity(content_type, row) for row in dataset.rows(collection)}


@pytest.mark.parametrize(("content_type", "collection"), [
    ("asset", "asset"), ("remediation_plan", "remediation"), ("vulnerability_suppression", "suppression"),
])
def test_a_pull_returns_the_whole_list_once(cs_sim, cs_dataset, content_type, collection):
    hook = ConnectSecureHook(CS_CONN_ID, page_size=25)
    ids = _ids(hook, _pull(hook, content_type), content_type)
    assert len(ids) == len(set(ids))
    assert set(ids) == _truth(hook, cs_dataset, collection, content_type)


def test_authorize_once_and_every_call_sends_bearer_and_user_id(cs_sim):
    """The simulator decodes Client-Auth-Token and refuses calls without the bearer token or X-USER-ID."""
    hook = ConnectSecureHook(CS_CONN_ID, page_size=50)
    assert len(_pull(hook)) == 120
    assert len(_pull(hook, "vulnerability_suppression")) == 30
    assert cs_sim.authorizations == 1, "the token is cached for its lifetime"
    assert cs_sim.stats.count(status=401) == 0


def test_a_request_without_x_user_id_is_refused_by_the_simulator(cs_sim):
    import requests

    hook = ConnectSecureHook(CS_CONN_ID)
    token = hook.get_conn().auth.token()
    bare = requests.get(f"{cs_sim.url}{ASSETS}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert bare.status_code == 400
    assert bare.json()["status"] is False


@pytest.mark.parametrize("style", ["401", "status_false"])
def test_a_token_that_expires_mid_pull_is_renewed_once(cs_sim, cs_dataset, style):
    cs_sim.expired_token_style = style
    cs_sim.expire_during_pull(ASSETS, after=3)
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    ids = _ids(hook, _pull(hook))
    assert set(ids) == _truth(hook, cs_dataset, "asset", "asset")
    assert len(ids) == len(set(ids))
    assert cs_sim.authorizations == 2


def test_an_expired_token_that_stays_refused_fails_clearly(cs_sim):
    cs_sim.token_lifetime = -10  # every token is born expired
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    with pytest.raises(VendorApiError) as caught:
        _pull(hook)
    assert caught.value.status == 401 and caught.value.fatal
    assert cs_sim.authorizations == 2, "re-authorized once, not in a loop"


@pytest.mark.parametrize("status", [200, 401])
def test_wrong_credentials_fail_for_good_without_showing_the_secret(cs_sim, monkeypatch, status):
    cs_sim.authorize_failure_status = status
    cs_sim.credentials = (CS_TENANT, CS_CLIENT_ID, "another-secret")
    hook = ConnectSecureHook(CS_CONN_ID)
    with pytest.raises(VendorApiError) as caught:
        _pull(hook)
    assert caught.value.status == 401 and caught.value.fatal
    assert "Failed to authorize" in str(caught.value)
    token = base64.b64encode(f"{CS_TENANT}+{CS_CLIENT_ID}:{CS_CLIENT_SECRET}".encode()).decode()
    assert CS_CLIENT_SECRET not in str(caught.value) and token not in str(caught.value)
    ok, message = ConnectSecureHook(CS_CONN_ID).test_connection()
    assert not ok and "Failed to authorize" in message and CS_CLIENT_SECRET not in message


def test_failed_to_create_customer_on_authorize_is_retried(cs_sim, no_waits):
    cs_sim.create_customer_failures = 2
    hook = ConnectSecureHook(CS_CONN_ID, page_size=50)
    assert len(_pull(hook)) == 120
    assert cs_sim.authorizations == 3


def test_status_false_failed_to_retrieve_data_is_a_fatal_400(cs_sim):
    cs_sim.faults.add("status", status=200, path=ASSETS, after=1,
                      body=json.dumps({"status": False, "message": "Failed to retrieve data"}))
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    with pytest.raises(VendorApiError) as caught:
        _pull(hook)
    assert caught.value.status == 400 and caught.value.fatal
    assert "Failed to retrieve data" in str(caught.value)


def test_an_unknown_status_false_is_a_failure_not_data(cs_sim):
    cs_sim.faults.add("status", status=200, path=ASSETS, after=1,
                      body=json.dumps({"status": False, "message": "Something odd happened"}))
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    with pytest.raises(VendorApiError) as caught:
        _pull(hook)
    assert not caught.value.fatal, "Airflow retries the task later"
    assert "Something odd happened" in str(caught.value)


@pytest.mark.parametrize("fault", [
    {"kind": "throttle"},
    {"kind": "status", "status": 502},
    {"kind": "status", "status": 504},
    {"kind": "status", "status": 200, "body": ""},  # a blank body
    {"kind": "status", "status": 200, "body": json.dumps({"status": True, "data": [], "total": 120})},
    {"kind": "status", "status": 200, "body": json.dumps({"status": True, "data": [True, True], "total": 2})},
    {"kind": "truncate"},
    {"kind": "drop"},
])
def test_transient_failures_are_retried_and_lose_nothing(cs_sim, cs_dataset, no_waits, fault):
    cs_sim.faults.load({**fault, "path": ASSETS, "after": 2, "count": 2})
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    ids = _ids(hook, _pull(hook))
    assert sorted(ids) == sorted(_truth(hook, cs_dataset, "asset", "asset"))
    assert cs_sim.faults.snapshot()[0]["applied"] == 2


@pytest.mark.parametrize(("removes", "adds", "changes"), [(5, 0, 0), (0, 5, 0), (30, 3, 2), (3, 30, 4)])
def test_rows_added_or_removed_mid_pull_shift_no_row_out_or_in_twice(cs_sim, cs_dataset, removes, adds, changes):
    before = {str(r["id"]) for r in cs_dataset.rows("asset")}
    shift = cs_sim.shift_during_pull(ASSETS, after=3, removes=removes, adds=adds, changes=changes)
    hook = ConnectSecureHook(CS_CONN_ID, page_size=20)
    ids = _ids(hook, _pull(hook))
    assert len(ids) == len(set(ids)), "a row was read twice"
    removed = {str(90_210_000 + k) for k in shift.applied["removed"]}
    added = {str(90_210_000 + k) for k in shift.applied["added"]}
    assert before - removed <= set(ids), "a row that existed for the whole pull was lost"
    assert set(ids) <= before | added
    assert len(hook.last_paging.totals) == (2 if removes != adds else 1)


def test_the_test_button_checks_authorize_and_each_content_type(cs_sim):
    ok, message = ConnectSecureHook(CS_CONN_ID).test_connection()
    assert ok, message
    for content_type in ("asset", "remediation_plan", "vulnerability_suppression"):
        assert f"{content_type}: OK" in message
    assert cs_sim.authorizations == 1
    cs_sim.faults.add("status", status=403, path="/r/asset/suppress_vulnerability")
    ok, message = ConnectSecureHook(CS_CONN_ID).test_connection()
    assert not ok and "vulnerability_suppression: FAILED" in message and "asset: OK" in message


def test_the_asset_endpoint_rejects_company_id_as_the_reference_says(cs_sim):
    import requests

    hook = ConnectSecureHook(CS_CONN_ID)
    client = hook.get_conn()
    response = requests.get(f"{cs_sim.url}{ASSETS}", params={"company_id": 1},
                            headers={"Authorization": f"Bearer {client.auth.token()}", "X-USER-ID": hook._user_id},
                            timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize(("url", "expected"), [
    ("https://pod106.myconnectsecure.com", "https://pod106.myconnectsecure.com"),
    ("pod106.myconnectsecure.com/", "https://pod106.myconnectsecure.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_base_url_accepts_https_and_loopback_http(url, expected):
    assert check_base_url(url, "c") == expected


@pytest.mark.parametrize("url", ["http://pod106.myconnectsecure.com", "https://portal.myconnectsecure.com", "", "ftp://x"])
def test_base_url_refuses_plain_http_the_portal_and_junk(url):
    with pytest.raises(ValueError):
        check_base_url(url, "c")


def test_identities_keep_large_ids_exact_and_use_documented_composite_keys():
    asset = endpoint_for("asset")
    assert identity(asset, json.loads('{"id": 9007199254740993}')) == "9007199254740993"
    assert identity(asset, {"id": "152060779"}) == "152060779"
    for bad in ({"id": 1.5e17}, {"id": True}, {"id": None}, {}, [1]):
        with pytest.raises(IdentityError):
            identity(asset, bad)
    remediation = endpoint_for("remediation_plan")
    assert identity(remediation, {"company_id": 1, "asset_id": 2, "solution_id": 3}) == "1/2/3"
    a = identity(remediation, {"company_id": 1, "asset_id": 2, "product": "Chrome", "fix": "Update"})
    b = identity(remediation, {"company_id": 1, "asset_id": 2, "product": "Chrome", "fix": "Update", "severity": "x"})
    c = identity(remediation, {"company_id": 1, "asset_id": 2, "product": "Firefox", "fix": "Update"})
    assert a == b != c and a.startswith("1/2/fix:")
    with pytest.raises(IdentityError):
        identity(remediation, {"company_id": 1, "asset_id": 2})
    plan = endpoint_for("remediation_plan", "/r/report_queries/remediation_plan_by_company")
    assert identity(plan, {"company_id": 1, "solution_id": 3, "asset_ids": [1, 2]}) == "1/3"
