"""TrendMicroCasHook: the only code that speaks Trend Micro Cloud App Security's Log Retrieval API.

``GET /v1/siem/security_events`` with ``service``, ``event``, ``start``, ``end`` and ``limit``; the
response names its next page in ``next_link``. Every request, from any task or worker, draws from the
API key's shared request budget (:mod:`seccollect.http.shared_budget`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from seccollect.http.url import parse_base_url, shown_url

if TYPE_CHECKING:
    import requests

    from seccollect.http.client import VendorHttpClient

log = logging.getLogger(__name__)

PATH = "/v1/siem/security_events"
#: The documented regional service URLs (vendor-apis/trendmicro-cas.md §1).
REGIONAL_HOSTS = frozenset({
    "api.tmcas.trendmicro.com",
    "api-eu.tmcas.trendmicro.com",
    "api.tmcas.trendmicro.co.jp",
    "api-au.tmcas.trendmicro.com",
    "api.tmcas.trendmicro.co.uk",
    "api-ca.tmcas.trendmicro.com",
    "api-in.tmcas.trendmicro.com",
    "api.tmcas.trendmicro.com.sg",
})
#: The documented limit: about 20 requests per minute per API key.
DEFAULT_REQUESTS_PER_MINUTE = 20
#: The API's look-back: ``start`` may be at most 72 hours before the request.
HORIZON = timedelta(hours=72)
#: ``next_link`` values that mean "no more pages" (§0: "", null, missing and the string "null").
_NO_LINK = ("", "null", "none")


def format_time(moment: datetime) -> str:
    """A bound in the documented format ``yyyy-mm-ddThh:mm:ss.mmmZ`` (never microseconds)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_base_url(value: str | None, conn_id: str) -> str:
    """The connection's base URL, normalised; ``ValueError`` naming the connection when it cannot be one.

    Any ``https`` host is accepted (a host that is not a documented regional service URL is logged as a
    warning); plain ``http`` only on loopback, for the local simulator - the rule of every vendor,
    :func:`seccollect.http.url.parse_base_url`."""
    parts = parse_base_url(value, conn_id, example="https://api.tmcas.trendmicro.com")
    if parts.path not in ("", "/") or parts.query or parts.username or parts.password:
        raise ValueError(
            f"Base URL {shown_url(value)!r} of connection {conn_id!r} must be only the region's service URL, e.g. "
            "https://api.tmcas.trendmicro.com (no path such as /v1/siem/security_events, no query)"
        )
    if parts.scheme == "https" and parts.hostname not in REGIONAL_HOSTS:
        log.warning(
            "Base URL of connection %r: %s is not one of the documented Trend Micro CAS service URLs (%s); "
            "check that it is your console's region",
            conn_id, parts.hostname, ", ".join(sorted(REGIONAL_HOSTS)),
        )
    return f"{parts.scheme}://{parts.netloc}"


def _trendmicro_policy(period: float) -> Any:
    from seccollect.http.client import ResponsePolicy, Verdict, retry_after

    class TrendMicroResponsePolicy(ResponsePolicy):
        """Errors come as ``{code, traceId, msg}``; a 429 may carry no Retry-After, and the vendor's window
        reopens at most one period after its first request: wait a period rather than a short backoff."""

        def classify(self, response: requests.Response) -> Verdict:
            if response.status_code == 429 or _error_code(response) == -4290001:
                return Verdict("throttled", self.vendor_message(response), retry_after(response) or period)
            return super().classify(response)

    return TrendMicroResponsePolicy()


def _error_code(response: requests.Response) -> int | None:
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def parse_page(response: requests.Response) -> tuple[list[Any], str | None]:
    """The records of a response and its next link (``None`` when done); :class:`PageShapeError` when the
    body is not the documented object."""
    from seccollect.http.client import PageShapeError, decode_json

    body = decode_json(response)
    if not isinstance(body, dict):
        raise PageShapeError(f"expected a JSON object with 'security_events', got {type(body).__name__}")
    if "security_events" not in body:
        raise PageShapeError(f"expected a 'security_events' list, the body has only {sorted(body)[:8]}")
    events = body["security_events"]
    if events is None:
        events = []
    if not isinstance(events, list):
        raise PageShapeError(f"expected 'security_events' to be a list, got {type(events).__name__}")
    link = body.get("next_link")
    if link is not None and not isinstance(link, str):
        raise PageShapeError(f"expected 'next_link' to be a string, got {type(link).__name__}")
    if link is None or link.strip().lower() in _NO_LINK:
        return events, None
    return events, link.strip()


