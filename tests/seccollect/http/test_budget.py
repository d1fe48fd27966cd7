"""Request budgets: a per-process budget shared by key, and a caller that will not wait too long."""

from __future__ import annotations

import pytest

from seccollect.http.budget import BudgetWaitTooLong, ProcessBudget, process_budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_caller_that_will_not_wait_gets_the_wait_it_would_need() -> None:
    clock = FakeClock()
    budget = ProcessBudget("acme", 2, 60.0, clock=clock, sleep=clock.sleep)
    budget.acquire(max_wait=0)
    budget.acquire(max_wait=0)
    clock.now = 15.0
    with pytest.raises(BudgetWaitTooLong) as raised:
        budget.acquire(max_wait=10)
    assert raised.value.wait == pytest.approx(45.0) and raised.value.key == "acme"
    budget.acquire(max_wait=60)  # waits it out
    assert clock.now >= 60.0


def test_every_hook_of_a_process_shares_the_budget_of_one_key() -> None:
    assert process_budget("tenant-a", 23, 5.0) is process_budget("tenant-a", 23, 5.0)
    assert process_budget("tenant-a", 23, 5.0) is not process_budget("tenant-b", 23, 5.0)


def test_a_budget_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        ProcessBudget("x", 0, 1.0)
