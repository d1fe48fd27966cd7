"""The one HTTP layer every vendor hook uses (built on requests).

It owns what all vendors share: timeouts, retries with exponential backoff and jitter on
connection errors, timeouts, truncated bodies and 5xx; throttling (429 and the vendors' own signals)
honoured with Retry-After / RateLimit-Reset; an optional client-side request budget; SSL verification
with a logged opt-out; an optional proxy; and a final error that explains itself.

What differs per vendor is passed in as a :class:`ResponsePolicy`: how to spot throttling or an error
hidden in a 200 body, and how to extract the vendor's own message.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

import requests

from seccollect.http.errors import FATAL_STATUSES, VendorApiError

log = logging.getLogger(__name__)

#: Transport failures worth another attempt: nothing was (reliably) received.
_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


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


class RequestBudget(Protocol):
    """Client-side rate limit: ``acquire()`` blocks until one more request may be sent."""

    def acquire(self) -> None: ...


class SlidingWindowBudget:
    """At most ``max_calls`` requests per ``period`` seconds within this process."""

    def __init__(
        self,
        max_calls: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: list[float] = []

    def acquire(self) -> None:
        while True:
            now = self._clock()
            self._sent = [t for t in self._sent if now - t < self.period]
            if len(self._sent) < self.max_calls:
                self._sent.append(now)
                return
            self._sleep(self.period - (now - self._sent[0]) + 0.01)


@dataclass(frozen=True)
class Verdict:
    """What a :class:`ResponsePolicy` concluded about one response."""

    kind: str  # "ok", "throttled", "retry" or "error"
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
            return Verdict("retry", self.vendor_message(response))
        if response.status_code >= 400:
            return Verdict("error", self.vendor_message(response))
        return Verdict("ok")

    def vendor_message(self, response: requests.Response) -> str | None:
        """The vendor's own error text: JSON ``message``/``error``/``errors``, else the start of the body."""
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()
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


@dataclass
class VendorHttpClient:
    """A requests session with the shared retry/throttle/error behaviour.

    :param vendor: vendor name for messages (``Netskope``).
    :param base_url: scheme and host (and optional base path) every request path is joined to.
    :param verify_ssl: verify TLS certificates. ``False`` is allowed per instance and logged as a warning.
    :param proxy: optional proxy URL for http and https.
    :param timeout: (connect, read) timeout in seconds.
    :param retry: the :class:`RetryPolicy`.
    :param policy: the vendor's :class:`ResponsePolicy`.
    :param budget: optional :class:`RequestBudget` acquired before every attempt.
    :param headers: headers sent with every request (e.g. an auth header; never logged).
    :param sleep: injectable for tests.
    """

    vendor: str
    base_url: str
    verify_ssl: bool = True
    proxy: str | None = None
    timeout: tuple[float, float] = (10.0, 60.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    policy: ResponsePolicy = field(default_factory=ResponsePolicy)
    budget: RequestBudget | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    user_agent: str = "seccollect-airflow/0.1"

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": self.user_agent, "Accept-Encoding": "gzip", **self.headers})
        self.session.verify = self.verify_ssl
        if not self.verify_ssl:
            log.warning(
                "SSL certificate verification is DISABLED for %s (%s) by the instance setting verify_ssl: false",
                self.vendor,
                self.base_url,
            )
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if self.proxy:
            self.session.proxies = {"http": self.proxy, "https": self.proxy}
        self.attempts_made = 0

    def close(self) -> None:
        self.session.close()

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
    ) -> Any:
        """Send a request until it succeeds or fails for good; return ``parse(response)`` (or the response).

        ``parse`` runs inside the retry loop: a body that does not parse (cut mid-stream, malformed)
        is treated like a transport fault and retried, so a caller never sees half a page.
        """
        endpoint = f"{method.upper()} {path}"
        url = f"{self.base_url}{path}"
        attempt = 0
        last: tuple[int | None, str | None, str | None] = (None, None, None)
        while True:
            attempt += 1
            self.attempts_made += 1
            wait: float | None = None
            try:
                if self.budget is not None:
                    self.budget.acquire()
                # proxies/verify are passed per request: requests lets HTTP(S)_PROXY and REQUESTS_CA_BUNDLE
                # from the environment override Session.proxies / Session.verify, not the request's own.
                response = self.session.request(
                    method, url, params=params, json=json, data=data, headers=headers, timeout=self.timeout,
                    proxies=dict(self.session.proxies), verify=self.session.verify,
                )
                verdict = self.policy.classify(response)
                if verdict.kind == "ok":
                    try:
                        return parse(response) if parse else response
                    except ValueError as exc:  # JSONDecodeError and XML parse errors are ValueErrors
                        verdict = Verdict("retry")
                        last = (None, None, f"the response body could not be parsed ({exc.__class__.__name__}: {_short(exc)})")
                else:
                    last = (verdict.status or response.status_code, verdict.message, None)
                if verdict.kind == "error" or (response.status_code in FATAL_STATUSES and verdict.kind != "throttled"):
                    raise VendorApiError(
                        vendor=self.vendor,
                        endpoint=endpoint,
                        status=verdict.status or response.status_code,
                        vendor_message=verdict.message,
                        attempts=attempt,
                    )
                if verdict.kind == "throttled":
                    wait = verdict.wait
                    log.warning("%s throttled %s (attempt %d); waiting before retrying", self.vendor, endpoint, attempt)
            except _TRANSIENT_EXCEPTIONS as exc:
                last = (None, None, f"{exc.__class__.__name__}: no complete response ({_short(exc)})")
                log.warning("%s %s attempt %d failed: %s", self.vendor, endpoint, attempt, last[2])
            if attempt >= self.retry.max_attempts:
                status, message, detail = last
                raise VendorApiError(
                    vendor=self.vendor,
                    endpoint=endpoint,
                    status=status,
                    vendor_message=message,
                    detail=detail,
                    attempts=attempt,
                )
            delay = self.retry.backoff(attempt) if wait is None else min(wait, self.retry.max_throttle_wait)
            self.sleep(delay)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, parse=lambda r: r.json(), **kwargs)

    def post_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, parse=lambda r: r.json(), **kwargs)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"
