"""The ConnectSecure simulator behaves as vendor-apis/connectsecure-v4.md documents (§0 first), whatever
our client does: authorize, headers, paging, total, conditions, errors, changes between and during pulls."""

from __future__ import annotations

import argparse
import base64
import json
import re

import pytest
import requests

from seccollect_dev.simulators.base import SimulatorServer
from seccollect_dev.simulators.connectsecure import (
    SIMULATOR,
    TENANT_ID,
    USER_ID,
    ConnectSecureDataset,
    ConnectSecureSimulator,
)

CREDS = ("acme", "cid-1", "secret-1")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")


@pytest.fixture
def sim():
    app = ConnectSecureSimulator(ConnectSecureDataset(assets=30, remediation=20, plans=6, suppressions=8),
                                 tenant=CREDS[0], client_id=CREDS[1], client_secret=CREDS[2])
    with SimulatorServer(app) as server:
        app.url = server.url
        yield app


def _authorize(sim, creds=CREDS) -> requests.Response:
    token = base64.b64encode(f"{creds[0]}+{creds[1]}:{creds[2]}".encode()).decode()
    return requests.post(f"{sim.url}/w/authorize", json={}, headers={"Client-Auth-Token": token}, timeout=10)


def _headers(sim) -> dict[str, str]:
    body = _authorize(sim).json()
    return {"Authorization": f"Bearer {body['access_token']}", "X-USER-ID": body["user_id"]}


def _get(sim, path, headers=None, **params) -> requests.Response:
    return requests.get(f"{sim.url}{path}", params=params, headers=headers or _headers(sim), timeout=10)


def test_authorize_answers_the_recorded_shape(sim):
    body = _authorize(sim).json()
    assert body["status"] is True and body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["user_id"] == USER_ID == body["data"]["user_id"]
    assert body["access_token"] == body["data"]["access_token"]


@pytest.mark.parametrize("status", [200, 401])
def test_wrong_credentials_are_failed_to_authorize(sim, status):
    sim.authorize_failure_status = status
    response = _authorize(sim, (CREDS[0], CREDS[1], "wrong"))
    assert response.status_code == status
    assert response.json() == {"status": False, "message": "Failed to authorize"}


def test_failed_to_create_customer_is_injectable(sim):
    sim.create_customer_failures = 1
    assert _authorize(sim).json() == {"status": False, "message": "Failed to create customer"}
    assert _authorize(sim).json()["status"] is True


def test_lists_need_a_bearer_token_and_x_user_id(sim):
    headers = _headers(sim)
    assert _get(sim, "/r/asset/assets", {"Authorization": headers["Authorization"]}).status_code == 400
    assert _get(sim, "/r/asset/assets", {"X-USER-ID": USER_ID}).status_code == 401
    assert _get(sim, "/r/asset/assets", {**headers, "Authorization": "Bearer nope"}).status_code == 401
    jwt = {**headers, "Authorization": "JWT " + headers["Authorization"]}
    assert _get(sim, "/r/asset/assets", jwt).status_code == 200


@pytest.mark.parametrize("style", ["401", "status_false"])
def test_an_expired_token_is_refused_as_configured(sim, style):
    sim.expired_token_style = style
    headers = _headers(sim)
    sim.expire_tokens()
    response = _get(sim, "/r/asset/assets", headers)
    assert response.status_code == (401 if style == "401" else 200)
    assert response.json()["status"] is False


def test_skip_is_an_offset_limit_defaults_to_10_and_total_counts_all(sim):
    headers = _headers(sim)
    default = _get(sim, "/r/asset/assets", headers).json()
    assert len(default["data"]) == 10 and default["total"] == 30
    first = _get(sim, "/r/asset/assets", headers, skip=0, limit=20).json()["data"]
    offset = _get(sim, "/r/asset/assets", headers, skip=15, limit=10).json()["data"]
    assert offset[:5] == first[15:20]
    assert [r["id"] for r in _get(sim, "/r/asset/assets", headers, limit=5, order_by="id desc").json()["data"]] == \
        sorted((r["id"] for r in sim.dataset.rows("asset")), reverse=True)[:5]


