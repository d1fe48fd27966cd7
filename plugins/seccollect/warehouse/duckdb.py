"""DuckDB file warehouse: the embedded, zero-set-up default.

DuckDB allows one writing process per file. Load tasks therefore run in a one-slot Airflow pool
(``warehouse_loads``), and opening the file additionally waits out a lock held by another process
(a reader, a task outside the pool) instead of failing the task at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from seccollect.records.catalog import table as table_of
from seccollect.warehouse.base import Warehouse, first_row_mask, key_match, select_list
from seccollect.warehouse.coverage import Dialect

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from seccollect.staging.store import StagedBatch

SQL_TYPES = {
    "text": "VARCHAR",
    # Raw vendor records (~0.5-2 KB of JSON each) dominate a table's size and its load time. DuckDB only
    # considers ZSTD for strings of 4 KB or more by default and otherwise tries FSST/dictionary, which is
    # about twice as slow to write for such text and compresses JSON about 3x worse than ZSTD.
    "json": "VARCHAR USING COMPRESSION zstd",
    "uuid": "UUID",
    "timestamp": "TIMESTAMPTZ",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
}


def connect_with_lock_wait(
    database: str, *, lock_timeout: float = 300.0, read_only: bool = False, connect: Any = None
) -> duckdb.DuckDBPyConnection:
    """Open ``database``, retrying while another process holds DuckDB's file lock."""
    import duckdb

    connect = connect or (lambda: duckdb.connect(database, read_only=read_only))
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return connect()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class _ArrowSlot:
    """A staged Arrow table as DuckDB scans it (Arrow PyCapsule stream interface), which can be emptied.

    An object registered inside a transaction stays referenced by DuckDB until the transaction ends,
    even after ``unregister``: registering the table itself would keep every staged part of a window in
    memory until its commit (the window's whole volume, on top of DuckDB's own copy). DuckDB keeps
    this slot instead, and :meth:`DuckDBWarehouse._unstage` empties it, which frees the part at once.
    """

    def __init__(self, data: pa.Table) -> None:
        self.data: pa.Table | None = data

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        if self.data is None:
            raise RuntimeError("staged Arrow data was already released")
        return self.data.__arrow_c_stream__(requested_schema)


