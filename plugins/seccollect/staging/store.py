"""Staging between collect and load: Parquet parts on object storage, only paths and counts in XCom.

Why a separate stage: a load that fails (warehouse down, DuckDB locked) retries from these files
without calling the vendor API again, and collect tasks on one worker can hand data to a load task on
another when the staging root is ``s3://…``.

Layout: ``<root>/<dag_id>/<window_start>--<window_end>/<task_id>/<index>-<part>.parquet``. The path is
a function of the window, so re-collecting a window overwrites its files instead of adding to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from seccollect.records.catalog import table as table_of
from seccollect.records.tables import Column
from seccollect.records.values import NUL_ESCAPE

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

#: Staging root; a local folder by default, ``s3://bucket/prefix`` for multi-worker deployments.
STAGING_URL_ENV = "SECCOLLECT_STAGING_URL"
#: Airflow connection used to reach a remote staging root (e.g. an aws connection for s3://).
STAGING_CONN_ENV = "SECCOLLECT_STAGING_CONN_ID"

#: Hours a window's staged parts are kept after the last of them was written; the load tasks of the
#: same DAG prune older windows after they commit. ``0`` keeps everything.
STAGING_RETENTION_ENV = "SECCOLLECT_STAGING_RETENTION_HOURS"
DEFAULT_RETENTION_HOURS = 168

#: Rows per Parquet part: bounds the memory of a collect task whatever the window's volume.
DEFAULT_PART_ROWS = 50_000



def table_columns(table: str) -> tuple[Column, ...]:
    """Columns of what is staged under ``table`` (any table of :mod:`seccollect.records.catalog`)."""
    return table_of(table).columns


def arrow_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "json": pa.string(),
        "uuid": pa.string(),
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


_STAMP = "%Y%m%dT%H%M%SZ"  # window bounds in folder names


def _stamp(value: datetime) -> str:
    return value.strftime(_STAMP)


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


class _Pending:
    """Rows of one table not written yet, in order: Arrow tables, then dict rows added after them."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.rows: list[dict[str, Any]] = []
        self.count = 0

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1

    def add_table(self, table: str, data: pa.Table) -> None:
        self._rows_to_table(table)
        self.tables.append(data)
        self.count += data.num_rows

    def _rows_to_table(self, table: str) -> None:
        if self.rows:
            import pyarrow as pa

            self.tables.append(pa.Table.from_pylist(self.rows, schema=arrow_schema(table)))
            self.rows = []

    def take(self, table: str, limit: int) -> pa.Table:
        """Remove and return (up to) the first ``limit`` pending rows as one Arrow table."""
        import pyarrow as pa

        self._rows_to_table(table)
        data = self.tables[0] if len(self.tables) == 1 else pa.concat_tables(self.tables)
        head, rest = data.slice(0, limit), data.slice(limit)
        self.tables = [rest] if rest.num_rows else []
        self.count = rest.num_rows
        return head


@dataclass
class _Scope:
    """What :meth:`StagingWriter.atomic` tracks: its own pending rows and the parts it wrote."""

    pending: dict[str, _Pending] = field(default_factory=dict)
    batches: list[StagedBatch] = field(default_factory=list)
    wrote: set[str] = field(default_factory=set)  # tables the block has written parts of


