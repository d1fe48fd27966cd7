"""One warehouse interface, two backends (DuckDB file, PostgreSQL).

Every load of a window happens in ONE transaction: the window's rows, its quarantined records, the
vendor's own side rows and post-load step, the snapshot state and its ledger entry commit together or
not at all. Rows are inserted with "insert unless the key exists", so re-running, clearing or
backfilling a window never duplicates a row, and the ledger tells exactly what each window added.

Nothing here knows a vendor: the tables come from :mod:`seccollect.records.catalog`, and what a vendor
needs beyond inserting its staged rows runs as its spec's ``post_load`` step, with the public
mechanics below (:meth:`Warehouse.execute`, :meth:`Warehouse.staged`, :meth:`Warehouse.lock`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seccollect.records.catalog import table as table_of
from seccollect.records.catalog import tables as all_tables
from seccollect.staging.store import StagedBatch
from seccollect.warehouse.coverage import Dialect, coverage_view_sql
from seccollect.warehouse.current import CURRENT_ASSETS_VIEW_SQL

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
class LoadContext:
    """What a vendor's post-load step sees of the load it runs in.

    :param window: the window being loaded.
    :param batches: every part staged for it (the vendor finds its own tables among them).
    :param run_id: the Airflow run loading it.
    :param now: the load's time (stamped on rows it writes).
    """

    window: WindowKey
    batches: tuple[StagedBatch, ...]
    run_id: str | None
    now: datetime

    def parts(self, table: str) -> list[StagedBatch]:
        return [b for b in self.batches if b.table == table]


@dataclass
class TableLoad:
    staged: int = 0
    inserted: int = 0

    @property
    def duplicates(self) -> int:
        return self.staged - self.inserted


@dataclass
class LoadReport:
    """What one window's load did, per table; returned to XCom and printed by the demo.

    :param figures: what the post-load step and the snapshot comparison counted (``alerts_touched``,
        ``added``, ``changed``, ``removed`` …).
    """

    tables: dict[str, TableLoad] = field(default_factory=dict)
    quarantined: int = 0
    figures: dict[str, int] = field(default_factory=dict)
    #: The window's records, counted in its main index (the ledger's figures of this load).
    records: TableLoad = field(default_factory=TableLoad)

    @property
    def received(self) -> int:
        """What the collect handed over: staged records plus quarantined records or objects."""
        return self.records.staged + self.quarantined

    def to_xcom(self) -> dict[str, Any]:
        return {
            "tables": {
                name: {"staged": t.staged, "inserted": t.inserted, "duplicates": t.duplicates}
                for name, t in self.tables.items()
            },
            "quarantined": self.quarantined,
            "received": self.received,
            **self.figures,
        }


#: Tables the load never inserts staged parts into by itself: the vendor's intermediate tables and the
#: core ones with statements of their own.
_SNAPSHOT_ITEMS = "snapshot_items"
_QUARANTINE_ENTRIES = "quarantine_entries"


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
        for c in table_of(table).columns
        if only is None or c.name in only
    )


def key_match(table: str, target: str, source: str) -> str:
    """``target`` row has the key of the staged ``source`` row (``uuid`` key columns cast as in
    :func:`select_list`, so the comparison is between UUIDs, not text)."""
    spec = table_of(table)
    columns = {c.name: c for c in spec.columns}
    return " AND ".join(
        f"{target}.{k} = CAST({source}.{k} AS UUID)" if columns[k].type == "uuid" else f"{target}.{k} = {source}.{k}"
        for k in spec.key
    )


def create_table_sql(
    name: str, sql_types: dict[str, str], schema: str | None = None, *, primary_key: bool = True
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a pipeline table, with its primary key unless told otherwise."""
    spec = table_of(name)
    columns, key = spec.columns, spec.key
    qualified = f"{schema}.{name}" if schema else name
    cols = [f"{c.name} {sql_types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in columns]
    if primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(key)})")
    body = ",\n  ".join(cols)
    return f"CREATE TABLE IF NOT EXISTS {qualified} (\n  {body}\n)"