class DuckDBWarehouse(Warehouse):
    """Warehouse in a DuckDB database file.

    :param database: path of the database file (created if missing).
    :param lock_timeout: seconds to wait for another process's write lock before failing.
    :param connection: an already-open connection (e.g. from ``DuckDBHook.get_conn()``); when given,
        ``database`` is only used for messages.
    """

    kind = "duckdb"
    sql_types = SQL_TYPES
    dialect = Dialect(
        seconds="to_seconds({n})",
        series="unnest(generate_series({start}, now(), to_seconds({step}))) AS w(window_start)",
    )
    append_only_primary_keys = False  # see _insert_absent

    def __init__(
        self, database: str, *, lock_timeout: float = 300.0, connection: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        self.database = database
        self.con = connection or connect_with_lock_wait(database, lock_timeout=lock_timeout)
        self._slots: dict[str, _ArrowSlot] = {}

    def _insert_absent(self, table: str, data: pa.Table) -> int:
        """Insert the rows whose key is absent: first row per key (in Arrow), then an anti-join.

        The anti-join reads only the table's key column and sees the rows earlier parts of the same
        transaction inserted, so a window's parts never duplicate each other either. DuckDB builds the
        join's hash table from the part and streams the key column past it: ~0.1 s for a 50,000-row part
        against 20 million rows (16-byte UUID keys, 2 cores), about what ``ON CONFLICT DO NOTHING``'s
        single-threaded index probe per row costs, and without the index.

        That is why the append-only tables (:attr:`~seccollect.records.tables.Table.append_only`) have
        no ``PRIMARY KEY`` here: maintaining DuckDB's ART index on a random 128-bit key costs more than the
        whole duplicate check (with it, this load of 1,000,000 rows took a third longer, insert and
        checkpoint; bench/RESULTS.md), and DuckDB's own guide advises against indexes on bulk-loaded tables. Uniqueness
        holds without it because DuckDB has ONE writer per file (the file lock; loads also run in a
        one-slot pool): no other transaction can add a key between this check and the commit. Files
        created before this change keep their primary key, which the anti-join does not need.
        """
        spec = table_of(table)
        first = first_row_mask(data, spec.key)
        if first is not None:
            data = data.filter(first)
        names = ", ".join(spec.column_names)
        with self.staged(f"stg_{table}", table, data) as staged:
            return self._execute(
                f"INSERT INTO {table} ({names}) SELECT {select_list(table, 's')} FROM {staged} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {key_match(table, 't', 's')})"
            )

    def _insert_parts(
        self, table: str, batches: Sequence[StagedBatch], keep: pa.Array | None = None
    ) -> tuple[int, int]:
        """All of a window's parts of ``table`` in ONE statement when they are local files.

        DuckDB then reads the Parquet files itself, on all its threads, and an insert of more than a
        row group (122,880 rows) is written to the database file while it runs, compressed in
        parallel, so the commit has little left to do. Part by part (the default), every insert is
        smaller than a row group and the commit compresses and writes the whole window on one
        thread: 1,000,000 Netskope rows loaded in 8.5 s that way and in 3.9 s this way, on the same
        machine (bench/RESULTS.md, "Loading"). The insert streams the parts (see below for how the
        new rows are found), so memory stays near that of the part-by-part load; a ``memory_limit``
        in the connection's extra bounds DuckDB's share (it then spills to disk).

        Which rows are new is decided on the key columns alone, in two steps: the window's keys
        absent from the table (a temporary table: a hash table of the window's keys, probed by the
        table's key column, or the other way round while the table is the smaller), then the insert
        of the rows with those keys (a hash table of those keys, probed by the streamed rows). One
        anti-join of the rows against the table would put every staged row, raw records and all, in
        its hash table as soon as the table is larger than the window (DuckDB builds on the smaller
        side), and a correlated ``NOT EXISTS`` does it always: for 400,000 CloudTrail events that is
        ~2 GiB against ~1.3 GiB this way, and against a table of 20 million rows the one anti-join
        was also ~60 % slower than either (bench/RESULTS.md, "CloudTrail end to end").

        Same result as part by part: a record id already in the table is skipped, and of a record id
        repeated within the window the first row in part order is kept. Repeats are looked for among
        the absent keys (cheap); only when there are some are the later copies listed (by file and
        row number) for the insert to skip. ``keep`` (a snapshot's new and changed record ids) becomes a
        temporary table the absent keys are limited to. Parts on remote staging (``s3://``) go part by
        part through Arrow.
        """
        from seccollect.staging.store import local_file, part_gone

        files = [local_file(batch) for batch in batches]
        if len(batches) < 2 or None in files:
            return super()._insert_parts(table, batches, keep)
        for batch, path in zip(batches, files, strict=True):
            if not os.path.exists(path):  # type: ignore[arg-type]
                raise part_gone(batch)
        spec = table_of(table)
        key = spec.key
        names = ", ".join(spec.column_names)
        listed = "[" + ", ".join(_quote(path) for path in files) + "]"  # type: ignore[arg-type]
        keys = ", ".join(key)
        kept = ""
        if keep is not None:
            # Only these record ids (a snapshot's new and changed items) may be inserted; DuckDB still
            # reads the parts itself instead of every part passing through Arrow in this process.
            import pyarrow as pa

            with self.staged("stg_keep", table, pa.table({"record_id": keep})) as staged_keep:
                self._execute(f"CREATE TEMP TABLE _keep AS SELECT DISTINCT CAST(record_id AS UUID) AS record_id "
                              f"FROM {staged_keep}")
            kept = " WHERE CAST(s.record_id AS UUID) IN (SELECT record_id FROM _keep)"
        self._execute(
            f"CREATE TEMP TABLE _absent_keys AS SELECT {select_list(table, 's', only=key)} "
            f"FROM read_parquet({listed}) s ANTI JOIN {table} t ON {key_match(table, 't', 's')}{kept}"
        )
        new_rows = f"SEMI JOIN _absent_keys a ON {key_match(table, 'a', 's')}"
        # Only repeats of absent keys matter (every copy of a key already in the table is skipped), and
        # those are found in the small key table rather than by reading the parts' keys again.
        repeats = f"SELECT {keys} FROM _absent_keys GROUP BY {keys} HAVING count(*) > 1"
        repeated = self.query(f"SELECT count(*) FROM ({repeats})")[0][0]
        # File name and row number only when repeats must be told apart (they cost a column per row).
        source = f"read_parquet({listed}, filename = true, file_row_number = true)" if repeated else f"read_parquet({listed})"
        if repeated:
            # Rows that repeat a key staged earlier (in part order, then row order), found from the key
            # columns alone; the insert then skips exactly those rows. A window function over the whole
            # rows would sort every raw record of the window to drop a few.
            order = ", ".join(f"({_quote(path)}, {i})" for i, path in enumerate(files))  # type: ignore[arg-type]
            self._execute(
                f"CREATE TEMP TABLE _later_repeats AS SELECT filename, file_row_number FROM ("
                f"SELECT s.filename, s.file_row_number, row_number() OVER (PARTITION BY "
                f"{', '.join('s.' + k for k in key)} ORDER BY p.part, s.file_row_number) AS nth "
                f"FROM {source} s JOIN (VALUES {order}) AS p(filename, part) ON p.filename = s.filename "
                f"JOIN ({repeats}) d ON {key_match(table, 'd', 's')}"
                f") WHERE nth > 1"
            )
            new_rows += (
                " ANTI JOIN _later_repeats r ON r.filename = s.filename AND r.file_row_number = s.file_row_number"
            )
        inserted = self._execute(
            f"INSERT INTO {table} ({names}) SELECT {select_list(table, 's')} FROM {source} s {new_rows}"
        )
        # Not in a ``finally``: after a failed statement DuckDB refuses everything but a rollback (a
        # DROP would hide the real error), and the rollback removes these tables with the rest.
        self._execute("DROP TABLE _absent_keys")
        if keep is not None:
            self._execute("DROP TABLE _keep")
        if repeated:
            self._execute("DROP TABLE _later_repeats")
        return sum(batch.rows for batch in batches), inserted

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        result = self.con.execute(sql, list(params)).fetchall()
        # DML returns one row holding the number of rows changed; DDL returns nothing.
        return int(result[0][0]) if result and isinstance(result[0][0], int) else 0

    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        slot = _ArrowSlot(data)
        self._slots[name] = slot
        self.con.register(name, slot)
        return name

    def _unstage(self, name: str) -> None:
        self.con.unregister(name)
        slot = self._slots.pop(name, None)
        if slot is not None:
            slot.data = None  # frees the part now, not when the window's transaction ends

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.con.close()
