"""A collect task whose credential's request budget is spent gives its worker slot back: BaseCollectOperator
turns BudgetWaitTooLong into a deferral for the wait, and collects again afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seccollect.http.budget import BudgetWaitTooLong
from seccollect.operators.windowed import WindowedCollectOperator


class _SpentBudgetOperator(WindowedCollectOperator):
    calls = 0

    def origin(self):
        from seccollect.records.envelope import MsgOrigin

        return MsgOrigin("toy_x", "toy", "toy", "test")

    def pages(self, query_start, query_end, context):
        type(self).calls += 1
        if type(self).calls == 1:
            raise BudgetWaitTooLong("vendor:abc", 42.0)
        return iter([])


def test_a_spent_budget_defers_for_its_wait_and_the_resumed_task_collects(staging):
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import TaskDeferred

    with DAG("acme-toy-budget", schedule=None):
        op = _SpentBudgetOperator(task_id="collect_x", tenant="acme", instance_name="i", content_type="x",
                                  warehouse_conn_id=None, window_start="2026-03-01T00:00:00+00:00",
                                  window_end="2026-03-01T01:00:00+00:00")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, TimeDeltaTrigger) and deferred.value.method_name == "resume_after_budget"
    assert 35 < (trigger._moment - datetime.now(UTC)).total_seconds() <= 42
    staged = op.resume_after_budget({}, event=None)
    assert staged.figures["fetched"] == 0 and _SpentBudgetOperator.calls == 2