#: Rows per multi-row INSERT of the load's own statements (quarantine entries; ~10 parameters each,
#: PostgreSQL allows 65,535).
ROWS_PER_STATEMENT = 500


class Warehouse(abc.ABC):
    """A place windows are loaded into.

    The load algorithm is written once here; backends supply only the mechanics: how to make an Arrow
    table queryable inside the transaction (:meth:`_stage`), how to run a statement, and transactions.
    """

    #: Name shown in logs and the demo summary.
    kind: str
    #: SQL type per :data:`~seccollect.records.tables.ColumnType`.
    sql_types: dict[str, str]
    #: How the backend writes the coverage view's series of windows.
    dialect: Dialect
    #: Whether append-only tables (:attr:`~seccollect.records.tables.Table.append_only`) get a
    #: ``PRIMARY KEY``. A backend that does without one must make :meth:`_insert_absent` exact on its own
    #: (see DuckDB's).
    append_only_primary_keys: bool = True

    # --- backend mechanics ----------------------------------------------------------------------

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement inside the current transaction; return the number of rows it changed."""

    @abc.abstractmethod
    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read inside the current transaction (it sees the transaction's own writes)."""

    @abc.abstractmethod
    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        """Make ``data`` (rows of ``table``) queryable in the current transaction; return its name."""

    @abc.abstractmethod
    def _unstage(self, name: str) -> None:
        """Release what :meth:`_stage` created."""

    def _index_staged(self, name: str, columns: Sequence[str]) -> None:  # noqa: B027 - optional
        """Index a staged relation that large joins probe by ``columns`` (a snapshot's items), for a backend
        whose planner may otherwise loop over it once per row of the other side."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Context manager: commit on success, roll back on any exception."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query outside a load (tests, the demo summary, operators that read the ledger)."""

    # --- what a vendor's post-load step may use -------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement in the load's transaction (``?`` placeholders); the number of rows changed."""
        return self._execute(sql, params)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read in the load's transaction (``?`` placeholders)."""
        return self._fetch(sql, params)

    @contextmanager
    def staged(self, name: str, table: str, data: pa.Table) -> Iterator[str]:
        """``data`` (rows of the catalog table ``table``) as a relation of the transaction, for the block."""
        relation = self._stage(name, table, data)
        try:
            yield relation
        finally:
            self._unstage(relation)

    def lock(self, name: str) -> None:  # noqa: B027 - a single-writer backend needs no lock
        """Hold a lock named ``name`` until the transaction ends, so concurrent loads that touch the same
        rows (e.g. the same Alerts keys) take turns."""

    # --- schema ---------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create every table if missing (idempotent), add columns a newer version added (nullable
        ones: safe on existing rows), then check that existing tables have the columns this version
        writes (:class:`WarehouseSchemaError` otherwise)."""
        with self.transaction():
            self._lock_schema()
            for spec in self._tables():
                primary_key = self.append_only_primary_keys or not spec.append_only
                self._execute(create_table_sql(spec.name, self.sql_types, primary_key=primary_key))
            self._add_new_columns()
            self._execute(coverage_view_sql(self.dialect))
            self._execute(CURRENT_ASSETS_VIEW_SQL)
            for name, select in self._views():
                self._execute(f"CREATE OR REPLACE VIEW {name} AS {select}")
        self._check_schema()

    @staticmethod
    def _views() -> list[tuple[str, str]]:
        """The views registered vendors add (``ConnectorSpec.views``)."""
        from seccollect import registry

        return [view for spec in registry.specs() for view in spec.views]

    @staticmethod
    def _tables() -> list[Any]:
        return [t for t in all_tables().values() if t.role != "intermediate"]

    def _lock_schema(self) -> None:  # noqa: B027 - optional: only a backend with concurrent writers needs it
        """Serialise concurrent :meth:`ensure_schema` calls inside the current transaction."""

    def _columns_found(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for table, column, data_type in self._fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ):
            found.setdefault(table, {})[column] = str(data_type).lower()
        return found

    def _add_new_columns(self) -> None:
        """Nullable columns this version added to an existing table are added in place (no data to fill)."""
        found = self._columns_found()
        for spec in self._tables():
            actual = found.get(spec.name)
            if not actual:
                continue
            for column in spec.columns:
                if column.name not in actual and column.nullable:
                    self._execute(f"ALTER TABLE {spec.name} ADD COLUMN {column.name} {self.sql_types[column.type]}")

    def _check_schema(self) -> None:
        """Fail clearly on a table created by an earlier version of the schema.

        ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is. A ``record_id`` still stored
        as text would silently stop matching the ids this version writes (every record loaded again),
        and a missing ``NOT NULL`` column or an extra one would fail the window with a bare constraint
        error.
        """
        found = self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
        by_table: dict[str, dict[str, str]] = {}
        for table, column, data_type in found:
            by_table.setdefault(table, {})[column] = str(data_type).lower()
        problems = []
        for spec in self._tables():
            actual = by_table.get(spec.name, {})
            expected = {c.name for c in spec.columns}
            missing, extra = sorted(expected - set(actual)), sorted(set(actual) - expected)
            if missing:
                problems.append(f"{spec.name}: missing column(s) {', '.join(missing)}")
            if extra:
                problems.append(f"{spec.name}: column(s) {', '.join(extra)} this version does not write")
            for c in spec.columns:
                if c.type == "uuid" and c.name in actual and actual[c.name] != "uuid":
                    problems.append(f"{spec.name}.{c.name} is {actual[c.name].upper()}, expected UUID")
        if problems:
            raise WarehouseSchemaError(
                f"The {self.kind} warehouse has tables from an earlier seccollect schema: "
                + "; ".join(problems)
                + ". Point the warehouse connection at a new database (DuckDB: a new file; PostgreSQL: a new "
                "database or schema) and reload the windows you need (they are replayable), or migrate "
                "those tables to the columns above."
            )

    # --- inserting staged parts -----------------------------------------------------------------

    def _insert_absent(self, table: str, data: pa.Table) -> int:
        columns = ", ".join(table_of(table).column_names)
        with self.staged(f"stg_{table}", table, data) as staged:
            return self._execute(
                f"INSERT INTO {table} ({columns}) SELECT {select_list(table)} FROM {staged} ON CONFLICT DO NOTHING"
            )

    def _insert_parts(
        self, table: str, batches: Sequence[StagedBatch], keep: pa.Array | None = None
    ) -> tuple[int, int]:
        """Insert-if-absent every staged part of ``table`` of a window; ``(staged rows, inserted rows)``.

        Part by part, in order, so a key repeated across parts keeps its first row. A backend that can
        read the parts itself may do it in fewer statements with the same result (DuckDB).

        :param keep: when given, only rows whose ``record_id`` is in it are inserted (a snapshot's new
            and changed items); the others still count as staged.
        """
        import pyarrow.compute as pc

        from seccollect.staging.store import read_batch

        staged = inserted = 0
        for batch in batches:
            data = read_batch(batch)
            staged += data.num_rows
            if keep is not None:
                data = data.filter(pc.is_in(data.column("record_id"), value_set=keep))
            if data.num_rows:
                inserted += self._insert_absent(table, data)
        return staged, inserted

    # --- the load -------------------------------------------------------------------------------

    def load_window(
        self,
        window: WindowKey,
        batches: Sequence[StagedBatch],
        *,
        run_id: str | None = None,
        cursor: str | None = None,
        post_load: Any = None,
        snapshot: bool = False,
        collected_at: datetime | None = None,
        base_table: str | None = None,
        late_items: int = 0,
    ) -> LoadReport:
        """Load a window's staged parts in one transaction: records (insert-if-absent), the vendor's
        side rows, its post-load step, quarantine entries, snapshot state and the ledger entry.

        :param window: the window and content type.
        :param batches: every part staged for it, in staging order.
        :param run_id: the Airflow run (kept in the ledger).
        :param cursor: JSON text of the vendor query range the collect used (kept in the ledger).
        :param post_load: the vendor's step ``post_load(warehouse, context) -> figures``, run after the rows.
        :param snapshot: the parts are a full pull: compare it with the snapshot state and load only
            new and changed items (see :meth:`_compare_snapshot`).
        :param collected_at: when the vendor was read (a snapshot never replaces a newer pull's state).
        :param base_table: the content type's main index, in which the ledger counts the window's records
            (default: the first index staged).
        :param late_items: items the window collected after their own window had run (e.g. S3 objects
            delivered late); the ledger adds them up and the coverage view shows the window as late.
        """
        from seccollect.records.indices import INDICES

        report = LoadReport()
        context = LoadContext(window, tuple(batches), run_id, datetime.now(UTC))
        # Table by table in order of first appearance, each table's parts in staged order (which
        # row of a repeated key is kept depends only on the order within a table).
        parts: dict[str, list[StagedBatch]] = {}
        for batch in batches:
            if table_of(batch.table).role == "records":
                parts.setdefault(batch.table, []).append(batch)
        with self.transaction():
            keep = None
            if snapshot:
                keep, figures = self._compare_snapshot(context, collected_at)
                report.figures.update(figures)
            for table, table_parts in parts.items():
                staged, inserted = self._insert_parts(table, table_parts, keep if table in INDICES else None)
                if table in INDICES:  # side tables (links, ledgers) are not the window's records
                    stats = report.tables.setdefault(table, TableLoad())
                    stats.staged += staged
                    stats.inserted += inserted
            if post_load is not None:
                report.figures.update(post_load(self, context) or {})
            report.quarantined = self._write_quarantine(context)
            base = base_table or next(iter(report.tables), None)
            report.records = report.tables.get(base, TableLoad()) if base else TableLoad()
            self._write_ledger(context, report, cursor, late_items)
        return report

    def _write_ledger(self, context: LoadContext, report: LoadReport, cursor: str | None, late_items: int = 0) -> None:
        """Add this load to the window's ledger row (summed figures, its run appended) and its history."""
        import json

        window = context.window
        key = (window.dag_id, window.content_type, window.window_start, window.window_end)
        figures = (report.received, report.records.inserted, report.records.duplicates, report.quarantined)
        self._execute(
            "INSERT INTO collection_loads (dag_id, content_type, window_start, window_end, run_id, staged_rows, "
            "inserted_rows, duplicate_rows, quarantined, cursor, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, context.run_id, *figures, cursor, context.now),
        )
        self.lock(f"ledger:{window.dag_id}:{window.content_type}:{window.window_start.isoformat()}")
        found = self._fetch(
            "SELECT staged_rows, inserted_rows, duplicate_rows, quarantined, loads, run_ids, first_loaded_at, "
            "late_items FROM collection_ledger WHERE dag_id = ? AND content_type = ? AND window_start = ? AND window_end = ?",
            key,
        )
        if found:
            *sums, loads, run_ids, first_loaded_at, late_before = found[0]
            totals = tuple(a + b for a, b in zip(sums, figures, strict=True))
            runs = json.loads(run_ids) if isinstance(run_ids, str) else list(run_ids or [])
            loads = (loads or len(runs) or 1) + 1
            self._execute(
                "UPDATE collection_ledger SET run_id = ?, staged_rows = ?, inserted_rows = ?, duplicate_rows = ?, "
                "quarantined = ?, cursor = ?, loaded_at = ?, loads = ?, run_ids = ?, first_loaded_at = ?, "
                "late_items = ? WHERE dag_id = ? AND content_type = ? AND window_start = ? AND window_end = ?",
                (context.run_id, *totals, cursor, context.now, loads, json.dumps([*runs, context.run_id]),
                 first_loaded_at or context.now, (late_before or 0) + late_items, *key),
            )
            return
        self._execute(
            "INSERT INTO collection_ledger (dag_id, content_type, window_start, window_end, run_id, staged_rows, "
            "inserted_rows, duplicate_rows, quarantined, cursor, loaded_at, loads, run_ids, first_loaded_at, "
            "late_items) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, context.run_id, *figures, cursor, context.now, 1, json.dumps([context.run_id]), context.now,
             late_items),
        )

    def _write_quarantine(self, context: LoadContext) -> int:
        """Upsert the window's staged quarantine entries (one row per reference: a record delivered twice
        keeps its later entry); return how many records or objects were quarantined."""
        from seccollect.staging.store import read_batch

        entries: dict[str, tuple[Any, ...]] = {}
        quarantined = 0
        for batch in context.parts(_QUARANTINE_ENTRIES):
            data = read_batch(batch)
            quarantined += data.num_rows
            for row in data.to_pylist():  # a re-delivered record's later entry wins
                entries[row["source_ref"]] = (row["source_ref"], row["reason"], row["raw"], row["raw_sha256"],
                                              row["raw_bytes"])
        window = context.window
        rows = list(entries.values())
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i : i + ROWS_PER_STATEMENT]
            self._execute(
                "INSERT INTO quarantine (dag_id, content_type, source_ref, reason, raw, raw_sha256, raw_bytes, "
                "window_start, window_end, quarantined_at) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT (dag_id, content_type, source_ref) DO UPDATE SET reason = excluded.reason, "
                "raw = excluded.raw, raw_sha256 = excluded.raw_sha256, raw_bytes = excluded.raw_bytes, "
                "window_start = excluded.window_start, window_end = excluded.window_end, "
                "quarantined_at = excluded.quarantined_at",
                [v for row in chunk for v in (window.dag_id, window.content_type, *row, window.window_start,
                                              window.window_end, context.now)],
            )
        return quarantined

    # --- snapshots ------------------------------------------------------------------------------

    def _compare_snapshot(self, context: LoadContext, collected_at: datetime | None) -> tuple[pa.Array, dict[str, int]]:
        """Compare a full pull (its staged ``snapshot_items``) with the snapshot state, in the load's
        transaction; return the record ids to insert (new and changed items) and the counts.

        * an item whose identity is not in the state, or was removed, is ``added``;
        * an item whose content hash differs from the state's is ``changed``;
        * an item of the state that the pull lacks is ``removed`` (recorded, never silently kept);
        * an item the pull saw but quarantined (``held``) keeps its state: it is not removed, not changed;
        * every change is logged in ``snapshot_changes`` and the state is updated.

        Re-running the window finds the state equal to its pull: nothing is added. A pull older than the
        one the state reflects (a load retried after a later window loaded) changes nothing.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from seccollect.staging.store import arrow_schema, read_batch

        window = context.window
        key = (window.dag_id, window.content_type)
        self.lock(f"snapshot:{window.dag_id}:{window.content_type}")
        head = self._fetch("SELECT pulled_at FROM snapshot_heads WHERE dag_id = ? AND content_type = ?", key)
        if head and collected_at is not None and head[0][0] is not None and _aware(head[0][0]) > collected_at:
            return pa.array([], pa.string()), {"stale_pull": 1}
        pulled_at = collected_at or context.now
        self._execute(
            "INSERT INTO snapshot_heads (dag_id, content_type, pulled_at, window_start, window_end) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dag_id, content_type) DO UPDATE SET pulled_at = excluded.pulled_at, "
            "window_start = excluded.window_start, window_end = excluded.window_end",
            (*key, pulled_at, window.window_start, window.window_end),
        )
        parts = [read_batch(b) for b in context.parts(_SNAPSHOT_ITEMS)]
        items = pa.concat_tables(parts) if parts else arrow_schema(_SNAPSHOT_ITEMS).empty_table()
        if items.num_rows:
            # An identity listed twice in one pull (it changed while the pull paged): the later read wins.
            items = items.take(pa.array(range(items.num_rows - 1, -1, -1)))
            first = first_row_mask(items, ("identity",))
            if first is not None:
                items = items.filter(first)
        with self.staged("stg_snapshot_items", _SNAPSHOT_ITEMS, items) as stg:
            self._index_staged(stg, ("identity",))
            state = (
                "LEFT JOIN snapshot_state s ON s.dag_id = ? AND s.content_type = ? AND s.identity = i.identity"
            )
            # A held item (seen but quarantined) is neither new nor changed, and not removed either.
            differs = ("NOT coalesce(i.held, FALSE) AND (s.identity IS NULL OR s.removed_window_start IS NOT NULL "
                       "OR s.content_hash <> i.content_hash)")
            is_new = "s.identity IS NULL OR s.removed_window_start IS NOT NULL"
            changed = self._fetch(f"SELECT i.record_id, {is_new} FROM {stg} i {state} WHERE {differs}", key)
            self._execute(
                "INSERT INTO snapshot_changes (dag_id, content_type, identity, change, record_id, window_start, "
                "window_end, run_id, noticed_at) "
                f"SELECT ?, ?, i.identity, CASE WHEN {is_new} THEN 'added' ELSE 'changed' END, "
                f"CAST(i.record_id AS UUID), ?, ?, ?, ? FROM {stg} i {state} "
                f"WHERE {differs} ON CONFLICT DO NOTHING",
                (*key, window.window_start, window.window_end, context.run_id, context.now, *key),
            )
            def gone(alias: str) -> str:
                return f"NOT EXISTS (SELECT 1 FROM {stg} i WHERE i.identity = {alias}.identity)"

            removed = self._execute(
                "INSERT INTO snapshot_changes (dag_id, content_type, identity, change, record_id, window_start, "
                "window_end, run_id, noticed_at) "
                "SELECT s.dag_id, s.content_type, s.identity, 'removed', s.record_id, ?, ?, ?, ? FROM snapshot_state s "
                f"WHERE s.dag_id = ? AND s.content_type = ? AND s.removed_window_start IS NULL AND {gone('s')} "
                "ON CONFLICT DO NOTHING",
                (window.window_start, window.window_end, context.run_id, context.now, *key),
            )
            self._execute(
                "UPDATE snapshot_state SET removed_window_start = ?, removed_window_end = ?, updated_at = ? "
                f"WHERE dag_id = ? AND content_type = ? AND removed_window_start IS NULL AND {gone('snapshot_state')}",
                (window.window_start, window.window_end, context.now, *key),
            )
            self._execute(
                "INSERT INTO snapshot_state (dag_id, content_type, identity, content_hash, record_id, "
                "changed_window_start, changed_window_end, removed_window_start, removed_window_end, updated_at) "
                f"SELECT ?, ?, i.identity, i.content_hash, CAST(i.record_id AS UUID), ?, ?, NULL, NULL, ? "
                f"FROM {stg} i {state} WHERE {differs} "
                "ON CONFLICT (dag_id, content_type, identity) DO UPDATE SET content_hash = excluded.content_hash, "
                "record_id = excluded.record_id, changed_window_start = excluded.changed_window_start, "
                "changed_window_end = excluded.changed_window_end, removed_window_start = NULL, "
                "removed_window_end = NULL, updated_at = excluded.updated_at",
                (*key, window.window_start, window.window_end, context.now, *key),
            )
        keep = pa.array([_uuid_hex(row[0]) for row in changed], pa.string())
        added = sum(1 for row in changed if row[1])
        held = pc.sum(pc.fill_null(items.column("held"), False)).as_py() or 0 if items.num_rows else 0
        figures = {"items": items.num_rows, "added": added, "changed": len(changed) - added, "removed": removed}
        return keep, {**figures, "held": held} if held else figures

    # --- other reads ----------------------------------------------------------------------------

    def coverage(
        self, dag_id: str | None = None, *, statuses: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Rows of the ``coverage`` view (see :mod:`seccollect.warehouse.coverage`), oldest window first.

        :param dag_id: one instance only.
        :param statuses: only windows in these states (e.g. ``("missing", "failed")``).
        :param since: only windows that start at or after it.
        """
        where, params = [], []
        if dag_id is not None:
            where.append("dag_id = ?")
            params.append(dag_id)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if since is not None:
            where.append("window_start >= ?")
            params.append(since)
        columns = ("dag_id", "content_type", "window_start", "window_end", "status", "rows_inserted", "rows_staged",
                   "quarantined", "late_items", "loads", "loaded_at", "failed_task", "failure")
        rows = self.query(
            f"SELECT {', '.join(columns)} FROM coverage"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY dag_id, content_type, window_start",
            params,
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _uuid_hex(value: Any) -> str:
    """A uuid value (``uuid.UUID``, dashed text, or 32 hex characters) as 32 lower-case hex characters."""
    import uuid

    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "").lower()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
