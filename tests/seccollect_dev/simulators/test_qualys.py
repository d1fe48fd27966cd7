"""The Qualys simulator is faithful to the reference (shared/vendor-apis/qualys-vm.md, §0 first), not to
our client: checked here with plain HTTP requests."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from lxml import etree

from seccollect_dev.simulators.base import SimulatorServer
from seccollect_dev.simulators.qualys import QualysDataset, QualysOptions, QualysSimulator

T0 = datetime(2026, 3, 1, tzinfo=UTC)
USER, PASSWORD = "u", "p"
HOSTS = "/api/5.0/fo/asset/host/"
DETECTIONS = "/api/5.0/fo/asset/host/vm/detection/"
HEADERS = {"X-Requested-With": "test"}


@pytest.fixture
def sim():
    dataset = QualysDataset(seed=1, start=T0, end=T0 + timedelta(hours=2), hosts=30, detections_per_host=5)
    app = QualysSimulator(dataset, users={USER: PASSWORD}, clock=lambda: (T0 + timedelta(days=1)).timestamp())
    with SimulatorServer(app) as server:
        app.url = server.url
        yield app


def get(sim, path, auth=(USER, PASSWORD), headers=HEADERS, **params):
    return requests.get(sim.url + path, params={"action": "list", **params}, auth=auth, headers=headers, timeout=10)


def root(response):
    return etree.fromstring(response.content, etree.XMLParser(no_network=True, load_dtd=False))


def test_hosts_are_sorted_and_truncation_counts_hosts_with_a_padded_continuation_url(sim):
    response = get(sim, HOSTS, truncation_limit=4, details="All")
    assert response.status_code == 200
    ids = [int(i) for i in root(response).xpath("//HOST/ID/text()")]
    assert ids == sorted(ids) and len(ids) == 4
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE HOST_LIST_OUTPUT SYSTEM "https://')
    raw_url = re.search(r"<URL><!\[CDATA\[(.*?)\]\]></URL>", response.text, re.S).group(1)
    assert raw_url != raw_url.strip() and "\n" in raw_url  # padded with whitespace, as Qualys does
    url = raw_url.strip()
    next_id = sim.dataset.host_id(4)
    assert url.endswith(f"id_min={next_id}") and next_id != ids[-1] + 1  # the next existing id
    assert "details=All" in url and "truncation_limit=4" in url and "cloud_agent_activationkey=0" in url
    follow = requests.get(url, auth=(USER, PASSWORD), headers=HEADERS, timeout=10)
    assert [int(i) for i in root(follow).xpath("//HOST/ID/text()")][0] == next_id


def test_rate_and_concurrency_headers_on_every_data_response(sim):
    response = get(sim, DETECTIONS, truncation_limit=2)
    for name in ("X-RateLimit-Limit", "X-RateLimit-Window-Sec", "X-RateLimit-Remaining", "X-RateLimit-ToWait-Sec",
                 "X-Concurrency-Limit-Limit", "X-Concurrency-Limit-Running"):
        assert name in response.headers
    assert response.headers["X-RateLimit-Limit"] == "300" and response.headers["X-RateLimit-Remaining"] == "299"


def test_noise_comments_mid_response_and_an_empty_result_has_no_host_list(sim):
    response = get(sim, DETECTIONS, truncation_limit=0)
    body = response.text
    assert "<!-- keep-alive -->" in body and body.index("<!-- keep-alive -->") < body.index("</HOST_LIST>")
    assert "<RESULTS\n" in body and "<![CDATA[" in body
    empty = get(sim, DETECTIONS, detection_processed_after="2030-01-01T00:00:00Z")
    assert "<HOST_LIST>" not in empty.text and "<RESPONSE>" in empty.text


def test_detection_output_leaves_out_hosts_without_matching_detections(sim):
    window = {"detection_processed_after": "2026-03-01T00:00:00Z", "detection_processed_before": "2026-03-01T01:00:00Z",
              "status": "New,Active,Fixed,Re-Opened", "truncation_limit": 0}
    tree = root(get(sim, DETECTIONS, **window))
    hosts = tree.xpath("//HOST")
    assert hosts and all(h.xpath("DETECTION_LIST/DETECTION") for h in hosts)
    lo, hi = T0.timestamp(), (T0 + timedelta(hours=1)).timestamp()
    expected_hosts = {h.id for h in sim.dataset.iter_hosts() if any(lo < d.last_processed < hi for d in h.detections)}
    assert {int(i) for i in tree.xpath("//HOST/ID/text()")} == expected_hosts


def test_after_is_exclusive_by_default_and_inclusive_as_an_option(sim):
    host = sim.dataset.host(0)
    moment = datetime.fromtimestamp(host.processed, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = lambda r: {int(i) for i in root(r).xpath("//HOST/ID/text()")}  # noqa: E731
    assert host.id not in ids(get(sim, HOSTS, vm_processed_after=moment, truncation_limit=0))
    sim.options.after_inclusive = True
    assert host.id in ids(get(sim, HOSTS, vm_processed_after=moment, truncation_limit=0))
    assert host.id not in ids(get(sim, HOSTS, vm_processed_before=moment, truncation_limit=0))


def test_status_defaults_leave_out_fixed_and_the_last_repeated_parameter_wins(sim):
    statuses = lambda r: set(root(r).xpath("//DETECTION/STATUS/text()"))  # noqa: E731
    assert "Fixed" not in statuses(get(sim, DETECTIONS, truncation_limit=0))
    url = sim.url + DETECTIONS + "?action=list&truncation_limit=0&status=Active&status=Fixed"
    assert statuses(requests.get(url, auth=(USER, PASSWORD), headers=HEADERS, timeout=10)) == {"Fixed"}


def test_post_form_parameters_work(sim):
    response = requests.post(sim.url + HOSTS, data={"action": "list", "truncation_limit": "3"}, auth=(USER, PASSWORD),
                             headers=HEADERS, timeout=10)
    assert len(root(response).xpath("//HOST")) == 3


def _code(response):
    return root(response).findtext("RESPONSE/CODE")


def test_errors_as_qualys_answers_them(sim):
    bad_login = get(sim, HOSTS, auth=(USER, "wrong"))
    assert (bad_login.status_code, _code(bad_login)) == (401, "2000") and "X-RateLimit-Limit" not in bad_login.headers
    assert bad_login.text.startswith("<!DOCTYPE SIMPLE_RETURN")  # no XML declaration
    unknown = get(sim, HOSTS, no_such_param="1")
    assert (unknown.status_code, _code(unknown)) == (400, "1901")
    invalid = get(sim, HOSTS, ids="abc", id_min="abc")
    assert (invalid.status_code, _code(invalid)) == (400, "1905")
    no_header = get(sim, HOSTS, headers={})
    assert no_header.status_code == 400
    sim.expired = True
    expired = get(sim, HOSTS)
    assert (expired.status_code, _code(expired)) == (200, "2001") and "X-RateLimit-Limit" not in expired.headers


@pytest.mark.parametrize(("code", "status"), [(1965, 409), (1960, 409), (2001, 200), (1905, 400), (2000, 401)])
def test_injected_errors(sim, code, status):
    sim.inject(code, wait=9)
    response = get(sim, DETECTIONS)
    assert (response.status_code, _code(response)) == (status, str(code))
    if code == 1965:
        assert response.headers["X-RateLimit-ToWait-Sec"] == "9"
        assert root(response).findtext("RESPONSE/ITEM_LIST/ITEM/VALUE") == "9"
    if code == 1960:
        assert "X-RateLimit-Remaining" not in response.headers and "X-Concurrency-Limit-Limit" in response.headers


def test_the_rate_limit_counts_calls_per_api_function(sim):
    sim.options.rate_limit = 2
    assert [get(sim, HOSTS, truncation_limit=1).status_code for _ in range(2)] == [200, 200]
    refused = get(sim, HOSTS, truncation_limit=1)
    assert (refused.status_code, _code(refused)) == (409, "1965") and int(refused.headers["X-RateLimit-ToWait-Sec"]) > 0
    assert get(sim, DETECTIONS, truncation_limit=1).status_code == 200  # another API function, its own count


def test_concurrent_calls_beyond_the_limit_get_1960_and_are_counted(sim):
    sim.options.concurrency_limit = 1
    sim.options.response_delay = 0.5
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(sim, HOSTS, truncation_limit=1))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 409, 409]
    assert sim.max_running == 1 and sim.concurrency_rejections == 2
    assert sim.running == 0  # slots are given back once responses are sent


def test_large_data_sets_are_generated_page_by_page(monkeypatch):
    dataset = QualysDataset(seed=2, start=T0, end=T0 + timedelta(hours=1), hosts=100_000, detections_per_host=10)
    made = []
    real_host = dataset.host
    monkeypatch.setattr(dataset, "host", lambda index: made.append(index) or real_host(index))
    app = QualysSimulator(dataset, users={USER: PASSWORD}, options=QualysOptions(),
                          clock=lambda: (T0 + timedelta(days=1)).timestamp())
    with SimulatorServer(app) as server:
        app.url = server.url
        response = get(app, DETECTIONS, truncation_limit=10, id_min=str(dataset.host_id(50_000)))
    assert len(root(response).xpath("//HOST")) == 10
    assert len(made) < 20  # only the page's hosts (and the next one) were generated
