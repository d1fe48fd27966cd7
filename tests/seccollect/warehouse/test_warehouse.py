"""Window loads on both backends: idempotent, atomic with their ledger, alerts exact in any load order."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seccollect.records.catalog import tables as catalog_tables
from seccollect.records.envelope import EnvelopeContext, MsgOrigin
from seccollect.records.quarantine import QuarantineEntry
from seccollect.staging.store import StagedBatch, StagingWriter, window_folder
from seccollect.warehouse.base import Warehouse, WindowKey
from seccollect.warehouse.duckdb import DuckDBWarehouse, connect_with_lock_wait

DAG = "acme-netskope-main"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
INGEST = datetime(2026, 3, 2, tzinfo=UTC)
EVENT = MsgOrigin("netskopewsg_event", "netskope", "netskope", "web_security")
ALERT = MsgOrigin("netskopewsg_alert", "netskope", "netskope", "web_security")


pytestmark = pytest.mark.usefixtures("staging")  # every test stages into its own local folder


def window(n: int, content_type: str = "event") -> WindowKey:
    """The n-th 5-minute window (1-based)."""
    start = T0 + timedelta(minutes=5 * (n - 1))
    return WindowKey(DAG, content_type, start, start + timedelta(minutes=5))


def envelope(key: WindowKey) -> EnvelopeContext:
    return EnvelopeContext("acme", "main", key.content_type, key.window_start, key.window_end, INGEST)


def events(key: WindowKey, ids: list[int]) -> list[dict[str, Any]]:
    ctx = envelope(key)
    return [
        ctx.wrap(
            EVENT,
            {"id": i, "user": f"u{i}@acme.com"},
            vendor_id=str(i),
            event_time=key.window_start + timedelta(seconds=i),
        )
        for i in ids
    ]


def stage(
    key: WindowKey, tables: dict[str, list[dict[str, Any]]], task_id: str = "collect", part_rows: int = 1000
) -> list[StagedBatch]:
    """Stage rows per table. Alert links (with their raw alert, as test data) are staged as the mapping
    task stages them: the links without raw, plus each key's latest link with its raw (``alert_latest``)."""
    writer = StagingWriter(
        window_folder(key.dag_id, key.window_start, key.window_end, task_id), part_rows=part_rows
    )
    for table, rows in tables.items():
        if table == "alert_sources":
            latest: dict[str, dict[str, Any]] = {}
            for link in rows:
                best = latest.get(link["alert_key"])
                if best is None or (link["event_time"], link["record_id"]) > (best["event_time"], best["record_id"]):
                    latest[link["alert_key"]] = link
            for link in latest.values():
                writer.add("alert_latest", link)
            rows = [{k: v for k, v in link.items() if k != "raw"} for link in rows]
        for row in rows:
            writer.add(table, row)
    return writer.close()


def quarantined(key: WindowKey, entries: list[QuarantineEntry]) -> list[StagedBatch]:
    """Quarantine entries staged as a collect task stages them."""
    return stage(key, {"quarantine_entries": [e.to_row() for e in entries]}, task_id="quarantine")


def count(wh: Warehouse, table: str) -> int:
    return wh.query(f"SELECT count(*) FROM {table}")[0][0]


def ledger(wh: Warehouse) -> list[tuple[Any, ...]]:
    return wh.query(
        "SELECT content_type, window_start, run_id, staged_rows, inserted_rows, duplicate_rows, quarantined "
        "FROM collection_ledger ORDER BY window_start, content_type"
    )


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # DuckDB: text; PostgreSQL: jsonb


# --- schema --------------------------------------------------------------------------------------


def test_ensure_schema_is_idempotent_and_keeps_data(wh: Warehouse) -> None:
    key = window(1)
    wh.load_window(key, stage(key, {"syslog": events(key, [1, 2])}))
    wh.ensure_schema()
    wh.ensure_schema()
    assert count(wh, "syslog") == 2
    for name, table in catalog_tables().items():
        if table.role != "intermediate":
            assert count(wh, name) >= 0  # every table exists


