"""One warehouse interface, two backends (DuckDB file, PostgreSQL).

Every load of a window happens in ONE transaction: the window's rows, its quarantined records, the
objects it consumed and its ledger entry commit together or not at all. Rows are inserted with
"insert unless the record_id exists", so re-running, clearing or backfilling a window never
duplicates a row, and the ledger tells exactly what each window added.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seccollect.records.indices import ALERT_SOURCES, INDICES, Column
from seccollect.staging.store import StagedBatch

if TYPE_CHECKING:
    import pyarrow as pa


class WarehouseSchemaError(RuntimeError):
    """The warehouse's existing tables do not match the schema this version writes."""


@dataclass(frozen=True)
class WindowKey:
    """Identifies one collected window of one content type of one instance (DAG)."""

    dag_id: str
    content_type: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class QuarantineEntry:
    """A record or object that could not be parsed, kept with the reason instead of being dropped."""

    source_ref: str
    reason: str
    raw: str | None = None


@dataclass(frozen=True)
class ConsumedObject:
    """An S3 object (or other source unit) fully processed by this window: never read again."""

    bucket: str
    key: str
    etag: str
    records: int
    status: str  # "loaded" or "quarantined"


@dataclass
class TableLoad:
    staged: int = 0
    inserted: int = 0

    @property
    def duplicates(self) -> int:
        return self.staged - self.inserted


@dataclass
class LoadReport:
    """What one window's load did, per table; returned to XCom and printed by the demo."""

    tables: dict[str, TableLoad] = field(default_factory=dict)
    alerts_touched: int = 0
    quarantined: int = 0

    def to_xcom(self) -> dict[str, Any]:
        return {
            "tables": {
                name: {"staged": t.staged, "inserted": t.inserted, "duplicates": t.duplicates}
                for name, t in self.tables.items()
            },
            "alerts_touched": self.alerts_touched,
            "quarantined": self.quarantined,
        }


LEDGER_COLUMNS: tuple[Column, ...] = (
    Column("dag_id", "text", nullable=False),
    Column("content_type", "text", nullable=False),
    Column("window_start", "timestamp", nullable=False),
    Column("window_end", "timestamp", nullable=False),
    Column("run_id", "text"),
    Column("staged_rows", "bigint", nullable=False),
    Column("inserted_rows", "bigint", nullable=False),
    Column("duplicate_rows", "bigint", nullable=False),
    Column("quarantined", "bigint", nullable=False),
    Column("cursor", "json"),
    Column("loaded_at", "timestamp", nullable=False),
)
QUARANTINE_COLUMNS: tuple[Column, ...] = (
    Column("dag_id", "text", nullable=False),
    Column("content_type", "text", nullable=False),
    Column("source_ref", "text", nullable=False),
    Column("reason", "text", nullable=False),
    Column("raw", "text"),
    Column("window_start", "timestamp", nullable=False),
    Column("window_end", "timestamp", nullable=False),
    Column("quarantined_at", "timestamp", nullable=False),
)
OBJECT_LEDGER_COLUMNS: tuple[Column, ...] = (
    Column("dag_id", "text", nullable=False),
    Column("bucket", "text", nullable=False),
    Column("key", "text", nullable=False),
    Column("etag", "text", nullable=False),
    Column("records", "bigint", nullable=False),
    Column("status", "text", nullable=False),
    Column("window_start", "timestamp", nullable=False),
    Column("window_end", "timestamp", nullable=False),
    Column("loaded_at", "timestamp", nullable=False),
)

#: Every table the pipeline owns, with its primary key.
TABLES: dict[str, tuple[tuple[Column, ...], tuple[str, ...]]] = {
    **{name: (index.columns, ("record_id",)) for name, index in INDICES.items()},
    "alert_sources": (ALERT_SOURCES, ("alert_key", "record_id")),
    "collection_ledger": (LEDGER_COLUMNS, ("dag_id", "content_type", "window_start", "window_end")),
    "quarantine": (QUARANTINE_COLUMNS, ("dag_id", "content_type", "source_ref")),
    "object_ledger": (OBJECT_LEDGER_COLUMNS, ("dag_id", "bucket", "key", "etag")),
}


