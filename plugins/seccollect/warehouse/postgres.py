"""PostgreSQL warehouse (production).

Record parts are loaded with COPY of their absent rows straight into the table (see
:meth:`PostgresWarehouse._insert_absent`); other bulk loads use COPY into a transaction-scoped temp
table followed by ``INSERT ... SELECT``.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from seccollect.records.catalog import table as table_of
from seccollect.staging.store import table_columns
from seccollect.warehouse.base import Warehouse, first_row_mask
from seccollect.warehouse.coverage import Dialect

if TYPE_CHECKING:
    import pyarrow as pa

SQL_TYPES = {
    "text": "TEXT",
    # JSON, not JSONB: JSONB rejects the \u0000 escape some vendor records carry (one such record would
    # fail its whole window), and JSON keeps the vendor's text exactly while still supporting ->/->>.
    "json": "JSON",
    "uuid": "UUID",
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


def _copy_in(cur: Any, table: str, columns: list[str], data: pa.Table) -> None:
    """COPY ``data`` (as CSV) into ``columns`` of ``table`` with a psycopg 3 or psycopg2 cursor."""
    copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    payload = arrow_to_csv(data.select(columns))
    if hasattr(cur, "copy_expert"):  # psycopg2
        cur.copy_expert(copy_sql, io.BytesIO(payload))
    else:  # psycopg 3
        with cur.copy(copy_sql) as copy:
            copy.write(payload)


def _sqlstate(exc: BaseException) -> str | None:
    """SQLSTATE of a psycopg 3 (``sqlstate``) or psycopg2 (``pgcode``) error."""
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def _uuid_hex(value: Any) -> str:
    """A uuid column's value (``uuid.UUID`` from psycopg 3, dashed text from psycopg2) as 32 hex characters."""
    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")


_UNIQUE_VIOLATION = "23505"
#: Keys per existence lookup of :meth:`PostgresWarehouse._absent_rows`.
_LOOKUP_CHUNK = 10_000