# --- idempotent loads ----------------------------------------------------------------------------


def test_reload_inserts_nothing_and_ledger_accumulates(wh: Warehouse) -> None:
    key = window(1)
    batches = stage(key, {"syslog": events(key, list(range(10)))})
    first = wh.load_window(key, batches, run_id="run-1")
    assert first.to_xcom()["tables"] == {"syslog": {"staged": 10, "inserted": 10, "duplicates": 0}}
    second = wh.load_window(key, batches, run_id="run-2")
    assert second.to_xcom()["tables"] == {"syslog": {"staged": 10, "inserted": 0, "duplicates": 10}}
    assert count(wh, "syslog") == 10
    # One ledger row per window, summed over its loads: staged = inserted + duplicates + quarantined, the
    # latest run named, every run listed; and one history row per load.
    assert ledger(wh) == [("event", key.window_start, "run-2", 20, 10, 10, 0)]
    (loads, run_ids), = wh.query("SELECT loads, run_ids FROM collection_ledger")
    assert loads == 2 and as_json(run_ids) == ["run-1", "run-2"]
    assert wh.query(
        "SELECT run_id, staged_rows, inserted_rows, duplicate_rows FROM collection_loads ORDER BY loaded_at"
    ) == [("run-1", 10, 10, 0), ("run-2", 10, 0, 10)]


def test_overlapping_windows_never_duplicate(wh: Warehouse) -> None:
    w1, w2 = window(1), window(2)
    wh.load_window(w1, stage(w1, {"syslog": events(w1, [1, 2, 3])}))
    # A record collected again in the next window (a late or re-sent record) has the same record_id.
    report = wh.load_window(w2, stage(w2, {"syslog": events(w1, [3]) + events(w2, [4])}))
    assert report.tables["syslog"].inserted == 1 and report.tables["syslog"].duplicates == 1
    assert count(wh, "syslog") == 4
    assert [r[3:6] for r in ledger(wh)] == [(3, 3, 0), (2, 1, 1)]


def test_duplicates_inside_a_batch_and_across_parts_collapse(wh: Warehouse) -> None:
    key = window(1)
    rows = events(key, [1, 2, 3])
    batches = stage(key, {"syslog": rows + rows + rows[:1]}, part_rows=3)  # 7 rows in 3 parts
    assert [b.rows for b in batches] == [3, 3, 1]
    report = wh.load_window(key, batches)
    assert report.tables["syslog"].staged == 7 and report.tables["syslog"].inserted == 3
    assert count(wh, "syslog") == 3


def test_first_row_in_part_order_wins_for_a_repeated_record_id(wh: Warehouse) -> None:
    # The same vendor record collected twice in one window with different content (a re-delivered,
    # amended copy): the row staged first is kept, whatever the engine reads in parallel.
    key = window(1)
    ctx = envelope(key)
    first = [ctx.wrap(EVENT, {"id": i, "copy": 1}, vendor_id=str(i), event_time=key.window_start) for i in range(5)]
    second = [ctx.wrap(EVENT, {"id": i, "copy": 2}, vendor_id=str(i), event_time=key.window_start) for i in range(5)]
    batches = stage(key, {"syslog": first + second + first[:2]}, part_rows=4)  # 12 rows in 3 parts
    report = wh.load_window(key, batches)
    assert report.tables["syslog"].staged == 12 and report.tables["syslog"].inserted == 5
    assert sorted(as_json(r[0])["copy"] for r in wh.query("SELECT raw FROM syslog")) == [1] * 5