class StagingWriter:
    """Buffers rows per table and writes them as bounded Parquet parts under one folder.

    Rows come one dict at a time (:meth:`add`) or many at once as Arrow tables (:meth:`add_arrow`,
    column by column, which is much cheaper for large volumes); parts hold ``part_rows`` rows either
    way. Rows added inside :meth:`atomic` are staged all or nothing.

    Before the first part is written the folder is emptied, so a retried collect replaces what an
    earlier try left behind rather than adding a second copy.
    """

    def __init__(self, folder: ObjectStoragePath, *, part_rows: int = DEFAULT_PART_ROWS) -> None:
        self.folder = folder
        self.part_rows = part_rows
        self._pending: dict[str, _Pending] = {}
        self._scope: _Scope | None = None
        self._parts: dict[str, int] = {}
        self.batches: list[StagedBatch] = []
        self._cleared = False
        self._derived: dict[str, tuple[str, Callable[[pa.Table], pa.Table]]] = {}

    def derive(self, table: str, derived_table: str, derive: Callable[[pa.Table], pa.Table]) -> None:
        """Stage ``derive(part)`` as a part of ``derived_table`` beside every part of ``table``.

        The derived parts are cut exactly as the parts they come from (the n-th of each holds the same
        records) and computed from the Arrow part about to be written, so e.g. fields parsed from the
        raw JSON cost one vectorised pass instead of a Python pass per record.
        """
        if table in self._parts:
            raise RuntimeError(f"derive() after parts of {table!r} were written")
        self._derived[table] = (derived_table, derive)

    def _clear(self) -> None:
        if self._cleared:
            return
        self._cleared = True
        if self.folder.exists():
            for child in self.folder.iterdir():
                child.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)

    def _pending_of(self, table: str) -> _Pending:
        pending = self._scope.pending if self._scope is not None else self._pending
        if table not in pending:
            pending[table] = _Pending()
        return pending[table]

    def add(self, table: str, row: dict[str, Any]) -> None:
        pending = self._pending_of(table)
        pending.add_row(row)
        if pending.count >= self.part_rows:
            self._write_full_parts(table, pending)

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Add many rows at once: an Arrow table with the columns of ``table`` (cast if its types differ).

        Buffered and cut into parts of ``part_rows`` rows exactly as rows given to :meth:`add`.
        """
        schema = arrow_schema(table)
        if not data.schema.equals(schema):
            data = data.select(schema.names).cast(schema)
        pending = self._pending_of(table)
        pending.add_table(table, data)
        if pending.count >= self.part_rows:
            self._write_full_parts(table, pending)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Stage the rows added inside the block all or nothing (e.g. one source object).

        Inside the block rows are buffered apart from the others, and full parts of them are written
        as usual, so memory stays bounded however many rows the block adds (before its first part, the
        rows buffered before the block are written out, which keeps the parts in the order rows were
        added).  If the block raises, the block's parts are deleted and its buffered rows dropped; the
        exception propagates.  Otherwise its remaining rows join the writer's buffer (no extra small
        part).  Blocks do not nest.
        """
        if self._scope is not None:
            raise RuntimeError("StagingWriter.atomic() blocks do not nest")
        scope = self._scope = _Scope()
        try:
            yield
        except BaseException:
            self._scope = None
            for batch in scope.batches:
                self.batches.remove(batch)
                self._path(batch.path).unlink(missing_ok=True)
            raise
        self._scope = None
        for table, rows in scope.pending.items():
            pending = self._pending_of(table)
            for data in rows.tables:
                pending.add_table(table, data)
            for row in rows.rows:
                pending.add_row(row)
            if pending.count >= self.part_rows:
                self._write_full_parts(table, pending)

    @staticmethod
    def _path(path: str) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        conn_id = os.environ.get(STAGING_CONN_ENV)
        return ObjectStoragePath(path, conn_id=conn_id) if conn_id else ObjectStoragePath(path)

    def write_table(self, table: str, data: pa.Table) -> None:
        """Stage an already-built Arrow table (e.g. the result of a DuckDB query) as one part."""
        self._write(table, data.cast(arrow_schema(table)))

    def _write_full_parts(self, table: str, pending: _Pending) -> None:
        scope = self._scope
        if scope is not None and table not in scope.wrote:
            # The block's first part: rows added before the block go out first, so parts keep the order
            # rows were added in (the load keeps the first row of a duplicated record_id).
            scope.wrote.add(table)
            self._scope = None
            try:
                self._flush(table)
            finally:
                self._scope = scope
        while pending.count >= self.part_rows:
            self._write(table, pending.take(table, self.part_rows))

    def _flush(self, table: str) -> None:
        pending = self._pending.get(table)
        while pending is not None and pending.count:
            self._write(table, pending.take(table, self.part_rows))

    def _write(self, table: str, data: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._clear()
        data = _escape_nul(table, data)
        part = self._parts.get(table, 0)
        self._parts[table] = part + 1
        path = self.folder / f"{table}-{part:05d}.parquet"
        # No dictionary and no min/max statistics for raw JSON columns: every value is distinct and
        # nothing filters on them; trying both cost ~15 % of the write (40,000 CloudTrail rows, measured).
        plain = [c.name for c in table_columns(table) if c.type != "json"]
        # Encoded in memory (a compressed part is small), then written in one call: the Parquet writer's
        # many small writes through the object-storage file object cost ~25 % more (measured locally).
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="zstd", use_dictionary=plain, write_statistics=plain)
        with path.open("wb") as fh:
            fh.write(sink.getvalue().to_pybytes())
        batch = StagedBatch(table, str(path), data.num_rows)
        self.batches.append(batch)
        if self._scope is not None:
            self._scope.batches.append(batch)
        if table in self._derived:
            derived_table, derive = self._derived[table]
            self._write(derived_table, derive(data).cast(arrow_schema(derived_table)))

    def close(self) -> list[StagedBatch]:
        """Flush what is buffered and return every part written (an empty window writes none)."""
        if self._scope is not None:
            raise RuntimeError("StagingWriter.close() inside an atomic() block")
        for table in list(self._pending):
            self._flush(table)
        self._clear()
        return self.batches