def test_rows_have_the_documented_types(sim):
    text = _get(sim, "/r/asset/assets", limit=1).text
    assert f'"tenantid":{TENANT_ID}' in text, "the large tenant id is written exactly"
    row = json.loads(text)["data"][0]
    assert isinstance(row["id"], int) and isinstance(row["logged_user_time"], str)
    for field in ("created", "updated", "last_discovered_time"):
        assert TIME.match(row[field]), field
    assert isinstance(row["discovered_protocols"], list) and isinstance(row["discovered_protocols"][0], dict)
    suppression = _get(sim, "/r/asset/suppress_vulnerability", limit=1).json()["data"][0]
    assert suppression["suppression_status"] in ("Approved", "Pending") and TIME.match(suppression["suppressed_on"])
    remediation = _get(sim, "/r/report_queries/get_remediation", limit=100).json()["data"]
    assert "id" not in remediation[0] and any(r["solution_id"] is None for r in remediation)


def test_condition_filters_except_where_the_reference_says_it_is_ignored(sim):
    headers = _headers(sim)
    company = sim.dataset.rows("asset")[0]["company_id"]
    filtered = _get(sim, "/r/asset/assets", headers, condition=f"company_id={company}", limit=100).json()
    assert filtered["total"] == sum(r["company_id"] == company for r in sim.dataset.rows("asset")) < 30
    ignored = _get(sim, "/r/report_queries/remediation_plan_by_company", headers, condition="company_id=1").json()
    assert ignored["total"] == 6
    bad = _get(sim, "/r/asset/assets", headers, condition="updated>2025-01-01").json()
    assert bad == {"status": False, "message": "Failed to retrieve data"}
    assert _get(sim, "/r/asset/assets", headers, company_id=company).status_code == 400


def test_changes_between_pulls_and_during_a_pull(sim):
    headers = _headers(sim)
    before = {r["id"]: r for r in _get(sim, "/r/asset/assets", headers, limit=100).json()["data"]}
    made = sim.dataset.mutate("asset", adds=2, changes=3, removes=4)
    after = {r["id"]: r for r in _get(sim, "/r/asset/assets", headers, limit=100).json()["data"]}
    assert len(after) == 28
    assert {90_210_000 + k for k in made["removed"]} == set(before) - set(after)
    assert {90_210_000 + k for k in made["added"]} == set(after) - set(before)
    assert {i for i in set(before) & set(after) if before[i] != after[i]} == {90_210_000 + k for k in made["changed"]}
    sim.shift_during_pull("/r/asset/assets", after=2, removes=3)
    page1 = _get(sim, "/r/asset/assets", headers, limit=10).json()
    page2 = _get(sim, "/r/asset/assets", headers, skip=10, limit=10).json()
    assert (page1["total"], page2["total"]) == (28, 25)


def test_broken_rows_are_served_as_configured(sim):
    first, second, third = sim.dataset.live("asset")[:3]
    sim.dataset.corrupt["asset"] = {first: "no_id", second: "bad_time", third: "not_object"}
    rows = _get(sim, "/r/asset/assets", limit=3).json()["data"]
    assert "id" not in rows[0] and rows[1]["updated"] == "31/02/2026 25:00" and isinstance(rows[2], str)


def test_spec_serves_the_credentials_its_demo_connection_carries():
    running = SIMULATOR.start(argparse.Namespace(seed=7, hours=1.0, connectsecure_assets=20), "127.0.0.1", 0)
    try:
        conn = SIMULATOR.connections(running.url)["connectsecure_demo"]
        tenant = json.loads(conn["extra"])["tenant_name"]
        token = base64.b64encode(f"{tenant}+{conn['login']}:{conn['password']}".encode()).decode()
        body = requests.post(f"{running.url}/w/authorize", headers={"Client-Auth-Token": token}, timeout=10).json()
        assert body["status"] is True
    finally:
        running.stop()
