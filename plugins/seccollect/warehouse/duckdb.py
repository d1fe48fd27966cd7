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

from seccollect.warehouse.base import Warehouse

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SQL_TYPES = {
    "text": "VARCHAR",
    "json": "VARCHAR",
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

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        result = self.con.execute(sql, list(params)).fetchall()
        # DML returns one row holding the number of rows changed; DDL returns nothing.
        return int(result[0][0]) if result and isinstance(result[0][0], int) else 0

    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        self.con.register(name, data)
        return name

    def _unstage(self, name: str) -> None:
        self.con.unregister(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.con.close()
