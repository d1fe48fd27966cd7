"""ConnectSecureHook: the only code that speaks the ConnectSecure V4 API.

* **Authorization**: ``POST /w/authorize`` with ``Client-Auth-Token: base64("<tenant>+<client id>:<client
  secret>")`` (UTF-8). The token is cached for its ``expires_in`` (3600 s when absent) and fetched again
  once when a data call answers 401 or a ``status: false`` body about the token (the HTTP layer's
  re-authenticate verdict). Every data call sends ``Authorization: Bearer <token>`` and ``X-USER-ID``.
* **Errors in 200 bodies**: ``{"status": false, "message": ...}`` is a failure whatever the HTTP status.
  "Failed to create customer" on authorize is a known intermittent server error and is retried after
  8 s (as the public clients do); "Failed to authorize" means wrong credentials (fatal, 401);
  "Failed to retrieve data" is a rejected query (fatal, 400). 429, 502 and 504 are retried with backoff.
* **Lists** (``GET /r/...``) are paged with ``skip`` (a record offset) and ``limit`` (always sent: the
  default is 10), in a stable order (``order_by``), by
  :class:`~seccollect.http.anchored_paging.AnchoredOffsetPaging`, so records added or removed during a
  pull shift no record out of it or into it twice. A blank body, and an empty page while
  ``skip < total``, are faults and are retried (read as the end of the list they would record every
  later row as removed).
* **Large integers** are decoded by Python's ``json`` as exact integers, never floats; identities are
  their decimal text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from seccollect.http.url import parse_base_url

if TYPE_CHECKING:
    import requests

    from seccollect.http.anchored_paging import PagingFigures
    from seccollect.http.client import VendorHttpClient

AUTHORIZE_PATH = "/w/authorize"
#: Token lifetime assumed when the authorize answer has no ``expires_in`` (the recorded value).
DEFAULT_TOKEN_LIFETIME = 3600.0
#: Records per list request; no maximum is documented, 5000 is what public clients use successfully.
DEFAULT_PAGE_SIZE = 5000
#: Seconds before an authorize that failed with "Failed to create customer" is repeated (public clients).
CREATE_CUSTOMER_RETRY_WAIT = 8.0
#: ``status: false`` messages on a data call that mean the token is no longer valid (re-authorize once).
TOKEN_MESSAGES = ("token", "expired", "unauthori", "not authori", "failed to authorize", "jwt")


@dataclass(frozen=True)
class Endpoint:
    """How one content type is listed.

    :param path: the list endpoint.
    :param key: the fields that identify a row across pulls (``("id",)`` where rows have an id).
    :param order_by: the stable order asked for, so paging by offset can anchor on rows already read.
    :param fallback_key: for rows whose ``key`` field is missing: the fields whose hash stands in for it
        (documented for remediation rows without ``solution_id``).
    """

    path: str
    key: tuple[str, ...]
    order_by: str
    fallback_key: tuple[str, ...] = ()


#: Remediation rows have no ``id``: the reference documents the keys per endpoint (§0). The descriptive
#: fields of a fix stand in for a missing ``solution_id``.
_FIX_FIELDS = ("product", "fix", "url", "os_type", "os_name", "remediation_action")
REMEDIATION_ENDPOINTS: dict[str, Endpoint] = {
    "/r/report_queries/get_remediation": Endpoint(
        "/r/report_queries/get_remediation", ("company_id", "asset_id", "solution_id"),
        "company_id asc, asset_id asc, solution_id asc", _FIX_FIELDS,
    ),
    "/r/report_queries/remediation_plan_by_company": Endpoint(
        "/r/report_queries/remediation_plan_by_company", ("company_id", "solution_id"),
        "company_id asc, solution_id asc", _FIX_FIELDS,
    ),
    "/r/asset/get_asset_remediation_plan": Endpoint(
        "/r/asset/get_asset_remediation_plan", ("company_id", "solution_id"),
        "company_id asc, solution_id asc", _FIX_FIELDS,
    ),
}
DEFAULT_ENDPOINTS: dict[str, str] = {
    "asset": "/r/asset/assets",
    "remediation_plan": "/r/report_queries/get_remediation",
    "vulnerability_suppression": "/r/asset/suppress_vulnerability",
}


def endpoint_for(content_type: str, path: str | None = None) -> Endpoint:
    """The endpoint a content type is listed from (``path`` overrides the default where allowed)."""
    chosen = path or DEFAULT_ENDPOINTS[content_type]
    if content_type == "remediation_plan":
        if chosen not in REMEDIATION_ENDPOINTS:
            raise ValueError(f"remediation endpoint {chosen!r} is not one of {', '.join(REMEDIATION_ENDPOINTS)}")
        return REMEDIATION_ENDPOINTS[chosen]
    return Endpoint(chosen, ("id",), "id asc")


class IdentityError(ValueError):
    """A row has no usable identity (its key fields are missing or not integers/text)."""


def _key_part(value: Any, name: str) -> str:
    # bool is an int in Python; a float may already have lost digits (ids exceed 2^53): both refused.
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise IdentityError(f"{name} {value!r} is not an integer id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return str(int(text)) if text.lstrip("-").isdigit() else text
    raise IdentityError(f"{name} {value!r} is not an id")


def identity(endpoint: Endpoint, raw: Any) -> str:
    """The identity of a row of ``endpoint``: its key fields' values joined by ``/`` (``152060779``;
    ``16637/152060779/4471``); a missing fallback-able field becomes ``fix:<hash of the fix's fields>``."""
    if not isinstance(raw, dict):
        raise IdentityError(f"the record is a {type(raw).__name__}, not a JSON object")
    parts = []
    for name in endpoint.key:
        value = raw.get(name)
        if (value is None or value == "") and endpoint.fallback_key and name == endpoint.key[-1]:
            described = {f: raw.get(f) for f in endpoint.fallback_key}
            if not any(v not in (None, "") for v in described.values()):
                raise IdentityError(f"the row has no {name!r} and no descriptive fields of its fix")
            digest = hashlib.blake2b(json.dumps(described, sort_keys=True, default=str).encode(), digest_size=12)
            parts.append(f"fix:{digest.hexdigest()}")
            continue
        if value is None or value == "":
            raise IdentityError(f"the record has no {name!r}")
        parts.append(_key_part(value, name))
    return "/".join(parts)