class PostgresWarehouse(Warehouse):
    """Warehouse in a PostgreSQL database.

    :param connection: an open DB-API connection (psycopg 3 or psycopg2), e.g. ``PostgresHook.get_conn()``.
        The warehouse owns it from then on and closes it in :meth:`close`.
    """

    kind = "postgres"
    sql_types = SQL_TYPES
    dialect = Dialect(
        seconds="make_interval(secs => {n})",
        series="LATERAL generate_series({start}, now(), make_interval(secs => {step})) AS w(window_start)",
    )

    def __init__(self, connection: Any) -> None:
        self.conn = connection
        self.conn.autocommit = False

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(_PLACEHOLDER.sub("%s", sql), tuple(params) or None)
            return max(cur.rowcount, 0)

    def _stage(self, name: str, table: str, data: pa.Table) -> str:
        # The staged columns of ``table`` (a record table, the alert links, or ``alert_latest``, which is
        # only ever staged) that ``data`` has, with their warehouse types.
        columns = [c for c in table_columns(table) if c.name in data.column_names]
        ddl = ", ".join(f"{c.name} {self.sql_types[c.type]}" for c in columns)
        with self.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {name} ({ddl}) ON COMMIT DROP")
            _copy_in(cur, name, [c.name for c in columns], data)
        return name

    def _index_staged(self, name: str, columns: Sequence[str]) -> None:
        # The snapshot comparison's anti-joins probe the staged items by identity. The state table was
        # usually filled in the previous transaction and has no statistics yet, so the planner expects
        # one row and picks a nested loop over the whole temp table per state row: 10,000 items took
        # 25 s, quadratic. With an index (and statistics) each probe is a lookup.
        with self.conn.cursor() as cur:
            cur.execute(f"CREATE INDEX ON {name} ({', '.join(columns)})")
            cur.execute(f"ANALYZE {name}")

    def _insert_absent(self, table: str, data: pa.Table) -> int:
        """COPY the rows whose key is absent straight into ``table``, without a staging copy of the rows.

        Staging every row in a temp table and then running ``INSERT ... ON CONFLICT DO NOTHING`` writes
        and reads each row twice and takes the speculative-insertion path per row: about twice the cost
        of the COPY itself. Instead the part is reduced to the first row per key, then to the keys
        that are not in the table yet (an index lookup that also sees the rows earlier parts of this
        transaction inserted), and those rows are copied in. If a concurrent transaction inserts one of
        these keys in between, the COPY fails on the primary key: the savepoint is rolled back and the
        part takes the generic ``INSERT ... ON CONFLICT DO NOTHING`` path, with the same outcome.
        """
        import pyarrow.compute as pc

        spec = table_of(table)
        columns, key = spec.columns, spec.key
        if len(key) != 1:
            return super()._insert_absent(table, data)
        fresh = self._absent_rows(table, key[0], data)
        if fresh.num_rows == 0:
            return 0
        # In key order, consecutive rows land on the same primary-key index pages: ~15 % faster COPY.
        fresh = fresh.take(pc.sort_indices(fresh.column(key[0])))
        with self.conn.cursor() as cur:
            cur.execute("SAVEPOINT seccollect_insert_absent")
            try:
                _copy_in(cur, table, [c.name for c in columns], fresh)
            except Exception as exc:
                if _sqlstate(exc) != _UNIQUE_VIOLATION:
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT seccollect_insert_absent")
                return super()._insert_absent(table, data)
            cur.execute("RELEASE SAVEPOINT seccollect_insert_absent")
        return fresh.num_rows

    def _absent_rows(self, table: str, key: str, data: pa.Table) -> pa.Table:
        """The first row of every ``key`` value of ``data`` that ``table`` does not hold yet, in order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = data.column(key)
        keep = first_row_mask(data, (key,))  # rows to load; None = all of them
        if keep is not None:
            keys = keys.filter(keep)
        values = keys.to_pylist()
        # A uuid key comes back as uuid.UUID: compared with the staged keys as the same 32 hex characters.
        is_uuid = table_of(table).column(key).type == "uuid"
        array_type = "text[]::uuid[]" if is_uuid else "text[]"
        existing: list[str] = []
        with self.conn.cursor() as cur:
            # psycopg 3 sends the keys as a binary text[] (%b): far cheaper than quoting an array literal.
            placeholder = "%s" if hasattr(cur, "copy_expert") else "%b"
            for i in range(0, len(values), _LOOKUP_CHUNK):
                cur.execute(
                    f"SELECT {key} FROM {table} WHERE {key} = ANY({placeholder}::{array_type})",
                    (values[i : i + _LOOKUP_CHUNK],),
                )
                existing.extend(_uuid_hex(row[0]) if is_uuid else row[0] for row in cur.fetchall())
        if existing:
            absent = pc.invert(pc.is_in(data.column(key), value_set=pa.array(existing, pa.string())))
            keep = absent if keep is None else pc.and_(keep, absent)
        return data if keep is None else data.filter(keep)

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

    def _lock_schema(self) -> None:
        # Concurrent first runs may race on CREATE TABLE IF NOT EXISTS (a known PostgreSQL race on the
        # catalog's unique index); a transaction-scoped advisory lock serialises them.
        self._execute("SELECT pg_advisory_xact_lock(4242001)")

    def lock(self, name: str) -> None:
        # Loads run concurrently here (unlike DuckDB's single writer): a transaction-scoped advisory lock
        # on the name's hash, held until commit, makes loads that touch the same rows take turns (READ
        # COMMITTED: the second one's statements then see what the first committed).
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(_PLACEHOLDER.sub("%s", sql), tuple(params) or None)
            return cur.fetchall()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(_PLACEHOLDER.sub("%s", sql), tuple(params) or None)
            rows = cur.fetchall()
        self.conn.commit()
        return rows

    def close(self) -> None:
        self.conn.close()
