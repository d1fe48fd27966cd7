"""SharedBudget: one request log for every process and worker (SQLite on one machine, PostgreSQL across
machines), reservations in order, never more than the limit in any window, and the give-up path that
lets a task free its worker slot."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from seccollect.http.budget import BudgetWaitTooLong
from seccollect.http.shared_budget import (
    PostgresBudgetStore,
    RateLimit,
    SharedBudget,
    SqliteBudgetStore,
    budget_key,
    shared_store,
)
from seccollect_dev.simulators.trendmicro import max_in_window


def _pg_store(params):
    import psycopg

    return PostgresBudgetStore(lambda: psycopg.connect(**params))


def _worker(kind: str, where, key: str, count: int, limit: int, period: float, out) -> None:
    store = SqliteBudgetStore(where) if kind == "sqlite" else _pg_store(where)
    budget = SharedBudget(key, [RateLimit(limit, period)], store, margin=0.05)
    sent = []
    for _ in range(count):
        budget.acquire()
        sent.append(time.time())
    out.put(sent)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_where(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "budget.sqlite3")
    return "postgres", request.getfixturevalue("postgres_database")


def test_processes_sharing_a_key_never_exceed_the_limit_in_any_window(store_where):
    kind, where = store_where
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    limit, period, per_process = 5, 1.0, 8
    procs = [ctx.Process(target=_worker, args=(kind, where, "k:shared", per_process, limit, period, out)) for _ in range(3)]
    for p in procs:
        p.start()
    sent = [t for _ in procs for t in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert len(sent) == 3 * per_process
    assert max_in_window(sent, period) <= limit
    # Paced, not serialised one by one: 24 requests at 5 per second take about 4 periods.
    assert max(sent) - min(sent) >= (3 * per_process // limit - 1) * period


def test_a_caller_that_will_not_wait_gets_the_wait_and_reserves_nothing(tmp_path):
    store = SqliteBudgetStore(tmp_path / "b.sqlite3")
    slept = []
    budget = SharedBudget("k", [RateLimit(2, 30.0)], store, margin=0.0, sleep=slept.append)
    budget.acquire(max_wait=0)
    budget.acquire(max_wait=0)
    with pytest.raises(BudgetWaitTooLong) as spent:
        budget.acquire(max_wait=5)
    assert 29 < spent.value.wait <= 30
    # Nothing was reserved by the refusal: the next patient caller waits the same ~30 s, not 60.
    budget.acquire()
    assert len(slept) == 1 and 29 < slept[0] <= 30


def test_every_limit_counts_a_daily_one_too(tmp_path):
    store = SqliteBudgetStore(tmp_path / "b.sqlite3")
    budget = SharedBudget("k", [RateLimit(100, 60.0), RateLimit(3, 86_400.0)], store, margin=0.0, sleep=lambda s: None)
    for _ in range(3):
        budget.acquire(max_wait=0)
    with pytest.raises(BudgetWaitTooLong) as spent:
        budget.acquire(max_wait=60)
    assert spent.value.wait > 86_000


def test_keys_are_separate_and_never_hold_the_secret(tmp_path):
    store = SqliteBudgetStore(tmp_path / "b.sqlite3")
    one = SharedBudget(budget_key("vendor", "secret-a"), [RateLimit(1, 60.0)], store, margin=0.0)
    two = SharedBudget(budget_key("vendor", "secret-b"), [RateLimit(1, 60.0)], store, margin=0.0)
    one.acquire(max_wait=0)
    two.acquire(max_wait=0)  # another key: its own budget
    assert "secret" not in one.key and one.key != two.key
    assert b"secret-a" not in (tmp_path / "b.sqlite3").read_bytes()


def test_netskope_v1_rate_fits_the_same_interface(tmp_path):
    """The kit's other budgets (e.g. Netskope v1: 24 requests per 5 s) are just other limits."""
    store = SqliteBudgetStore(tmp_path / "b.sqlite3")
    budget = SharedBudget("netskope-v1:tenant", [RateLimit(23, 5.0)], store, margin=0.0, sleep=lambda s: None)
    for _ in range(23):
        budget.acquire(max_wait=0)
    with pytest.raises(BudgetWaitTooLong):
        budget.acquire(max_wait=1)


def test_store_follows_the_deployment(tmp_path, monkeypatch, warehouse_conn):
    """PostgreSQL when the warehouse is PostgreSQL (every worker reaches it), else the machine's file."""
    monkeypatch.setenv("SECCOLLECT_BUDGET_PATH", str(tmp_path / "file.sqlite3"))
    monkeypatch.delenv("SECCOLLECT_BUDGET_CONN_ID", raising=False)
    store = shared_store()
    if warehouse_conn == "postgres":
        assert isinstance(store, PostgresBudgetStore)
        assert store.reserve("k", [RateLimit(1, 60.0)], 0.0, 0)[0] == 0
    else:
        assert isinstance(store, SqliteBudgetStore) and store.path == tmp_path / "file.sqlite3"