class TrendMicroCasHook(BaseHook):
    """Talk to one Trend Micro Cloud App Security tenant.

    The connection holds the region's service URL (host: ``https://api.tmcas.trendmicro.com``) and the
    API key (password); its extra may set ``requests_per_minute`` (default 20), ``requests_per_day``,
    ``budget_key`` (connections sharing one limit), ``rate_period_seconds`` (the length of the
    budget's "minute", 60; shorter only against a sped-up simulator) and ``rate_margin_seconds`` (added
    to each period for send delays; default 2 % of it, at least 0.25 s).

    :param trendmicro_cas_conn_id: Airflow connection id.
    :param verify_ssl: verify TLS certificates (the opt-out is logged as a warning).
    :param proxy: optional proxy URL (without credentials); the connection's extra ``proxy`` wins.
    :param page_size: records per request (``limit``, at most 500).
    """

    conn_name_attr = "trendmicro_cas_conn_id"
    default_conn_name = "trendmicro_cas_default"
    conn_type = "trendmicro_cas"
    hook_name = "Trend Micro Cloud App Security"

    def __init__(
        self,
        trendmicro_cas_conn_id: str = default_conn_name,
        *,
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = 500,
    ) -> None:
        super().__init__()
        self.trendmicro_cas_conn_id = trendmicro_cas_conn_id
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = max(1, min(page_size, 500))
        self._client: VendorHttpClient | None = None

    # --- connection ---------------------------------------------------------------------------

    def budget_settings(self) -> tuple[str, list[Any], float]:
        """(budget key, rate limits, period) of the connection's API key (and ``rate_margin_seconds``, the
        budget's allowance for send delays, read by :meth:`get_conn`)."""
        from seccollect.http.shared_budget import RateLimit, budget_key

        conn = self.get_connection(self.trendmicro_cas_conn_id)
        extra = conn.extra_dejson
        if not conn.password:
            raise ValueError(f"Connection {self.trendmicro_cas_conn_id!r} has no API key (password field)")
        period = float(extra.get("rate_period_seconds") or 60)
        per_minute = int(extra.get("requests_per_minute") or DEFAULT_REQUESTS_PER_MINUTE)
        limits = [RateLimit(per_minute, period)]
        if extra.get("requests_per_day"):
            limits.append(RateLimit(int(extra["requests_per_day"]), period * 24 * 60))
        name = extra.get("budget_key")
        key = f"trendmicro_cas:{name}" if name else budget_key("trendmicro_cas", conn.password)
        return key, limits, period

    def get_conn(self) -> VendorHttpClient:
        """The HTTP client: bearer token, the key's shared request budget, the vendor's error reading."""
        if self._client is None:
            from seccollect.http.auth import HeaderAuth
            from seccollect.http.client import VendorHttpClient
            from seccollect.http.shared_budget import shared_budget

            conn = self.get_connection(self.trendmicro_cas_conn_id)
            base_url = check_base_url(conn.host, self.trendmicro_cas_conn_id)
            key, limits, period = self.budget_settings()
            margin = conn.extra_dejson.get("rate_margin_seconds")
            token = conn.password
            self._client = VendorHttpClient(
                vendor="Trend Micro CAS",
                base_url=base_url,
                conn_id=self.trendmicro_cas_conn_id,
                verify_ssl=self.verify_ssl,
                proxy=conn.extra_dejson.get("proxy") or self.proxy,
                policy=_trendmicro_policy(period),
                budget=shared_budget(key, limits, margin=float(margin) if margin is not None else None),
                auth=HeaderAuth({"Authorization": f"Bearer {token}"}),
                headers={"Accept": "application/json"},
                secrets=[token],
            )
        return self._client

    # --- data -----------------------------------------------------------------------------------

    def _link_url(self, link: str) -> str:
        """A ``next_link`` as a URL to follow: absolute links as given (the HTTP layer checks the host);
        a link without a scheme (seen in a public client) gets the connection's scheme."""
        if "://" in link:
            return link
        client = self.get_conn()
        if link.startswith("/"):
            return link
        return f"{urlsplit(client.base_url).scheme}://{link}"

    def iter_events(
        self, service: str, event: str, start: datetime, end: datetime, *, max_budget_wait: float | None = None
    ) -> Iterator[list[Any]]:
        """Yield pages of the security events of ``service``/``event`` between ``start`` and ``end``.

        Both bounds are always sent (the API would otherwise apply its 5-minute defaults). Only the
        first request may give up waiting for the budget (``max_budget_wait``: then
        :class:`~seccollect.http.budget.BudgetWaitTooLong` is raised before anything is fetched); later
        pages wait as long as needed, so a window is never half read.
        """
        from seccollect.http.paging import follow_links

        client = self.get_conn()
        params = {
            "service": service,
            "event": event,
            "start": format_time(start),
            "end": format_time(end),
            "limit": self.page_size,
        }

        def first() -> tuple[list[Any], str | None]:
            client.max_budget_wait = max_budget_wait
            try:
                return client.request("GET", PATH, params=params, parse=parse_page)
            finally:
                client.max_budget_wait = None

        def follow(link: str) -> tuple[list[Any], str | None]:
            return client.request("GET", self._link_url(link), parse=parse_page)

        yield from follow_links(first, follow, what=f"Trend Micro CAS {service}/{event}")

    # --- connection test ------------------------------------------------------------------------

    def check_event_types(self, service: str = "sharepoint", events: list[str] | None = None) -> dict[str, tuple[bool, str]]:
        """One small request per event type (the last 5 minutes, one record); nothing is stored. The
        requests draw from the key's shared budget like any other."""
        from seccollect.http.errors import VendorApiError
        from seccollect.vendors.trendmicro.instance import EVENT_TYPES

        self.get_conn()
        end = datetime.now(UTC).replace(microsecond=0)
        results: dict[str, tuple[bool, str]] = {}
        saved, self.page_size = self.page_size, 1
        try:
            for event in events or list(EVENT_TYPES):
                try:
                    next(self.iter_events(service, event, end - timedelta(minutes=5), end), None)
                    results[event] = (True, "ok")
                except (VendorApiError, ValueError) as exc:
                    results[event] = (False, str(exc))
        finally:
            self.page_size = saved
        return results

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: authentication plus one request per event type, reported separately."""
        try:
            results = self.check_event_types()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            return False, str(exc)
        failed = {event: message for event, (ok, message) in results.items() if not ok}
        if not failed:
            return True, f"Connection to Trend Micro CAS works: {', '.join(results)} answered (Sharepoint Log)."
        lines = "; ".join(f"{event}: {message}" for event, message in failed.items())
        return False, f"{len(failed)} of {len(results)} event types failed: {lines}"
