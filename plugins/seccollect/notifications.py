"""Tell a person when an instance fails, leaves windows uncollected or falls silent.

Built on Airflow's notifier mechanism and the providers' notifiers: mail through the smtp provider's
``SmtpNotifier`` and a webhook through the http provider's ``HttpNotifier`` (a JSON POST whose ``text``
holds the whole message, so a Slack or Teams incoming webhook shows it as is). Which of them an
instance uses is its instance file's ``notify`` section (:class:`~seccollect.config.instance.NotifySettings`).

Three notices exist, each naming the DAG, the window(s) and the reason:

* ``failure`` - a task failed after its retries (:class:`InstanceNotifier` is every task's
  ``on_failure_callback``; Airflow calls it only once the last try failed);
* ``gap``     - the coverage check found windows no run collected;
* ``silence`` - the coverage check found a content type that brought no records for
  ``silence_windows`` windows in a row although it normally has data.

The coverage check sends its own notices (only for gaps and silences it has not reported before, so a
gap does not mail someone every five minutes), so the failure notifier leaves that task alone.
A notification that cannot be delivered is logged and never raises: it must not hide the task's outcome.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

#: Longest reason quoted in a notice (task errors can be long; the log has the rest).
MAX_REASON = 3000


def format_window(start: datetime, end: datetime) -> str:
    """``2026-12-05 10:00 .. 10:05 UTC`` (the end's date only when it differs)."""
    end_format = "%H:%M" if end.date() == start.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} .. {end:{end_format}} UTC"


@dataclass(frozen=True)
class Notice:
    """One message to a person.

    :param kind: ``failure``, ``gap`` or ``silence``.
    :param dag_id: the instance's DAG.
    :param window: the window(s) concerned, as a person reads them (:func:`format_window`).
    :param reason: what happened and what to do.
    :param run_id: the run that noticed it.
    :param task_id: the task that failed or checked.
    :param url: where to look (the task's log in the UI), when known.
    """

    kind: str
    dag_id: str
    window: str
    reason: str
    run_id: str | None = None
    task_id: str | None = None
    url: str | None = None

    @property
    def subject(self) -> str:
        what = {"failure": f"task {self.task_id} failed", "gap": "windows not collected",
                "silence": "no records"}.get(self.kind, self.kind)
        return f"[seccollect] {self.dag_id}: {what} ({self.window})"

    @property
    def text(self) -> str:
        lines = [self.subject, "", f"DAG: {self.dag_id}", f"Window: {self.window}"]
        if self.task_id:
            lines.append(f"Task: {self.task_id}")
        if self.run_id:
            lines.append(f"Run: {self.run_id}")
        if self.url:
            lines.append(f"Log: {self.url}")
        reason = self.reason if len(self.reason) <= MAX_REASON else self.reason[:MAX_REASON] + " …"
        lines += ["", f"Reason: {reason}"]
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body: ``text`` for chat webhooks, the fields for anything else."""
        return {"text": self.text, "kind": self.kind, "dag_id": self.dag_id, "window": self.window,
                "reason": self.reason[:MAX_REASON], "run_id": self.run_id, "task_id": self.task_id, "url": self.url}


def send(settings: Mapping[str, Any], notice: Notice, context: Any) -> list[str]:
    """Deliver ``notice`` on every channel of ``settings`` (the ``notify`` section as a dict); the
    channels that failed, each logged with its reason (never raised)."""
    failed: list[str] = []
    if settings.get("smtp_conn_id"):
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            # notify() directly, not the notifier's __call__: that would render the texts as Jinja
            # templates, and an error message may well contain "{{".
            SmtpNotifier(
                to=list(settings["to"]), from_email=settings.get("from_email"), subject=notice.subject,
                html_content=f"<pre>{html.escape(notice.text)}</pre>", smtp_conn_id=settings["smtp_conn_id"],
            ).notify(context)
        except Exception as exc:  # noqa: BLE001 - see the module doc
            failed.append("smtp")
            log.warning("Could not mail the %s notice of %s through connection %r: %s",
                        notice.kind, notice.dag_id, settings["smtp_conn_id"], exc)
    if settings.get("http_conn_id"):
        try:
            from airflow.providers.http.notifications.http import HttpNotifier

            HttpNotifier(http_conn_id=settings["http_conn_id"], json=notice.payload(),
                         headers={"Content-Type": "application/json"}).notify(context)
        except Exception as exc:  # noqa: BLE001 - see the module doc
            failed.append("http")
            log.warning("Could not post the %s notice of %s to the webhook of connection %r: %s",
                        notice.kind, notice.dag_id, settings["http_conn_id"], exc)
    if not failed:
        log.info("Sent the %s notice of %s", notice.kind, notice.dag_id)
    return failed


class InstanceNotifier(BaseNotifier):
    """``on_failure_callback`` of an instance's tasks: a ``failure`` notice per task that failed for good.

    :param settings: the instance's ``notify`` section (``NotifySettings.model_dump()``).
    """

    template_fields = ()

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.settings = dict(settings)

    def notify(self, context: Any) -> None:
        try:
            task = context["task"]
            if getattr(task, "sends_own_notices", False) or not self.settings.get("on_failure", True):
                return
            send(self.settings, failure_notice(task, context), context)
        except Exception:  # noqa: BLE001 - see the module doc
            log.warning("Could not build the failure notice", exc_info=True)


def failure_notice(task: Any, context: Any) -> Notice:
    """The notice of ``task`` failing in ``context``: its window and the exception it ended with."""
    from seccollect.operators.coverage import _window_of

    try:
        start, end = _window_of(task, context)
        window = format_window(start, end)
    except Exception:  # noqa: BLE001 - a run without a window (e.g. conf errors) still deserves a notice
        window = "unknown window"
    ti = context.get("ti")
    exception = context.get("exception")
    reason = f"{type(exception).__name__}: {exception}" if exception is not None else "the task failed"
    tries = getattr(ti, "try_number", None)
    if tries:
        reason = f"{reason}\n(failed for good on try {tries})"
    return Notice(kind="failure", dag_id=task.dag_id, window=window, reason=reason,
                  run_id=context.get("run_id"), task_id=task.task_id, url=getattr(ti, "log_url", None))