def _paging_key(endpoint: Endpoint) -> Any:
    """Identity for paging: a row without one is still told apart by its content (it is quarantined later)."""

    def key(raw: Any) -> str:
        try:
            return identity(endpoint, raw)
        except IdentityError:
            return "content:" + hashlib.blake2b(
                json.dumps(raw, sort_keys=True, default=str).encode(), digest_size=16
            ).hexdigest()

    return key


def check_base_url(url: str, conn_id: str) -> str:
    """The pod API host as a base URL: ``https`` (plain ``http`` only for a loopback simulator; the shared
    rule, :func:`seccollect.http.url.parse_base_url`)."""
    parts = parse_base_url(url, conn_id, example="https://pod106.myconnectsecure.com")
    if parts.hostname == "portal.myconnectsecure.com":
        raise ValueError(
            f"Connection {conn_id!r}: portal.myconnectsecure.com is the login portal, not the API; enter the "
            "pod API host, e.g. https://pod106.myconnectsecure.com"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _policy() -> Any:
    from seccollect.http.client import ResponsePolicy, Verdict

    class ConnectSecurePolicy(ResponsePolicy):
        """Failures hide in ``{"status": false, "message": ...}`` bodies, often with HTTP 200."""

        def classify(self, response: requests.Response) -> Verdict:
            authorize = urlsplit(response.url or "").path.endswith(AUTHORIZE_PATH)
            message = self.vendor_message(response)
            if response.status_code == 401:
                if authorize:
                    return Verdict("error", message or "Failed to authorize", status=401)
                return Verdict("reauth", message, status=401)
            verdict = super().classify(response)
            if verdict.kind != "ok":
                return verdict
            try:
                body = json.loads(response.content) if response.content.strip() else None
            except ValueError:
                return verdict  # the parse step retries a malformed body
            if not (isinstance(body, dict) and body.get("status") is False):
                return verdict
            text = str(body.get("message") or body.get("error") or "status: false")
            lowered = text.lower()
            if authorize:
                if "create customer" in lowered:
                    return Verdict("retry", text, wait=CREATE_CUSTOMER_RETRY_WAIT)
                return Verdict("error", text, status=401)
            if any(word in lowered for word in TOKEN_MESSAGES):
                return Verdict("reauth", text, status=401)
            if "retrieve data" in lowered:
                return Verdict("error", text, status=400)
            # Any other logical failure: not a success, and not known to be transient. The task fails
            # (and Airflow retries it later); nothing of the pull is kept.
            return Verdict("error", text, status=502)

    return ConnectSecurePolicy()


class ConnectSecureHook(BaseHook):
    """Talk to one ConnectSecure V4 tenant on its pod.

    The connection holds the Base URL (host: the pod API host), the Client ID (login), the Client
    Secret (password) and, in ``extra``, ``tenant_name``.

    :param connectsecure_conn_id: Airflow connection id.
    :param verify_ssl: verify TLS certificates (the opt-out is logged as a warning).
    :param proxy: optional proxy URL (without credentials); the connection's extra ``proxy`` wins.
    :param page_size: records per list request.
    :param endpoints: content type -> list endpoint path, overriding :data:`DEFAULT_ENDPOINTS`.
    """

    conn_name_attr = "connectsecure_conn_id"
    default_conn_name = "connectsecure_default"
    conn_type = "connectsecure"
    hook_name = "ConnectSecure V4"

    def __init__(
        self,
        connectsecure_conn_id: str = default_conn_name,
        *,
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        endpoints: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.connectsecure_conn_id = connectsecure_conn_id
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = page_size
        self.endpoints = dict(endpoints or {})
        self._client: VendorHttpClient | None = None
        self._user_id: str | None = None
        #: Paging figures of the last list pulled (requests, step-backs, totals seen).
        self.last_paging: PagingFigures | None = None

    # --- connection ---------------------------------------------------------------------------

    def _settings(self) -> tuple[str, str, str, str, str | None]:
        conn = self.get_connection(self.connectsecure_conn_id)
        extra = conn.extra_dejson
        host = conn.host or extra.get("base_url") or ""
        if host and "://" not in host and conn.port:
            host = f"{host}:{conn.port}"
        base_url = check_base_url(host, self.connectsecure_conn_id)
        tenant = (extra.get("tenant_name") or "").strip()
        if not tenant:
            raise ValueError(f"Connection {self.connectsecure_conn_id!r} has no Tenant Name (extra 'tenant_name')")
        if not conn.login:
            raise ValueError(f"Connection {self.connectsecure_conn_id!r} has no Client ID (login field)")
        if not conn.password:
            raise ValueError(f"Connection {self.connectsecure_conn_id!r} has no Client Secret (password field)")
        return base_url, tenant, conn.login, conn.password, extra.get("proxy") or self.proxy

    def get_conn(self) -> VendorHttpClient:
        """The HTTP client: a bearer token from ``/w/authorize``, cached for its lifetime."""
        if self._client is None:
            from seccollect.http.auth import TokenAuth
            from seccollect.http.client import VendorHttpClient

            base_url, tenant, client_id, secret, proxy = self._settings()
            client_auth = base64.b64encode(f"{tenant}+{client_id}:{secret}".encode()).decode("ascii")
            holder: dict[str, VendorHttpClient] = {}

            def fetch() -> tuple[str, float | None]:
                token, user_id, lifetime = holder["client"].request(
                    "POST", AUTHORIZE_PATH, json={}, headers={"Client-Auth-Token": client_auth},
                    parse=_authorize_answer, authenticate=False,
                )
                self._user_id = user_id
                return token, lifetime

            def apply(request: requests.PreparedRequest, token: str) -> None:
                request.headers["Authorization"] = f"Bearer {token}"
                request.headers["X-USER-ID"] = self._user_id or ""

            client = VendorHttpClient(
                vendor="ConnectSecure",
                base_url=base_url,
                conn_id=self.connectsecure_conn_id,
                verify_ssl=self.verify_ssl,
                proxy=proxy,
                policy=_policy(),
                auth=TokenAuth(fetch, apply, static_secrets=[secret, client_auth]),
                headers={"Accept": "application/json"},
            )
            holder["client"] = client
            self._client = client
        return self._client

    # --- data -----------------------------------------------------------------------------------

    def endpoint(self, content_type: str) -> Endpoint:
        return endpoint_for(content_type, self.endpoints.get(content_type))

    def identity(self, content_type: str, raw: Any) -> str:
        """What identifies a row of ``content_type`` across pulls (:class:`IdentityError` if nothing)."""
        return identity(self.endpoint(content_type), raw)

    def iter_records(self, content_type: str) -> Iterator[list[Any]]:
        """Yield the whole current list of ``content_type``, page by page, each record once."""
        from seccollect.http.anchored_paging import AnchoredOffsetPaging

        client = self.get_conn()
        endpoint = self.endpoint(content_type)

        def fetch(skip: int, limit: int) -> tuple[list[Any], int | None]:
            return client.request(
                "GET", endpoint.path, params={"skip": skip, "limit": limit, "order_by": endpoint.order_by},
                parse=lambda r: _list_page(r, skip),
            )

        paging = AnchoredOffsetPaging(self.page_size, _paging_key(endpoint), what=f"ConnectSecure {endpoint.path}")
        self.last_paging = paging.figures
        yield from paging.pages(fetch)

    # --- connection test ------------------------------------------------------------------------

    def check_content_types(self, content_types: list[str] | None = None) -> dict[str, tuple[bool, str]]:
        """Authorize, then one one-record request per content type; nothing is stored or moved."""
        from seccollect.http.errors import VendorApiError

        client = self.get_conn()
        client.auth.token()  # type: ignore[attr-defined] - authorize first: its failure is the clearest
        results: dict[str, tuple[bool, str]] = {}
        for content_type in content_types or list(DEFAULT_ENDPOINTS):
            try:
                endpoint = self.endpoint(content_type)
                _, total = client.request(
                    "GET", endpoint.path, params={"skip": 0, "limit": 1, "order_by": endpoint.order_by},
                    parse=lambda r: _list_page(r, 0),
                )
                results[content_type] = (True, "ok" if total is None else f"ok, {total} record(s)")
            except (VendorApiError, ValueError) as exc:
                results[content_type] = (False, str(exc))
        return results

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: authorize plus one request per content type, reported separately."""
        try:
            results = self.check_content_types()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            return False, str(exc)
        ok = all(passed for passed, _ in results.values())
        lines = [f"{ct}: {'OK' if passed else 'FAILED — ' + msg}" for ct, (passed, msg) in results.items()]
        return ok, "ConnectSecure V4 authorize OK; " + "; ".join(lines)


def _authorize_answer(response: requests.Response) -> tuple[str, str, float]:
    """Token, user id and lifetime from an authorize answer (top level or under ``data``)."""
    from seccollect.http.client import PageShapeError, decode_json

    body = decode_json(response)
    if not isinstance(body, dict):
        raise PageShapeError(f"the authorize answer is a {type(body).__name__}, not a JSON object")
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    token = body.get("access_token") or data.get("access_token")
    user_id = body.get("user_id") or data.get("user_id")
    if not isinstance(token, str) or not token:
        raise PageShapeError("the authorize answer has no access_token")
    if user_id is None or isinstance(user_id, bool | float) or user_id == "":
        raise PageShapeError("the authorize answer has no user_id")
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0 \
        else DEFAULT_TOKEN_LIFETIME
    return token, str(user_id), seconds


def _list_page(response: requests.Response, skip: int) -> tuple[list[Any], int | None]:
    """The records and ``total`` of a list answer ``{"status": true, "data": [...], "total": n}``."""
    from seccollect.http.client import PageShapeError, decode_json

    if not response.content.strip():
        # Public clients read a blank body as an empty page. For a full pull that would end the list
        # early and record every later row as removed, so it is a fault to retry instead.
        raise PageShapeError(f"a blank body at skip={skip}")
    body = decode_json(response)
    if not isinstance(body, dict):
        raise PageShapeError(f"expected a JSON object with a 'data' list, got {type(body).__name__}")
    data = body.get("data")
    if data is None:
        data = []
    if isinstance(data, dict):
        data = [data]  # a single-object answer
    if not isinstance(data, list):
        raise PageShapeError(f"expected 'data' to be a list, got {type(data).__name__}")
    if data and not any(isinstance(item, dict) for item in data):
        # Seen once on /r/company/companies: a list of booleans instead of records. Not data: retried.
        raise PageShapeError(f"'data' holds no records, only {type(data[0]).__name__} values")
    total = body.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    if not data and total is not None and skip < total:
        raise PageShapeError(f"an empty page at skip={skip} although total is {total}")
    return data, total
