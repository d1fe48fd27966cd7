"""The warehouse as pandas DataFrames, for a notebook or a page: the common-sql hooks' ``get_df``.

::

    from seccollect.warehouse.frames import coverage_df, warehouse_hook

    coverage_df("netskope-acme-prod")                       # every window of one instance
    warehouse_hook().get_df("SELECT * FROM quarantine")    # anything else, the provider's way

The hook is the provider's own (``DuckDBHook`` or ``PostgresHook``, by the connection's type), so
``get_df``, ``get_records`` and ``get_sqlalchemy_engine`` behave as documented for them. A DuckDB
warehouse is opened read-only and waits out a load's short file lock instead of failing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from airflow.providers.common.sql.hooks.sql import DbApiHook

#: The coverage view's columns, in the order the frame has them (see :mod:`seccollect.warehouse.coverage`).
COVERAGE_COLUMNS = ("dag_id", "content_type", "window_start", "window_end", "status", "rows_inserted",
                    "rows_staged", "quarantined", "late_items", "loads", "loaded_at", "failed_task", "failure")


def warehouse_hook(conn_id: str = "seccollect_warehouse", *, lock_timeout: float = 60.0) -> DbApiHook:
    """The provider hook of the warehouse connection ``conn_id`` (``duckdb`` or ``postgres``)."""
    from airflow.sdk import BaseHook

    conn_type = BaseHook.get_connection(conn_id).conn_type
    if conn_type == "duckdb":
        from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

        from seccollect.warehouse.duckdb import connect_with_lock_wait

        class _ReadingDuckDBHook(DuckDBHook):
            """Read-only, and patient with the single writer (a load holds the file for seconds)."""

            def get_conn(self) -> Any:
                return connect_with_lock_wait(self.get_database(), lock_timeout=lock_timeout,
                                              connect=super().get_conn)

        return _ReadingDuckDBHook(duckdb_conn_id=conn_id, read_only=True)
    if conn_type == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=conn_id)
    raise ValueError(f"Connection {conn_id!r} has type {conn_type!r}; the warehouse must be 'duckdb' or 'postgres'")


def coverage_df(
    dag_id: str | None = None,
    *,
    conn_id: str = "seccollect_warehouse",
    statuses: Sequence[str] | None = None,
    since: datetime | None = None,
    hook: DbApiHook | None = None,
) -> pd.DataFrame:
    """Rows of the ``coverage`` view as a DataFrame (one row per window and content type, oldest
    first): what :meth:`~seccollect.warehouse.base.Warehouse.coverage` returns, through ``hook.get_df``.

    :param dag_id: one instance only.
    :param statuses: only windows in these states (e.g. ``["missing", "failed"]``).
    :param since: only windows that start at or after it.
    :param hook: a hook of :func:`warehouse_hook` to reuse (default: one for ``conn_id``).
    """
    hook = hook or warehouse_hook(conn_id)
    mark = hook.placeholder
    where: list[str] = []
    params: list[Any] = []
    if dag_id is not None:
        where.append(f"dag_id = {mark}")
        params.append(dag_id)
    if statuses:
        where.append(f"status IN ({', '.join([mark] * len(statuses))})")
        params.extend(statuses)
    if since is not None:
        where.append(f"window_start >= {mark}")
        params.append(since)
    sql = (f"SELECT {', '.join(COVERAGE_COLUMNS)} FROM coverage"
           + (f" WHERE {' AND '.join(where)}" if where else "")
           + " ORDER BY dag_id, content_type, window_start")
    with warnings.catch_warnings():
        # pandas reads DuckDB's DB-API connection correctly but warns that it only tests SQLAlchemy's.
        warnings.filterwarnings("ignore", message="pandas only supports SQLAlchemy", category=UserWarning)
        # A tuple: PostgresHook hands the parameters to SQLAlchemy, which takes a list for many rows.
        return hook.get_df(sql, parameters=tuple(params) or None, df_type="pandas")