def _escape_nul(table: str, data: pa.Table) -> pa.Table:
    """Text columns with NUL characters replaced by :data:`NUL_ESCAPE` (a scan per text column; JSON
    columns hold the JSON escape already)."""
    for column in table_columns(table):
        if column.type != "text":
            continue
        values = data.column(column.name)
        if values.null_count == len(values) or not _may_hold_nul(values):
            continue
        import pyarrow.compute as pc

        if not pc.any(pc.match_substring(values, "\x00")).as_py():
            continue
        index = data.schema.get_field_index(column.name)
        data = data.set_column(index, data.field(index), pc.replace_substring(values, "\x00", NUL_ESCAPE))
    return data


def _may_hold_nul(values: pa.ChunkedArray) -> bool:
    """Whether a NUL byte is in the character data behind a string column (which may reach beyond a
    sliced column's own values: ``True`` means "look closer"). A byte search instead of two compute
    kernels per text column and part, for the parts (nearly all) that hold no NUL."""
    for chunk in values.chunks:
        buffers = chunk.buffers()
        character_data = buffers[2] if len(buffers) > 2 else None
        if character_data is None:
            if len(buffers) <= 2:  # not a plain string array: let the exact scan decide
                return True
            continue
        if b"\x00" in character_data.to_pybytes():
            return True
    return False


def part_gone(batch: StagedBatch) -> FileNotFoundError:
    """The error a load raises for a staged part that no longer exists: it says what to clear."""
    return FileNotFoundError(
        f"Staged part {batch.path} is gone (pruned after {STAGING_RETENTION_ENV}, or deleted): "
        "clear this window's collect task(s) too, not only this task"
    )


def local_file(batch: StagedBatch) -> str | None:
    """The part's path on this machine's file system when the staging root is local (``file://`` or a
    plain path), else ``None``: lets a warehouse engine read local parts itself (see DuckDB's load)."""
    path = batch.path
    if path.startswith("file://"):
        return path[len("file://") :]
    return path if "://" not in path else None


def read_batch(batch: StagedBatch, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one staged part back (only ``columns`` if given); raises if the file is gone (the collect
    task must be re-run)."""
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    conn_id = os.environ.get(STAGING_CONN_ENV)
    path = ObjectStoragePath(batch.path, conn_id=conn_id) if conn_id else ObjectStoragePath(batch.path)
    try:
        fh = path.open("rb")
    except FileNotFoundError as exc:
        raise part_gone(batch) from exc
    with fh:
        return pq.read_table(fh, columns=list(columns) if columns else None, schema=arrow_schema(batch.table))


def staging_retention() -> timedelta | None:
    """How long staged windows are kept (:data:`STAGING_RETENTION_ENV`); ``None`` = forever."""
    hours = float(os.environ.get(STAGING_RETENTION_ENV) or DEFAULT_RETENTION_HOURS)
    return timedelta(hours=hours) if hours > 0 else None


def prune_staging(dag_id: str, older_than: timedelta, *, now: datetime | None = None) -> list[str]:
    """Delete the staged windows of ``dag_id`` whose newest file is older than ``older_than``.

    Age is taken from the files, not from the window's dates, so a backfill of last year's windows is
    not pruned before its load runs; the dates only spare the listing of windows that ended after the
    cutoff (their files were written after the window closed, so they are younger). A window folder
    without files is left alone (a collect task may be about to write into it). Returns the window
    folders removed.
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    dag_folder = staging_root() / dag_id
    if not dag_folder.exists():
        return []
    removed = []
    for window in sorted(dag_folder.iterdir(), key=str):
        try:
            window_end = datetime.strptime(window.name.split("--")[1], _STAMP).replace(tzinfo=UTC)
        except (IndexError, ValueError):
            continue  # not a window folder of ours
        if window_end >= cutoff:
            continue
        try:
            files = [path for path in window.rglob("*") if path.is_file()]
            if not files or max(path.stat().st_mtime for path in files) >= cutoff.timestamp():
                continue
            window.rmdir(recursive=True)
        except FileNotFoundError:
            continue  # another load task of this DAG pruned it first
        removed.append(window.name)
    return removed
