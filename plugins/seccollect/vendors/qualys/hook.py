"""QualysHook: the only code that speaks the Qualys VM/VMDR FO API (host list, host detection list).

* **Auth**: HTTP Basic plus the ``X-Requested-With`` header Qualys requires on every call.
* **Paging exactly as Qualys does it**: a truncated output ends with ``WARNING`` code 1980 whose ``URL``
  is the next page; it is followed as given (trimmed of the whitespace around its CDATA, checked to
  point at the connection's own host by the HTTP layer), never rebuilt by hand. It may name another API
  version or add parameters we never sent: that is Qualys' business.
* **Streamed**: a page is read with ``iterparse`` (:mod:`seccollect.vendors.qualys.xml`) in a reader
  thread that hands finished hosts over a small queue, so memory holds about one host and one chunk
  whatever ``truncation_limit`` is. A page cut or malformed half-way is requested again by the HTTP
  layer; hosts come sorted by ID, so the hosts already handed over are skipped on the repeat and no
  record is staged twice.
* **Errors**: a ``SIMPLE_RETURN`` body is an error whatever the HTTP status (2001 comes with 200).
  409/1965 (rate limit) waits ``X-RateLimit-ToWait-Sec``; 409/1960 (concurrency) waits for a slot;
  401/2000 fails at once. ``X-RateLimit-*`` and ``X-Concurrency-Limit-*`` are read on every response
  that has them and logged when low; a spent rate window makes the next call wait instead of trip 1965.
* **Shared limits**: every call holds one of the account's concurrency slots
  (:func:`~seccollect.http.slots.credential_slots`, keyed by API URL and user name, sized by the
  connection's ``concurrency_limit``) and draws on the account's call budget of its API function
  (:func:`~seccollect.http.budget.credential_budget`, ``rate_limit`` calls per ``rate_window_seconds``,
  Standard tier 300 per hour), so tasks of all instances on one account never exceed either; both live
  where the deployment shares limits (Redis with ``SECCOLLECT_LIMITS_URL``, else the shared store's
  PostgreSQL, else this machine), so they hold across workers on several machines. A
  spent rate window (409/1965, or ``Remaining: 0`` with a wait) pauses every task of the account.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from seccollect.http.url import is_loopback, parse_base_url

if TYPE_CHECKING:
    import requests

    from seccollect.http.budget import RequestBudget
    from seccollect.http.client import ResponsePolicy, VendorHttpClient, Verdict
    from seccollect.http.slots import ConcurrencySlots

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "5.0"
#: API versions Qualys serves (2.0-4.0 reached end of support in December 2025; still accepted).
API_VERSIONS = ("2.0", "3.0", "4.0", "5.0")
#: Detection statuses always sent explicitly: the server's default set is unconfirmed and believed to
#: leave out Fixed, and a fixed finding is news too.
DETECTION_STATUSES = "New,Active,Fixed,Re-Opened"
#: The concurrency limit of the Standard subscription tier (recorded ``X-Concurrency-Limit-Limit``).
DEFAULT_CONCURRENCY_LIMIT = 2
#: How long a call that met 409/1960 (another call of the account running) waits before trying again.
DEFAULT_CONCURRENCY_WAIT = 30.0
#: Calls per API function per window of the Standard subscription tier (``X-RateLimit-Limit`` and
#: ``X-RateLimit-Window-Sec``): the account's call budget unless the connection says otherwise.
DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW = 300, 3600.0
#: Host names of Qualys API servers of known platforms (US1-4, EU1-2, IN, CA, AE, UK, AU, KSA ...).
KNOWN_PLATFORM = re.compile(r"^qualysapi\.(qg\d+\.apps\.)?qualys(ksa)?\.(com|eu|in|ca|ae|co\.uk|com\.au)$")
#: Codes of 409 answers that are worth waiting for (others, e.g. 2003/2011, are not).
RATE_LIMITED, CONCURRENCY_LIMITED, BLOCKED = "1965", "1960", "1920"
BAD_LOGIN, ACCOUNT_EXPIRED = "2000", "2001"
#: Records handed from the reader thread per chunk (at most :data:`QUEUED` chunks wait at once).
CHUNK = 500
QUEUED = 2

PATHS = {
    "hosts": "/api/{version}/fo/asset/host/",
    "vulnerabilities": "/api/{version}/fo/asset/host/vm/detection/",
}


def qualys_time(moment: datetime) -> str:
    """A UTC time as Qualys' date parameters take it (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_base_url(value: str, conn_id: str) -> str:
    """The scheme and host of a Qualys API URL as typed in the connection (trailing ``/`` or path
    tolerated). ``https`` for any host; plain ``http`` only for a loopback host (a local simulator), as
    :func:`seccollect.http.url.parse_base_url` rules for every vendor. A host that is no Qualys API
    server of a known platform is logged as a warning."""
    parts = parse_base_url(value, conn_id, label="Qualys API URL", example="https://qualysapi.qualys.com")
    host = parts.hostname or ""
    if not KNOWN_PLATFORM.match(host):
        log.warning(
            "Connection %r: %s is not the API server of a known Qualys platform (e.g. qualysapi.qualys.com, "
            "qualysapi.qg2.apps.qualys.com); use the API URL of your platform, not the web UI's%s",
            conn_id, host, " (loopback: a local simulator?)" if is_loopback(host) else "",
        )
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def check_password(password: str, conn_id: str) -> str:
    """Basic auth carries the password as Latin-1 bytes and Qualys accepts ASCII: refuse anything else
    before a request fails with a confusing 'Bad Login/Password'."""
    if not password.isascii():
        raise ValueError(
            f"Connection {conn_id!r}: the Qualys password contains non-ASCII characters, which HTTP Basic "
            "authentication cannot carry to Qualys; set an ASCII-only password for the API user"
        )
    return password


