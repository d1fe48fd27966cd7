"""A request budget counted in Redis, so one credential's limit holds across processes and machines.

Why Redis: every Celery worker of a deployment already reaches the broker, and one atomic script per
request (a sorted set of send times per budget key, trimmed to the period) is all a sliding window
needs. The time is Redis's own clock, so workers whose clocks disagree still count in one timeline.

Selected by :func:`seccollect.http.budget.credential_budget` when ``SECCOLLECT_LIMITS_URL`` names a
Redis (``redis://host:port/db``); without it budgets stay per process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from seccollect.http.budget import BudgetWaitTooLong

__all__ = ["RedisBudget"]

#: Sliding window over KEYS[1]: drop sends older than the period; count this one if below the limit
#: (returns 0), else return the milliseconds until the oldest send leaves the window.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], period * 2)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, period - (now - tonumber(oldest[2])))
"""


class RedisBudget:
    """At most ``max_calls`` requests per ``period`` seconds for ``key``, shared by every process that
    uses the same Redis.

    :param key: what the budget is for (never a secret; it names the Redis key).
    :param max_calls: requests allowed per period.
    :param period: the period, in seconds.
    :param client: a ``redis.Redis`` client.
    :param margin: seconds added to the period, for the delay between the moment a send is counted and
        the request reaching the vendor (a busy machine may hold one request back while the next ones
        go): default 2 % of the period, at least 0.25 s, as the shared store's budget.
    :param sleep: injectable sleep (tests).
    """

    PREFIX = "seccollect:budget:"

    def __init__(
        self, key: str, max_calls: int, period: float, *, client: Any, margin: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("a budget needs max_calls >= 1 and a positive period")
        self.key = key
        self.max_calls = max_calls
        self.period = period
        self.margin = max(0.25, 0.02 * period) if margin is None else margin
        self._client = client
        self._sleep = sleep
        self._script = client.register_script(_ACQUIRE)
        # Budgets with other limits on one key must not share a count (a limit changed mid-deploy).
        self._redis_key = f"{self.PREFIX}{key}:{max_calls}/{period:g}s"

    def acquire(self, *, max_wait: float | None = None) -> None:
        period_ms = max(1, int((self.period + self.margin) * 1000))
        while True:
            wait_ms = int(self._script(keys=[self._redis_key], args=[self.max_calls, period_ms, uuid.uuid4().hex]))
            if wait_ms <= 0:
                return
            wait = wait_ms / 1000.0
            if max_wait is not None and wait > max_wait:
                raise BudgetWaitTooLong(self.key, wait)
            self._sleep(wait + 0.01)
