"""Concurrency slots shared across machines, in Redis and in PostgreSQL: at most N holders of one key
across processes that share nothing on disk (as on several machines), a holder killed with SIGKILL
frees its slot (in Redis once its lease lapses), and the pause is seen by every holder.

Needs the Redis at ``SECCOLLECT_TEST_REDIS_URL`` (default 127.0.0.1:6379/0) and the test PostgreSQL;
skipped when they do not answer, unless REQUIRE_SERVICES=1. Every test uses slot keys (and databases)
of its own, so runs never share a count.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from seccollect.http.postgres_slots import PostgresSlots
from seccollect.http.redis_slots import RedisSlots
from seccollect.http.slots import SharedSlots, SlotWaitTooLong, credential_slots

REDIS_URL = os.environ.get("SECCOLLECT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FORK = multiprocessing.get_context("fork")


def _client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=10)


@pytest.fixture
def redis_client():
    import redis

    client = _client()
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at {REDIS_URL} does not answer: {exc} (REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis at {REDIS_URL} does not answer")
    yield client
    client.close()


@pytest.fixture
def key(redis_client):
    """A slot key of the test's own; its Redis keys are removed afterwards."""
    name = f"test-slots-{uuid.uuid4().hex}"
    yield name
    probe = RedisSlots(name, 1, client=redis_client)
    redis_client.delete(probe.redis_key, probe.pause_key)


# --- N processes contending ---------------------------------------------------------------------------


def _pg(params: dict[str, Any]) -> Any:
    import psycopg

    return lambda: psycopg.connect(**params)


def _slots(kind: str, key: str, limit: int, where: Any) -> Any:
    """The slots a contender builds in its own process (own connections, own lock folder)."""
    if kind == "redis":
        return RedisSlots(key, limit, client=_client(), lease=5.0)
    if kind == "postgres":
        return PostgresSlots(key, limit, connect=_pg(where))
    return SharedSlots(key, limit, directory=Path(where))


def _contend(kind: str, key: str, limit: int, rounds: int, where: Any, active: Any, most: Any, done: Any) -> None:
    """One contender (its own process, as a worker elsewhere would be): hold a slot ``rounds`` times,
    counting holders in the shared counters meanwhile."""
    slots = _slots(kind, key, limit, where)
    for _ in range(rounds):
        with slots.hold():
            with active.get_lock():
                active.value += 1
                most.value = max(most.value, active.value)
            time.sleep(0.02)  # the call: long enough for the others to try meanwhile
            with active.get_lock():
                active.value -= 1
            with done.get_lock():
                done.value += 1


def _run_contenders(kind: str, key: str, limit: int, wheres: list[Any], rounds: int = 8) -> tuple[int, int]:
    active, most, done = FORK.Value("i", 0), FORK.Value("i", 0), FORK.Value("i", 0)
    processes = [FORK.Process(target=_contend, args=(kind, key, limit, rounds, where, active, most, done))
                 for where in wheres]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0, process.exitcode
    assert done.value == rounds * len(wheres)
    return most.value, active.value


def test_processes_contending_in_redis_never_exceed_the_limit(redis_client, key, tmp_path) -> None:
    # Six processes, each with lock files of its own (as on six machines): only Redis is shared.
    folders = [str(tmp_path / f"machine-{n}") for n in range(6)]
    most, active = _run_contenders("redis", key, 2, folders)
    assert most == 2 and active == 0
    assert redis_client.zcard(RedisSlots(key, 2, client=redis_client).redis_key) == 0  # every slot given back


@pytest.mark.postgres
def test_processes_contending_in_postgres_never_exceed_the_limit(postgres_database) -> None:
    most, active = _run_contenders("postgres", f"test-slots-{uuid.uuid4().hex}", 2, [postgres_database] * 6)
    assert most == 2 and active == 0


def test_control_lock_files_on_separate_machines_do_not_bound_them(tmp_path) -> None:
    # The same contention with lock files that are not shared (one folder per "machine"): the counter
    # sees more than the limit, so the bound above is what Redis gives, not what the timing allows.
    folders = [str(tmp_path / f"machine-{n}") for n in range(6)]
    most, _ = _run_contenders("flock", f"test-slots-{uuid.uuid4().hex}", 2, folders)
    assert most > 2


# --- a holder killed with SIGKILL -----------------------------------------------------------------------


def _hold_until_killed(key: str, lease: float, ready: Any) -> None:
    slots = RedisSlots(key, 1, client=_client(), lease=lease)
    with slots.hold():
        ready.set()
        time.sleep(600)


def test_a_holder_killed_with_sigkill_frees_its_slot_once_its_lease_lapses(redis_client, key) -> None:
    lease = 3.0
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_until_killed, args=(key, lease, ready))
    holder.start()
    try:
        assert ready.wait(30)
        slots = RedisSlots(key, 1, client=redis_client, lease=lease)
        # Alive, the holder renews its lease: the slot stays taken longer than one lease.
        with pytest.raises(SlotWaitTooLong), slots.hold(max_wait=lease + 1.5):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        assert holder.exitcode == -signal.SIGKILL
        # Nobody released it: its lease is still in Redis, until it lapses.
        assert slots.holders() == 1
        with slots.hold(max_wait=lease * 4):
            assert slots.holders() == 1  # ours; the dead holder's lease was dropped
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()
    assert slots.holders() == 0


