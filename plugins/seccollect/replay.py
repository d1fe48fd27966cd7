"""Replaying a window from the Trigger form: the DAGs' Params and the rules a replayed window must meet.

Every connector DAG has two Params, ``window_start`` and ``window_end`` (UTC date-times; Airflow's
Trigger form shows a date-time picker for a string Param of format ``date-time`` and sends the chosen
minute as an ISO string in UTC). Left empty, a run collects its own window (scheduled, backfill and
plain manual runs are unaffected); filled, they are the run conf of a replay
(:func:`seccollect.operators.collect.run_window`).

The form checks each value's format (the JSON schema); what a schema cannot say is checked when the
run starts (:func:`check_replay`), and a run whose replay is refused fails at once, before any vendor
call, with the reason in its note and in its tasks' logs:

* both bounds or neither;
* ``window_start`` before ``window_end``;
* whole minutes (the picker's resolution; S3 objects are chosen by the minute in their names);
* within the vendor's retention, judged against the run's own date (its logical date, else when it
  was made), so a run dated in the past may replay the windows of its day;
* not in the future: a replay is of windows that have ended (the scheduler collects the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: The Params (and run conf keys) of a replay.
WINDOW_START = "window_start"
WINDOW_END = "window_end"


class ReplayRefused(ValueError):
    """A replay's window breaks one of the rules of this module; the message says which and why."""


def replay_params(retention: timedelta | None, interval_minutes: int) -> dict[str, Any]:
    """The DAG's ``params``: the two optional date-time fields of the Trigger form."""
    from airflow.sdk import Param

    kept = f"the vendor keeps {_span(retention)} of data" if retention else "no vendor retention limit"
    rules = (
        "UTC, whole minutes. Leave both empty to collect the run's own window. "
        f"Windows of this instance are {interval_minutes} min; the start must be before the end, the end "
        f"not in the future, and {kept}."
    )
    return {
        WINDOW_START: Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Replay window start (UTC)",
            description=f"Start of the window to collect again (inclusive). {rules}",
            section="Replay a window",
        ),
        WINDOW_END: Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Replay window end (UTC)",
            description=f"End of the window to collect again (exclusive). {rules}",
            section="Replay a window",
        ),
    }


@dataclass(frozen=True)
class Replay:
    """A replay's window, checked."""

    start: datetime
    end: datetime


def _span(delta: timedelta) -> str:
    days = delta.total_seconds() / 86_400
    return f"{days:g} days" if days >= 1 else f"{delta.total_seconds() / 3600:g} hours"


def _parse(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ReplayRefused(f"{name} {value!r} is not a date-time (e.g. 2026-03-01T10:00:00Z)") from None
    # A value without an offset is UTC, as the form's fields say.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def replay_of(conf: Mapping[str, Any] | None) -> tuple[Any, Any] | None:
    """The raw ``(window_start, window_end)`` of a run conf, or None when the run replays nothing
    (neither given: the form's empty fields arrive as nulls)."""
    conf = conf or {}
    start, end = conf.get(WINDOW_START), conf.get(WINDOW_END)
    if start in (None, "") and end in (None, ""):
        return None
    return start, end


def check_replay(
    start: Any,
    end: Any,
    *,
    retention: timedelta | None,
    reference: datetime,
    now: datetime | None = None,
) -> Replay:
    """The replayed window ``[start, end)``, or :class:`ReplayRefused` saying which rule it breaks.

    :param retention: how far back the vendor serves data (``None``: no limit).
    :param reference: the run's own date (its logical date, else when it was made): retention is
        judged against it, so a run dated in the past may replay the windows of its day.
    :param now: the current time (the window must have ended by then).
    """
    if start in (None, "") or end in (None, ""):
        missing = WINDOW_START if start in (None, "") else WINDOW_END
        raise ReplayRefused(f"a replay needs both {WINDOW_START} and {WINDOW_END}; {missing} is empty "
                            "(leave both empty to collect the run's own window)")
    first, last = _parse(WINDOW_START, start), _parse(WINDOW_END, end)
    if not first < last:
        raise ReplayRefused(f"{WINDOW_START} ({first:%Y-%m-%d %H:%M:%S} UTC) must be before {WINDOW_END} "
                            f"({last:%Y-%m-%d %H:%M:%S} UTC)")
    for name, moment in ((WINDOW_START, first), (WINDOW_END, last)):
        if moment.second or moment.microsecond:
            raise ReplayRefused(f"{name} ({moment.isoformat()}) must be a whole minute")
    now = now or datetime.now(UTC)
    if last > now:
        raise ReplayRefused(f"{WINDOW_END} ({last:%Y-%m-%d %H:%M} UTC) is in the future; a replay collects "
                            "windows that have ended (the scheduler collects the others)")
    if retention is not None:
        oldest = _parse("reference", reference) - retention
        if first < oldest:
            raise ReplayRefused(
                f"{WINDOW_START} ({first:%Y-%m-%d %H:%M} UTC) is older than the vendor keeps data: "
                f"{_span(retention)} before this run's date, i.e. not before {oldest:%Y-%m-%d %H:%M} UTC"
            )
    return Replay(first, last)


def describe_window(start: datetime, end: datetime, *, replay: bool) -> str:
    """How a run's note names the window it collects."""
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    kind = "Replay of window" if replay else "Window"
    return f"{kind} {start:%Y-%m-%d %H:%M} – {until} UTC"