def test_duckdb_reads_local_parts_itself_with_the_part_by_part_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seccollect.staging.store as store

    key = window(1)
    ctx = envelope(key)
    rows = [ctx.wrap(EVENT, {"id": i % 7, "n": i}, vendor_id=str(i % 7), event_time=key.window_start) for i in range(20)]
    batches = stage(key, {"syslog": rows}, part_rows=6)
    loaded = {}
    for mode in ("engine", "arrow"):
        if mode == "arrow":  # e.g. s3:// staging: DuckDB gets each part from Arrow instead
            monkeypatch.setattr(store, "local_file", lambda batch: None)
        wh = DuckDBWarehouse(str(tmp_path / f"{mode}.duckdb"))
        wh.ensure_schema()
        calls: list[str] = []
        real = wh._insert_absent
        monkeypatch.setattr(wh, "_insert_absent", lambda table, data, calls=calls, real=real: calls.append(table) or real(table, data))
        report = wh.load_window(key, batches)
        assert (report.tables["syslog"].staged, report.tables["syslog"].inserted) == (20, 7)
        assert calls == ([] if mode == "engine" else ["syslog"] * 4)
        loaded[mode] = wh.query("SELECT record_id, raw FROM syslog ORDER BY record_id")
        wh.close()
    assert loaded["engine"] == loaded["arrow"]
    assert sorted(as_json(raw)["n"] for _, raw in loaded["engine"]) == list(range(7))  # first of each id


def test_duckdb_engine_read_skips_ids_already_loaded_and_repeats_within_the_window(tmp_path: Path) -> None:
    """The engine-read load (several local parts) against a table that already holds some of the
    window's ids: exactly the absent ids go in, each once, its first staged copy."""
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.ensure_schema()
    w1, w2 = window(1), window(2)
    wh.load_window(w1, stage(w1, {"syslog": events(w1, [1, 2, 3, 4])}, task_id="first"))
    ctx = envelope(w2)
    rows = [ctx.wrap(EVENT, {"id": i, "n": n}, vendor_id=str(i), event_time=w2.window_start)
            for n, i in enumerate([3, 5, 6, 5, 1, 7, 6, 8])]
    batches = stage(w2, {"syslog": rows}, part_rows=3)
    assert len(batches) == 3, "several parts: DuckDB reads them itself"
    report = wh.load_window(w2, batches)
    assert (report.tables["syslog"].inserted, report.tables["syslog"].duplicates) == (4, 4)
    got = {as_json(raw)["id"]: as_json(raw).get("n") for (raw,) in wh.query("SELECT raw FROM syslog")}
    assert got == {1: None, 2: None, 3: None, 4: None, 5: 1, 6: 2, 7: 5, 8: 7}
    assert wh.query("SELECT count(*) FROM duckdb_tables() WHERE temporary") == [(0,)], "helper tables dropped"
    wh.close()