def _hold_in_postgres_until_killed(params: dict[str, Any], key: str, ready: Any) -> None:
    with PostgresSlots(key, 1, connect=_pg(params)).hold():
        ready.set()
        time.sleep(600)


@pytest.mark.postgres
def test_a_postgres_holder_killed_with_sigkill_frees_its_slot(postgres_database) -> None:
    key = f"test-slots-{uuid.uuid4().hex}"
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_in_postgres_until_killed, args=(postgres_database, key, ready))
    holder.start()
    try:
        assert ready.wait(30)
        slots = PostgresSlots(key, 1, connect=_pg(postgres_database))
        with pytest.raises(SlotWaitTooLong), slots.hold(max_wait=0.5):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        assert holder.exitcode == -signal.SIGKILL
        # Its session ends with its socket: the server frees the lock without anyone releasing it.
        with slots.hold(max_wait=30):
            pass
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


def test_a_block_that_raises_gives_its_slot_back(redis_client, key) -> None:
    slots = RedisSlots(key, 1, client=redis_client)
    with pytest.raises(RuntimeError), slots.hold():
        raise RuntimeError("the call failed")
    with slots.hold(max_wait=0):
        pass


def test_holders_of_one_key_with_different_limits_share_one_set(redis_client, key) -> None:
    one, two = RedisSlots(key, 1, client=redis_client), RedisSlots(key, 2, client=redis_client)
    with two.hold(max_wait=0):
        with pytest.raises(SlotWaitTooLong), one.hold(max_wait=0.1):
            pass  # one slot is held: a holder whose limit is 1 waits
        with two.hold(max_wait=0):  # a holder whose limit is 2 takes the second
            pass


def test_keys_do_not_share_slots_and_redis_holds_no_account_name(redis_client, key) -> None:
    a, b = RedisSlots(key, 1, client=redis_client), RedisSlots(key + "-other", 1, client=redis_client)
    try:
        with a.hold(), b.hold(max_wait=0.1):
            pass
    finally:
        redis_client.delete(b.redis_key, b.pause_key)
    assert "test-slots" not in a.redis_key and "test-slots" not in a.pause_key


# --- the shared pause ---------------------------------------------------------------------------------


def _pause_elsewhere(key: str, seconds: float) -> None:
    RedisSlots(key, 1, client=_client()).pause(seconds)


def test_a_pause_is_shared_by_every_process_and_the_latest_deadline_wins(redis_client, key) -> None:
    slots = RedisSlots(key, 1, client=redis_client)
    assert slots.paused_for() == 0
    other = FORK.Process(target=_pause_elsewhere, args=(key, 30.0))  # another worker met the vendor's refusal
    other.start()
    other.join(30)
    assert other.exitcode == 0
    assert 25 < slots.paused_for() <= 30
    slots.pause(5)  # an earlier deadline does not shorten the pause
    assert slots.paused_for() > 25
    slots.pause(60)  # a later one extends it
    assert slots.paused_for() > 55
    assert RedisSlots(key + "-other", 1, client=redis_client).paused_for() == 0


def _pause_in_postgres(params: dict[str, Any], key: str, seconds: float) -> None:
    slots = PostgresSlots(key, 1, connect=_pg(params))
    slots.pause(seconds)
    slots.close()


@pytest.mark.postgres
def test_a_postgres_pause_is_shared_by_every_process_and_the_latest_deadline_wins(postgres_database) -> None:
    key = f"test-slots-{uuid.uuid4().hex}"
    slots = PostgresSlots(key, 1, connect=_pg(postgres_database))
    try:
        assert slots.paused_for() == 0
        other = FORK.Process(target=_pause_in_postgres, args=(postgres_database, key, 30.0))
        other.start()
        other.join(30)
        assert other.exitcode == 0
        assert 25 < slots.paused_for() <= 30
        slots.pause(5)
        assert slots.paused_for() > 25
        slots.pause(60)
        assert slots.paused_for() > 55
        assert PostgresSlots(key + "-other", 1, connect=_pg(postgres_database)).paused_for() == 0
    finally:
        slots.close()


# --- the selection ------------------------------------------------------------------------------------


def test_credential_slots_follow_the_budgets_selection(redis_client, monkeypatch, tmp_path, warehouse_conn) -> None:
    monkeypatch.setenv("SECCOLLECT_SLOTS_DIR", str(tmp_path))
    monkeypatch.delenv("SECCOLLECT_LIMITS_URL", raising=False)
    monkeypatch.delenv("SECCOLLECT_BUDGET_CONN_ID", raising=False)
    # Without Redis: the shared store's PostgreSQL when the warehouse is one, else this machine's files.
    expected = PostgresSlots if warehouse_conn == "postgres" else SharedSlots
    assert isinstance(credential_slots("test-x", 2), expected)
    monkeypatch.setenv("SECCOLLECT_LIMITS_URL", REDIS_URL)
    slots = credential_slots("test-x", 2)
    assert isinstance(slots, RedisSlots) and slots.limit == 2
