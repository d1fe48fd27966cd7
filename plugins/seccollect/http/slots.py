"""Concurrency slots shared by every process that uses one credential: at most N calls in flight.

Some vendors limit how many calls of one account may run *at once* (and answer the next one with an
error instead of queueing it). That limit belongs to the account, not to a task: two instances, a
backfill of many windows, the Test button and workers on other machines all count against it. Hooks
ask :func:`credential_slots`, which follows the selection of
:func:`~seccollect.http.budget.credential_budget`:

* with ``SECCOLLECT_LIMITS_URL`` set (a Celery deployment's Redis), a counting semaphore in Redis
  (:class:`~seccollect.http.redis_slots.RedisSlots`): every task of every worker on every machine
  shares it; a slot is a lease renewed while held, so a worker killed with ``kill -9`` keeps its slot
  at most one lease long (30 s by default);
* else, when the deployment's shared store is PostgreSQL (``SECCOLLECT_BUDGET_CONN_ID``, or a
  PostgreSQL warehouse: :mod:`seccollect.http.shared_budget`), session advisory locks there
  (:class:`~seccollect.http.postgres_slots.PostgresSlots`): every worker that reaches the server; the
  server frees a killed holder's slot when its session ends;
* else :class:`SharedSlots`, ``limit`` lock files in a directory named after the key
  (``fcntl.flock``: the kernel releases a slot the moment its holder dies): every thread and process of
  this machine, or of machines sharing that directory on a file system with working ``flock``.

Both also record a shared pause (``pause``/``paused_for``): when the vendor says the account's call
budget is spent, every process waits it out instead of spending calls on refusals.

The key names the account (e.g. the API URL and the user name), never a secret; both stores keep only a
hash of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

#: Where slot files live unless ``SECCOLLECT_SLOTS_DIR`` says otherwise.
DEFAULT_DIRECTORY = Path(tempfile.gettempdir()) / "seccollect-slots"


class SlotWaitTooLong(Exception):  # noqa: N818 - reads as what happened
    """No slot became free within the caller's ``max_wait``."""

    def __init__(self, key: str, waited: float) -> None:
        super().__init__(f"no concurrency slot of {key!r} became free in {waited:.1f}s")
        self.key = key
        self.waited = waited


class ConcurrencySlots(Protocol):
    """At most ``limit`` holders of ``key`` at once, and a pause every holder of the key sees."""

    #: What the slots are for (an account; never a secret).
    key: str
    limit: int
    #: Seconds spent waiting for a slot, in total.
    waited: float

    def hold(self, *, max_wait: float | None = None) -> AbstractContextManager[None]:
        """Hold one slot for the block; wait at most ``max_wait`` seconds for it, else raise
        :class:`SlotWaitTooLong` (``None``: as long as needed)."""
        ...

    def pause(self, seconds: float) -> None:
        """No holder of the key may call for ``seconds`` (a later deadline already recorded is kept)."""
        ...

    def paused_for(self) -> float:
        """Seconds left of the pause (0 when none)."""
        ...


def wait_for_slot(slots: Any, try_once: Callable[[], Any], max_wait: float | None, cap: float) -> Any:
    """Call ``try_once`` until it takes a slot (returns anything but ``None`` or ``False``), pausing
    ``slots._poll`` seconds at first, doubling up to ``cap``; what it returned. After ``max_wait`` seconds
    (``None``: never) :class:`SlotWaitTooLong`. Either way the time waited is added to ``slots.waited``:
    the one polling loop of every slot store (lock files, PostgreSQL, Redis)."""
    started = slots._clock()
    pause = slots._poll
    while (taken := try_once()) is None or taken is False:
        waited = slots._clock() - started
        if max_wait is not None and waited >= max_wait:
            slots.waited += waited
            raise SlotWaitTooLong(slots.key, waited)
        slots._sleep(pause)
        pause = min(pause * 2, cap)
    slots.waited += slots._clock() - started
    return taken


def credential_slots(key: str, limit: int) -> ConcurrencySlots:
    """The concurrency slots of one credential, shared by every task that uses it, where
    :func:`~seccollect.http.budget.credential_budget` counts its requests: in the Redis of
    ``$SECCOLLECT_LIMITS_URL`` when it is set, else in the shared store's PostgreSQL when it has one,
    else lock files under :func:`slots_directory` (every process of this machine). See the module
    docstring."""
    from seccollect.http.budget import LIMITS_URL_ENV, limits_redis

    url = os.environ.get(LIMITS_URL_ENV)
    if url:
        from seccollect.http.redis_slots import RedisSlots

        return RedisSlots(key, limit, client=limits_redis(url))
    from seccollect.http.shared_budget import shared_postgres

    conn = shared_postgres()
    if conn is not None:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from seccollect.http.postgres_slots import PostgresSlots

        # One hook: its connection is looked up once, and every held slot opens a session of its own.
        return PostgresSlots(key, limit, connect=PostgresHook(postgres_conn_id=conn.conn_id).get_conn)
    return SharedSlots(key, limit)


def slots_directory() -> Path:
    """The directory slot files live in (``SECCOLLECT_SLOTS_DIR``, else the temporary directory)."""
    configured = os.environ.get("SECCOLLECT_SLOTS_DIR")
    return Path(configured) if configured else DEFAULT_DIRECTORY


class SharedSlots:
    """At most ``limit`` holders of ``key`` at once, across threads and processes sharing ``directory``
    (one machine, unless the directory is on a shared file system whose ``flock`` works across hosts).

    :param key: what the slots are for (an account); hashed into the directory name.
    :param limit: how many may hold a slot at once (at least 1).
    :param directory: where the slot files live (default :func:`slots_directory`).
    :param poll: the first pause between tries when every slot is taken (doubles up to 1 s).
    :param sleep: injectable sleep (tests).
    """

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        directory: Path | None = None,
        poll: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a slot set needs a limit of at least 1")
        self.key = key
        self.limit = limit
        self.folder = (directory or slots_directory()) / hashlib.sha256(key.encode()).hexdigest()[:24]
        self._poll = poll
        self._sleep = sleep
        self._clock = clock
        #: Seconds spent waiting for a slot, in total (for the log and the figures).
        self.waited = 0.0

    def _try_each(self) -> int | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for number in range(self.limit):
            fd = os.open(self.folder / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    # --- a shared pause: the vendor said the account's budget is spent ---------------------------------

    def pause(self, seconds: float) -> None:
        """Tell every holder of the key that no call may go for ``seconds`` (e.g. the vendor answered a
        rate-limit error with the wait): a later deadline already recorded is kept."""
        deadline = time.time() + seconds
        if deadline <= time.time() + self.paused_for():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f"pause.{os.getpid()}.tmp"
        temporary.write_text(repr(deadline))
        os.replace(temporary, self.folder / "pause")  # atomic: readers see the old or the new deadline

    def paused_for(self) -> float:
        """Seconds left of the pause recorded by any holder of the key (0 when none)."""
        try:
            deadline = float((self.folder / "pause").read_text())
        except (OSError, ValueError):
            return 0.0
        return max(0.0, deadline - time.time())

    @contextlib.contextmanager
    def hold(self, *, max_wait: float | None = None) -> Iterator[None]:
        """Hold one slot for the block; wait (polling) while all are taken, at most ``max_wait`` seconds
        (:class:`SlotWaitTooLong`); ``None`` waits as long as needed."""
        fd = wait_for_slot(self, self._try_each, max_wait, cap=1.0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
