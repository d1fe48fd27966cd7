"""NetskopeHook: the only code that speaks Netskope's REST API (v1 and v2).

Windows are selected on the record's *insertion* time (``insertionstarttime``/``insertionendtime``),
not its event time: Netskope makes records queryable late and out of order, but a record's insertion
time is fixed once it is queryable, so consecutive insertion windows partition the data exactly — a
late record simply falls into a later window instead of being missed. The API filters
``start < t <= end`` on whole seconds, which tiles consecutive windows with no gap and no overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    import requests

    from seccollect.http.client import VendorHttpClient


@dataclass(frozen=True)
class Endpoint:
    """Where one content type is served, per API version."""

    v1_path: str | None
    v1_type: str | None
    v2_path: str
    windowed: bool  # False for the steering snapshots (pops, tunnels), which have no time filter


ENDPOINTS: dict[str, Endpoint] = {
    "alert": Endpoint("/api/v1/alerts", None, "/api/v2/events/data/alert", True),
    "event": Endpoint("/api/v1/events", "application", "/api/v2/events/data/application", True),
    "page": Endpoint(None, None, "/api/v2/events/data/page", True),
    "pops": Endpoint(None, None, "/api/v2/steering/ipsec/pops", False),
    "tunnels": Endpoint(None, None, "/api/v2/steering/ipsec/tunnels", False),
}

#: Netskope serves at most 10,000 records per response.
MAX_PAGE_SIZE = 10_000


def _netskope_policy() -> Any:
    from seccollect.http.client import ResponsePolicy, Verdict

    class NetskopeResponsePolicy(ResponsePolicy):
        """v1 reports errors inside HTTP 200 bodies (``"status": "error"``); v2 data says ``ok``."""

        def classify(self, response: requests.Response) -> Verdict:
            verdict = super().classify(response)
            if verdict.kind != "ok":
                return verdict
            try:
                body = response.json()
            except ValueError:
                return verdict  # the parse step retries a malformed body
            if isinstance(body, dict) and body.get("status") == "error":
                message = "; ".join(map(str, body.get("errors") or [])) or str(body.get("errorCode"))
                code = str(body.get("errorCode", ""))
                # "Authorization Error" is a bad or expired v1 token, whatever the HTTP status said.
                status = 401 if "auth" in code.lower() or "token" in message.lower() else 400
                return Verdict("error", f"{code}: {message}" if code else message, status=status)
            if isinstance(body, dict) and "ok" in body and body.get("ok") != 1:
                return Verdict("retry", self.vendor_message(response))
            return verdict

    return NetskopeResponsePolicy()


class NetskopeHook(BaseHook):
    """Talk to one Netskope tenant.

    The connection holds the API key (password), optionally the tenant name (host) and, in ``extra``,
    ``api_version`` (``v1``/``v2``) and ``base_url`` (only to point at the local simulator).

    :param netskope_conn_id: Airflow connection id.
    :param tenant: tenant name (``companya`` → ``https://companya.goskope.com``); overrides the host.
    :param api_version: ``v1`` or ``v2``; overrides the connection's extra.
    :param verify_ssl: verify TLS certificates (the opt-out is logged as a warning).
    :param proxy: optional proxy URL.
    :param page_size: records per request (at most 10,000).
    """

    conn_name_attr = "netskope_conn_id"
    default_conn_name = "netskope_default"
    conn_type = "netskope"
    hook_name = "Netskope"

    def __init__(
        self,
        netskope_conn_id: str = default_conn_name,
        *,
        tenant: str | None = None,
        api_version: str | None = None,
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        super().__init__()
        self.netskope_conn_id = netskope_conn_id
        self._tenant = tenant
        self._api_version = api_version
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self._client: VendorHttpClient | None = None

    # --- connection ---------------------------------------------------------------------------

    def _settings(self) -> tuple[str, str, str]:
        conn = self.get_connection(self.netskope_conn_id)
        extra = conn.extra_dejson
        api_version = (self._api_version or extra.get("api_version") or "v2").lower()
        base_url = extra.get("base_url")
        if not base_url:
            tenant = self._tenant or conn.host
            if not tenant:
                raise ValueError(
                    f"Connection {self.netskope_conn_id!r} has no Netskope tenant name and none was given"
                )
            if any(c in tenant for c in ".:/"):
                raise ValueError(
                    f"Netskope Tenant Name {tenant!r} of connection {self.netskope_conn_id!r} looks like a URL or "
                    "host name; enter only the tenant name, e.g. 'companya' for https://companya.goskope.com"
                )
            base_url = f"https://{tenant}.goskope.com"
        if not conn.password:
            raise ValueError(f"Connection {self.netskope_conn_id!r} has no API key (password field)")
        return base_url, conn.password, api_version

    def get_conn(self) -> VendorHttpClient:
        """The HTTP client, with the token set as v2 header (v1 sends it in the request body)."""
        if self._client is None:
            from seccollect.http.client import SlidingWindowBudget, VendorHttpClient

            base_url, token, api_version = self._settings()
            self.api_version = api_version
            self._token = token
            self._client = VendorHttpClient(
                vendor="Netskope",
                base_url=base_url,
                verify_ssl=self.verify_ssl,
                proxy=self.proxy,
                policy=_netskope_policy(),
                # v1: at most 24 requests per 5 seconds per tenant; stay just under it.
                budget=SlidingWindowBudget(23, 5.0) if api_version == "v1" else None,
                headers={"Netskope-Api-Token": token} if api_version == "v2" else {},
            )
        return self._client

    # --- data -----------------------------------------------------------------------------------

    def iter_window(self, content_type: str, start: datetime, end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of records inserted in ``(start, end]`` (epoch seconds), in the API's order."""
        client = self.get_conn()
        endpoint = ENDPOINTS[content_type]
        params: dict[str, Any] = {
            "insertionstarttime": int(start.timestamp()),
            "insertionendtime": int(end.timestamp()),
            "limit": self.page_size,
        }
        offset = 0
        while True:
            if self.api_version == "v1":
                if endpoint.v1_path is None:
                    raise ValueError(f"Netskope API v1 does not serve the {content_type!r} content type")
                body = {"token": self._token, **params, "skip": offset}
                if endpoint.v1_type:
                    body["type"] = endpoint.v1_type
                page = client.post_json(endpoint.v1_path, json=body)["data"]
            else:
                page = client.get_json(endpoint.v2_path, params={**params, "offset": offset})["result"]
            if page:
                yield page
            if len(page) < self.page_size:
                return
            offset += len(page)

    def iter_snapshot(self, content_type: str) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of a steering list (pops, tunnels): the full current state, no time filter."""
        client = self.get_conn()
        path = ENDPOINTS[content_type].v2_path
        offset = 0
        while True:
            body = client.get_json(path, params={"offset": offset, "limit": self.page_size})
            page = body.get("result") or []
            if page:
                yield page
            total = body.get("total")
            offset += len(page)
            if not page or len(page) < self.page_size or (isinstance(total, int) and offset >= total):
                return

    # --- connection test ------------------------------------------------------------------------

    def check_content_types(self, content_types: list[str] | None = None) -> dict[str, tuple[bool, str]]:
        """One small data request per content type; nothing is stored and no cursor exists to move."""
        from seccollect.http.errors import VendorApiError

        self.get_conn()
        if content_types is None:
            content_types = ["alert", "event"] if self.api_version == "v1" else list(ENDPOINTS)
        end = datetime.now(UTC).replace(microsecond=0)
        results: dict[str, tuple[bool, str]] = {}
        saved_page_size, self.page_size = self.page_size, 1
        try:
            for content_type in content_types:
                try:
                    if ENDPOINTS[content_type].windowed:
                        next(self.iter_window(content_type, end - timedelta(minutes=5), end), None)
                    else:
                        next(self.iter_snapshot(content_type), None)
                    results[content_type] = (True, "ok")
                except (VendorApiError, ValueError) as exc:
                    results[content_type] = (False, str(exc))
        finally:
            self.page_size = saved_page_size
        return results

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: authentication plus one request per content type, reported separately."""
        try:
            results = self.check_content_types()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            return False, str(exc)
        ok = all(passed for passed, _ in results.values())
        lines = [f"{ct}: {'OK' if passed else 'FAILED — ' + msg}" for ct, (passed, msg) in results.items()]
        return ok, f"Netskope API {self.api_version}: " + "; ".join(lines)
