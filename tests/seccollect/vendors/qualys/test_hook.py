"""QualysHook against the simulator: connection rules, the Test button, Qualys' waits, paging rules."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from seccollect.http.errors import VendorApiError
from seccollect.vendors.qualys import hook as hook_module
from seccollect.vendors.qualys.hook import QualysHook, api_base_url, check_password
from tests.seccollect.vendors.qualys.conftest import QUALYS_PASSWORD, QUALYS_START, QUALYS_USER

WINDOW = (QUALYS_START, QUALYS_START + timedelta(hours=1))
DETECTIONS = "/api/5.0/fo/asset/host/vm/detection/"


@pytest.fixture
def warnings(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(hook_module.log, "warning", lambda msg, *args: said.append(msg % args))
    return said


@pytest.mark.parametrize(("typed", "base"), [
    ("https://qualysapi.qualys.com/", "https://qualysapi.qualys.com"),
    ("qualysapi.qg2.apps.qualys.eu", "https://qualysapi.qg2.apps.qualys.eu"),
    ("https://qualysapi.qg3.apps.qualys.com/api/2.0/", "https://qualysapi.qg3.apps.qualys.com"),
    ("http://127.0.0.1:18803/", "http://127.0.0.1:18803"),
])
def test_api_url_forms_are_tolerated(typed, base, warnings):
    assert api_base_url(typed, "c") == base
    assert bool(warnings) == ("127.0.0.1" in typed)  # only the loopback simulator is no known platform


def test_plain_http_is_refused_for_a_remote_host():
    with pytest.raises(ValueError, match="must use https"):
        api_base_url("http://qualysapi.qualys.com/", "qualys_x")


def test_a_host_of_no_known_platform_is_logged(warnings):
    assert api_base_url("https://qualysguard.qualys.com", "qualys_x") == "https://qualysguard.qualys.com"
    assert any("qualysguard.qualys.com is not the API server of a known Qualys platform" in w for w in warnings)


def test_a_non_ascii_password_is_refused_clearly():
    with pytest.raises(ValueError, match="'qualys_x'.*non-ASCII.*ASCII-only password"):
        check_password("pässwort", "qualys_x")


def test_the_test_button_checks_auth_and_one_small_request_per_content_type(qualys_sim):
    ok, message = QualysHook("qualys_test").test_connection()
    assert ok, message
    assert message == "Qualys API 5.0: hosts: OK; vulnerabilities: OK"
    # One small request per content type.
    assert qualys_sim.stats.count("/api/5.0/fo/asset/host/") == qualys_sim.stats.count(DETECTIONS) == 1


def test_the_test_button_explains_bad_credentials(qualys_sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QUALYS_BAD", json.dumps(
        {"conn_type": "qualys", "host": qualys_sim.url, "login": QUALYS_USER, "password": "wrong-pass"}))
    ok, message = QualysHook("qualys_bad").test_connection()
    assert not ok
    assert "HTTP 401" in message and "Bad Login/Password" in message and "another Qualys platform" in message
    assert "Check the Airflow connection 'qualys_bad'" in message and "wrong-pass" not in message


def test_the_api_version_is_settable(qualys_sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QUALYS_V2", json.dumps(
        {"conn_type": "qualys", "host": qualys_sim.url, "login": QUALYS_USER, "password": QUALYS_PASSWORD,
         "extra": {"api_version": "2.0"}}))
    hook = QualysHook("qualys_v2")
    assert sum(len(c) for c in hook.iter_window("vulnerabilities", *WINDOW)) > 0
    assert qualys_sim.stats.count("/api/2.0/fo/asset/host/vm/detection/") >= 1
    assert qualys_sim.stats.count("/api/5.0/") == 0


@pytest.mark.parametrize(("code", "expected_wait"), [(1965, 7.0), (1960, 0.2)])
def test_qualys_waits_are_honoured_as_asked(qualys_sim, code, expected_wait, monkeypatch):
    # The account-wide pause is tested below; here a fake sleep takes no time, so the pause would
    # still be running at every later page.
    monkeypatch.setattr("seccollect.http.slots.SharedSlots.pause", lambda self, seconds: None)
    hook = QualysHook("qualys_test", truncation_limit=7)
    slept: list[float] = []
    hook.get_conn().sleep = slept.append
    qualys_sim.inject(code, path=DETECTIONS, after=1, wait=7)
    records = [r for chunk in hook.iter_window("vulnerabilities", *WINDOW) for r in chunk]
    assert slept == [expected_wait]
    assert len(records) == len(qualys_sim.dataset.expected_detections(*WINDOW))


def test_a_low_rate_limit_is_logged(qualys_sim, warnings):
    qualys_sim.options.rate_limit = 2  # one call leaves one: low
    hook = QualysHook("qualys_test")
    for _ in hook.iter_window("vulnerabilities", *WINDOW):
        pass
    assert any("rate limit of connection 'qualys_test' is low" in w for w in warnings)


def test_a_continuation_url_to_another_host_is_not_followed(qualys_sim):
    body = ("<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><WARNING><CODE>1980</CODE><URL><![CDATA[ "
            "https://elsewhere.example/api/5.0/fo/asset/host/vm/detection/?action=list&id_min=5 ]]></URL>"
            "</WARNING></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>")
    qualys_sim.faults.add("status", status=200, body=body, path=DETECTIONS)
    with pytest.raises(VendorApiError, match="not followed"):
        for _ in QualysHook("qualys_test").iter_window("vulnerabilities", *WINDOW):
            pass


def test_a_continuation_url_that_repeats_stops_paging(qualys_sim):
    url = f"{qualys_sim.url}{DETECTIONS}?action=list&id_min=5"
    body = (f"<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><WARNING><CODE>1980</CODE><URL><![CDATA[{url}]]></URL>"
            "</WARNING></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>")
    qualys_sim.faults.add("status", status=200, body=body, path=DETECTIONS, count=3)
    with pytest.raises(Exception, match="repeats an earlier one"):
        for _ in QualysHook("qualys_test").iter_window("vulnerabilities", *WINDOW):
            pass


def test_every_call_holds_one_of_the_accounts_slots(qualys_sim):
    hook = QualysHook("qualys_test", truncation_limit=7)
    held: list[int] = []
    real_hold = hook.slots.hold

    def counting_hold(**kwargs):
        held.append(1)
        return real_hold(**kwargs)

    hook.slots.hold = counting_hold
    for _ in hook.iter_window("hosts", *WINDOW):
        pass
    assert len(held) == hook.pages_read == qualys_sim.stats.count("/api/5.0/fo/asset/host/") >= 3


def test_every_call_draws_on_the_accounts_call_budget_of_its_api_function(qualys_sim):
    hook = QualysHook("qualys_test", truncation_limit=7)
    hosts = hook.budget("/api/5.0/fo/asset/host/")
    # A continuation URL (even naming another API version) is the same function; the detection list is
    # another one (Qualys counts calls per function); another connection to the account shares them.
    assert hook.budget(f"{qualys_sim.url}/api/2.0/fo/asset/host/?action=list&id_min=9") is hosts
    assert hook.budget(DETECTIONS).key != hosts.key
    assert QualysHook("qualys_test_b").budget(DETECTIONS).key == hook.budget(DETECTIONS).key
    assert QUALYS_USER not in hosts.key  # the user name is hashed into the key
    drawn: list[int] = []
    real_acquire = hosts.acquire

    def counting_acquire(**kwargs):
        drawn.append(1)
        return real_acquire(**kwargs)

    hosts.acquire = counting_acquire
    for _ in hook.iter_window("hosts", *WINDOW):
        pass
    assert len(drawn) == hook.pages_read == qualys_sim.stats.count("/api/5.0/fo/asset/host/") >= 3


def test_a_call_that_waited_long_for_its_slot_draws_on_the_budget_again(qualys_sim):
    import contextlib
    import time

    hook = QualysHook("qualys_test", truncation_limit=7)
    hosts = hook.budget("/api/5.0/fo/asset/host/")
    drawn: list[int] = []
    real_acquire = hosts.acquire

    def counting_acquire(**kwargs):
        drawn.append(1)
        return real_acquire(**kwargs)

    @contextlib.contextmanager
    def slow_hold(**kwargs):
        time.sleep(0.3)  # longer than the budget's margin: the draw before the wait no longer counts
        yield

    hosts.margin = 0.1  # (an hourly budget's margin is 72 s: a slot wait shorter than that is covered)
    hosts.acquire = counting_acquire
    hook.slots.hold = slow_hold
    for _ in hook.iter_window("hosts", *WINDOW):
        pass
    assert len(drawn) == 2 * hook.pages_read >= 6


def test_the_test_button_does_not_wait_for_a_spent_budget(qualys_sim):
    from seccollect.http.budget import BudgetWaitTooLong
    from seccollect.vendors.qualys.hook import TEST_BUDGET_MAX_WAIT

    hook = QualysHook("qualys_test")
    asked: list[float | None] = []

    class Spent:
        key = "spent"

        def acquire(self, *, max_wait=None):
            asked.append(max_wait)
            raise BudgetWaitTooLong(self.key, 3000.0)

    hook.budget = lambda path: Spent()
    ok, message = hook.test_connection()
    assert not ok and "spent" in message and asked == [TEST_BUDGET_MAX_WAIT]
    assert hook.budget_max_wait is None  # a task's calls still wait as long as it takes


def test_another_rate_limit_than_the_connections_budget_is_logged_once(qualys_sim, warnings):
    hook = QualysHook("qualys_test", truncation_limit=7)
    for _ in hook.iter_window("hosts", *WINDOW):  # Qualys' figures are the connection's: nothing to say
        pass
    assert not [w for w in warnings if "Qualys reports a rate limit" in w]
    qualys_sim.options.rate_limit = 2000
    hook = QualysHook("qualys_test", truncation_limit=7)
    for _ in hook.iter_window("hosts", *WINDOW):
        pass
    said = [w for w in warnings if "Qualys reports a rate limit" in w]
    assert len(said) == 1 and "2000 calls per 3600s" in said[0] and "300 per 3600s" in said[0]


def test_a_spent_rate_window_pauses_every_task_of_the_account(qualys_sim):
    first, second = QualysHook("qualys_test"), QualysHook("qualys_test_b")  # two connections, one account
    first.get_conn().sleep = lambda seconds: None
    slept: list[float] = []
    second.get_conn().sleep = slept.append
    qualys_sim.inject(1965, path=DETECTIONS, wait=30)
    for _ in first.iter_window("vulnerabilities", *WINDOW):
        pass
    for _ in second.iter_window("hosts", *WINDOW):
        pass
    assert len(slept) == 1 and 25 < slept[0] <= 30  # waited before calling instead of earning a 409
    assert qualys_sim.rate_rejections == 0 and qualys_sim.stats.count(DETECTIONS) == 2
