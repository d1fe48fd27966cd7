"""A request budget shared by every process and worker that uses one credential.

:class:`~seccollect.http.budget.ProcessBudget` counts within one process. A vendor counts per API key,
whoever sends: two instances on one key, parallel tasks of a backfill, the Test button and workers on
other machines all draw from the same limit. :class:`SharedBudget` keeps the count in one place every
worker reaches:

* **PostgreSQL** (any Airflow ``postgres`` connection; by default the warehouse's when it is one): a
  request log table ``seccollect_request_log`` and a transaction-scoped advisory lock per budget key,
  with the server's clock, so workers on different machines agree on time;
* **SQLite** (the single-machine default, e.g. the embedded DuckDB set-up, no server needed): the same
  log in a file (``$AIRFLOW_HOME/seccollect-request-budget.sqlite3``), locked by ``BEGIN IMMEDIATE``.

Why reservations and not "count, then retry": :meth:`BudgetStore.reserve` gives every request a send
time, the earliest at which no window of ``period`` seconds holds more than ``max_calls`` requests,
appended after every earlier reservation. Callers then simply sleep until their time, in the order they
asked (no polling storm, no starvation), and a caller that would wait longer than it accepts gets
:class:`~seccollect.http.budget.BudgetWaitTooLong` without reserving, so it can free its worker slot
and come back. A request log obeying "at most N in any window of P seconds" also obeys a vendor's fixed
window that opens at its first request. When the caller's time comes, the reservation is moved to the
moment the request really goes (a late sender on a busy machine must not let the next requests crowd
its window), and a small margin (``margin``) absorbs the rest of the way to the vendor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from seccollect.http.budget import BudgetWaitTooLong

log = logging.getLogger(__name__)

#: The Airflow connection whose database holds the shared log (``postgres``); unset: the warehouse's
#: connection when it is PostgreSQL, else the SQLite file.
BUDGET_CONN_ENV = "SECCOLLECT_BUDGET_CONN_ID"
#: The SQLite file of the single-machine default.
BUDGET_PATH_ENV = "SECCOLLECT_BUDGET_PATH"
DEFAULT_WAREHOUSE_CONN = "seccollect_warehouse"
TABLE = "seccollect_request_log"


@dataclass(frozen=True)
class RateLimit:
    """At most ``max_calls`` requests in any ``period`` seconds."""

    max_calls: int
    period: float

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.period <= 0:
            raise ValueError("a rate limit needs max_calls >= 1 and a positive period")


def budget_key(namespace: str, secret: str) -> str:
    """The budget key of a credential: ``namespace`` plus a digest of the secret (never the secret)."""
    return f"{namespace}:{hashlib.sha256(secret.encode()).hexdigest()[:20]}"


class BudgetStore(Protocol):
    """Where a shared request log lives."""

    def reserve(self, key: str, limits: Sequence[RateLimit], margin: float, max_wait: float | None) -> tuple[float, float]:
        """Reserve the earliest allowed send time; return ``(wait, at)``: the seconds to wait until it
        (``>= 0``) and the reserved time. When the wait would exceed ``max_wait`` nothing is reserved and
        :class:`BudgetWaitTooLong` is raised."""
        ...

    def confirm(self, key: str, at: float) -> None:
        """Move a reservation to the moment the request really goes (never earlier), so a caller that
        was late (a busy machine) does not let later reservations crowd its vendor window."""
        ...


class _SqlStore:
    """The reservation, in SQL both backends speak (placeholders differ)."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one connection per store, used by one thread at a time

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _reserve_locked(self, cur: Any, key: str, limits: Sequence[RateLimit], margin: float,
                        max_wait: float | None, now: float) -> tuple[float, float]:
        q = self._sql
        cur.execute(q(f"SELECT max(sent_at) FROM {TABLE} WHERE budget_key = ?"), (key,))
        last = cur.fetchone()[0]
        at = max(now, last) if last is not None else now
        for limit in limits:
            cur.execute(
                q(f"SELECT sent_at FROM {TABLE} WHERE budget_key = ? ORDER BY sent_at DESC LIMIT 1 OFFSET ?"),
                (key, limit.max_calls - 1),
            )
            row = cur.fetchone()
            if row is not None:
                at = max(at, row[0] + limit.period + margin)
        wait = at - now
        if max_wait is not None and wait > max_wait:
            raise BudgetWaitTooLong(key, wait)
        cur.execute(q(f"INSERT INTO {TABLE} (budget_key, sent_at) VALUES (?, ?)"), (key, at))
        horizon = max(limit.period for limit in limits) + margin
        cur.execute(q(f"DELETE FROM {TABLE} WHERE budget_key = ? AND sent_at < ?"), (key, now - horizon))
        return wait, at


