"""Concurrency slots shared by every process that uses one credential: at most N calls in flight.

Some vendors limit how many calls of one account may run *at once* (and answer the next one with an
error instead of queueing it). That limit belongs to the account, not to a task: two instances, a
backfill of many windows and the Test button all count against it. :class:`SharedSlots` is a counting
semaphore across threads and processes of one machine, made of ``limit`` lock files in a directory
named after the key (``fcntl.flock``: the kernel releases a slot when its holder dies, so a killed task
never leaks one). The same folder records a shared pause (:meth:`SharedSlots.pause`): when the vendor
says the account's call budget is spent, every process waits it out instead of spending calls on
refusals. Workers on several machines share a directory on a shared file system, or run the
vendor's tasks in one Airflow pool sized to the limit.

The key names the account (e.g. a hash of the API URL and the user name), never a secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Where slot files live unless ``SECCOLLECT_SLOTS_DIR`` says otherwise.
DEFAULT_DIRECTORY = Path(tempfile.gettempdir()) / "seccollect-slots"


class SlotWaitTooLong(Exception):  # noqa: N818 - reads as what happened
    """No slot became free within the caller's ``max_wait``."""

    def __init__(self, key: str, waited: float) -> None:
        super().__init__(f"no concurrency slot of {key!r} became free in {waited:.1f}s")
        self.key = key
        self.waited = waited


def slots_directory() -> Path:
    """The directory slot files live in (``SECCOLLECT_SLOTS_DIR``, else the temporary directory)."""
    configured = os.environ.get("SECCOLLECT_SLOTS_DIR")
    return Path(configured) if configured else DEFAULT_DIRECTORY


class SharedSlots:
    """At most ``limit`` holders of ``key`` at once, across threads and processes sharing ``directory``.

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
        started = self._clock()
        pause = self._poll
        fd = self._try_each()
        while fd is None:
            waited = self._clock() - started
            if max_wait is not None and waited >= max_wait:
                self.waited += waited
                raise SlotWaitTooLong(self.key, waited)
            self._sleep(pause)
            pause = min(pause * 2, 1.0)
            fd = self._try_each()
        self.waited += self._clock() - started
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
