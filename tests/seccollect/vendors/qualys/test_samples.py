"""The real Qualys payloads in ``shared/samples/qualys`` (recorded live responses and fixtures) parse
into the expected records, through the same reader and record reading the DAG uses."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from seccollect.vendors.qualys.hook import _detection_records
from seccollect.vendors.qualys.operators import read_detection
from seccollect.vendors.qualys.xml import QualysReturn, parse_simple_return, read_output

# Beside the checkout (../shared), else where the other vendors' sample tests read them (a clone elsewhere).
SAMPLES = next((p for p in (Path(__file__).resolve().parents[4].parent / "shared" / "samples" / "qualys",
                            Path("/work/shared/samples/qualys")) if p.is_dir()),
               Path("/work/shared/samples/qualys"))
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared samples are not on this machine")


def _read(name: str):
    hosts = []
    page = read_output(io.BytesIO((SAMPLES / name).read_bytes()), hosts.append)
    return hosts, page


def test_fixture_detections_become_three_records_joined_with_their_host():
    hosts, page = _read("jupiterone_fixture_detections.xml")
    records = [r for host in hosts for r in _detection_records(host)]
    read = [read_detection(r) for r in records]
    assert [f.vendor_id for f in read] == [
        "6506432:38170:3389:tcp:1", "6506432:38173:3389:tcp:1", "6506432:38601:3389:tcp:1"]
    assert {f.version for f in read} == {"2018-04-13T03:49:05Z"}
    assert [f.typed["scans"]["status"] for f in read] == ["Active"] * 3
    assert [f.typed["scans"]["severity"] for f in read] == ["2", "2", "2"]
    first = records[0]
    assert first["HOST"]["NETBIOS"] == "2K8R2-U-10-11" and "DETECTION_LIST" not in first["HOST"]
    # A start tag broken across lines and CDATA spanning lines are read as Qualys wrote them.
    assert first["FIRST_FOUND_DATETIME"] == "2018-01-26T04:45:50Z"
    assert records[1]["RESULTS"] == "Certificate #0 CN=2k8r2-u-10-11\nunable to get local\nissuer certificate"
    assert page.next_url is None


def test_recorded_empty_detection_output_is_an_empty_page():
    hosts, page = _read("host_list_vm_detection_empty.xml")
    assert hosts == [] and page.next_url is None and page.response_time == "2020-09-27T01:23:33Z"


def test_recorded_host_list_with_details_none_gives_its_id_set():
    hosts, page = _read("host_list_details_None_truncation0.xml")
    assert hosts == [] and page.id_set == ["107800671"]


@pytest.mark.parametrize(("name", "code", "text"), [
    ("simple_return_2001_account_expired_http200.xml", "2001", "This account has expired."),
    ("simple_return_1905_http400.xml", "1905", None),
])
def test_recorded_simple_returns_are_errors(name, code, text):
    with pytest.raises(QualysReturn) as caught:
        _read(name)
    assert caught.value.code == code
    if text:
        assert caught.value.text == text
    assert parse_simple_return((SAMPLES / name).read_bytes()).code == code


def test_recorded_response_headers_feed_the_rate_limit_state():
    from requests.structures import CaseInsensitiveDict

    from seccollect.vendors.qualys.hook import LimitState, _qualys_policy

    har = json.loads((SAMPLES / "jupiterone_iterateHostDetections_31119415.har").read_text())
    entry = next(e for e in har["log"]["entries"] if "/vm/detection/" in e["request"]["url"])

    class Recorded:
        status_code = entry["response"]["status"]
        headers = CaseInsensitiveDict({h["name"]: h["value"] for h in entry["response"]["headers"]})
        content = entry["response"]["content"]["text"].encode()

    limits = LimitState()
    assert _qualys_policy("qualys_x", limits, 1.0).classify(Recorded()).kind == "ok"
    assert (limits.limit, limits.remaining, limits.window, limits.concurrency_limit) == (300, 293, 3600, 2)


def test_the_recorded_detections_texts_are_their_canonical_json():
    from seccollect.records.envelope import canonical_json
    from seccollect.vendors.qualys.hook import _detection_records_and_texts

    hosts, _ = _read("jupiterone_fixture_detections.xml")
    for host in hosts:
        records, texts = _detection_records_and_texts(host)
        assert texts == [canonical_json(record) for record in records]