def test_duckdb_engine_read_failure_reports_its_own_error_and_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing insert surfaces DuckDB's error (not a later 'transaction is aborted') and leaves
    nothing behind: the next load of the window commits normally."""
    import duckdb

    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.ensure_schema()
    key = window(1)
    batches = stage(key, {"syslog": events(key, list(range(6)))}, part_rows=2)
    real = wh._execute

    def failing_insert(sql: str, params: Any = ()) -> int:
        if sql.startswith("INSERT INTO syslog"):
            sql = sql.replace("SELECT CAST(s.record_id AS UUID)", "SELECT CAST('not a uuid' AS UUID)", 1)
        return real(sql, params)

    monkeypatch.setattr(wh, "_execute", failing_insert)
    with pytest.raises(duckdb.ConversionException):
        wh.load_window(key, batches)
    monkeypatch.setattr(wh, "_execute", real)
    assert count(wh, "syslog") == 0 and count(wh, "collection_ledger") == 0
    assert wh.load_window(key, batches).tables["syslog"].inserted == 6
    wh.close()


def test_several_tables_in_one_window(wh: Warehouse) -> None:
    key = window(1)
    ctx = envelope(key)
    asset = ctx.wrap(
        EVENT,
        {"host": "h1"},
        vendor_id="h1",
        event_time=None,
        typed={"asset_id": "h1", "hostname": "h1.acme", "ip_address": "10.0.0.1", "os": None},
    )
    report = wh.load_window(key, stage(key, {"syslog": events(key, [1, 2]), "assets": [asset]}))
    assert {n: t.inserted for n, t in report.tables.items()} == {"syslog": 2, "assets": 1}
    assert wh.query("SELECT hostname, os, event_time FROM assets") == [("h1.acme", None, None)]
    assert ledger(wh)[0][3:5] == (2, 2)  # the window's records, counted in its main index (Syslog)


def test_values_round_trip_exactly(wh: Warehouse) -> None:
    key = window(1)
    ctx = envelope(key)
    tricky = {"s": 'comma, "quote"\nnew line\ttab \\ backslash', "u": "Grüße 東京 🙂", "empty": "", "n": None}
    with_empty_vendor_id = ctx.wrap(EVENT, tricky, vendor_id="", event_time=None)
    regular = ctx.wrap(
        EVENT, {"id": 1}, vendor_id="v1", event_time=datetime(2026, 3, 1, 0, 1, 2, 345678, tzinfo=UTC)
    )
    wh.load_window(key, stage(key, {"syslog": [with_empty_vendor_id, regular]}))
    rows = {
        hex_id(r[0]): r[1:] for r in wh.query("SELECT record_id, vendor_id, event_time, raw, window_end FROM syslog")
    }
    vendor_id, event_time, raw, window_end = rows[with_empty_vendor_id["record_id"]]
    assert vendor_id == "" and event_time is None  # empty string stays empty, NULL stays NULL
    assert as_json(raw) == tricky
    assert window_end == key.window_end
    assert rows[regular["record_id"]][1] == regular["event_time"]  # microseconds and UTC kept


def test_nul_character_in_a_raw_record(wh: Warehouse) -> None:
    # PostgreSQL stores raw as JSON (not JSONB, which rejects the \u0000 escape): the record is kept exactly.
    key = window(1)
    row = envelope(key).wrap(EVENT, {"file": "a\x00b"}, vendor_id="nul", event_time=None)
    wh.load_window(key, stage(key, {"syslog": [row]}))
    assert as_json(wh.query("SELECT raw FROM syslog")[0][0]) == {"file": "a\x00b"}


# --- one transaction -----------------------------------------------------------------------------


def test_failure_on_second_table_rolls_back_rows_ledger_quarantine_and_objects(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = window(1)
    ctx = envelope(key)
    asset = ctx.wrap(EVENT, {"host": "h1"}, vendor_id="h1", event_time=None, typed={"asset_id": "h1"})
    batches = stage(key, {"syslog": events(key, [1, 2, 3]), "assets": [asset]})
    real = wh._insert_absent
    calls: list[str] = []

    def flaky(table: str, data: Any) -> int:
        calls.append(table)
        if len(calls) == 2:
            raise RuntimeError("warehouse went away")
        return real(table, data)

    monkeypatch.setattr(wh, "_insert_absent", flaky)
    with pytest.raises(RuntimeError, match="went away"):
        wh.load_window(key, [*batches, *quarantined(key, [QuarantineEntry("r1", "bad")])])
    assert calls == ["syslog", "assets"]
    for table in ("syslog", "assets", "collection_ledger", "quarantine"):
        assert count(wh, table) == 0, table
    # The connection is still usable and the retried load commits everything.
    monkeypatch.setattr(wh, "_insert_absent", real)
    report = wh.load_window(key, batches)
    assert report.tables["syslog"].inserted == 3 and count(wh, "collection_ledger") == 1


def test_missing_staged_file_fails_the_whole_window(wh: Warehouse) -> None:
    key = window(1)
    batches = stage(key, {"syslog": events(key, [1, 2, 3, 4])}, part_rows=2)
    Path(batches[1].path.removeprefix("file://")).unlink()
    with pytest.raises(FileNotFoundError, match="is gone .* clear this window's collect task"):
        wh.load_window(key, batches)
    assert count(wh, "syslog") == 0 and count(wh, "collection_ledger") == 0


def test_failure_in_ledger_write_rolls_back_rows(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    key = window(1)
    real = wh._execute

    def failing(sql: str, params: Any = ()) -> int:
        if sql.startswith("INSERT INTO collection_ledger"):
            raise RuntimeError("ledger write failed")
        return real(sql, params)

    monkeypatch.setattr(wh, "_execute", failing)
    with pytest.raises(RuntimeError, match="ledger"):
        wh.load_window(key, stage(key, {"syslog": events(key, [1])}))
    monkeypatch.undo()
    assert count(wh, "syslog") == 0


def test_empty_window_still_records_its_ledger_row(wh: Warehouse) -> None:
    key = window(1)
    report = wh.load_window(key, [], run_id="r")
    assert report.tables == {}
    assert ledger(wh) == [("event", key.window_start, "r", 0, 0, 0, 0)]


def hex_id(value: Any) -> str:
    """A ``uuid`` column's value as the 32 hex characters the pipeline computed it as."""
    assert isinstance(value, uuid.UUID), f"uuid columns are stored as UUID, got {type(value).__name__}"
    return value.hex


