"""The recorded ConnectSecure payloads (../shared/samples/connectsecure/, live pod107 responses) parse into
the expected fields through the hook's parsers and the collect operator's extraction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from seccollect.vendors.connectsecure.hook import _authorize_answer, _list_page, endpoint_for, identity
from seccollect.vendors.connectsecure.operators import extract_fields

SAMPLES = Path("/work/shared/samples/connectsecure")
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared samples are not on this machine")


def _recorded(name: str, method: str, path: str) -> requests.Response:
    """A requests.Response carrying the recorded body, byte for byte as JSON text."""
    recording = json.loads((SAMPLES / name).read_text())["api"][method][path]
    response = requests.Response()
    response.status_code = recording["status"]
    response._content = json.dumps(recording["response"]).encode()
    response.url = f"https://pod107.myconnectsecure.com{path}"
    return response


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("nango_*.json")) if SAMPLES.is_dir() else [])
def test_every_recorded_authorize_answer_gives_token_user_id_and_lifetime(name):
    token, user_id, lifetime = _authorize_answer(_recorded(name, "post", "/w/authorize"))
    assert token and user_id == "383109345572815574" and lifetime == 3600.0


def test_recorded_asset_page_parses_into_the_indexed_fields():
    rows, total = _list_page(_recorded("nango_assets.test.json", "get", "/r/asset/assets"), 0)
    assert total == 1 and len(rows) == 1
    asset = rows[0]
    assert identity(endpoint_for("asset"), asset) == "152060779"
    fields = extract_fields("asset", asset)
    assert fields.typed["assets"] == {
        "asset_id": "152060779", "hostname": "Victors-MBP", "ip_address": "192.168.8.195", "os": "macOS 15.5",
    }
    # No zone in the recording: read as UTC, microseconds kept.
    assert fields.event_time == datetime(2026, 8, 3, 17, 59, 18, 81644, tzinfo=UTC)
    # The tenant id stays an exact integer (the recording's already went through a float upstream).
    assert asset["tenantid"] == 383109341093361200 and isinstance(asset["tenantid"], int)
    assert isinstance(asset["discovered_protocols"], list)


def test_recorded_asset_view_parses_with_the_same_identity():
    rows, total = _list_page(_recorded("nango_get-asset.test.json", "get", "/r/asset/asset_view"), 0)
    assert total == 1
    assert identity(endpoint_for("asset", "/r/asset/asset_view"), rows[0]) == "152060779"
    assert extract_fields("asset", rows[0]).typed["assets"]["hostname"] == "Victors-MBP"


def test_recorded_report_query_page_gives_total_beyond_the_page():
    rows, total = _list_page(
        _recorded("nango_list-vulnerabilities.test.json", "get", "/r/report_queries/vulnerabilities_details"), 0
    )
    assert total == 961 and len(rows) == 50
    assert all(isinstance(row, dict) and "problem_name" in row for row in rows)


def test_recorded_companies_page_parses():
    rows, total = _list_page(_recorded("nango_companies.test.json", "get", "/r/company/companies"), 0)
    assert total == 1 and identity(endpoint_for("asset"), rows[0]) == "16637"
    assert rows[0]["updated"] == "2026-07-23T22:54:16.899394"
