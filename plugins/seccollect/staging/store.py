"""Staging between collect and load: Parquet parts on object storage, only paths and counts in XCom.

Why a separate stage: a load that fails (warehouse down, DuckDB locked) retries from these files
without calling the vendor API again, and collect tasks on one worker can hand data to a load task on
another when the staging root is ``s3://…``.

Layout: ``<root>/<dag_id>/<window_start>--<window_end>/<task_id>/<index>-<part>.parquet``. The path is
a function of the window, so re-collecting a window overwrites its files instead of adding to them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from seccollect.records.indices import ALERT_SOURCES, INDICES, Column

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

#: Staging root; a local folder by default, ``s3://bucket/prefix`` for multi-worker deployments.
STAGING_URL_ENV = "SECCOLLECT_STAGING_URL"
#: Airflow connection used to reach a remote staging root (e.g. an aws connection for s3://).
STAGING_CONN_ENV = "SECCOLLECT_STAGING_CONN_ID"

#: Rows per Parquet part: bounds the memory of a collect task whatever the window's volume.
DEFAULT_PART_ROWS = 50_000

#: Tables that are not record indices but are staged the same way.
EXTRA_TABLES: dict[str, tuple[Column, ...]] = {"alert_sources": ALERT_SOURCES}


def table_columns(table: str) -> tuple[Column, ...]:
    if table in INDICES:
        return INDICES[table].columns
    return EXTRA_TABLES[table]


def arrow_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "json": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in table_columns(table)])


def staging_root() -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    url = os.environ.get(STAGING_URL_ENV)
    if not url:
        home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
        url = "file://" + os.path.join(os.path.abspath(home), "staging")
    conn_id = os.environ.get(STAGING_CONN_ENV)
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class StagedBatch:
    """One staged Parquet part, as passed through XCom (plain JSON types only)."""

    table: str
    path: str
    rows: int

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> StagedBatch:
        return cls(table=data["table"], path=data["path"], rows=int(data["rows"]))


def window_folder(dag_id: str, window_start: datetime, window_end: datetime, task_id: str) -> ObjectStoragePath:
    return staging_root() / dag_id / f"{_stamp(window_start)}--{_stamp(window_end)}" / task_id


class StagingWriter:
    """Buffers rows per table and writes them as bounded Parquet parts under one folder.

    Before the first part is written the folder is emptied, so a retried collect replaces what an
    earlier try left behind rather than adding a second copy.
    """

    def __init__(self, folder: ObjectStoragePath, *, part_rows: int = DEFAULT_PART_ROWS) -> None:
        self.folder = folder
        self.part_rows = part_rows
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._parts: dict[str, int] = {}
        self.batches: list[StagedBatch] = []
        self._cleared = False

    def _clear(self) -> None:
        if self._cleared:
            return
        self._cleared = True
        if self.folder.exists():
            for child in self.folder.iterdir():
                child.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, table: str, row: dict[str, Any]) -> None:
        buf = self._buffers.setdefault(table, [])
        buf.append(row)
        if len(buf) >= self.part_rows:
            self._flush(table)

    def add_many(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.add(table, row)

    def write_table(self, table: str, data: pa.Table) -> None:
        """Stage an already-built Arrow table (e.g. the result of a DuckDB query) as one part."""
        self._write(table, data.cast(arrow_schema(table)))

    def _flush(self, table: str) -> None:
        rows = self._buffers.get(table)
        if not rows:
            return
        import pyarrow as pa

        schema = arrow_schema(table)
        data = pa.Table.from_pylist(rows, schema=schema)
        self._buffers[table] = []
        self._write(table, data)

    def _write(self, table: str, data: pa.Table) -> None:
        import pyarrow.parquet as pq

        self._clear()
        part = self._parts.get(table, 0)
        self._parts[table] = part + 1
        path = self.folder / f"{table}-{part:05d}.parquet"
        with path.open("wb") as fh:
            pq.write_table(data, fh, compression="zstd")
        self.batches.append(StagedBatch(table, str(path), data.num_rows))

    def close(self) -> list[StagedBatch]:
        """Flush what is buffered and return every part written (an empty window writes none)."""
        for table in list(self._buffers):
            self._flush(table)
        self._clear()
        return self.batches


def read_batch(batch: StagedBatch) -> pa.Table:
    """Read one staged part back; raises if the file is gone (the collect task must be re-run)."""
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    conn_id = os.environ.get(STAGING_CONN_ENV)
    path = ObjectStoragePath(batch.path, conn_id=conn_id) if conn_id else ObjectStoragePath(batch.path)
    with path.open("rb") as fh:
        return pq.read_table(fh, schema=arrow_schema(batch.table))


def iter_batches(batches: Iterable[StagedBatch], table: str) -> Iterator[pa.Table]:
    for batch in batches:
        if batch.table == table:
            yield read_batch(batch)