@dataclass
class LimitState:
    """The last rate and concurrency figures Qualys told us (its ``X-RateLimit-*`` headers)."""

    limit: int | None = None
    remaining: int | None = None
    to_wait: float = 0.0
    window: int | None = None
    concurrency_limit: int | None = None
    concurrency_running: int | None = None
    #: Monotonic time before which the next call should not go (a spent rate window).
    not_before: float = 0.0


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _qualys_policy(conn_id: str, limits: LimitState, concurrency_wait: float,
                   on_spent: Callable[[float], None] = lambda seconds: None) -> ResponsePolicy:
    from seccollect.http.client import ResponsePolicy, Verdict
    from seccollect.vendors.qualys.xml import QualysReturn, UnsafeXml, parse_simple_return

    def explain(code: str | None, text: str | None) -> str:
        said = f"code {code}: {text}" if code else (text or "no text")
        if code == BAD_LOGIN:
            said += (" — Qualys answers this for a wrong user name or password, and also when the API URL "
                     "belongs to another Qualys platform than the account's")
        return said

    def verdict_of(ret: QualysReturn, status: int) -> Verdict:
        if ret.code == RATE_LIMITED:
            wait = limits.to_wait or float(ret.items.get("SECONDS_TO_WAIT") or 60)
            on_spent(wait)  # every task of the account waits it out, not only this one
            return Verdict("throttled", explain(ret.code, ret.text), wait=wait)
        if ret.code in (CONCURRENCY_LIMITED, BLOCKED):
            return Verdict("throttled", explain(ret.code, ret.text), wait=concurrency_wait)
        if ret.code in (BAD_LOGIN, ACCOUNT_EXPIRED):
            return Verdict("error", explain(ret.code, ret.text), status=401)
        return Verdict("error", explain(ret.code, ret.text), status=status if status >= 400 else 400)

    class QualysResponsePolicy(ResponsePolicy):
        """Reads ``SIMPLE_RETURN`` codes (in any status) and the rate/concurrency headers."""

        def classify(self, response: requests.Response) -> Verdict:
            self._read_limits(response)
            if response.status_code == 200:
                return Verdict("ok")  # a SIMPLE_RETURN in a 200 body is found by the streaming reader
            ret = parse_simple_return(response.content)
            if ret is not None:
                return verdict_of(ret, response.status_code)
            return super().classify(response)

        def classify_parse_error(self, exc: Exception) -> Verdict | None:
            if isinstance(exc, QualysReturn):
                return verdict_of(exc, 200)
            if isinstance(exc, UnsafeXml):
                return Verdict("error", str(exc), status=502)
            return super().classify_parse_error(exc)

        def vendor_message(self, response: requests.Response) -> str | None:
            ret = parse_simple_return(response.content)
            return explain(ret.code, ret.text) if ret is not None else super().vendor_message(response)

        def _read_limits(self, response: requests.Response) -> None:
            headers = response.headers
            limit, remaining = _int_header(headers, "X-RateLimit-Limit"), _int_header(headers, "X-RateLimit-Remaining")
            to_wait = _int_header(headers, "X-RateLimit-ToWait-Sec")
            running = _int_header(headers, "X-Concurrency-Limit-Running")
            conc_limit = _int_header(headers, "X-Concurrency-Limit-Limit")
            limits.limit = limit if limit is not None else limits.limit
            limits.remaining = remaining if remaining is not None else limits.remaining
            limits.window = _int_header(headers, "X-RateLimit-Window-Sec") or limits.window
            limits.concurrency_limit = conc_limit if conc_limit is not None else limits.concurrency_limit
            limits.concurrency_running = running if running is not None else limits.concurrency_running
            limits.to_wait = float(to_wait) if to_wait is not None else 0.0
            if remaining is not None and limit:
                if remaining == 0 and limits.to_wait > 0 and response.status_code == 200:
                    # The window is spent: the next call would only earn a 409/1965.
                    limits.not_before = time.monotonic() + limits.to_wait
                    on_spent(limits.to_wait)
                if remaining <= max(1, limit // 10):
                    log.warning("Qualys rate limit of connection %r is low: %d of %d calls left in the %ss window%s",
                                conn_id, remaining, limit, limits.window,
                                f"; next call allowed in {limits.to_wait:.0f}s" if limits.to_wait else "")
            if running is not None and conc_limit and running >= conc_limit:
                log.warning("Qualys concurrency limit of connection %r reached: %d of %d calls running",
                            conn_id, running, conc_limit)

    return QualysResponsePolicy()


#: The Test button waits at most this long for a call budget (seconds), then says the budget is spent.
TEST_BUDGET_MAX_WAIT = 10.0


class _Prepaid:
    """A call's budget whose first draw was made already (before its slot was taken); retries draw again."""

    def __init__(self, budget: RequestBudget) -> None:
        self.key = budget.key
        self._budget = budget
        self._paid = True

    def acquire(self, *, max_wait: float | None = None) -> None:
        if self._paid:
            self._paid = False
            return
        self._budget.acquire(max_wait=max_wait)


class _Stop(BaseException):
    """The consumer stopped reading: the reader thread gives up its request (not an error to retry)."""


class QualysHook(BaseHook):
    """Talk to one Qualys subscription's VM API.

    The connection holds the API URL (host, e.g. ``https://qualysapi.qg2.apps.qualys.com/``), the user
    name (login) and password, and in ``extra`` optionally ``api_version`` (default 5.0),
    ``concurrency_limit`` (the subscription's, default 2) and ``concurrency_wait_seconds``.

    :param qualys_conn_id: Airflow connection id.
    :param api_version: overrides the connection's ``api_version``.
    :param truncation_limit: hosts per response (Qualys' default is 1000; at most 1,000,000).
    :param verify_ssl: verify TLS certificates (the opt-out is logged as a warning).
    :param proxy: optional proxy URL (without credentials); the connection's extra ``proxy`` wins.
    """

    conn_name_attr = "qualys_conn_id"
    default_conn_name = "qualys_default"
    conn_type = "qualys"
    hook_name = "Qualys"

    def __init__(
        self,
        qualys_conn_id: str = default_conn_name,
        *,
        api_version: str | None = None,
        truncation_limit: int = 1000,
        verify_ssl: bool = True,
        proxy: str | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= truncation_limit <= 1_000_000:
            raise ValueError("truncation_limit must be between 1 and 1,000,000 hosts")
        self.qualys_conn_id = qualys_conn_id
        self._api_version = api_version
        self.truncation_limit = truncation_limit
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.api_version = api_version or DEFAULT_API_VERSION
        self.limits = LimitState()
        self._client: VendorHttpClient | None = None
        self._slots: ConcurrencySlots | None = None
        self._account = ""
        self._rate: tuple[int, float] = (DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW)
        self._budgets: dict[str, RequestBudget] = {}
        self._rate_checked = False
        #: The longest a call waits for its function's call budget (None: as long as it takes, as a task
        #: does); the Test button sets a short one, so a spent budget answers at once instead of hanging.
        self.budget_max_wait: float | None = None
        #: Pages read, by content type (for the task's figures).
        self.pages_read = 0

    # --- connection -----------------------------------------------------------------------------

    def get_conn(self) -> VendorHttpClient:
        """The HTTP client: Basic auth, ``X-Requested-With``, Qualys' response policy and patient retries."""
        if self._client is None:
            from seccollect.http.auth import BasicAuth
            from seccollect.http.client import RetryPolicy, VendorHttpClient
            from seccollect.http.slots import credential_slots

            conn = self.get_connection(self.qualys_conn_id)
            extra = conn.extra_dejson
            if not conn.host:
                raise ValueError(f"Connection {self.qualys_conn_id!r} has no Qualys API URL (host field)")
            if not conn.login or not conn.password:
                raise ValueError(f"Connection {self.qualys_conn_id!r} needs the Qualys user name and password")
            base_url = api_base_url(conn.host, self.qualys_conn_id)
            password = check_password(conn.password, self.qualys_conn_id)
            version = str(self._api_version or extra.get("api_version") or DEFAULT_API_VERSION)
            if version not in API_VERSIONS:
                raise ValueError(f"Connection {self.qualys_conn_id!r}: api_version {version!r} is not one of {API_VERSIONS}")
            self.api_version = version
            concurrency = int(extra.get("concurrency_limit") or DEFAULT_CONCURRENCY_LIMIT)
            wait = float(extra.get("concurrency_wait_seconds") or DEFAULT_CONCURRENCY_WAIT)
            self._rate = (int(extra.get("rate_limit") or DEFAULT_RATE_LIMIT),
                          float(extra.get("rate_window_seconds") or DEFAULT_RATE_WINDOW))
            # The account (API server and user) is what Qualys counts; the user name is hashed so the
            # shared stores' keys never show it.
            self._account = f"qualys:{base_url}|{hashlib.sha256(conn.login.encode()).hexdigest()[:16]}"
            self._slots = slots = credential_slots(self._account, concurrency)
            self._client = VendorHttpClient(
                vendor="Qualys",
                base_url=base_url,
                conn_id=self.qualys_conn_id,
                verify_ssl=self.verify_ssl,
                proxy=extra.get("proxy") or self.proxy,
                # Waits are Qualys' own (ToWait-Sec can be minutes): honour them rather than hammer, which
                # only earns more 409s; a page may meet several limits before it is served.
                retry=RetryPolicy(max_attempts=10, max_throttle_wait=3600.0),
                policy=_qualys_policy(self.qualys_conn_id, self.limits, wait, on_spent=slots.pause),
                auth=BasicAuth(conn.login, password),
                headers={"X-Requested-With": "seccollect-airflow"},
                timeout=(10.0, 300.0),
            )
        return self._client

    @property
    def slots(self) -> ConcurrencySlots:
        self.get_conn()
        assert self._slots is not None
        return self._slots

    def budget(self, path: str) -> RequestBudget:
        """The account's call budget of the API function of ``path`` (Qualys counts calls per function:
        host list and host detection list each have their own)."""
        from urllib.parse import urlsplit

        from seccollect.http.budget import credential_budget

        self.get_conn()
        function = urlsplit(path).path.split("/fo/", 1)[-1].strip("/") or path
        budget = self._budgets.get(function)
        if budget is None:
            budget = self._budgets[function] = credential_budget(f"{self._account}:{function}", *self._rate)
        return budget

    def _call(self, url: str, params: Mapping[str, Any] | None, parse: Callable[[requests.Response], Any]) -> Any:
        """One API call (with its retries) holding one of the account's concurrency slots; every attempt
        draws on the call budget of ``url``'s API function."""
        client = self.get_conn()
        pause = max(self.limits.not_before - time.monotonic(), self.slots.paused_for())
        if pause > 0:
            log.info("Qualys rate window of the account of connection %r is spent; waiting %.0fs as Qualys asked",
                     self.qualys_conn_id, pause)
            client.sleep(pause)
        budget = self.budget(url)
        # Drawn before the slot is taken: a call waiting for its function's budget must not hold one of
        # the account's few slots, which calls of the other function could use meanwhile.
        budget.acquire(max_wait=self.budget_max_wait)
        asked = time.monotonic()
        with self.slots.hold():
            # Qualys counts a call when it arrives: after a wait for the slot longer than the budget's
            # margin, the draw made before it may no longer stand for this call, so the call draws again
            # (counting one call twice only slows calls down; counting it early could exceed the limit).
            waited = time.monotonic() - asked
            drawn: RequestBudget = _Prepaid(budget) if waited <= getattr(budget, "margin", 0.25) else budget
            result = client.request("GET", url, params=params, parse=parse, stream=True, budget=drawn)
        self._compare_rate()
        return result

    def _compare_rate(self) -> None:
        """Say once when Qualys reports another rate limit than the budget the connection sets: a lower
        one earns 409/1965 waits, a higher one leaves calls unused."""
        told = (self.limits.limit, self.limits.window)
        if self._rate_checked or told[0] is None or told[1] is None:
            return
        self._rate_checked = True
        if (told[0], float(told[1])) != self._rate:
            log.warning("Qualys reports a rate limit of %d calls per %ss for the account of connection %r; its call "
                        "budget is %d per %gs: set rate_limit and rate_window_seconds in the connection's extra "
                        "to Qualys' figures", told[0], told[1], self.qualys_conn_id, *self._rate)

    # --- data -----------------------------------------------------------------------------------

    def first_params(self, content_type: str, start: datetime, end: datetime) -> dict[str, Any]:
        """The first request's parameters for records processed in ``[start, end)``.

        ``*_after`` is undocumented as to its boundary, so it is sent one second early: a record exactly on
        ``start`` is collected whichever way Qualys reads it (a second read of it collapses on identity).
        """
        after, before = qualys_time(start - timedelta(seconds=1)), qualys_time(end)
        common = {"action": "list", "truncation_limit": self.truncation_limit, "show_asset_id": 1}
        if content_type == "hosts":
            return {**common, "details": "All", "show_tags": 1,
                    "vm_processed_after": after, "vm_processed_before": before}
        return {**common, "status": DETECTION_STATUSES, "show_results": 1, "show_igs": 0, "output_format": "XML",
                "detection_processed_after": after, "detection_processed_before": before}

    def iter_window(self, content_type: str, start: datetime, end: datetime, *, chunk: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
        """Chunks of records (hosts, or detections joined with their host) processed in ``[start, end)``."""
        self.get_conn()
        path = PATHS[content_type].format(version=self.api_version)
        to_records = _host_record if content_type == "hosts" else _detection_records_and_texts
        return self._stream(path, self.first_params(content_type, start, end), to_records, chunk, f"Qualys {content_type}")

    def _stream(self, path: str, params: dict[str, Any], to_records: ToRecords, chunk: int, what: str
                ) -> Iterator[list[dict[str, Any]]]:
        """Run the paging in a reader thread; yield its chunks; re-raise its failure here."""
        handoff: queue.Queue[Any] = queue.Queue(maxsize=QUEUED)
        stop = threading.Event()
        done = object()

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    handoff.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue
            raise _Stop

        def reader() -> None:
            try:
                self._read_pages(path, params, to_records, chunk, what, put)
                put(done)
            except _Stop:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                with contextlib.suppress(_Stop):
                    put(exc)

        thread = threading.Thread(target=reader, name=f"qualys-reader-{path}", daemon=True)
        thread.start()
        try:
            while True:
                item = handoff.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=30)

    def _read_pages(self, path: str, params: dict[str, Any], to_records: ToRecords, chunk: int, what: str,
                    put: Callable[[Any], None]) -> None:
        from seccollect.http.paging import PagingError
        from seccollect.records.intake import TextedRecords
        from seccollect.vendors.qualys.xml import read_output

        buffer: list[dict[str, Any]] = []
        texts: list[str | None] = []
        #: The highest host id handed over: hosts come sorted by id, so a page read again after a cut
        #: skips the hosts already handed over (and a next page never repeats one).
        handed = [-1]

        def hand_over() -> None:
            put(TextedRecords(buffer, texts) if texts else buffer.copy())
            buffer.clear()
            texts.clear()

        def on_host(host: dict[str, Any]) -> None:
            host_id = _host_id(host)
            if host_id is not None and host_id <= handed[0]:
                return
            records, records_texts = to_records(host)
            buffer.extend(records)
            if records_texts is not None:
                texts.extend(records_texts)
            if host_id is not None:
                handed[0] = host_id
            if len(buffer) >= chunk:
                hand_over()

        def parse(response: requests.Response) -> Any:
            response.raw.decode_content = True
            return read_output(response.raw, on_host)

        url: str | None = path
        seen: set[str] = set()
        request_params: dict[str, Any] | None = params
        while url is not None:
            page = self._call(url, request_params, parse)
            self.pages_read += 1
            if page.next_url is not None and page.warning_code not in (None, "1980"):
                log.warning("%s: WARNING code %s with a URL (%s); following it as a continuation", what,
                            page.warning_code, page.warning_text)
            url, request_params = page.next_url, None
            if url is not None:
                if url in seen:
                    raise PagingError(f"{what}: Qualys' continuation URL repeats an earlier one; paging would never end")
                seen.add(url)
        if buffer:
            hand_over()

    # --- connection test ------------------------------------------------------------------------

    def check_content_types(self, content_types: list[str] | None = None) -> dict[str, tuple[bool, str]]:
        """One small request per content type (one host, the last hour); nothing is stored."""
        from seccollect.http.errors import VendorApiError

        saved, self.truncation_limit = self.truncation_limit, 1
        saved_wait, self.budget_max_wait = self.budget_max_wait, TEST_BUDGET_MAX_WAIT
        end = datetime.now(UTC).replace(microsecond=0)
        results: dict[str, tuple[bool, str]] = {}
        try:
            for content_type in content_types or list(PATHS):
                try:
                    path = PATHS[content_type].format(version=self.api_version)
                    self._call(path, self.first_params(content_type, end - timedelta(hours=1), end),
                               _first_page_only)
                    results[content_type] = (True, "ok")
                except (VendorApiError, ValueError) as exc:
                    results[content_type] = (False, str(exc))
        finally:
            self.truncation_limit = saved
            self.budget_max_wait = saved_wait
        return results

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: authentication plus one small request per content type."""
        try:
            self.get_conn()
            results = self.check_content_types()
        except Exception as exc:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            return False, str(exc)
        ok = all(passed for passed, _ in results.values())
        lines = [f"{ct}: {'OK' if passed else 'FAILED — ' + msg}" for ct, (passed, msg) in results.items()]
        return ok, f"Qualys API {self.api_version}: " + "; ".join(lines)


def _first_page_only(response: requests.Response) -> Any:
    from seccollect.vendors.qualys.xml import read_output

    response.raw.decode_content = True
    return read_output(response.raw, lambda host: None)


def _host_id(host: dict[str, Any]) -> int | None:
    try:
        return int(host.get("ID"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


#: A host's records, and their canonical JSON texts where made here (``None``: the intake makes them).
ToRecords = Callable[[dict[str, Any]], tuple[list[dict[str, Any]], "list[str | None] | None"]]


def _json_texts(records: list[dict[str, Any]]) -> list[str | None]:
    """The canonical JSON text of each record, made by msgspec (an Airflow dependency) instead of the
    standard library: the same text for what the XML reader builds (strings, lists and dicts only - the
    two differ only on numbers and on types XML never yields), about five times faster.

    A record that msgspec cannot encode gets ``None``: the intake serialises it itself, and says why if
    it cannot either."""
    encode = _sorted_json_encoder()
    texts: list[str | None] = []
    for record in records:
        try:
            texts.append(encode(record).decode())
        except (TypeError, ValueError, UnicodeDecodeError):  # msgspec.EncodeError is a ValueError
            texts.append(None)
    return texts


@functools.cache
def _sorted_json_encoder() -> Callable[[Any], bytes]:
    import msgspec

    return msgspec.json.Encoder(order="sorted").encode


def _host_record(host: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str | None]]:
    return [host], _json_texts([host])


def _detection_records(host: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per detection, each joined with its host's identity (the host without its list)."""
    detections = host.get("DETECTION_LIST")
    identity = {k: v for k, v in host.items() if k != "DETECTION_LIST"}
    if not isinstance(detections, list):
        detections = [] if detections in (None, "") else [detections]
    return [{**d, "HOST": identity} if isinstance(d, dict) else {"DETECTION": d, "HOST": identity} for d in detections]


def _detection_records_and_texts(host: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """:func:`_detection_records`, and each record's canonical JSON text (:func:`_json_texts`)."""
    records = _detection_records(host)
    return records, _json_texts(records)
