"""Parquet staging between collect and load: bounded parts, replace-on-retry, plain XCom, exact schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seccollect.records.catalog import tables as catalog_tables
from seccollect.records.envelope import EnvelopeContext, MsgOrigin
from seccollect.records.indices import INDICES
from seccollect.staging.store import (
    StagedBatch,
    StagingWriter,
    arrow_schema,
    read_batch,
    staging_root,
    window_folder,
)

START = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
END = START + timedelta(minutes=5)
ORIGIN = MsgOrigin("netskopewsg_event", "netskope", "netskope", "web_security")


@pytest.fixture(autouse=True)
def root(staging: Path) -> Path:
    """Every test stages into its own local folder (the shared ``staging`` fixture)."""
    return staging


def rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
    ctx = EnvelopeContext("acme", "main", "event", START, END, datetime(2026, 3, 2, tzinfo=UTC))
    return [
        ctx.wrap(ORIGIN, {"id": i}, vendor_id=str(i), event_time=START + timedelta(seconds=i))
        for i in range(offset, offset + n)
    ]


def add_rows(writer: StagingWriter, table: str, many: list[dict[str, Any]]) -> None:
    for row in many:
        writer.add(table, row)


def iter_batches(batches, table: str):
    return (read_batch(b) for b in batches if b.table == table)


def folder(task_id: str = "collect_event"):
    return window_folder("acme-netskope-main", START, END, task_id)


def files(path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_window_folder_layout(root: Path) -> None:
    path = folder("collect_alert")
    assert (
        Path(path.path)
        == root / "acme-netskope-main" / "20260301T000500Z--20260301T001000Z" / "collect_alert"
    )


def test_staging_root_defaults_to_airflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECCOLLECT_STAGING_URL")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert Path(staging_root().path) == tmp_path / "home" / "staging"


def test_parts_are_bounded_by_part_rows() -> None:
    writer = StagingWriter(folder(), part_rows=4)
    add_rows(writer, "syslog", rows(10))
    # Full parts are written as soon as they fill up, not at close: memory stays bounded.
    assert [b.rows for b in writer.batches] == [4, 4]
    batches = writer.close()
    assert [b.rows for b in batches] == [4, 4, 2]
    assert files(folder()) == ["syslog-00000.parquet", "syslog-00001.parquet", "syslog-00002.parquet"]
    for batch in batches:
        assert pq.read_metadata(batch.path.removeprefix("file://")).num_rows == batch.rows <= 4
    ids = [r for b in batches for r in read_batch(b).column("vendor_id").to_pylist()]
    assert ids == [str(i) for i in range(10)]  # nothing lost, nothing repeated, order kept


def test_tables_get_their_own_parts() -> None:
    writer = StagingWriter(folder(), part_rows=3)
    for row in rows(5):
        writer.add("syslog", row)
    asset = {**rows(1)[0], "asset_id": "h1", "hostname": "h1.acme"}
    writer.add("assets", asset)
    batches = writer.close()
    assert [(b.table, b.rows) for b in batches] == [("syslog", 3), ("syslog", 2), ("assets", 1)]
    assert "assets-00000.parquet" in files(folder())
    assert [t.num_rows for t in iter_batches(batches, "syslog")] == [3, 2]
    assert read_batch(batches[-1]).column("hostname").to_pylist() == ["h1.acme"]


def test_recollect_replaces_earlier_parts() -> None:
    first = StagingWriter(folder(), part_rows=2)
    add_rows(first, "syslog", rows(5))
    first.close()
    assert len(files(folder())) == 3
    other_task = StagingWriter(folder("collect_alert"))
    add_rows(other_task, "syslog", rows(1))
    other_task.close()

    retry = StagingWriter(folder(), part_rows=2)
    add_rows(retry, "syslog", rows(1, offset=100))
    batches = retry.close()
    assert files(folder()) == ["syslog-00000.parquet"]
    assert [b.rows for b in batches] == [1]
    assert read_batch(batches[0]).column("vendor_id").to_pylist() == ["100"]
    assert len(files(folder("collect_alert"))) == 1  # another task's folder is left alone


def test_empty_window_writes_no_part_and_clears_a_previous_try() -> None:
    earlier = StagingWriter(folder())
    add_rows(earlier, "syslog", rows(3))
    earlier.close()
    assert files(folder()) == ["syslog-00000.parquet"]

    empty = StagingWriter(folder())
    assert empty.close() == []
    assert folder().exists() and files(folder()) == []


def test_xcom_round_trip_is_plain_json() -> None:
    writer = StagingWriter(folder())
    add_rows(writer, "syslog", rows(3))
    batch = writer.close()[0]
    payload = json.loads(json.dumps(batch.to_xcom()))
    assert payload == {"table": "syslog", "path": batch.path, "rows": 3}
    assert StagedBatch.from_xcom(payload) == batch
    assert StagedBatch.from_xcom({"table": "syslog", "path": "p", "rows": "7"}).rows == 7
    assert read_batch(StagedBatch.from_xcom(payload)).num_rows == 3


@pytest.mark.parametrize("table", list(catalog_tables()))
def test_arrow_schema_follows_the_index_description(table: str) -> None:
    columns = catalog_tables()[table].columns
    schema = arrow_schema(table)
    assert schema.names == [c.name for c in columns]
    for column in columns:
        field = schema.field(column.name)
        assert field.nullable == column.nullable
        expected = {
            "text": pa.string(),
            "json": pa.string(),
            "uuid": pa.string(),  # 32 hex characters; the warehouse casts to its UUID type
            "bigint": pa.int64(),
            "double": pa.float64(),
            "boolean": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC"),
        }[column.type]
        assert field.type == expected


def test_staged_parquet_has_the_table_schema() -> None:
    writer = StagingWriter(folder())
    add_rows(writer, "syslog", rows(2))
    batch = writer.close()[0]
    on_disk = pq.read_schema(batch.path.removeprefix("file://"))
    assert on_disk.remove_metadata().equals(arrow_schema("syslog"), check_metadata=False)
    data = read_batch(batch)
    assert data.schema.equals(arrow_schema("syslog"))
    first = data.to_pylist()[0]
    assert first["event_time"] == START and first["window_end"] == END and first["raw"] == '{"id":0}'


def test_write_table_casts_to_the_table_schema() -> None:
    source = pa.table(
        {
            **{
                c.name: pa.array(["x"], pa.large_string())
                for c in INDICES["syslog"].columns
                if c.type in ("text", "json", "uuid")
            },
            "event_time": pa.array([datetime(2026, 3, 1, 0, 6)], pa.timestamp("ns", tz="UTC")),
            "ingest_time": pa.array([datetime(2026, 3, 2)], pa.timestamp("ms", tz="UTC")),
            "window_start": pa.array([START], pa.timestamp("s", tz="UTC")),
            "window_end": pa.array([END], pa.timestamp("s", tz="UTC")),
        }
    ).select(INDICES["syslog"].column_names)
    writer = StagingWriter(folder())
    writer.write_table("syslog", source)
    batches = writer.close()
    assert [b.rows for b in batches] == [1]
    assert read_batch(batches[0]).schema.equals(arrow_schema("syslog"))


def test_a_row_missing_a_required_envelope_field_is_refused() -> None:
    writer = StagingWriter(folder())
    bad = rows(1)[0]
    del bad["tenant"]
    writer.add("syslog", bad)
    with pytest.raises(pa.ArrowInvalid, match="tenant"):
        writer.close()


def test_read_batch_of_a_deleted_part_raises() -> None:
    writer = StagingWriter(folder())
    add_rows(writer, "syslog", rows(1))
    batch = writer.close()[0]
    Path(batch.path.removeprefix("file://")).unlink()
    with pytest.raises(FileNotFoundError, match="clear this window's collect task"):
        read_batch(batch)


# --- Arrow rows and all-or-nothing blocks ------------------------------------------------------------


def arrow_rows(n: int, offset: int = 0) -> pa.Table:
    return pa.Table.from_pylist(rows(n, offset), schema=arrow_schema("syslog"))


def staged_ids(batches: list[StagedBatch]) -> list[str]:
    return [r for b in batches for r in read_batch(b).column("vendor_id").to_pylist()]


def test_add_arrow_is_cut_into_parts_like_rows_and_keeps_order() -> None:
    writer = StagingWriter(folder(), part_rows=4)
    add_rows(writer, "syslog", rows(3))
    writer.add_arrow("syslog", arrow_rows(6, offset=3))
    assert [b.rows for b in writer.batches] == [4, 4]  # full parts written at once, rows and tables mixed
    writer.add("syslog", rows(1, offset=9)[0])
    writer.add_arrow("syslog", arrow_rows(2, offset=10).cast(
        pa.schema([f.with_type(pa.large_string()) if f.type == pa.string() else f for f in arrow_schema("syslog")])
    ))  # other string types are cast to the table's schema
    batches = writer.close()
    assert [b.rows for b in batches] == [4, 4, 4]
    assert staged_ids(batches) == [str(i) for i in range(12)]
    assert all(read_batch(b).schema.equals(arrow_schema("syslog")) for b in batches)


def test_atomic_block_that_fails_leaves_nothing_behind() -> None:
    writer = StagingWriter(folder(), part_rows=4)
    add_rows(writer, "syslog", rows(3))
    with pytest.raises(ValueError, match="corrupt"):
        with writer.atomic():
            writer.add_arrow("syslog", arrow_rows(10, offset=100))
            # the rows from before the block went out first, then two full parts of the block's rows
            assert [b.rows for b in writer.batches] == [3, 4, 4]
            raise ValueError("corrupt object")
    assert [b.rows for b in writer.batches] == [3]
    assert len(files(folder())) == 1  # the block's parts are deleted
    with writer.atomic():
        add_rows(writer, "syslog", rows(2, offset=200))  # below a part: joins the buffer at the end
    writer.add_arrow("syslog", arrow_rows(1, offset=300))
    batches = writer.close()
    assert [b.rows for b in batches] == [3, 3]
    assert staged_ids(batches) == ["0", "1", "2", "200", "201", "300"]
    assert files(folder()) == ["syslog-00000.parquet", "syslog-00003.parquet"]


def test_atomic_block_keeps_order_and_blocks_do_not_nest() -> None:
    writer = StagingWriter(folder(), part_rows=4)
    add_rows(writer, "syslog", rows(2))
    with writer.atomic():
        writer.add_arrow("syslog", arrow_rows(9, offset=2))
        with pytest.raises(RuntimeError, match="nest"):
            with writer.atomic():
                pass
        with pytest.raises(RuntimeError, match="inside"):
            writer.close()
    batches = writer.close()
    assert [b.rows for b in batches] == [2, 4, 4, 1]
    assert staged_ids(batches) == [str(i) for i in range(11)]


def _vendor_ids(part: pa.Table) -> pa.Table:
    """A derivation for the tests: the part's vendor ids, as an ``alert_fields`` part with no fields."""
    schema = arrow_schema("alert_fields")
    return pa.table(
        {name: part["vendor_id"] if name == "vendor_id" else pa.nulls(part.num_rows, pa.string()) for name in schema.names},
        schema=schema,
    )


