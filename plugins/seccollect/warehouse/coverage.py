"""The ``coverage`` view: every window of every instance and content type, from its first window to now,
with what became of it.

Windows are laid out from ``instance_schedules`` (written by each DAG's coverage check, from the
instance files) and matched with the ledger and the recorded failures:

* ``collected`` - loaded (``rows_inserted`` and the other figures come from the ledger);
* ``late``      - loaded, but after its grace period (by a catch-up, a retry or a backfill), or with
  items that arrived after their own window (e.g. late S3 objects);
* ``pending``   - not loaded yet, still within its grace period;
* ``failed``    - not loaded, and its collect or load task failed for good (``failure`` says why);
* ``missing``   - not loaded, past its grace period, with no recorded failure: no run collected it;
* ``lost_to_retention`` - not loaded, and older than the vendor keeps data.

Written once for both backends; only generating the series of windows differs (:class:`Dialect`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """How a backend writes the two non-standard pieces of the view.

    :param seconds: an interval of ``{n}`` seconds (``{n}`` is a column expression).
    :param series: a relation ``w(window_start)`` of ``{start}``, ``{start} + {step}`` … up to now,
        joinable after ``FROM instance_schedules s,``.
    """

    seconds: str
    series: str


STATUSES = ("collected", "late", "pending", "failed", "missing", "lost_to_retention")


def coverage_view_sql(dialect: Dialect) -> str:
    def seconds(expression: str) -> str:
        return dialect.seconds.format(n=expression)

    window_end = f"w.window_start + {seconds('w.window_seconds')}"
    due = f"w.window_start + {seconds('w.window_seconds + w.grace_seconds')}"
    series = dialect.series.format(start="s.first_window", step="s.step_seconds")
    same_window = (
        "{t}.dag_id = w.dag_id AND {t}.content_type = w.content_type AND {t}.window_start = w.window_start "
        f"AND {{t}}.window_end = {window_end}"
    )
    return f"""
CREATE OR REPLACE VIEW coverage AS
SELECT
    w.dag_id,
    w.content_type,
    w.window_start,
    {window_end} AS window_end,
    CASE
        WHEN l.dag_id IS NOT NULL AND (coalesce(l.late_items, 0) > 0 OR l.first_loaded_at > {due}) THEN 'late'
        WHEN l.dag_id IS NOT NULL THEN 'collected'
        WHEN {due} > now() THEN 'pending'
        WHEN w.retention_seconds IS NOT NULL AND {window_end} < now() - {seconds('w.retention_seconds')}
            THEN 'lost_to_retention'
        WHEN f.dag_id IS NOT NULL THEN 'failed'
        ELSE 'missing'
    END AS status,
    l.inserted_rows AS rows_inserted,
    l.staged_rows AS rows_staged,
    l.quarantined,
    l.late_items,
    l.loads,
    l.loaded_at,
    f.task_id AS failed_task,
    f.reason AS failure
FROM (SELECT s.dag_id, s.content_type, s.window_seconds, s.grace_seconds, s.retention_seconds, w.window_start
      FROM instance_schedules s, {series}) w
LEFT JOIN collection_ledger l ON {same_window.format(t="l")}
LEFT JOIN window_failures f ON {same_window.format(t="f")}
"""
