"""Request budgets counted in Redis: one count per key for every process, the caller's wait bound kept.

Needs the Redis at ``SECCOLLECT_TEST_REDIS_URL`` (default 127.0.0.1:6379/0); skipped when it does not
answer, unless REQUIRE_SERVICES=1. Every test uses budget keys of its own, so runs never share a count.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from seccollect.http.budget import BudgetWaitTooLong, ProcessBudget, credential_budget
from seccollect.http.redis_budget import RedisBudget

REDIS_URL = os.environ.get("SECCOLLECT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at {REDIS_URL} does not answer: {exc} (REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis at {REDIS_URL} does not answer")
    yield client
    for key in client.scan_iter("seccollect:budget:test-*"):
        client.delete(key)


def test_two_clients_of_one_key_share_one_count(redis_client) -> None:
    key = f"test-{uuid.uuid4().hex}"
    first = RedisBudget(key, 3, 60.0, client=redis_client)
    second = RedisBudget(key, 3, 60.0, client=redis_client)  # another process would build exactly this
    first.acquire(max_wait=0)
    second.acquire(max_wait=0)
    first.acquire(max_wait=0)
    with pytest.raises(BudgetWaitTooLong) as raised:
        second.acquire(max_wait=1)
    assert 58 < raised.value.wait <= 60 + first.margin and raised.value.key == key  # the period + its margin
    # Another key (another credential) has its own count.
    RedisBudget(f"test-{uuid.uuid4().hex}", 3, 60.0, client=redis_client).acquire(max_wait=0)


def test_a_full_budget_waits_until_the_oldest_request_leaves_the_period(redis_client) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    budget = RedisBudget(f"test-{uuid.uuid4().hex}", 2, 0.5, client=redis_client, sleep=sleep)
    for _ in range(3):
        budget.acquire()
    # The period plus the margin (0.25 s: the send delay a busy machine may add), never more.
    assert len(slept) >= 1 and all(0 < s <= 0.77 for s in slept)
    assert sum(slept) >= 0.5  # the third send waited for the first to leave the period


def test_the_margin_widens_the_period_a_send_counts_in(redis_client) -> None:
    key = f"test-{uuid.uuid4().hex}"
    budget = RedisBudget(key, 1, 0.2, client=redis_client, margin=0.3)
    budget.acquire()
    time.sleep(0.3)  # the period has passed, the margin has not
    with pytest.raises(BudgetWaitTooLong):
        budget.acquire(max_wait=0)
    time.sleep(0.25)
    budget.acquire(max_wait=0)


def test_credential_budget_is_redis_when_a_limits_url_is_set_else_the_shared_store(
    redis_client, monkeypatch, tmp_path
) -> None:
    from seccollect.http.shared_budget import SharedBudget

    monkeypatch.delenv("SECCOLLECT_LIMITS_URL", raising=False)
    monkeypatch.delenv("SECCOLLECT_BUDGETS", raising=False)
    monkeypatch.setenv("SECCOLLECT_BUDGET_PATH", str(tmp_path / "budget.sqlite3"))
    assert isinstance(credential_budget("test-x", 5, 1.0), SharedBudget)
    monkeypatch.setenv("SECCOLLECT_BUDGETS", "process")
    assert isinstance(credential_budget("test-x", 5, 1.0), ProcessBudget)
    monkeypatch.setenv("SECCOLLECT_LIMITS_URL", REDIS_URL)
    assert isinstance(credential_budget("test-x", 5, 1.0), RedisBudget)