def test_tables_of_an_earlier_schema_are_refused(wh: Warehouse) -> None:
    from seccollect.warehouse.base import WarehouseSchemaError, create_table_sql

    with wh.transaction():
        wh._execute("DROP TABLE syslog")
        # record_id as text, as before it became a UUID: new ids would never match the stored ones.
        wh._execute(create_table_sql("syslog", {**wh.sql_types, "uuid": wh.sql_types["text"]}))
    with pytest.raises(WarehouseSchemaError, match=r"syslog\.record_id is (VARCHAR|TEXT), expected UUID"):
        wh.ensure_schema()


# --- quarantine ----------------------------------------------------------------------------------


def test_quarantine_entries_upsert(wh: Warehouse) -> None:
    key = window(1)
    first = wh.load_window(
        key,
        quarantined(key, [
            QuarantineEntry("obj-1", "bad gzip", "\x1f\x8b..."),
            QuarantineEntry("rec-7", "not JSON", "{oops"),
        ]),
    )
    assert first.quarantined == 2
    wh.load_window(key, quarantined(key, [QuarantineEntry("obj-1", "truncated", None)]))
    rows = wh.query("SELECT source_ref, reason, raw, window_start FROM quarantine ORDER BY source_ref")
    assert rows == [
        ("obj-1", "truncated", None, key.window_start),
        ("rec-7", "not JSON", "{oops", key.window_start),
    ]
    # The same reference twice in one load keeps the last reason.
    wh.load_window(key, quarantined(key, [QuarantineEntry("rec-9", "a"), QuarantineEntry("rec-9", "b")]))
    assert wh.query("SELECT reason FROM quarantine WHERE source_ref = 'rec-9'") == [("b",)]
    assert ledger(wh)[0][6] == 5  # summed over the window's three loads (2 + 1 + 2 entries)


# --- opening through the Airflow connection ------------------------------------------------------


def test_open_warehouse_from_airflow_connection(open_test_warehouse, warehouse_conn: str) -> None:
    key = window(1)
    with open_test_warehouse() as wh:
        assert wh.kind == warehouse_conn
        wh.load_window(key, stage(key, {"syslog": events(key, [1, 2])}))
    with open_test_warehouse() as wh:  # committed, visible to a new connection
        assert count(wh, "syslog") == 2


def test_open_warehouse_rejects_other_connection_types(monkeypatch: pytest.MonkeyPatch) -> None:
    from seccollect.warehouse import open_warehouse

    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KIND", json.dumps({"conn_type": "http", "host": "x"}))
    with pytest.raises(ValueError, match="must be a 'duckdb' or 'postgres'"):
        open_warehouse("wrong_kind")


# --- DuckDB's single writer ----------------------------------------------------------------------

