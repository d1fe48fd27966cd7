"""The one HTTP layer every vendor hook uses (built on requests, retried with tenacity).

It owns what all vendors share: timeouts; retries with exponential backoff and jitter on connection
errors, timeouts, truncated or unparseable bodies and 5xx; throttling (429 and the vendors' own
signals) honoured with Retry-After / RateLimit-Reset; re-authentication when a token expired; a
client-side request budget; continuation URLs given by the vendor, followed as given but only to the
connection's own host; bodies streamed to an iterating parser; strict decoding; SSL verification with a
logged opt-out; an optional proxy; and a final error that explains itself, names the Airflow connection
to fix and never shows a secret or a query string.

What differs per vendor is passed in as a :class:`ResponsePolicy` (how to spot throttling, an expired
token or an error hidden in a 200 body, how to extract the vendor's own message, which parse errors are
worth a retry) and a :class:`~seccollect.http.auth.ClientAuth`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3

from seccollect.http.auth import ClientAuth
from seccollect.http.budget import RequestBudget
from seccollect.http.errors import FATAL_STATUSES, VendorApiError
from seccollect.http.redact import Redactor

log = logging.getLogger(__name__)

#: Transport failures worth another attempt: nothing was (reliably) received.
_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
#: The same failures when a streamed body is read by the parser itself (``response.raw``: urllib3's own).
_STREAM_EXCEPTIONS = (*_TRANSIENT_EXCEPTIONS, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class PageShapeError(ValueError):
    """A response body that parsed but does not have the shape the vendor documents (``null``, no
    ``result``, ``result`` not a list …). Retried like a truncated body; the final error says what was
    wrong."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    :param max_attempts: attempts in total, the first included.
    :param backoff_base: seconds before the first retry; doubles each attempt.
    :param backoff_max: cap of one backoff sleep.
    :param max_throttle_wait: cap of one sleep requested by the vendor (Retry-After).
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_throttle_wait: float = 300.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff for ``attempt`` (1-based) with "equal jitter" (a random wait between half the
        ceiling and the ceiling), so parallel workers spread out but never retry at once."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Verdict:
    """What a :class:`ResponsePolicy` concluded about one response (or one body that did not parse).

    ``kind`` is ``ok``, ``throttled`` (wait, then retry), ``retry`` (transient failure), ``reauth``
    (credentials expired: refresh them once and repeat) or ``error`` (fails for good).
    """

    kind: str
    message: str | None = None
    wait: float | None = None
    #: The HTTP status the failure amounts to, when the vendor hides it (e.g. an error in a 200 body).
    status: int | None = None


