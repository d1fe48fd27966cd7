"""Snapshot loads on both backends: an item a pull saw but quarantined (``held``) is not removed, not
changed and not added; the next readable pull compares with the state as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seccollect.records.envelope import EnvelopeContext, MsgOrigin, content_hash
from seccollect.staging.store import StagingWriter, window_folder
from seccollect.warehouse.base import WindowKey

pytestmark = pytest.mark.usefixtures("staging")

DAG = "acme-toy-snap"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
ORIGIN = MsgOrigin("toy_item", "toy", "toy", "test")


def _key(n: int) -> WindowKey:
    return WindowKey(DAG, "item", T0 + timedelta(hours=n), T0 + timedelta(hours=n + 1))


@pytest.fixture(params=[1, 1000], ids=["part-per-row", "one-part"])
def part_rows(request) -> int:
    """Several parts take DuckDB's engine-read path (the snapshot's ids as a temp table), one the Arrow path."""
    return request.param


def _pull_rows(wh, n: int, items: dict[str, dict[str, Any]], held: tuple[str, ...] = (), part_rows: int = 1000
          ) -> dict[str, Any]:
    key = _key(n)
    ctx = EnvelopeContext("acme", "snap", "item", key.window_start, key.window_end, key.window_end)
    writer = StagingWriter(window_folder(DAG, key.window_start, key.window_end, "collect"), part_rows=part_rows)
    for identity, raw in items.items():
        digest = content_hash(raw)
        row = ctx.wrap(ORIGIN, raw, vendor_id=identity, event_time=key.window_end, version=f"{digest}:{n}")
        writer.add("syslog", row)
        writer.add("snapshot_items", {"identity": identity, "content_hash": digest, "record_id": row["record_id"],
                                      "held": False})
    for identity in held:
        writer.add("snapshot_items", {"identity": identity, "content_hash": "", "record_id": "0" * 32, "held": True})
    report = wh.load_window(key, writer.close(), snapshot=True, collected_at=key.window_end, base_table="syslog")
    return report.to_xcom()


def _live(wh) -> set[str]:
    return {r[0] for r in wh.query("SELECT identity FROM snapshot_state WHERE removed_window_start IS NULL")}


def test_a_held_item_is_neither_removed_nor_changed(wh, part_rows):
    def _pull(wh, n, items, held=()):
        return _pull_rows(wh, n, items, held, part_rows)

    first = _pull(wh, 0, {"a": {"id": "a", "v": 1}, "b": {"id": "b", "v": 1}})
    assert first["added"] == 2
    # b cannot be read this time (quarantined): it still exists.
    second = _pull(wh, 1, {"a": {"id": "a", "v": 1}}, held=("b",))
    assert (second["added"], second["changed"], second["removed"], second["held"]) == (0, 0, 0, 1)
    assert _live(wh) == {"a", "b"}
    # Readable again and unchanged: nothing to load; changed: loaded as a change.
    assert _pull(wh, 2, {"a": {"id": "a", "v": 1}, "b": {"id": "b", "v": 1}})["changed"] == 0
    assert _pull(wh, 3, {"a": {"id": "a", "v": 1}, "b": {"id": "b", "v": 2}})["changed"] == 1
    # Without it at all, it is removed.
    assert _pull(wh, 4, {"a": {"id": "a", "v": 1}})["removed"] == 1
    assert _live(wh) == {"a"}
    # Every loaded version is in Syslog once: a, b, and b's change.
    assert wh.query("SELECT count(*), count(DISTINCT record_id) FROM syslog")[0] == (3, 3)
    # Re-loading a pull's window again adds nothing.
    assert _pull(wh, 4, {"a": {"id": "a", "v": 1}})["tables"]["syslog"]["inserted"] == 0


def test_a_held_item_never_seen_before_is_not_added(wh, part_rows):
    _pull_rows(wh, 0, {"a": {"id": "a"}, "z": {"id": "z"}}, (), part_rows)
    report = _pull_rows(wh, 1, {"a": {"id": "a"}, "z": {"id": "z"}}, ("new",), part_rows)
    assert report["added"] == 0 and _live(wh) == {"a", "z"}
    assert wh.query("SELECT count(*) FROM syslog")[0][0] == 2


@pytest.mark.postgres
def test_postgres_probes_the_staged_items_by_index_not_by_a_scan_per_state_row(postgres_database):
    """The state table has no statistics right after the load that filled it; the removal anti-join must
    not become a nested loop that scans every staged item once per state row (quadratic)."""
    import psycopg

    from seccollect.warehouse.postgres import PostgresWarehouse

    wh = PostgresWarehouse(psycopg.connect(**postgres_database))
    wh.ensure_schema()
    try:
        _pull_rows(wh, 0, {str(i): {"id": i} for i in range(2000)}, (), 1000)
        plans = []
        original = wh._index_staged

        def explained(name, columns):
            original(name, columns)
            with wh.conn.cursor() as cur:
                cur.execute(f"EXPLAIN UPDATE snapshot_state SET updated_at = now() WHERE dag_id = '{DAG}' AND "
                            f"NOT EXISTS (SELECT 1 FROM {name} i WHERE i.identity = snapshot_state.identity)")
                plans.append("\n".join(row[0] for row in cur.fetchall()))

        wh._index_staged = explained
        _pull_rows(wh, 1, {str(i): {"id": i} for i in range(2000)}, (), 1000)
        assert plans and "Seq Scan on stg_snapshot_items" not in plans[0], plans[0]
    finally:
        wh.close()
