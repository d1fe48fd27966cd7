"""Concurrency slots in PostgreSQL: the shared store of a deployment without Redis (e.g. workers on
several machines that reach a PostgreSQL warehouse, see :mod:`seccollect.http.shared_budget`).

A slot is a session-level advisory lock, ``pg_try_advisory_lock(<key's hash>, n)`` for ``n < limit``,
taken on a connection of the holder's own and kept for the block. The server frees a session's locks
when the session ends: a holder killed with ``kill -9`` has its socket closed by its kernel and frees its
slot at once, and a holder whose machine vanished is dropped once TCP keepalives give up (about a
minute: each holder's session asks for short keepalives). The shared pause is a row per key holding the
server-clock time it ends; a later deadline replaces an earlier one, never the reverse.

Selected by :func:`seccollect.http.slots.credential_slots` when ``SECCOLLECT_LIMITS_URL`` is unset and the
shared store is PostgreSQL. Lock numbers and the pause row hold a hash of the key, never the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from seccollect.http.slots import wait_for_slot

__all__ = ["PostgresSlots"]

TABLE = "seccollect_slot_pause"

#: A held slot's session: keepalives so a vanished machine's locks are freed in about a minute
#: (20 s idle + 4 probes 5 s apart) instead of the operating system's two hours.
_SESSION = ("SET tcp_keepalives_idle = 20", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 4")


class PostgresSlots:
    """At most ``limit`` holders of ``key`` at once, across every process and machine reaching one
    PostgreSQL server.

    :param key: what the slots are for (an account); hashed into the lock numbers.
    :param limit: how many may hold a slot at once (at least 1).
    :param connect: opens a new DB-API connection to the server (psycopg 2 or 3).
    :param poll: the first pause between tries when every slot is taken (doubles up to 0.5 s).
    :param sleep: injectable sleep (tests).
    """

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        connect: Callable[[], Any],
        poll: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a slot set needs a limit of at least 1")
        self.key = key
        self.limit = limit
        self._connect = connect
        self._poll = poll
        self._sleep = sleep
        self._clock = clock
        digest = hashlib.sha256(key.encode()).digest()
        #: The advisory lock class of the key (the two-integer form: apart from single-key locks).
        self.lock_class = int.from_bytes(digest[:4], "big", signed=True)
        self.pause_key = digest.hex()[:24]
        self._pause_con: Any = None
        self._pause_lock = threading.Lock()
        #: Seconds spent waiting for a slot, in total (for the log and the figures).
        self.waited = 0.0

    def _session(self) -> Any:
        con = self._connect()
        con.autocommit = True
        return con

    def _try(self, cur: Any) -> bool:
        for number in range(self.limit):
            cur.execute("SELECT pg_try_advisory_lock(%s::integer, %s::integer)", (self.lock_class, number))
            if cur.fetchone()[0]:
                return True
        return False

    # --- holding ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, *, max_wait: float | None = None) -> Iterator[None]:
        """Hold one slot for the block; wait (polling) while all are taken, at most ``max_wait`` seconds
        (:class:`~seccollect.http.slots.SlotWaitTooLong`); ``None`` waits as long as needed."""
        con = self._session()
        try:
            cur = con.cursor()
            for setting in _SESSION:
                cur.execute(setting)
            wait_for_slot(self, lambda: self._try(cur), max_wait, cap=0.5)
            yield
        finally:
            con.close()  # ends the session: the server frees its lock

    # --- a shared pause: the vendor said the account's budget is spent ---------------------------------

    def _pausing(self, sql: str, params: tuple[Any, ...]) -> Any:
        with self._pause_lock:
            if self._pause_con is None:
                con = self._session()
                try:
                    cur = con.cursor()
                    # Serialise the one-time DDL: concurrent CREATE ... IF NOT EXISTS can still collide.
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext('seccollect_slot_pause ddl'))")
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (pause_key text PRIMARY KEY, "
                                "paused_until double precision NOT NULL)")
                    cur.execute("COMMIT")
                except BaseException:
                    # A failed DDL (no privilege, read-only server) must not leave its transaction - and the
                    # DDL lock every other process waits on - open until this process ends.
                    with contextlib.suppress(Exception):
                        con.close()
                    raise
                self._pause_con = con
            try:
                cur = self._pause_con.cursor()
                cur.execute(sql, params)
                return cur.fetchone()
            except BaseException:
                # A broken connection (server restart) is replaced next time.
                with contextlib.suppress(Exception):
                    self._pause_con.close()
                self._pause_con = None
                raise

    def pause(self, seconds: float) -> None:
        """Tell every holder of the key that no call may go for ``seconds``: a later deadline already
        recorded is kept."""
        if seconds > 0:
            self._pausing(
                f"INSERT INTO {TABLE} AS p (pause_key, paused_until) "
                "VALUES (%s, extract(epoch FROM clock_timestamp())::double precision + %s) "
                "ON CONFLICT (pause_key) DO UPDATE SET paused_until = greatest(p.paused_until, excluded.paused_until) RETURNING paused_until",
                (self.pause_key, float(seconds)))

    def paused_for(self) -> float:
        """Seconds left of the pause recorded by any holder of the key (0 when none)."""
        row = self._pausing(
            f"SELECT max(paused_until) - extract(epoch FROM clock_timestamp())::double precision FROM {TABLE} "
            "WHERE pause_key = %s", (self.pause_key,))
        left = row[0] if row is not None else None
        return max(0.0, float(left)) if left is not None else 0.0

    def close(self) -> None:
        """Close the connection the pause uses (held slots close their own)."""
        with self._pause_lock:
            if self._pause_con is not None:
                with contextlib.suppress(Exception):
                    self._pause_con.close()
                self._pause_con = None