class ResponsePolicy:
    """Vendor-specific reading of responses. The default understands plain HTTP semantics."""

    def classify(self, response: requests.Response) -> Verdict:
        if response.status_code == 429:
            return Verdict("throttled", self.vendor_message(response), retry_after(response))
        if response.status_code >= 500:
            return Verdict("retry", self.vendor_message(response), retry_after(response))
        if response.status_code >= 400:
            return Verdict("error", self.vendor_message(response))
        return Verdict("ok")

    def classify_parse_error(self, exc: Exception) -> Verdict | None:
        """What a body that failed to parse means; ``None`` lets the exception propagate.

        A cut or malformed body (JSON or XML syntax, bytes that are not the declared encoding) or a page
        of the wrong shape is transient: the same request usually answers properly next time.
        """
        # XML parse errors (xml.etree's ParseError, lxml's XMLSyntaxError) are SyntaxErrors, not
        # ValueErrors; JSON errors, decoding errors and PageShapeError are ValueErrors.
        if isinstance(exc, ValueError | SyntaxError | EOFError):
            return Verdict("retry", None)
        return None

    def vendor_message(self, response: requests.Response) -> str | None:
        """The vendor's own error text: JSON ``message``/``error``/``errors``, else the start of the body."""
        try:
            body = json.loads(response.content)
        except ValueError:
            text = response.content[:600].decode("utf-8", "backslashreplace").strip()
            return text[:300] or None
        if isinstance(body, dict):
            for key in ("message", "error", "errors", "msg"):
                if body.get(key):
                    value = body[key]
                    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        return None


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or HTTP date), else RateLimit-Reset."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):  # neither seconds nor an HTTP date: ignore the header
                parsed = None
            if parsed is not None:
                if parsed.tzinfo is None:  # "-0000": UTC, not the machine's local time
                    parsed = parsed.replace(tzinfo=UTC)
                return max(0.0, parsed.timestamp() - time.time())
    reset = response.headers.get("RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset))
        except ValueError:
            return None
    return None


def decode_json(response: requests.Response) -> Any:
    """The body as JSON, decoded from UTF-8 without silently changing a byte.

    ``requests`` would replace bytes that are not UTF-8 with U+FFFD, and the record would load altered.
    Here they survive as lone surrogates (``surrogateescape``), which the record intake recognises and
    quarantines with the original bytes. A body that is not JSON raises ``ValueError`` (retried).
    """
    text = response.content.decode("utf-8-sig" if response.content[:3] == b"\xef\xbb\xbf" else "utf-8", "surrogateescape")
    return json.loads(text)


class _Retry(Exception):
    """One attempt failed in a way worth another (internal to :meth:`VendorHttpClient.request`)."""

    def __init__(self, *, status: int | None, message: str | None, detail: str | None, wait: float | None,
                 what: str) -> None:
        super().__init__(what)
        self.status = status
        self.message = message
        self.detail = detail
        self.wait = wait
        self.what = what


@dataclass
class VendorHttpClient:
    """A requests session with the shared retry/throttle/re-authentication/error behaviour.

    :param vendor: vendor name for messages (``Netskope``).
    :param base_url: scheme and host (and optional base path) every request path is joined to; absolute
        URLs given by the vendor are followed only to this scheme, host and port.
    :param conn_id: the Airflow connection this client was built from (named in final errors).
    :param verify_ssl: verify TLS certificates. ``False`` is allowed per instance and logged as a warning.
    :param proxy: optional proxy URL for http and https.
    :param timeout: (connect, read) timeout in seconds.
    :param retry: the :class:`RetryPolicy`.
    :param policy: the vendor's :class:`ResponsePolicy`.
    :param budget: optional :class:`~seccollect.http.budget.RequestBudget` acquired before every attempt.
    :param auth: how requests are authenticated (:mod:`seccollect.http.auth`); its secrets are redacted.
    :param headers: headers sent with every request (not secrets: use ``auth`` for credentials).
    :param secrets: further strings never to show in a message (e.g. a v1 token sent in a body).
    :param max_budget_wait: the longest wait for the budget before :class:`BudgetWaitTooLong` is raised
        (``None``: wait as long as needed).
    :param sleep: injectable for tests.
    """

    vendor: str
    base_url: str
    conn_id: str | None = None
    verify_ssl: bool = True
    proxy: str | None = None
    timeout: tuple[float, float] = (10.0, 60.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    policy: ResponsePolicy = field(default_factory=ResponsePolicy)
    budget: RequestBudget | None = None
    auth: ClientAuth = field(default_factory=ClientAuth)
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: Iterable[str] = ()
    max_budget_wait: float | None = None
    sleep: Callable[[float], None] = time.sleep
    user_agent: str = "seccollect-airflow/0.1"

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self.redact = Redactor([*self.secrets, *self.auth.secrets(), _proxy_password(self.proxy)])
        if hasattr(self.auth, "on_new_token"):
            self.auth.on_new_token = self.redact.add  # tokens obtained later are redacted too
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": self.user_agent, "Accept-Encoding": "gzip", **self.headers})
        self.session.verify = self.verify_ssl
        self.session.auth = self.auth
        if not self.verify_ssl:
            log.warning(
                "SSL certificate verification is DISABLED for %s (%s) by the instance setting verify_ssl: false",
                self.vendor,
                self.base_url,
            )
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if self.proxy:
            self.session.proxies = {"http": self.proxy, "https": self.proxy}
        self.attempts_made = 0
        #: The server's time (its ``Date`` header) as of the last response, if it sent one.
        self.server_time: datetime | None = None

    def close(self) -> None:
        self.session.close()

    # --- URLs -----------------------------------------------------------------------------------------

    def url_for(self, path_or_url: str) -> str:
        """The URL of a path (joined to ``base_url``), or an absolute URL the vendor gave, checked to point
        at the connection's own scheme, host and port: a continuation URL must never send our
        credentials elsewhere."""
        url = path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
        # User info or a backslash before the host is refused too: Python's URL parser and urllib3 (which
        # sends the request) read the host differently around them ("https://api\@evil/" is two hosts).
        parts = urlsplit(url)
        tricked = "\\" in url or parts.username is not None or parts.password is not None
        if tricked or _origin(url) != self._origin:
            where = "carries user info or a backslash" if tricked else f"points to {_origin(url)}"
            raise VendorApiError(
                vendor=self.vendor,
                endpoint=_endpoint_of(url),
                detail=f"the vendor's continuation URL {where}, not to the connection's {self._origin}; it is "
                "not followed (credentials are only sent to the configured host)",
                conn_id=self.conn_id,
                fatal=True,
                redact=self.redact,
            )
        return url

    # --- requests -------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        parse: Callable[[requests.Response], Any] | None = None,
        stream: bool = False,
        authenticate: bool = True,
        budget: RequestBudget | None = None,
    ) -> Any:
        """Send a request until it succeeds or fails for good; return ``parse(response)`` (or the response).

        ``parse`` runs inside the retry loop: a body that does not parse (cut mid-stream, malformed, the
        wrong shape) is judged by the policy, retried when transient, so a caller never sees half a page.

        :param path: a path joined to ``base_url``, or an absolute URL given by the vendor (followed as
            given, after the host check of :meth:`url_for`).
        :param stream: do not read the body up front; ``parse`` reads it (e.g. an iterating XML parser),
            so memory does not grow with the response.
        :param authenticate: ``False`` for the request that obtains a token.
        :param budget: the budget this request's attempts draw on instead of the client's (a vendor that
            counts calls per API function).
        """
        url = self.url_for(path)
        endpoint = f"{method.upper()} {_endpoint_of(path)}"
        reauthenticated = False
        draw_on = budget if budget is not None else self.budget

        def attempt() -> Any:
            nonlocal reauthenticated
            self.attempts_made += 1
            if draw_on is not None:
                draw_on.acquire(max_wait=self.max_budget_wait)
            try:
                # proxies/verify are passed per request: requests lets HTTP(S)_PROXY and REQUESTS_CA_BUNDLE
                # from the environment override Session.proxies / Session.verify, not the request's own.
                response = self.session.request(
                    method, url, params=params, json=json, data=data, headers=headers, timeout=self.timeout,
                    proxies=dict(self.session.proxies), verify=self.session.verify, stream=stream,
                    auth=None if authenticate else ClientAuth(),
                )
            except requests.exceptions.SSLError as exc:
                # Not transient: a certificate or TLS configuration problem fails the same way every time.
                raise self._error(endpoint, None, None, f"TLS/SSL error: {_cause(exc)}", 1, fatal=True) from None
            except _TRANSIENT_EXCEPTIONS as exc:
                raise _Retry(status=None, message=None, wait=None, what=type(exc).__name__,
                             detail=f"{type(exc).__name__}: no complete response ({_cause(exc)})") from None
            self.server_time = _date_header(response) or self.server_time
            try:
                verdict = self.policy.classify(response)
                if verdict.kind == "ok":
                    try:
                        return parse(response) if parse else response
                    except _STREAM_EXCEPTIONS as exc:  # a streamed body cut while the parser read it
                        raise _Retry(status=None, message=None, wait=None, what=type(exc).__name__,
                                     detail=f"{type(exc).__name__}: the body was cut ({_cause(exc)})") from None
                    except Exception as exc:  # judged by the policy: retried, or a bug that propagates
                        judged = self.policy.classify_parse_error(exc)
                        if judged is None:
                            raise
                        if judged.kind != "retry":
                            raise self._error(endpoint, judged.status, judged.message, None, 1) from None
                        shape = "had the wrong shape" if isinstance(exc, PageShapeError) else "could not be parsed"
                        raise _Retry(status=None, message=None, wait=None, what="unparseable body",
                                     detail=f"the response body {shape} ({type(exc).__name__}: {_cause(exc)})") from None
                status = verdict.status or response.status_code
                if verdict.kind == "reauth":
                    if not reauthenticated and authenticate and self.auth.refresh():
                        reauthenticated = True
                        log.warning("%s %s: credentials expired (HTTP %s); authenticated again, repeating",
                                    self.vendor, endpoint, status)
                        raise _Retry(status=status, message=verdict.message, wait=0.0, what="re-authentication",
                                     detail=None)
                    raise self._error(endpoint, status if status != 200 else 401, verdict.message, None, 1, fatal=True)
                if verdict.kind == "error" or (status in FATAL_STATUSES and verdict.kind != "throttled"):
                    raise self._error(endpoint, status, verdict.message, None, 1)
                raise _Retry(status=status, message=verdict.message, wait=verdict.wait,
                             what="throttled" if verdict.kind == "throttled" else f"HTTP {status}", detail=None)
            finally:
                if stream:
                    response.close()

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retry),
            sleep=self.sleep,
            before_sleep=lambda state: self._log_retry(endpoint, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as last:
            attempts = retrying.statistics.get("attempt_number", self.retry.max_attempts)
            raise self._error(endpoint, last.status, last.message, last.detail, attempts) from None
        except VendorApiError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            raise

    def get_json(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("parse", decode_json)
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("parse", decode_json)
        return self.request("POST", path, **kwargs)

    # --- internals ------------------------------------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return min(exc.wait, self.retry.max_throttle_wait)
        return self.retry.backoff(state.attempt_number)

    def _log_retry(self, endpoint: str, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, _Retry) or exc.what == "re-authentication":
            return
        said = f" ({self.vendor} said: {exc.message})" if exc.message else ""
        log.warning(
            "%s %s attempt %d failed (of %d): %s%s; retrying in %.1fs",
            self.vendor,
            endpoint,
            state.attempt_number,
            self.retry.max_attempts,
            self.redact(exc.detail or exc.what),
            self.redact(said),
            state.upcoming_sleep,
        )

    def _error(self, endpoint: str, status: int | None, message: str | None, detail: str | None,
               attempts: int, *, fatal: bool | None = None) -> VendorApiError:
        return VendorApiError(
            vendor=self.vendor, endpoint=endpoint, status=status, vendor_message=message, detail=detail,
            attempts=attempts, conn_id=self.conn_id, fatal=fatal, redact=self.redact,
        )


def _date_header(response: requests.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def _endpoint_of(path_or_url: str) -> str:
    """The path of a request, never its query string (it may hold a token)."""
    parts = urlsplit(path_or_url)
    return parts.path or "/"


def _proxy_password(proxy: str | None) -> str | None:
    return urlsplit(proxy).password if proxy else None


# The innermost reason of a transport failure as the OS or urllib3 words it ("[Errno 111] Connection
# refused", "Read timed out", "Name or service not known"): urllib3 buries it at the end of a long text
# (pool, URL, retry count), which a 300-character cut would lose.
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")(]+")
_TIMED_OUT = re.compile(r"(?:Read|Connect(?:ion)?) timed out")


def _cause(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 exception, short."""
    text = str(exc)
    found = _ERRNO.search(text) or _TIMED_OUT.search(text)
    if found:
        return found.group(0).strip().rstrip(".")
    return text if len(text) <= 300 else text[:300] + "…"