def test_a_derived_table_gets_one_part_beside_every_part_of_its_source() -> None:
    writer = StagingWriter(folder(), part_rows=4)
    writer.derive("syslog", "alert_fields", _vendor_ids)
    add_rows(writer, "syslog", rows(10))
    batches = writer.close()
    source = [b for b in batches if b.table == "syslog"]
    derived = [b for b in batches if b.table == "alert_fields"]
    assert [b.rows for b in source] == [b.rows for b in derived] == [4, 4, 2]
    for s, d in zip(source, derived, strict=True):
        assert read_batch(d)["vendor_id"].equals(read_batch(s)["vendor_id"]), "part n of both: the same records"
    with pytest.raises(RuntimeError, match="after parts"):
        writer.derive("syslog", "alert_fields", _vendor_ids)


def test_an_atomic_block_that_fails_removes_its_derived_parts_too() -> None:
    path = folder()
    writer = StagingWriter(path, part_rows=2)
    writer.derive("syslog", "alert_fields", _vendor_ids)
    add_rows(writer, "syslog", rows(2))
    with pytest.raises(ValueError, match="boom"), writer.atomic():
        add_rows(writer, "syslog", rows(4, offset=2))
        raise ValueError("boom")
    batches = writer.close()
    assert [(b.table, b.rows) for b in batches] == [("syslog", 2), ("alert_fields", 2)]
    assert files(path) == ["alert_fields-00000.parquet", "syslog-00000.parquet"]


