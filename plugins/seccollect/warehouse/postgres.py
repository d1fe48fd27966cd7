"""PostgreSQL warehouse (production). Bulk loads use COPY into a transaction-scoped temp table."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from seccollect.warehouse.base import TABLES, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

SQL_TYPES = {
    "text": "TEXT",
    # JSON, not JSONB: JSONB rejects the \u0000 escape some vendor records carry (one such record would
    # fail its whole window), and JSON keeps the vendor's text exactly while still supporting ->/->>.
    "json": "JSON",
    "timestamp": "TIMESTAMPTZ",
    "bigint": "BIGINT",
    "double": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
}

# The shared SQL uses '?' placeholders (DuckDB's); psycopg wants '%s'. No statement of ours contains
# a literal '?' or '%', so a plain substitution is exact.
_PLACEHOLDER = re.compile(r"\?")


def arrow_to_csv(data: pa.Table) -> bytes:
    """CSV that COPY reads back exactly: NULL unquoted-empty, empty string quoted, UTC timestamps."""
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return buf.getvalue()


class PostgresWarehouse(Warehouse):
    """Warehouse in a PostgreSQL database.

    :param connection: an open DB-API connection (psycopg 3 or psycopg2), e.g. ``PostgresHook.get_conn()``.
        The warehouse owns it from then on and closes it in :meth:`close`.
    """

    kind = "postgres"
    sql_types = SQL_TYPES

    def __init__(self, connection: Any) -> None:
        self.conn = connection
        self.conn.autocommit = False

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(_PLACEHOLDER.sub("%s", sql), tuple(params) or None)
            return max(cur.rowcount, 0)

    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        columns = [c.name for c in TABLES[table][0]]
        with self.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {name} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
            copy_sql = f"COPY {name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
            payload = arrow_to_csv(data.select(columns))
            if hasattr(cur, "copy_expert"):  # psycopg2
                cur.copy_expert(copy_sql, io.BytesIO(payload))
            else:  # psycopg 3
                with cur.copy(copy_sql) as copy:
                    copy.write(payload)
        return name

    def _unstage(self, name: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def ensure_schema(self) -> None:
        # Concurrent first runs may race on CREATE TABLE IF NOT EXISTS (a known PostgreSQL race on the
        # catalog's unique index); a transaction-scoped advisory lock serialises them.
        with self.transaction():
            self._execute("SELECT pg_advisory_xact_lock(4242001)")
            from seccollect.warehouse.base import create_table_sql

            for name in TABLES:
                self._execute(create_table_sql(name, self.sql_types))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(_PLACEHOLDER.sub("%s", sql), tuple(params) or None)
            rows = cur.fetchall()
        self.conn.commit()
        return rows

    def close(self) -> None:
        self.conn.close()
