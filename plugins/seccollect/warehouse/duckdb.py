"""DuckDB file warehouse: the embedded, zero-set-up default.

DuckDB allows one writing process per file. Load tasks therefore run in a one-slot Airflow pool
(``warehouse_loads``), and opening the file additionally waits out a lock held by another process
(a reader, a task outside the pool) instead of failing the task at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from seccollect.warehouse.base import TABLES, Warehouse, first_row_mask

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SQL_TYPES = {
    "text": "VARCHAR",
    # Raw vendor records (~0.5-2 KB of JSON each) dominate a table's size and its load time. DuckDB only
    # considers ZSTD for strings of 4 KB or more by default and otherwise tries FSST/dictionary, which is
    # about twice as slow to write for such text and compresses JSON about 3x worse than ZSTD.
    "json": "VARCHAR USING COMPRESSION zstd",
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


#: Anti-join (scan of the key column) instead of ON CONFLICT while the table has at most this many
#: times the part's rows. Measured on 2 cores: the scan reads ~20 M keys/s, ON CONFLICT costs ~4 us
#: per row more than a plain insert, so they break even near 80x; 50x leaves a margin.
ANTI_JOIN_MAX_RATIO = 50


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

    def __init__(
        self, database: str, *, lock_timeout: float = 300.0, connection: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        self.database = database
        self.con = connection or connect_with_lock_wait(database, lock_timeout=lock_timeout)
        self._slots: dict[str, _ArrowSlot] = {}
        self._inserted: dict[str, int] = {}  # rows added per table by the open transaction

    def _insert_absent(self, table: str, data: pa.Table) -> int:
        """Insert the rows whose key is absent.

        ``INSERT ... ON CONFLICT DO NOTHING`` probes the index once per row on a single thread, about
        2.5x the cost of a plain insert. While the table is small next to the part, it is cheaper to
        keep the first row per key (in Arrow), drop the keys the table holds with an anti-join (a scan of
        the key column only; it sees the rows earlier parts of the transaction inserted) and insert the
        rest plainly. That scan grows with the table, the probes do not: past
        :data:`ANTI_JOIN_MAX_RATIO` times the part's rows the generic path is used. DuckDB has one
        writer per file (loads also run in a one-slot pool), so no other transaction can insert one of
        these keys in between; should one anyway, the primary key fails the window, which is retried.
        """
        columns, key = TABLES[table]
        if self._table_rows(table) > ANTI_JOIN_MAX_RATIO * max(data.num_rows, 1):
            inserted = super()._insert_absent(table, data)
        else:
            first = first_row_mask(data, key)
            if first is not None:
                data = data.filter(first)
            names = ", ".join(c.name for c in columns)
            match = " AND ".join(f"t.{k} = s.{k}" for k in key)
            staged = self._stage(f"stg_{table}", table, data)
            try:
                inserted = self._execute(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} s "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
                )
            finally:
                self._unstage(staged)
        self._inserted[table] = self._inserted.get(table, 0) + inserted
        return inserted

    def _table_rows(self, table: str) -> int:
        """Rows of ``table``: committed (DuckDB's estimate) plus those the open transaction added."""
        rows = self.con.execute(
            "SELECT estimated_size FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()",
            [table],
        ).fetchall()
        return (int(rows[0][0]) if rows and rows[0][0] is not None else 0) + self._inserted.get(table, 0)

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
        self._inserted.clear()
        try:
            yield
        except BaseException:
            self._inserted.clear()
            self.con.execute("ROLLBACK")
            raise
        self._inserted.clear()
        self.con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.con.close()