#: Tables whose rows are only ever added by :meth:`Warehouse._insert_absent` (never updated): the
#: record indices whose rows come from collect tasks, and the alert links. Alerts rows are upserted by
#: the recompute instead, and the state tables by their own statements.
APPEND_ONLY_TABLES: tuple[str, ...] = (*(name for name in INDICES if name != "alerts"), "alert_sources")


def first_row_mask(data: pa.Table, key: Sequence[str]) -> pa.Array | None:
    """Which rows of ``data`` are the first of their ``key`` value (what ``ON CONFLICT DO NOTHING``
    keeps of rows that repeat a key within one statement); ``None`` when every key is distinct."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # A key with one all-distinct column is all-distinct (e.g. alert links: record_id): no grouping.
    if any(pc.count_distinct(data.column(k)).as_py() == data.num_rows for k in key):
        return None
    positions = pa.array(range(data.num_rows), pa.int64())
    keys = pa.table({**{k: data.column(k) for k in key}, "__row": positions})
    first = keys.group_by(list(key), use_threads=False).aggregate([("__row", "min")]).column("__row_min")
    if len(first) == data.num_rows:
        return None
    return pc.is_in(positions, value_set=first.combine_chunks())


def select_list(table: str, qualifier: str = "", only: Sequence[str] | None = None) -> str:
    """The columns of ``table`` (or just those named in ``only``) as read from a staged part: ``uuid``
    columns are staged as 32 hex characters and cast here, so each backend stores its native ``UUID``
    (PostgreSQL's staged temp tables already have the table's types: the cast is then a no-op)."""
    prefix = f"{qualifier}." if qualifier else ""
    return ", ".join(
        f"CAST({prefix}{c.name} AS UUID) AS {c.name}" if c.type == "uuid" else f"{prefix}{c.name}"
        for c in TABLES[table][0]
        if only is None or c.name in only
    )


def key_match(table: str, target: str, source: str) -> str:
    """``target`` row has the key of the staged ``source`` row (``uuid`` key columns cast as in
    :func:`select_list`, so the comparison is between UUIDs, not text)."""
    columns = {c.name: c for c in TABLES[table][0]}
    return " AND ".join(
        f"{target}.{k} = CAST({source}.{k} AS UUID)" if columns[k].type == "uuid" else f"{target}.{k} = {source}.{k}"
        for k in TABLES[table][1]
    )


def create_table_sql(
    name: str, sql_types: dict[str, str], schema: str | None = None, *, primary_key: bool = True
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a pipeline table, with its primary key unless told otherwise."""
    columns, key = TABLES[name]
    qualified = f"{schema}.{name}" if schema else name
    cols = [f"{c.name} {sql_types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in columns]
    if primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(key)})")
    body = ",\n  ".join(cols)
    return f"CREATE TABLE IF NOT EXISTS {qualified} (\n  {body}\n)"


_RECORD_TABLES = tuple(INDICES)

#: Object ledger rows inserted per statement (9 parameters each; PostgreSQL allows 65,535).
LEDGER_ROWS_PER_STATEMENT = 500

#: Alerts keys recomputed per statement at the end of a window's load (bounds its memory).
RECOMPUTE_CHUNK = 20_000

