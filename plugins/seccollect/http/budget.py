"""Client-side request budgets: how many requests one credential may send in a period.

A vendor's rate limit belongs to a credential, not to a task: every request made with one API key -
by any instance, task or worker - counts against it. :class:`RequestBudget` is the interface the HTTP
layer draws from before every attempt. :class:`ProcessBudget` keeps the count in this process (one
budget per key, shared by every hook of the process);
:class:`~seccollect.http.redis_budget.RedisBudget` keeps it in Redis, shared by every task of every
worker. Hooks ask :func:`credential_budget`, which picks the shared one when ``SECCOLLECT_LIMITS_URL``
is set (a deployment with more than one worker process must set it).

A budget never makes a task wait longer than its caller allows: ``acquire(max_wait=...)`` raises
:class:`BudgetWaitTooLong` with the wait it would need, so an operator can give its worker slot back
(defer or reschedule) instead of holding it idle.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class BudgetWaitTooLong(Exception):
    """The next request may only be sent after ``wait`` seconds, more than the caller accepts."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"request budget {key!r} is spent; the next request may go in {wait:.1f}s")
        self.key = key
        self.wait = wait


class RequestBudget(Protocol):
    """Permission to send one more request."""

    #: What the budget is for, e.g. ``netskope:acme`` (never a secret).
    key: str

    def acquire(self, *, max_wait: float | None = None) -> None:
        """Return once one more request may be sent (it is counted); wait at most ``max_wait`` seconds,
        else raise :class:`BudgetWaitTooLong`. ``None`` waits as long as needed."""
        ...


class ProcessBudget:
    """At most ``max_calls`` requests per ``period`` seconds (a sliding window) within this process.

    :param key: what the budget is for (budgets are shared per key, see :func:`process_budget`).
    :param max_calls: requests allowed per period.
    :param period: the period, in seconds.
    :param clock: injectable monotonic clock (tests).
    :param sleep: injectable sleep (tests).
    """

    def __init__(
        self,
        key: str,
        max_calls: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("a budget needs max_calls >= 1 and a positive period")
        self.key = key
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def _wait_needed(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= self.period:
            self._sent.popleft()
        if len(self._sent) < self.max_calls:
            return 0.0
        return self.period - (now - self._sent[0])

    def acquire(self, *, max_wait: float | None = None) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._sent.append(now)
                    return
            if max_wait is not None and wait > max_wait:
                raise BudgetWaitTooLong(self.key, wait)
            self._sleep(wait + 0.01)


_PROCESS_BUDGETS: dict[tuple[str, int, float], ProcessBudget] = {}
_PROCESS_BUDGETS_LOCK = threading.Lock()


def process_budget(key: str, max_calls: int, period: float) -> ProcessBudget:
    """The process-wide budget of ``key`` (created on first use), so every hook of a process that uses
    one credential draws from the same count."""
    with _PROCESS_BUDGETS_LOCK:
        budget = _PROCESS_BUDGETS.get((key, max_calls, period))
        if budget is None:
            budget = _PROCESS_BUDGETS[(key, max_calls, period)] = ProcessBudget(key, max_calls, period)
        return budget


#: Redis URL of the budgets and concurrency slots shared across processes and workers (unset: see
#: :func:`credential_budget` and :func:`seccollect.http.slots.credential_slots`).
LIMITS_URL_ENV = "SECCOLLECT_LIMITS_URL"
#: ``process``: budgets counted per process (no shared store).
BUDGETS_ENV = "SECCOLLECT_BUDGETS"
_REDIS_CLIENTS: dict[str, Any] = {}


def credential_budget(key: str, max_calls: int, period: float) -> RequestBudget:
    """The budget of one credential, shared by every task that uses it:

    * in the Redis of ``$SECCOLLECT_LIMITS_URL`` when it is set (a Celery deployment's broker: one
      sliding window per key on Redis's clock, :mod:`seccollect.http.redis_budget`);
    * else in the deployment's shared store (:mod:`seccollect.http.shared_budget`: PostgreSQL when the
      warehouse is PostgreSQL or ``SECCOLLECT_BUDGET_CONN_ID`` names one, else an SQLite file beside
      Airflow's home: every process of this machine);
    * per process only when ``SECCOLLECT_BUDGETS=process`` (one process per credential, or a test's
      control).
    """
    url = os.environ.get(LIMITS_URL_ENV)
    if not url:
        if os.environ.get(BUDGETS_ENV) == "process":
            return process_budget(key, max_calls, period)
        from seccollect.http.shared_budget import RateLimit, shared_budget

        return shared_budget(key, [RateLimit(max_calls, period)])
    from seccollect.http.redis_budget import RedisBudget

    return RedisBudget(key, max_calls, period, client=limits_redis(url))


def limits_redis(url: str) -> Any:
    """The process's Redis client of ``url`` (one connection pool per URL, shared by every budget and
    slot set of the process; redis-py's pool starts afresh in a forked child)."""
    import redis

    with _PROCESS_BUDGETS_LOCK:
        client = _REDIS_CLIENTS.get(url)
        if client is None:
            client = _REDIS_CLIENTS[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
        return client
