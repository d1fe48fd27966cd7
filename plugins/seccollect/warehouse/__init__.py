"""Warehouse backends behind one interface, chosen by the type of an Airflow connection."""

from __future__ import annotations

from seccollect.warehouse.base import Warehouse


def open_warehouse(conn_id: str) -> Warehouse:
    """Open the warehouse of Airflow connection ``conn_id`` (type ``duckdb`` or ``postgres``)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type == "duckdb":
        from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

        from seccollect.warehouse.duckdb import DuckDBWarehouse, connect_with_lock_wait

        hook = DuckDBHook(duckdb_conn_id=conn_id)
        database = hook.get_database()
        return DuckDBWarehouse(database, connection=connect_with_lock_wait(database, connect=hook.get_conn))
    if conn.conn_type == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from seccollect.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(PostgresHook(postgres_conn_id=conn_id).get_conn())
    raise ValueError(
        f"Connection {conn_id!r} has type {conn.conn_type!r}; the warehouse must be a 'duckdb' or 'postgres' "
        "connection"
    )


__all__ = ["Warehouse", "open_warehouse"]
