"""NetskopeHook: the only code that speaks Netskope's REST API (v1 and v2).

Windows are selected on the record's *insertion* time (``insertionstarttime``/``insertionendtime``),
not its event time: Netskope makes records queryable late and out of order, but a record's insertion
time is fixed once it is queryable, so consecutive insertion windows partition the data exactly — a
late record simply falls into a later window instead of being missed. The API filters
``start < t <= end`` on whole seconds, which tiles consecutive windows with no gap and no overlap.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from seccollect.http.url import parse_base_url

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

#: Netskope v2 serves at most 10,000 records per response. v1's ``limit`` is documented as "a positive
#: integer less than 10000" and a tenant that enforces it answers 10000 with an error, so v1 pages are
#: one record smaller (:attr:`NetskopeHook.page_size`).
MAX_PAGE_SIZE = 10_000
#: v1 allows at most 24 requests per 5 seconds per tenant; stay just under it.
V1_REQUESTS_PER_5S = 23


def _page(body: Any, key: str) -> list[Any]:
    """The record list of a data response (``result`` in v2, ``data`` in v1), or :class:`PageShapeError`
    saying what the body was instead."""
    from seccollect.http.client import PageShapeError

    if not isinstance(body, dict):
        raise PageShapeError(f"expected a JSON object with a {key!r} list, got {type(body).__name__}")
    if key not in body:
        raise PageShapeError(f"expected a {key!r} list, the body has only {sorted(body)[:8]}")
    page = body[key]
    if page is None:
        return []
    if not isinstance(page, list):
        raise PageShapeError(f"expected {key!r} to be a list, got {type(page).__name__}")
    return page


def _netskope_policy() -> Any:
    from seccollect.http.client import ResponsePolicy, Verdict

    class NetskopeResponsePolicy(ResponsePolicy):
        """v1 reports errors inside HTTP 200 bodies (``"status": "error"``); v2 data says ``ok``."""

        def classify(self, response: requests.Response) -> Verdict:
            verdict = super().classify(response)
            if verdict.kind != "ok":
                return verdict
            try:
                body = json.loads(response.content)
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
    :param proxy: optional proxy URL (without credentials); the connection's extra ``proxy`` wins.
    :param page_size: records per request (at most 10,000 on v2, 9,999 on v1).
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
        self._page_size = page_size
        self._client: VendorHttpClient | None = None
        #: Overrides of the HTTP client's settings (the connection test's short retries and timeouts).
        self._client_options: dict[str, Any] = {}
        self.api_version = (api_version or "v2").lower()

    @property
    def page_size(self) -> int:
        """Records per request, within the version's documented maximum."""
        return min(self._page_size, MAX_PAGE_SIZE - 1 if self.api_version == "v1" else MAX_PAGE_SIZE)

    @page_size.setter
    def page_size(self, value: int) -> None:
        self._page_size = value

    # --- connection ---------------------------------------------------------------------------

    def _settings(self) -> tuple[str, str, str, str | None]:
        conn = self.get_connection(self.netskope_conn_id)
        extra = conn.extra_dejson
        api_version = (self._api_version or extra.get("api_version") or "v2").lower()
        base_url = extra.get("base_url")
        if base_url:
            # The override sends the API key wherever it points: the one rule of every vendor's base URL
            # (https, plain http only for a loopback simulator) applies to it as well.
            parts = parse_base_url(base_url, self.netskope_conn_id, label="Base URL override",
                                   example="http://127.0.0.1:8801 (a local simulator)")
            base_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        else:
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
        return base_url, conn.password, api_version, extra.get("proxy") or self.proxy

    def get_conn(self) -> VendorHttpClient:
        """The HTTP client: the token as v2 header (v1 sends it in the request body), v1's request budget
        shared by every task, process and worker that reads the same tenant
        (:func:`~seccollect.http.budget.credential_budget`)."""
        if self._client is None:
            from seccollect.http.auth import ClientAuth, HeaderAuth
            from seccollect.http.budget import credential_budget
            from seccollect.http.client import VendorHttpClient

            base_url, token, api_version, proxy = self._settings()
            self.api_version = api_version
            self._token = token
            self._client = VendorHttpClient(
                vendor="Netskope",
                base_url=base_url,
                conn_id=self.netskope_conn_id,
                verify_ssl=self.verify_ssl,
                proxy=proxy,
                policy=_netskope_policy(),
                budget=credential_budget(f"netskope-v1:{base_url}", V1_REQUESTS_PER_5S, 5.0) if api_version == "v1" else None,
                auth=HeaderAuth({"Netskope-Api-Token": token}) if api_version == "v2" else ClientAuth(),
                secrets=[token],
                **self._client_options,
            )
        return self._client

    # --- data -----------------------------------------------------------------------------------

    def iter_window(self, content_type: str, start: datetime, end: datetime) -> Iterator[list[Any]]:
        """Yield pages of records inserted in ``(start, end]`` (epoch seconds), in the API's order.

        Paging stops at the first short page; a page that repeats the previous one (a server or proxy
        that ignores ``offset``/``skip``) stops it with an error instead of looping for ever.
        """
        from seccollect.http.client import decode_json
        from seccollect.http.paging import OffsetPaging

        client = self.get_conn()
        endpoint = ENDPOINTS[content_type]
        if self.api_version == "v1" and endpoint.v1_path is None:
            raise ValueError(f"Netskope API v1 does not serve the {content_type!r} content type")
        params: dict[str, Any] = {
            "insertionstarttime": int(start.timestamp()),
            "insertionendtime": int(end.timestamp()),
        }

        def fetch(offset: int, limit: int) -> list[Any]:
            if self.api_version == "v1":
                body = {"token": self._token, **params, "limit": limit, "skip": offset}
                if endpoint.v1_type:
                    body["type"] = endpoint.v1_type
                return client.request("POST", endpoint.v1_path, json=body, parse=lambda r: _page(decode_json(r), "data"))
            return client.request(
                "GET", endpoint.v2_path, params={**params, "limit": limit, "offset": offset},
                parse=lambda r: _page(decode_json(r), "result"),
            )

        yield from OffsetPaging(self.page_size, what=f"Netskope {content_type}").pages(fetch)

    def iter_snapshot(self, content_type: str) -> Iterator[list[Any]]:
        """Yield pages of a steering list (pops, tunnels): the full current state, no time filter."""
        from seccollect.http.client import decode_json
        from seccollect.http.paging import OffsetPaging

        client = self.get_conn()
        path = ENDPOINTS[content_type].v2_path
        total: list[int | None] = [None]

        def parse(response: requests.Response) -> tuple[list[Any], int | None]:
            body = decode_json(response)
            page = _page(body, "result")
            return page, body["total"] if isinstance(body.get("total"), int) else None

        def fetch(offset: int, limit: int) -> list[Any]:
            page, total[0] = client.request("GET", path, params={"offset": offset, "limit": limit}, parse=parse)
            return page

        yield from OffsetPaging(self.page_size, what=f"Netskope {content_type}").pages(fetch, total=lambda: total[0])

    # --- connection test ------------------------------------------------------------------------

    def _probe(self, content_type: str, end: datetime) -> None:
        """One request for one record of ``content_type``; nothing is stored and no cursor moves."""
        if ENDPOINTS[content_type].windowed:
            next(self.iter_window(content_type, end - timedelta(minutes=5), end), None)
        else:
            next(self.iter_snapshot(content_type), None)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: authentication plus one small request per content type, one line each.

        Test mode (:mod:`seccollect.http.connection_test`): one attempt per request with short timeouts,
        so an unreachable or refusing tenant answers within seconds, not after the retry schedule.
        """
        from seccollect.http.connection_test import TEST_RETRY, TEST_TIMEOUT, run_checks, summarize

        try:
            self._client = None
            self._client_options = {"retry": TEST_RETRY, "timeout": TEST_TIMEOUT}
            self.get_conn()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            self._client_options = {}
            return False, str(exc)
        content_types = ["alert", "event"] if self.api_version == "v1" else list(ENDPOINTS)
        end = datetime.now(UTC).replace(microsecond=0)
        saved_page_size, self.page_size = self._page_size, 1
        try:
            results = run_checks({ct: functools.partial(self._probe, ct, end) for ct in content_types})
        finally:
            self.page_size = saved_page_size
            self._client = None
            self._client_options = {}
        return summarize(f"Netskope API {self.api_version}:", results)