# --- retention -------------------------------------------------------------------------------------

DAY = timedelta(days=1)


def _stage_window(dag_id: str, start: datetime, *, written: datetime | None, task_id: str = "collect_event"):
    """A window's staged part, its file dated ``written`` (None: an empty window folder)."""
    import os

    path = window_folder(dag_id, start, start + timedelta(minutes=5), task_id)
    if written is None:
        path.mkdir(parents=True, exist_ok=True)
        return path.parent
    writer = StagingWriter(path)
    add_rows(writer, "syslog", rows(1))
    (batch,) = writer.close()
    local = batch.path.removeprefix("file://")
    os.utime(local, (written.timestamp(), written.timestamp()))
    return path.parent


def test_prune_removes_windows_whose_files_are_older_than_the_retention(root: Path) -> None:
    from seccollect.staging.store import prune_staging

    now = datetime(2026, 3, 20, tzinfo=UTC)
    old = _stage_window("dag-a", now - 10 * DAY, written=now - 10 * DAY)
    recent = _stage_window("dag-a", now - 2 * DAY, written=now - 2 * DAY)
    # A backfill of an old window, staged an hour ago: its dates are old, its files are not.
    backfilled = _stage_window("dag-a", now - 30 * DAY, written=now - timedelta(hours=1))
    empty_old = _stage_window("dag-a", now - 9 * DAY, written=None)
    other_dag = _stage_window("dag-b", now - 10 * DAY, written=now - 10 * DAY)
    (root / "dag-a" / "not-a-window").mkdir()

    assert prune_staging("dag-a", 7 * DAY, now=now) == [old.name]
    assert not old.exists()
    assert recent.exists() and backfilled.exists() and empty_old.exists(), "only old files are pruned"
    assert other_dag.exists(), "a load prunes its own DAG's windows only"
    assert (root / "dag-a" / "not-a-window").exists()
    assert prune_staging("dag-a", 7 * DAY, now=now) == []
    assert prune_staging("dag-missing", 7 * DAY, now=now) == []


