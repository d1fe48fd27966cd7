"""The AWS object ledger: staged beside the records, inserted once per object version, and read back
by key so a window never reads an object twice."""

from __future__ import annotations

from typing import Any

import pytest

from seccollect.vendors.aws.tables import LOOKUP_CHUNK
from seccollect.vendors.aws.tables import consumed_objects as consumed
from seccollect.warehouse.base import Warehouse, WindowKey
from tests.seccollect.warehouse.test_warehouse import DAG, count, stage, window

pytestmark = pytest.mark.usefixtures("staging")  # every test stages into its own local folder


def ConsumedObject(bucket: str, key: str, etag: str, records: int, status: str) -> dict[str, Any]:  # noqa: N802
    """An ``object_ledger`` row as the collect task stages it (the window is filled in by ``objects``)."""
    return {"dag_id": DAG, "bucket": bucket, "key": key, "etag": etag, "records": records, "status": status}


def objects(key: WindowKey, rows: list[dict[str, Any]]) -> list:
    stamp = {"window_start": key.window_start, "window_end": key.window_end, "loaded_at": key.window_end}
    return stage(key, {"object_ledger": [{**row, **stamp} for row in rows]}, task_id="collect_objects")


def test_object_ledger_and_consumed_objects(wh: Warehouse) -> None:
    key = window(1, "cloudtrail")
    objs = [
        ConsumedObject("logs", "a.json.gz", "e1", 10, "loaded"),
        ConsumedObject("logs", "b.json.gz", "e2", 0, "quarantined"),
    ]
    wh.load_window(key, objects(key, objs))
    wh.load_window(key, objects(key, objs))  # re-run: no second row
    assert count(wh, "object_ledger") == 2
    assert consumed(wh, DAG, "logs", ["a.json.gz", "b.json.gz", "c.json.gz"]) == {
        ("a.json.gz", "e1"),
        ("b.json.gz", "e2"),
    }
    assert consumed(wh, DAG, "logs", ["b.json.gz"]) == {("b.json.gz", "e2")}
    assert consumed(wh, DAG, "logs", []) == set()
    assert consumed(wh, "other-dag", "logs", ["a.json.gz"]) == set()
    assert consumed(wh, DAG, "other-bucket", ["a.json.gz"]) == set()
    # An object rewritten under the same key (new etag) is a new object.
    wh.load_window(window(2, "cloudtrail"), objects(window(2, "cloudtrail"), [ConsumedObject("logs", "a.json.gz", "e9", 1, "loaded")]))
    assert consumed(wh, DAG, "logs", ["a.json.gz"]) == {("a.json.gz", "e1"), ("a.json.gz", "e9")}
    assert wh.query("SELECT records, status FROM object_ledger WHERE etag = 'e2'") == [(0, "quarantined")]


def test_object_ledger_of_many_objects_in_one_window(wh: Warehouse) -> None:
    key = window(1, "cloudtrail")
    objs = [ConsumedObject("logs", f"k/{i:05d}.json.gz", f"e{i}", i, "loaded") for i in range(2 * LOOKUP_CHUNK + 3)]
    wh.load_window(key, objects(key, objs))
    wh.load_window(key, objects(key, objs[-5:]))  # overlapping re-run
    assert count(wh, "object_ledger") == len(objs)
    assert wh.query("SELECT sum(records) FROM object_ledger")[0][0] == sum(range(len(objs)))
    assert consumed(wh, DAG, "logs", [o["key"] for o in objs]) == {(o["key"], o["etag"]) for o in objs}


