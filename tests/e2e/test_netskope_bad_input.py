"""Bad vendor input through real Airflow (``dag.test()``), on DuckDB and PostgreSQL: a poison record goes
to quarantine with its reason and the rest of the window loads; a NUL loads the same on both warehouses;
a page of the wrong shape or a vendor that repeats one page fails clearly; secrets echoed by the vendor,
and a proxy's password, never reach a log or an exception."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest

from seccollect_dev.simulators.netskope import V2_DATA_PATHS
from tests.conftest import NETSKOPE_START, NETSKOPE_V2_TOKEN
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

ALERT = V2_DATA_PATHS["alert"]
WINDOW = (NETSKOPE_START, NETSKOPE_START + timedelta(minutes=30))
NEXT = (WINDOW[1], WINDOW[1] + timedelta(minutes=30))

#: Poison records, as the vendor's JSON text (so bytes that are not UTF-8 can be sent), and the reason
#: their quarantine entry must give.
POISON: dict[str, tuple[bytes, str]] = {
    "string": (b'"oops, a string"', "the record is a string, not a JSON object"),
    "null": (b"null", "the record is null, not a JSON object"),
    "iso-timestamp": (b'{"_id":"p-iso","timestamp":"2026-03-01T00:10:00Z","type":"breach"}',
                      "timestamp '2026-03-01T00:10:00Z' is not a Unix time"),
    "huge-timestamp": (b'{"_id":"p-huge","timestamp":100000000000000}', "timestamp 100000000000000 is out of range"),
    "lone-surrogate": (b'{"_id":"p-sur","timestamp":1772323800,"user":"\\ud800"}',
                       "not valid UTF-8 (or a lone surrogate)"),
    "invalid-utf8": (b'{"_id":"p-bytes","timestamp":1772323800,"user":"caf\xe9"}', "not valid UTF-8"),
}
#: Loads (not quarantined): the same text on both warehouses.
NUL_RECORD = b'{"_id":"p-nul","timestamp":1772323800,"user":"a\\u0000b","type":"nspolicy"}'


def _instance(tmp_path, monkeypatch, **extra: Any) -> str:
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    return write_instance(tmp_path, {
        "name": "bad", "tenant": "acme", "type": "netskope", "conn_id": "netskope_test", "netskope_tenant": "acme",
        "api_version": "v2", "content_types": ["alert"], "interval_minutes": 30, "settle_lag_seconds": 0,
        "retries": 0, **extra,
    })


def _served(window) -> list[dict[str, Any]]:
    """What the simulator itself serves for the window's (insertion-time) query."""
    import requests

    conn = json.loads(os.environ["AIRFLOW_CONN_NETSKOPE_TEST"])
    response = requests.get(
        conn["extra"]["base_url"] + ALERT,
        params={"insertionstarttime": int(window[0].timestamp()), "insertionendtime": int(window[1].timestamp()),
                "limit": 10_000, "offset": 0},
        headers={"Netskope-Api-Token": NETSKOPE_V2_TOKEN},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["result"]


def _page(records: list[dict[str, Any]], extra: list[bytes]) -> bytes:
    """The vendor's v2 page holding ``records`` and the raw JSON texts ``extra``."""
    texts = [json.dumps(r, separators=(",", ":")).encode() for r in records] + extra
    return b'{"ok":1,"result":[' + b",".join(texts) + b"]}"


@pytest.mark.parametrize("warehouse_conn", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_poison_records_are_quarantined_and_the_rest_of_the_window_loads(
    tmp_path, monkeypatch, airflow_db, netskope_sim, netskope_dataset, warehouse_conn, open_test_warehouse
) -> None:
    dag_id = _instance(tmp_path, monkeypatch)
    served = _served(WINDOW)
    assert 0 < len(served) < 10_000, "the window must fit in one page"
    netskope_sim.stats.reset()
    body = _page(served, [p for p, _ in POISON.values()] + [NUL_RECORD])
    netskope_sim.faults.add("status", path=ALERT, status=200, body=body,
                            headers={"Content-Type": "application/json"})

    run = run_window(dag_id, *WINDOW)
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog")]
        assert len(ids) == len(set(ids))
        assert set(ids) == {r["_id"] for r in served} | {"p-nul"}
        quarantined = {ref: reason for ref, reason in wh.query(
            "SELECT source_ref, reason FROM quarantine WHERE dag_id = ?", (dag_id,))}
        assert len(quarantined) == len(POISON)
        for _, reason in POISON.values():
            assert any(reason in text for text in quarantined.values()), reason
        assert {"alert:p-iso", "alert:p-huge", "alert:p-sur", "alert:p-bytes"} <= set(quarantined)
        (raw_bytes,) = wh.query("SELECT raw FROM quarantine WHERE source_ref = 'alert:p-bytes'")[0]
        assert "caf\\xe9" in raw_bytes  # the original byte, shown, not replaced by U+FFFD
        # The NUL record loaded, the same way on both warehouses.
        (user, raw) = wh.query("SELECT vendor_id, raw FROM syslog WHERE vendor_id = 'p-nul'")[0]
        raw = raw if isinstance(raw, dict) else json.loads(raw)
        assert raw["user"] == "a\x00b"
        staged, inserted, duplicates, quarantine_count = wh.query(
            "SELECT staged_rows, inserted_rows, duplicate_rows, quarantined FROM collection_ledger WHERE dag_id = ?",
            (dag_id,))[0]
        assert staged == inserted + duplicates + quarantine_count and quarantine_count == len(POISON)

    later = run_window(dag_id, *NEXT)  # no fault any more: the next window is unaffected
    assert str(later.state) == "success", task_states(later)
    with open_test_warehouse() as wh:
        ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog")]
        assert len(ids) == len(set(ids))
        assert set(ids) == {r["_id"] for r in served} | netskope_dataset.expected_ids("alert", *NEXT) | {"p-nul"}


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
@pytest.mark.parametrize(("body", "says"), [
    (b"null", "expected a JSON object with a 'result' list, got NoneType"),
    (b'{"ok":1}', "expected a 'result' list, the body has only ['ok']"),
    (b'{"ok":1,"result":{"a":1}}', "expected 'result' to be a list, got dict"),
])
def test_a_page_of_the_wrong_shape_fails_saying_what_was_wrong(
    body, says, tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn, capfd
) -> None:
    from seccollect.http.client import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng=None: 0.01)
    dag_id = _instance(tmp_path, monkeypatch)
    netskope_sim.faults.add("status", path=ALERT, status=200, body=body, count=100,
                            headers={"Content-Type": "application/json"})
    run = run_window(dag_id, *WINDOW)
    assert task_states(run)["collect_alert"] == "failed"
    out = capfd.readouterr()
    assert f"had the wrong shape (PageShapeError: {says}" in out.out + out.err
    assert netskope_sim.stats.count(ALERT) == 6  # retried (a proxy's bad page passes), then failed for good


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_vendor_that_repeats_one_page_for_ever_is_stopped(
    tmp_path, monkeypatch, airflow_db, netskope_sim, netskope_dataset, warehouse_conn, capfd
) -> None:
    monkeypatch.setattr("seccollect.vendors.netskope.hook.MAX_PAGE_SIZE", 5)
    dag_id = _instance(tmp_path, monkeypatch)
    first_page = netskope_dataset.expected_records("alert", *WINDOW)[:5]
    netskope_sim.faults.add("status", path=ALERT, status=200, body=_page(first_page, []), count=10_000,
                            headers={"Content-Type": "application/json"})
    run = run_window(dag_id, *WINDOW)
    assert task_states(run)["collect_alert"] == "failed"
    out = capfd.readouterr()
    assert "repeats the previous page; the vendor ignores the offset parameter" in out.out + out.err
    assert netskope_sim.stats.count(ALERT) == 2  # not retried: a repeating vendor repeats again


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_secret_the_vendor_echoes_never_reaches_the_log_or_the_exception(
    tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn, capfd
) -> None:
    dag_id = _instance(tmp_path, monkeypatch)
    echo = json.dumps({"message": f"Invalid token {NETSKOPE_V2_TOKEN} for /api/v2/events/data/alert?token={NETSKOPE_V2_TOKEN}"})
    netskope_sim.faults.add("status", path=ALERT, status=400, body=echo)
    run = run_window(dag_id, *WINDOW)
    assert task_states(run)["collect_alert"] == "failed"
    out = capfd.readouterr()
    logged = out.out + out.err
    assert "Invalid token" in logged and "Check the Airflow connection 'netskope_test'" in logged
    assert NETSKOPE_V2_TOKEN not in logged
    failures = [ti for ti in run.get_task_instances() if ti.task_id == "collect_alert"]
    assert failures and NETSKOPE_V2_TOKEN not in repr(failures[0].__dict__)


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_proxy_password_never_appears_anywhere(
    tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn, capfd, open_test_warehouse
) -> None:
    import socket

    from seccollect.http.client import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng=None: 0.01)
    with socket.socket() as sock:  # a port nothing listens on: the proxy is unreachable
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    base = json.loads(os.environ["AIRFLOW_CONN_NETSKOPE_TEST"])
    base["extra"]["proxy"] = f"http://squid:pr0xy-s3cret@127.0.0.1:{closed}"
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_TEST", json.dumps(base))
    dag_id = _instance(tmp_path, monkeypatch)
    run = run_window(dag_id, *WINDOW)
    assert task_states(run)["collect_alert"] == "failed"
    out = capfd.readouterr()
    logged = out.out + out.err
    assert "ProxyError" in logged or "proxy" in logged.lower()
    assert "pr0xy-s3cret" not in logged
    with open_test_warehouse() as wh:
        assert "pr0xy-s3cret" not in repr(wh.query("SELECT * FROM window_failures"))
