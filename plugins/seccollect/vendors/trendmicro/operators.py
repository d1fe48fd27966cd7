"""Trend Micro Cloud App Security collect operator: one service's logs of one event type for a window."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from seccollect.operators.windowed import WindowedCollectOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import MsgOrigin
    from seccollect.records.intake import RecordFields
    from seccollect.vendors.trendmicro.hook import TrendMicroCasHook

#: How close to the API's 72-hour horizon a window may start: the pages of a window are asked for over
#: some time, and a page whose ``start`` has aged past the horizon is refused by the API.
HORIZON_SLACK = timedelta(minutes=10)


class TrendMicroCasCollectOperator(WindowedCollectOperator):
    """Collect the security event logs of one service (the content type) and one event type for the run's
    window (→ Syslog).

    The query is the window shifted back by ``settle_lag_seconds``, both bounds sent. A window older
    than the API's 72 hours is refused before any request, with a message naming the connection. The
    API key's shared request budget paces every request; when the wait for the first request is longer
    than ``max_budget_wait_seconds`` the task defers (the worker slot is free) and starts again later.

    :param trendmicro_cas_conn_id: Airflow connection with the base URL and API key.
    :param event_type: the API's ``event`` (dlp, ransomware, securityrisk, virtualanalyzer).
    :param settle_lag_seconds: how far the queried window trails the data interval.
    :param page_size: records per request (at most 500).
    :param max_budget_wait_seconds: longest in-slot wait for the budget before the first request.
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL (without credentials).
    :param kwargs: :class:`~seccollect.operators.windowed.WindowedCollectOperator` arguments.
    """

    def __init__(
        self,
        *,
        trendmicro_cas_conn_id: str,
        event_type: str,
        settle_lag_seconds: int = 60,
        page_size: int = 500,
        max_budget_wait_seconds: float = 30,
        verify_ssl: bool = True,
        proxy: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trendmicro_cas_conn_id = trendmicro_cas_conn_id
        self.event_type = event_type
        self.settle_lag_seconds = settle_lag_seconds
        self.page_size = page_size
        self.max_budget_wait_seconds = max_budget_wait_seconds
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self._hook: TrendMicroCasHook | None = None

    @property
    def hook(self) -> TrendMicroCasHook:
        from seccollect.vendors.trendmicro.hook import TrendMicroCasHook

        if self._hook is None:
            self._hook = TrendMicroCasHook(
                self.trendmicro_cas_conn_id, verify_ssl=self.verify_ssl, proxy=self.proxy, page_size=self.page_size
            )
        return self._hook

    def origin(self) -> MsgOrigin:
        from seccollect.records.envelope import MsgOrigin

        return MsgOrigin(f"trendmicro_cas_{self.content_type}", "trendmicro_cas", "trendmicro", "cloud_security")

    def query_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        lag = timedelta(seconds=self.settle_lag_seconds)
        return start - lag, end - lag

    def describe_query(self, query_start: datetime, query_end: datetime) -> str:
        return f"event {self.event_type} from {query_start} to {query_end}"

    def vendor_clock(self) -> datetime | None:
        return self.hook.get_conn().server_time

    def check_horizon(self, query_start: datetime, query_end: datetime, now: datetime | None = None) -> None:
        """Refuse a range the API no longer serves, before any request (a backfill must not load nothing)."""
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.vendors.trendmicro.hook import HORIZON

        now = now or datetime.now(UTC)
        oldest = now - HORIZON + HORIZON_SLACK
        if query_start < oldest:
            raise AirflowFailException(
                f"Trend Micro CAS serves only the last 72 hours: this window's query starts at {query_start.isoformat()}, "
                f"before {oldest.isoformat()} (now - 72 h + {HORIZON_SLACK} for paging), so it cannot be collected "
                f"(connection '{self.trendmicro_cas_conn_id}'). The window is lost to retention; the completeness "
                "view shows it as lost_to_retention."
            )

    def pages(self, query_start: datetime, query_end: datetime, context: Context) -> Iterator[Sequence[Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.http.errors import VendorApiError

        self.check_horizon(query_start, query_end)
        try:
            self.hook.get_conn()
        except ValueError as exc:
            # The connection itself is wrong (no key, a base URL that cannot be one): no retry fixes it.
            raise AirflowFailException(str(exc)) from exc
        try:
            yield from self.hook.iter_events(
                self.content_type, self.event_type, query_start, query_end,
                max_budget_wait=self.max_budget_wait_seconds,
            )
        except VendorApiError as exc:
            from seccollect.vendors.trendmicro.hook import HORIZON

            if exc.status == 400 and query_start < datetime.now(UTC) - HORIZON + 2 * HORIZON_SLACK:
                raise AirflowFailException(
                    f"{exc} — the window's start ({query_start.isoformat()}) aged past the API's 72-hour horizon "
                    "while it was read; it is lost to retention"
                ) from exc
            raise

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        from seccollect.records.intake import RecordFields
        from seccollect.records.values import RecordError, iso_time

        item = raw.get("log_item_id")
        if not isinstance(item, str) or not item.strip():
            raise RecordError("the record has no log_item_id")
        message = raw.get("message")
        detected = message.get("detection_time") if isinstance(message, dict) else None
        # detection_time is the event time; file_upload_time is not (§0: ~12 h off in every sample).
        return RecordFields(
            vendor_id=item.strip(),
            event_time=iso_time(detected, "message.detection_time") if detected not in (None, "") else None,
        )

    def request_figures(self) -> dict[str, int]:
        return {"api_requests": self._hook.get_conn().attempts_made} if self._hook is not None else {}
