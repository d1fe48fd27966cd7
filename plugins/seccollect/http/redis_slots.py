"""Concurrency slots counted in Redis, so one credential's "at most N calls at once" holds across machines.

Why leases: a lock file (:class:`~seccollect.http.slots.SharedSlots`) is freed by the kernel when its
holder dies, but only on its own machine. In Redis nobody notices a dead holder, so a slot is a *lease*:
a member of one sorted set per key whose score is the time it lapses (Redis's own clock, so workers
whose clocks disagree still agree on it). A holder renews its lease from a background thread every
third of the lease; a holder killed with ``kill -9`` stops renewing, and the next caller that finds
every slot taken drops the lapsed lease and takes its place: a dead worker keeps a slot at most one
lease long. Taking, renewing and releasing are each one atomic script.

The shared pause (the vendor said the account's call budget is spent) is a key that expires when the
pause ends; a later deadline replaces an earlier one, never the reverse.

Selected by :func:`seccollect.http.slots.credential_slots` when ``SECCOLLECT_LIMITS_URL`` names a Redis.
The Redis keys hold a hash of the slot key, never the key itself (it may name an account).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from seccollect.http.slots import wait_for_slot

__all__ = ["DEFAULT_LEASE", "RedisSlots"]

log = logging.getLogger(__name__)

#: Seconds a slot stays taken without renewal: the longest a killed holder can keep one. Renewed every
#: third of it, so a holder survives a couple of missed renewals (a slow Redis, a busy machine).
DEFAULT_LEASE = 30.0

#: KEYS[1]: the sorted set of leases. Drop lapsed leases; take one if fewer than ARGV[1] remain (0), else
#: 1. ARGV[2]: lease in ms; ARGV[3]: the holder's token. The set lives as long as its longest lease.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 1
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 0
"""

#: Push the lease of token ARGV[2] to now + ARGV[1] ms (1), or 0 when it is gone: it lapsed and another
#: caller dropped it (a lapsed lease still in the set was never replaced, so renewing it is safe).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[2])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""

#: The pause: KEYS[1] lives ARGV[1] ms unless it already lives longer.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 0
"""


class RedisSlots:
    """At most ``limit`` holders of ``key`` at once, across every process and machine using one Redis.

    Holders of one key with different limits (a limit changed mid-deploy) share one set of leases: each
    takes a slot only while fewer than its own limit are held.

    :param key: what the slots are for (an account); hashed into the Redis key names.
    :param limit: how many may hold a slot at once (at least 1).
    :param client: a ``redis.Redis`` client.
    :param lease: seconds a slot stays taken without renewal (see :data:`DEFAULT_LEASE`).
    :param poll: the first pause between tries when every slot is taken (doubles up to 0.5 s).
    :param sleep: injectable sleep (tests).
    """

    PREFIX = "seccollect:slots:"
    PAUSE_PREFIX = "seccollect:pause:"

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        client: Any,
        lease: float = DEFAULT_LEASE,
        poll: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a slot set needs a limit of at least 1")
        if lease <= 0:
            raise ValueError("a slot lease must be positive")
        self.key = key
        self.limit = limit
        self.lease = lease
        self._client = client
        self._poll = poll
        self._sleep = sleep
        self._clock = clock
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        self.redis_key = self.PREFIX + digest
        self.pause_key = self.PAUSE_PREFIX + digest
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._pause = client.register_script(_PAUSE)
        #: Seconds spent waiting for a slot, in total (for the log and the figures).
        self.waited = 0.0

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    def _try(self, token: str) -> bool:
        return int(self._acquire(keys=[self.redis_key], args=[self.limit, self._lease_ms, token])) == 0

    def holders(self) -> int:
        """How many leases are held now (lapsed ones not yet dropped included): for logs and tests."""
        return int(self._client.zcard(self.redis_key))

    # --- a shared pause: the vendor said the account's budget is spent ---------------------------------

    def pause(self, seconds: float) -> None:
        """Tell every holder of the key that no call may go for ``seconds``: a later deadline already
        recorded is kept."""
        if seconds > 0:
            self._pause(keys=[self.pause_key], args=[max(1, int(seconds * 1000))])

    def paused_for(self) -> float:
        """Seconds left of the pause recorded by any holder of the key (0 when none)."""
        left = int(self._client.pttl(self.pause_key))
        return left / 1000.0 if left > 0 else 0.0

    # --- holding ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, *, max_wait: float | None = None) -> Iterator[None]:
        """Hold one slot for the block (its lease renewed meanwhile); wait (polling) while all are taken,
        at most ``max_wait`` seconds (:class:`~seccollect.http.slots.SlotWaitTooLong`); ``None`` waits as
        long as needed."""
        # Who holds a slot, readable in Redis when a deployment is debugged (no secret in it).
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        wait_for_slot(self, lambda: self._try(token), max_wait, cap=0.5)
        stop = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(token, stop), name="slot-lease-renewer", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                self._client.zrem(self.redis_key, token)
            except Exception as exc:  # noqa: BLE001 - the lease lapses by itself; never mask the block's error
                log.warning("Could not release a concurrency slot of %r (%s); it frees itself within %.0fs",
                            self.key, exc, self.lease)

    def _keep(self, token: str, stop: threading.Event) -> None:
        """Renew ``token``'s lease until ``stop`` is set."""
        while not stop.wait(self.lease / 3):
            try:
                if int(self._renew(keys=[self.redis_key], args=[self._lease_ms, token])) == 0:
                    # Renewals failed for a whole lease (Redis unreachable, the process stopped): the slot
                    # may be someone else's now. The call in flight cannot be taken back; say so.
                    log.warning("The lease of a concurrency slot of %r lapsed while held; the limit may be "
                                "exceeded until this call ends", self.key)
                    return
            except Exception as exc:  # noqa: BLE001 - keep trying: the lease outlives a few failures
                log.warning("Could not renew a concurrency slot of %r: %s", self.key, exc)