_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
time.sleep(30)
"""


@pytest.fixture
def hold_lock(tmp_path: Path) -> Iterator[Any]:
    """Start a process that holds the DuckDB file open read-write for ``seconds``."""
    procs: list[subprocess.Popen[str]] = []

    def hold(path: Path, seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def test_duckdb_waits_for_a_lock_held_by_another_process(tmp_path: Path, hold_lock) -> None:
    path = tmp_path / "locked.duckdb"
    proc = hold_lock(path, 1.0)
    started = time.monotonic()
    con = connect_with_lock_wait(str(path), lock_timeout=20)
    waited = time.monotonic() - started
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "released"
        assert waited >= 0.5
        assert con.execute("SELECT count(*) FROM held").fetchone() == (0,)
    finally:
        con.close()


def test_duckdb_lock_wait_gives_up_after_lock_timeout(tmp_path: Path, hold_lock) -> None:
    import duckdb

    path = tmp_path / "locked.duckdb"
    hold_lock(path, 30)
    started = time.monotonic()
    with pytest.raises(duckdb.IOException, match="(?i)lock"):
        connect_with_lock_wait(str(path), lock_timeout=0.4)
    assert 0.4 <= time.monotonic() - started < 5
    with pytest.raises(duckdb.IOException, match="(?i)lock"):
        DuckDBWarehouse(str(path), lock_timeout=0.2)


def test_duckdb_other_io_errors_are_not_waited_out(tmp_path: Path) -> None:
    import duckdb

    started = time.monotonic()
    with pytest.raises(duckdb.IOException):
        connect_with_lock_wait(str(tmp_path / "no" / "such" / "dir" / "w.duckdb"), lock_timeout=30)
    assert time.monotonic() - started < 2


def _duckdb_constraints(wh: DuckDBWarehouse) -> dict[str, list[str]]:
    rows = wh.query(
        "SELECT table_name, constraint_type FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    )
    out: dict[str, list[str]] = {}
    for table, kind in rows:
        out.setdefault(table, []).append(kind)
    return out


def test_duckdb_append_only_tables_have_no_primary_key_and_stay_unique(tmp_path: Path) -> None:
    append_only = [name for name, t in catalog_tables().items() if t.append_only and t.role == "records"]
    assert {"syslog", "alert_sources"} <= set(append_only)

    with DuckDBWarehouse(str(tmp_path / "w.duckdb")) as wh:
        wh.ensure_schema()
        keyed = _duckdb_constraints(wh)
        assert not set(keyed) & set(append_only), "no ART index to maintain on bulk-loaded tables"
        # Upserted tables keep theirs: ON CONFLICT ... DO UPDATE needs it.
        assert {"alerts", "collection_ledger", "quarantine", "object_ledger"} <= set(keyed)
        (column_type,) = wh.query(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = 'syslog' AND column_name = 'record_id'"
        )[0]
        assert column_type == "UUID"
        # Uniqueness without the index: repeats within a part, across parts, and across loads collapse.
        key = window(1)
        rows = events(key, [1, 2, 3, 4])
        for _ in range(2):
            wh.load_window(key, stage(key, {"syslog": rows + rows[::-1] + rows[:2]}, part_rows=3))
        wh.load_window(window(2), stage(window(2), {"syslog": events(window(2), [3, 4, 5])}))
        assert wh.query("SELECT count(*), count(DISTINCT record_id) FROM syslog") == [(5, 5)]


def test_duckdb_file_created_with_primary_keys_still_loads(tmp_path: Path) -> None:
    """Warehouse files created before the append-only tables lost their primary key keep working."""
    import duckdb

    from seccollect.warehouse.base import create_table_sql
    from seccollect.warehouse.duckdb import SQL_TYPES

    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    for name, table in catalog_tables().items():
        if table.role != "intermediate":
            con.execute(create_table_sql(name, SQL_TYPES))
    con.close()
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema()
        assert "syslog" in _duckdb_constraints(wh)
        key = window(1)
        rows = events(key, [1, 2, 3])
        report = wh.load_window(key, stage(key, {"syslog": rows + rows}, part_rows=2))
        assert report.tables["syslog"].inserted == 3
        assert wh.load_window(key, stage(key, {"syslog": rows})).tables["syslog"].inserted == 0
        assert count(wh, "syslog") == 3
