"""The Netskope post-load step: Alerts rows recomputed from all their links, on both backends, in any
load order, and concurrent loads of one key on PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seccollect.staging.store import StagedBatch
from seccollect.vendors.netskope.alert_load import recompute_alerts
from seccollect.warehouse.base import LoadContext, LoadReport, Warehouse, WindowKey
from seccollect.warehouse.postgres import PostgresWarehouse
from tests.seccollect.warehouse.test_warehouse import (
    ALERT,
    as_json,
    count,
    envelope,
    hex_id,
    ledger,
    stage,
    window,
)

pytestmark = pytest.mark.usefixtures("staging")  # every test stages into its own local folder


def load(wh: Warehouse, key: WindowKey, batches: list[StagedBatch]) -> LoadReport:
    """A window's load with the Netskope post-load step, as the load task runs it."""
    return wh.load_window(key, batches, post_load=recompute_alerts)


#: Alert keys are 128-bit digests (md5 of the key's parts in the mapping); readable names here.
K, OTHER = (uuid.uuid5(uuid.NAMESPACE_OID, name).hex for name in ("K", "OTHER"))


# --- alerts --------------------------------------------------------------------------------------


def alert_link(
    key: WindowKey, alert_key: str, n: int, event_time: datetime, user: str = "alice"
) -> dict[str, Any]:
    raw = {"type": "breach", "user": user, "breach_id": "B-1", "n": n}
    base = envelope(key).wrap(ALERT, raw, vendor_id=f"a{n}", event_time=event_time)
    return {
        "alert_key": alert_key,
        "record_id": base["record_id"],
        **{
            c: base[c]
            for c in (
                "tenant",
                "instance",
                "content_type",
                "msg_class",
                "msg_origin_source",
                "msg_origin_vendor",
                "msg_origin_category",
                "raw",
            )
        },
        "alert_kind": "breach",
        "user_name": user,
        "dedup_id": "B-1",
        "event_time": event_time,
    }


def alerts(wh: Warehouse) -> dict[str, tuple[Any, ...]]:
    rows = wh.query(
        "SELECT record_id, raw_count, first_seen, last_seen, latest_record_id, raw, event_time, alert_kind, "
        "dedup_id, user_name FROM alerts"
    )
    return {hex_id(r[0]): (*r[1:4], hex_id(r[4]), *r[5:]) for r in rows}


def test_alerts_recomputed_from_all_links_in_any_load_order(wh: Warehouse) -> None:
    keys = {n: window(n, "alert") for n in (1, 2, 3)}
    times = {n: keys[n].window_start + timedelta(minutes=1) for n in keys}
    links = {n: alert_link(keys[n], K, n, times[n]) for n in keys}
    batches = {n: stage(keys[n], {"alert_sources": [links[n]]}) for n in keys}
    # Another key in window 2 must not be touched by the recompute of "K".
    other = alert_link(keys[2], OTHER, 9, times[2], "bob")
    batches[2] = stage(keys[2], {"alert_sources": [links[2], other]})

    assert load(wh, keys[3], batches[3]).figures["alerts_touched"] == 1
    assert alerts(wh)[K][:4] == (1, times[3], times[3], links[3]["record_id"])

    load(wh, keys[1], batches[1])
    assert alerts(wh)[K][:4] == (2, times[1], times[3], links[3]["record_id"])

    assert load(wh, keys[2], batches[2]).figures["alerts_touched"] == 2
    load(wh, keys[1], batches[1])  # a re-run of window 1 changes nothing

    rows = alerts(wh)
    assert set(rows) == {K, OTHER}
    raw_count, first_seen, last_seen, latest, raw, event_time, kind, dedup_id, user = rows[K]
    assert (raw_count, first_seen, last_seen, latest) == (3, times[1], times[3], links[3]["record_id"])
    assert as_json(raw) == json.loads(links[3]["raw"])  # the latest raw alert behind the key
    assert event_time == times[3] and (kind, dedup_id, user) == ("breach", "B-1", "alice")
    assert rows[OTHER][:4] == (1, times[2], times[2], other["record_id"])
    assert rows[OTHER][-1] == "bob"
    assert count(wh, "alert_sources") == 4