# Recomputes the Alerts rows of the keys a window touched from ALL their links. Because the result is a
# function of the link set (and links are insert-if-absent), re-runs, overlaps and out-of-order
# backfills cannot change first/last seen or counts. Written once for both backends (both support
# DISTINCT ON and ON CONFLICT ... DO UPDATE).
# The latest link of each key is chosen in the same filtered scan that reads its columns (links are
# narrow: joining them back by key instead scanned the whole link table per chunk); its raw alert comes from the
# window's own staged links when the latest link is one of them ({staged}, one row per touched key),
# and otherwise from the Alerts row itself: a latest link from an earlier window was already the latest
# when that window's load recomputed the row, in the same transaction as it inserted the link. Links do
# not store raw alerts (Syslog has them), which keeps a large window's transaction small.
_RECOMPUTE_ALERTS = """
INSERT INTO alerts (record_id, tenant, instance, content_type, msg_class, msg_origin_source,
    msg_origin_vendor, msg_origin_category, vendor_id, event_time, ingest_time, window_start,
    window_end, raw, alert_kind, user_name, dedup_id, first_seen, last_seen, raw_count, latest_record_id)
SELECT l.alert_key, l.tenant, l.instance, l.content_type, l.msg_class, l.msg_origin_source,
    l.msg_origin_vendor, l.msg_origin_category, l.dedup_id, agg.last_seen, ?, ?, ?,
    CASE WHEN c.record_id IS NOT NULL THEN c.raw WHEN a.latest_record_id = l.record_id THEN a.raw END,
    l.alert_kind, l.user_name, l.dedup_id, agg.first_seen, agg.last_seen, agg.raw_count, l.record_id
FROM (
    SELECT alert_key, min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS raw_count
    FROM alert_sources WHERE alert_key IN (SELECT CAST(alert_key AS UUID) FROM {staged})
    GROUP BY alert_key
) agg
JOIN (
    SELECT DISTINCT ON (alert_key) * FROM alert_sources
    WHERE alert_key IN (SELECT CAST(alert_key AS UUID) FROM {staged})
    ORDER BY alert_key, event_time DESC, record_id DESC
) l ON l.alert_key = agg.alert_key
LEFT JOIN {staged} c ON CAST(c.alert_key AS UUID) = l.alert_key AND CAST(c.record_id AS UUID) = l.record_id
LEFT JOIN alerts a ON a.record_id = l.alert_key
ON CONFLICT (record_id) DO UPDATE SET
    event_time = excluded.event_time, ingest_time = excluded.ingest_time,
    window_start = excluded.window_start, window_end = excluded.window_end, raw = excluded.raw,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen, raw_count = excluded.raw_count,
    latest_record_id = excluded.latest_record_id
"""