class SqliteBudgetStore(_SqlStore):
    """The log in a SQLite file: shared by every process of one machine."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (budget_key TEXT NOT NULL, sent_at REAL NOT NULL)")
        self._con.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_key_time ON {TABLE} (budget_key, sent_at)")

    def reserve(self, key: str, limits: Sequence[RateLimit], margin: float, max_wait: float | None) -> tuple[float, float]:
        with self._lock:
            cur = self._con.cursor()
            cur.execute("BEGIN IMMEDIATE")  # the write lock: one reservation at a time, machine-wide
            try:
                reserved = self._reserve_locked(cur, key, limits, margin, max_wait, time.time())
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return reserved

    def confirm(self, key: str, at: float) -> None:
        with self._lock:
            self._con.execute(f"UPDATE {TABLE} SET sent_at = max(sent_at, ?) WHERE budget_key = ? AND sent_at = ?",
                              (time.time(), key, at))


class PostgresBudgetStore(_SqlStore):
    """The log in PostgreSQL: shared by every worker that reaches the server; its clock is the server's."""

    placeholder = "%s"

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__()
        self._connect = connect
        self._con: Any = None

    def _connection(self) -> Any:
        if self._con is None:
            con = self._connect()
            cur = con.cursor()
            # Serialise the one-time DDL: concurrent CREATE ... IF NOT EXISTS can still collide.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('seccollect_request_log ddl'))")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (budget_key text NOT NULL, sent_at double precision NOT NULL)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_key_time ON {TABLE} (budget_key, sent_at)")
            con.commit()
            self._con = con
        return self._con

    def reserve(self, key: str, limits: Sequence[RateLimit], margin: float, max_wait: float | None) -> tuple[float, float]:
        with self._lock:
            con = self._connection()
            cur = con.cursor()
            try:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
                cur.execute("SELECT extract(epoch FROM clock_timestamp())::double precision")
                now = float(cur.fetchone()[0])
                reserved = self._reserve_locked(cur, key, limits, margin, max_wait, now)
            except BudgetWaitTooLong:
                con.rollback()
                raise
            except BaseException:
                # A broken connection (server restart) is replaced on the next reservation.
                try:
                    con.rollback()
                    con.close()
                finally:
                    self._con = None
                raise
            con.commit()
            return reserved

    def confirm(self, key: str, at: float) -> None:
        with self._lock:
            con = self._connection()
            try:
                con.cursor().execute(
                    f"UPDATE {TABLE} SET sent_at = greatest(sent_at, extract(epoch FROM clock_timestamp())::double precision) "
                    "WHERE budget_key = %s AND sent_at = %s",
                    (key, at),
                )
            except BaseException:
                con.rollback()
                raise
            con.commit()


class SharedBudget:
    """A :class:`~seccollect.http.budget.RequestBudget` whose count lives in a :class:`BudgetStore`.

    :param key: the credential's budget key (:func:`budget_key`; never a secret).
    :param limits: every limit the vendor applies to the credential (e.g. 20 per minute and 14,400 a day).
    :param store: where the log lives (:func:`shared_store`).
    :param margin: seconds added to every period, for the delay between a reserved time and the request
        reaching the vendor; default 2 % of the shortest period, at least 0.25 s.
    :param sleep: injectable (tests).
    """

    def __init__(self, key: str, limits: Sequence[RateLimit], store: BudgetStore, *, margin: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not limits:
            raise ValueError("a shared budget needs at least one rate limit")
        self.key = key
        self.limits = tuple(limits)
        self.store = store
        shortest = min(limit.period for limit in self.limits)
        self.margin = margin if margin is not None else max(0.25, 0.02 * shortest)
        self._sleep = sleep
        #: Seconds this budget made its callers wait (for logs and benchmarks).
        self.waited = 0.0

    def acquire(self, *, max_wait: float | None = None) -> None:
        wait, at = self.store.reserve(self.key, self.limits, self.margin, max_wait)
        if wait > 0:
            self.waited += wait
            if wait > 5:
                log.info("Request budget %s: waiting %.1fs for a free slot", self.key, wait)
            self._sleep(wait)
        self.store.confirm(self.key, at)


_STORES: dict[str, BudgetStore] = {}
_STORES_LOCK = threading.Lock()


def _default_sqlite_path() -> Path:
    configured = os.environ.get(BUDGET_PATH_ENV)
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "seccollect-request-budget.sqlite3"


def shared_postgres() -> Any | None:
    """The Airflow ``postgres`` connection of the deployment's shared store: ``SECCOLLECT_BUDGET_CONN_ID``,
    else the warehouse connection when it is PostgreSQL; ``None``: the machine's own store."""
    conn_id = os.environ.get(BUDGET_CONN_ENV)
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id or DEFAULT_WAREHOUSE_CONN)
    except Exception:  # no such connection: the single-machine default
        if conn_id:
            raise
        return None
    if not conn_id and conn.conn_type != "postgres":
        return None
    if conn.conn_type != "postgres":
        raise ValueError(f"{BUDGET_CONN_ENV}={conn_id!r} must name a 'postgres' connection, not {conn.conn_type!r}")
    return conn


def shared_store() -> BudgetStore:
    """The store this deployment shares: the PostgreSQL of ``SECCOLLECT_BUDGET_CONN_ID`` (or of the
    warehouse connection when it is PostgreSQL), else the machine's SQLite file. One per process."""
    conn = shared_postgres()
    pg_conn: str | None = conn.conn_id if conn is not None else None
    # Keyed by where it points (not only its id): a connection redefined in the environment is new.
    ident = f"postgres:{conn.host}:{conn.port}:{conn.schema}" if conn is not None else f"sqlite:{_default_sqlite_path()}"
    with _STORES_LOCK:
        store = _STORES.get(ident)
        if store is None:
            if pg_conn:
                from airflow.providers.postgres.hooks.postgres import PostgresHook

                conn_name = pg_conn
                store = PostgresBudgetStore(lambda: PostgresHook(postgres_conn_id=conn_name).get_conn())
            else:
                store = SqliteBudgetStore(_default_sqlite_path())
            _STORES[ident] = store
        return store


def shared_budget(key: str, limits: Sequence[RateLimit], *, margin: float | None = None) -> SharedBudget:
    """The budget of ``key`` in this deployment's :func:`shared_store`."""
    return SharedBudget(key, limits, shared_store(), margin=margin)