def test_alerts_several_links_of_one_key_in_one_batch_and_ties(wh: Warehouse) -> None:
    key = window(1, "alert")
    t = key.window_start
    a, b, c = (alert_link(key, K, n, t + timedelta(seconds=s)) for n, s in ((1, 10), (2, 30), (3, 30)))
    report = load(wh, key, stage(key, {"alert_sources": [a, b, c, a]}))
    assert report.figures["alerts_touched"] == 1
    raw_count, first_seen, last_seen, latest, *_ = alerts(wh)[K]
    assert (raw_count, first_seen, last_seen) == (3, a["event_time"], b["event_time"])
    # Equal event times: the highest record_id wins, deterministically.
    assert latest == max(b["record_id"], c["record_id"])
    # The mapped alerts never count as window rows of the ledger.
    assert ledger(wh)[0][3:6] == (0, 0, 0)


def test_alert_links_repeated_across_parts_count_once(wh: Warehouse) -> None:
    # alert_sources has a two-column key: repeats across parts are found on both columns.
    key = window(1, "alert")
    links = [alert_link(key, K, n, key.window_start + timedelta(seconds=n)) for n in range(1, 5)]
    other = alert_link(key, OTHER, 1, key.window_start)  # same record as links[0], other alert key
    report = load(wh, key, stage(key, {"alert_sources": [*links, other, *links[:2]]}, part_rows=2))
    assert report.figures["alerts_touched"] == 2
    assert count(wh, "alert_sources") == 5
    assert alerts(wh)[K][0] == 4 and alerts(wh)[OTHER][0] == 1


def test_alert_links_in_two_batches_of_one_window(wh: Warehouse) -> None:
    key = window(1, "alert")
    links = [alert_link(key, K, n, key.window_start + timedelta(seconds=n)) for n in range(1, 6)]
    batches = stage(key, {"alert_sources": links}, part_rows=2)
    assert [b.table for b in batches].count("alert_sources") == 3
    load(wh, key, batches)
    assert alerts(wh)[K][:2] == (5, links[0]["event_time"])


def test_alert_row_keeps_the_latest_raw_alert_though_links_store_none(wh: Warehouse) -> None:
    """Links do not store raw alerts: the Alerts row takes the latest one from the window that brought
    it, and keeps it when a later load (a backfill of an earlier window) brings only older links."""
    keys = {n: window(n, "alert") for n in (1, 2, 3)}
    link = {n: alert_link(keys[n], K, n, keys[n].window_start + timedelta(minutes=1)) for n in keys}
    assert "raw" not in {c for (c,) in wh.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'alert_sources'")}
    loaded: set[int] = set()
    for n in (2, 1, 3, 1, 2):  # out of order, with re-runs
        load(wh, keys[n], stage(keys[n], {"alert_sources": [link[n]]}))
        loaded.add(n)
        newest = max(loaded)
        raw_count, *_, latest, raw = alerts(wh)[K][:5]
        assert latest == link[newest]["record_id"] and as_json(raw) == json.loads(link[newest]["raw"])
    assert raw_count == 3



@pytest.mark.postgres
def test_postgres_concurrent_windows_of_one_alert_key_both_count(postgres_database: dict[str, Any]) -> None:
    """Two loads touching one Alerts key at once: the second recompute waits for the first commit and
    counts its links too (without the lock it would overwrite the row with its own count of 1)."""
    import threading

    import psycopg

    from seccollect.staging.store import read_batch

    first, second = (PostgresWarehouse(psycopg.connect(**postgres_database)) for _ in range(2))
    first.ensure_schema()
    keys = {n: window(n, "alert") for n in (1, 2)}
    link = {n: alert_link(keys[n], K, n, keys[n].window_start + timedelta(minutes=1)) for n in keys}
    batches = {n: stage(keys[n], {"alert_sources": [link[n]]}) for n in keys}
    errors: list[BaseException] = []

    def load_second() -> None:
        try:
            load(second, keys[2], batches[2])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with first.transaction():  # window 1, held open after its recompute as a slow commit would be
        parts = {b.table: read_batch(b) for b in batches[1]}
        first._insert_absent("alert_sources", parts["alert_sources"])
        recompute_alerts(first, LoadContext(keys[1], tuple(batches[1]), None, datetime.now(UTC)))
        thread = threading.Thread(target=load_second)
        thread.start()
        time.sleep(1.0)
    thread.join(30)
    assert not thread.is_alive() and not errors
    raw_count, first_seen, last_seen, latest = alerts(first)[K][:4]
    assert (raw_count, first_seen, last_seen, latest) == (
        2, link[1]["event_time"], link[2]["event_time"], link[2]["record_id"]
    )
    first.close()
    second.close()