class Warehouse(abc.ABC):
    """A place windows are loaded into.

    The load algorithm is written once here; backends supply only the mechanics: how to make an Arrow
    table queryable inside the transaction (:meth:`_stage`), how to run a statement, and transactions.
    """

    #: Name shown in logs and the demo summary.
    kind: str
    #: SQL type per :data:`~seccollect.records.indices.ColumnType`.
    sql_types: dict[str, str]
    #: Whether :data:`APPEND_ONLY_TABLES` get a ``PRIMARY KEY``. A backend that does without one
    #: must make :meth:`_insert_absent` exact on its own (see DuckDB's).
    append_only_primary_keys: bool = True

    # --- backend mechanics ----------------------------------------------------------------------

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement inside the current transaction; return the number of rows it changed."""

    @abc.abstractmethod
    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        """Make ``data`` (rows of ``table``) queryable in the current transaction; return its name."""

    @abc.abstractmethod
    def _unstage(self, name: str) -> None:
        """Release what :meth:`_stage` created."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Context manager: commit on success, roll back on any exception."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (tests, the demo summary, operators that need the ledger)."""

    # --- shared semantics -----------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create every table if missing (idempotent), then check that existing tables have the
        columns this version writes (:class:`WarehouseSchemaError` otherwise)."""
        with self.transaction():
            self._lock_schema()
            for name in TABLES:
                primary_key = self.append_only_primary_keys or name not in APPEND_ONLY_TABLES
                self._execute(create_table_sql(name, self.sql_types, primary_key=primary_key))
        self._check_schema()

    def _lock_schema(self) -> None:  # noqa: B027 - optional: only a backend with concurrent writers needs it
        """Serialise concurrent :meth:`ensure_schema` calls inside the current transaction."""

    def _check_schema(self) -> None:
        """Fail clearly on a table created by an earlier version of the schema.

        ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is. A ``record_id`` still stored
        as text would silently stop matching the ids this version writes (every record loaded again),
        and a missing or extra ``NOT NULL`` column would fail the window with a bare constraint error.
        """
        found: dict[str, dict[str, str]] = {}
        for table, column, data_type in self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ):
            found.setdefault(table, {})[column] = str(data_type).lower()
        problems = []
        for name, (columns, _) in TABLES.items():
            actual = found.get(name, {})
            expected = {c.name for c in columns}
            missing, extra = sorted(expected - set(actual)), sorted(set(actual) - expected)
            if missing:
                problems.append(f"{name}: missing column(s) {', '.join(missing)}")
            if extra:
                problems.append(f"{name}: column(s) {', '.join(extra)} this version does not write")
            for c in columns:
                if c.type == "uuid" and c.name in actual and actual[c.name] != "uuid":
                    problems.append(f"{name}.{c.name} is {actual[c.name].upper()}, expected UUID")
        if problems:
            raise WarehouseSchemaError(
                f"The {self.kind} warehouse has tables from an earlier seccollect schema: "
                + "; ".join(problems)
                + ". Point the warehouse connection at a new database (DuckDB: a new file; PostgreSQL: a new "
                "database or schema) and reload the windows you need (they are replayable), or migrate "
                "those tables to the columns above."
            )

    def _insert_absent(self, table: str, data: pa.Table) -> int:
        columns = ", ".join(c.name for c in TABLES[table][0])
        staged = self._stage(f"stg_{table}", table, data)
        try:
            return self._execute(
                f"INSERT INTO {table} ({columns}) SELECT {select_list(table)} FROM {staged} ON CONFLICT DO NOTHING"
            )
        finally:
            self._unstage(staged)

    def _insert_parts(self, table: str, batches: Sequence[StagedBatch]) -> tuple[int, int]:
        """Insert-if-absent every staged part of ``table`` of a window; ``(staged rows, inserted rows)``.

        Part by part, in order, so a record id repeated across parts keeps its first row. A backend
        that can read the parts itself may do it in fewer statements with the same result (DuckDB).
        """
        from seccollect.staging.store import read_batch

        staged = inserted = 0
        for batch in batches:
            data = read_batch(batch)
            staged += data.num_rows
            inserted += self._insert_absent(table, data)
        return staged, inserted

    def _recompute_alerts(self, latest: pa.Table, now: datetime, window: WindowKey) -> int:
        """Recompute the Alerts rows of the keys in ``latest`` (staged ``alert_latest`` rows: one per key
        the window's links touched, its latest link with the raw alert).

        Runs after all links of the window are in, so a key whose links span several parts is computed
        once from all of them. Keys go in chunks of :data:`RECOMPUTE_CHUNK`, which bounds the memory of
        one statement; the result does not depend on the chunking, as each key is computed from its
        own links only.
        """
        touched = 0
        for start in range(0, latest.num_rows, RECOMPUTE_CHUNK):
            staged = self._stage("stg_alert_latest", "alert_latest", latest.slice(start, RECOMPUTE_CHUNK))
            try:
                touched += self._execute(
                    _RECOMPUTE_ALERTS.format(staged=staged), (now, window.window_start, window.window_end)
                )
            finally:
                self._unstage(staged)
        return touched

    def load_window(
        self,
        window: WindowKey,
        batches: Sequence[StagedBatch],
        *,
        run_id: str | None = None,
        quarantine: Sequence[QuarantineEntry] = (),
        consumed: Sequence[ConsumedObject] = (),
        cursor: str | None = None,
    ) -> LoadReport:
        """Load a window's staged batches, quarantine, consumed objects and ledger in one transaction."""
        from seccollect.staging.store import INTERMEDIATE_TABLES, read_batch

        report = LoadReport()
        now = datetime.now(UTC)
        # Table by table in order of first appearance, each table's parts in staged order (which
        # row of a repeated record id is kept depends only on the order within a table).
        parts: dict[str, list[StagedBatch]] = {}
        for batch in batches:
            if batch.table == "alert_latest":
                continue  # after every link of the window is in
            if batch.table in INTERMEDIATE_TABLES:
                continue  # a downstream task's input (e.g. the alert mapping's), not warehouse rows
            parts.setdefault(batch.table, []).append(batch)
        with self.transaction():
            for table, table_parts in parts.items():
                staged, inserted = self._insert_parts(table, table_parts)
                if table != "alert_sources":
                    stats = report.tables.setdefault(table, TableLoad())
                    stats.staged += staged
                    stats.inserted += inserted
            for batch in batches:
                if batch.table == "alert_latest":
                    report.alerts_touched += self._recompute_alerts(read_batch(batch), now, window)
            for entry in quarantine:
                self._execute(
                    "INSERT INTO quarantine (dag_id, content_type, source_ref, reason, raw, window_start, "
                    "window_end, quarantined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (dag_id, content_type, source_ref) DO UPDATE SET reason = excluded.reason, "
                    "raw = excluded.raw, quarantined_at = excluded.quarantined_at",
                    (window.dag_id, window.content_type, entry.source_ref, entry.reason, entry.raw,
                     window.window_start, window.window_end, now),
                )
            report.quarantined = len(quarantine)
            # Many rows per statement: one statement per object cost DuckDB ~5 ms each (1 s for the 200
            # objects of a busy CloudTrail hour).
            for i in range(0, len(consumed), LEDGER_ROWS_PER_STATEMENT):
                chunk = consumed[i : i + LEDGER_ROWS_PER_STATEMENT]
                self._execute(
                    "INSERT INTO object_ledger (dag_id, bucket, key, etag, records, status, window_start, "
                    "window_end, loaded_at) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING",
                    [
                        value
                        for obj in chunk
                        for value in (window.dag_id, obj.bucket, obj.key, obj.etag, obj.records, obj.status,
                                      window.window_start, window.window_end, now)
                    ],
                )
            staged_rows = sum(t.staged for t in report.tables.values())
            inserted_rows = sum(t.inserted for t in report.tables.values())
            self._execute(
                "INSERT INTO collection_ledger (dag_id, content_type, window_start, window_end, run_id, "
                "staged_rows, inserted_rows, duplicate_rows, quarantined, cursor, loaded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dag_id, content_type, window_start, window_end) DO UPDATE SET "
                "run_id = excluded.run_id, staged_rows = excluded.staged_rows, "
                "inserted_rows = collection_ledger.inserted_rows + excluded.inserted_rows, "
                "duplicate_rows = excluded.duplicate_rows, quarantined = excluded.quarantined, "
                "cursor = excluded.cursor, loaded_at = excluded.loaded_at",
                (window.dag_id, window.content_type, window.window_start, window.window_end, run_id,
                 staged_rows, inserted_rows, staged_rows - inserted_rows, len(quarantine), cursor, now),
            )
        return report

    def consumed_objects(self, dag_id: str, bucket: str, keys: Sequence[str]) -> set[tuple[str, str]]:
        """``(key, etag)`` pairs already processed, so no object is read twice."""
        # Only the asked keys are read (in chunks), not the whole ledger: the ledger grows with the
        # bucket's history, and a 5-minute window must not pay for years of it.
        wanted = sorted(set(keys))
        found: set[tuple[str, str]] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            found.update(
                self.query(
                    f"SELECT key, etag FROM object_ledger WHERE dag_id = ? AND bucket = ? "
                    f"AND key IN ({', '.join('?' * len(chunk))})",
                    (dag_id, bucket, *chunk),
                )
            )
        return {(k, e) for k, e in found}

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