@pytest.mark.parametrize(("value", "expected"), [(None, timedelta(hours=168)), ("0", None), ("1.5", timedelta(hours=1.5))])
def test_staging_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value, expected) -> None:
    from seccollect.staging.store import STAGING_RETENTION_ENV, staging_retention

    if value is None:
        monkeypatch.delenv(STAGING_RETENTION_ENV, raising=False)
    else:
        monkeypatch.setenv(STAGING_RETENTION_ENV, value)
    assert staging_retention() == expected


def test_staging_on_s3_writes_reads_and_prunes(s3, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-worker staging root (``s3://``, moto here): parts round-trip, and old windows are pruned."""
    from seccollect.staging.store import prune_staging

    s3.create_bucket(Bucket="seccollect-staging")
    monkeypatch.setenv(
        "AIRFLOW_CONN_STAGING_S3",
        json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLE", "password": "secret",
                    "extra": {"endpoint_url": moto_url, "region_name": "us-east-1"}}),
    )
    monkeypatch.setenv("SECCOLLECT_STAGING_URL", "s3://seccollect-staging/root")
    monkeypatch.setenv("SECCOLLECT_STAGING_CONN_ID", "staging_s3")
    writer = StagingWriter(folder(), part_rows=2)
    add_rows(writer, "syslog", rows(3))
    batches = writer.close()
    assert [b.path.split("/root/", 1)[1] for b in batches] == [
        "acme-netskope-main/20260301T000500Z--20260301T001000Z/collect_event/syslog-00000.parquet",
        "acme-netskope-main/20260301T000500Z--20260301T001000Z/collect_event/syslog-00001.parquet",
    ]
    assert sum(read_batch(b).num_rows for b in batches) == 3

    now = datetime.now(UTC)
    assert prune_staging("acme-netskope-main", timedelta(days=7), now=now) == [], "just written: kept"
    assert prune_staging("acme-netskope-main", timedelta(days=7), now=now + timedelta(days=8)) == [
        "20260301T000500Z--20260301T001000Z"
    ]
    listed = s3.list_objects_v2(Bucket="seccollect-staging", Prefix="root/acme-netskope-main/")
    assert listed.get("KeyCount", 0) == 0


def test_nul_characters_are_escaped_in_text_columns_of_every_part_and_only_there() -> None:
    # Parts of 2 rows cut from one Arrow table: the second part is a slice whose character data still
    # holds the first part's NUL; its own values have none and are staged as they are.
    ctx = EnvelopeContext("acme", "main", "event", START, END, START)
    data = ctx.arrow_rows("syslog", ORIGIN, vendor_ids=["a\x00b", "c", "d"], event_times=[None] * 3,
                          raw_texts=['{"u":"a\\u0000b"}', "{}", "{}"])
    writer = StagingWriter(window_folder("acme-netskope-x", START, END, "collect_event"), part_rows=2)
    writer.add_arrow("syslog", data)
    parts = [read_batch(batch).to_pydict() for batch in writer.close()]
    assert [part["vendor_id"] for part in parts] == [["a\\u0000b", "c"], ["d"]]
    assert parts[0]["raw"][0] == '{"u":"a\\u0000b"}'  # JSON keeps its own escape
