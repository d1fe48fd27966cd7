"""Final HTTP failures, explained in the words of the guides' shared error table (CONNECTORS.md)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

#: Code -> (meaning, what the user should check). Verbatim intent of the guides' table.
GUIDE_TABLE: dict[int, tuple[str, str]] = {
    400: ("error in the connector configuration", "Is the connector configured correctly?"),
    401: (
        "invalid credential, or not enough privilege for that API",
        "Credentials entered correctly? Expired? Entitled or licensed for that resource?",
    ),
    403: (
        "the permission or scope of a valid credential is not right",
        "Credentials correct? Does the credential have the required role or permissions?",
    ),
    404: ("the URL path does not resolve", "Is the API URL entered correctly?"),
    429: (
        "too much traffic, or license/quota exceeded",
        "It recovers; the connector retries. If frequent, work with the API provider on limits and quotas.",
    ),
}

#: Failures no retry can fix: Airflow should fail the task at once instead of retrying.
FATAL_STATUSES = frozenset({400, 401, 403, 404})


def explain_status(status: int) -> str:
    """One sentence: the status, what it means and what to check."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    meaning, check = GUIDE_TABLE.get(
        status,
        ("the vendor service failed or is unavailable", "It is retried; if it persists, check the vendor's status page.")
        if status >= 500
        else ("unexpected response", "Check the API URL and the vendor's documentation."),
    )
    return f"HTTP {status} {phrase}: {meaning}. {check}"


def _what_to_check(status: int | None) -> str:
    """Which of the connection's settings the failure points at."""
    if status is None:
        return ": its host/URL, port and proxy (no answer came back)"
    if status in (401, 403):
        return ": its credentials"
    if status in (400, 404):
        return ": its URL or endpoint, and the instance's settings"
    return ""


class VendorApiError(Exception):
    """A vendor call that failed for good, with everything a person needs to act on it.

    The message is redacted (``redact``): it never carries a configured secret or a query string, even
    when the vendor echoed one back in its error text.

    :param vendor: vendor name shown to the user, e.g. ``Netskope``.
    :param endpoint: method and path (never the query string: it may hold a token).
    :param status: HTTP status, or ``None`` when no response arrived (timeout, connection error).
    :param vendor_message: the vendor's own error text, if its body had one.
    :param detail: what happened when there was no HTTP status.
    :param attempts: how many attempts were made.
    :param conn_id: the Airflow connection whose settings a person should check.
    :param fatal: override of :attr:`fatal` (e.g. a TLS certificate problem, which no retry fixes).
    :param redact: turns text into text safe to show (see :class:`~seccollect.http.redact.Redactor`).
    """

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        status: int | None = None,
        vendor_message: str | None = None,
        detail: str | None = None,
        attempts: int = 1,
        conn_id: str | None = None,
        fatal: bool | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        from seccollect.http.redact import strip_query

        clean = redact or strip_query
        self.vendor = vendor
        self.endpoint = clean(endpoint)
        self.status = status
        self.vendor_message = clean(vendor_message) if vendor_message else vendor_message
        self.detail = clean(detail) if detail else detail
        self.attempts = attempts
        self.conn_id = conn_id
        self._fatal = fatal
        parts = [f"{vendor} API {self.endpoint} failed after {attempts} attempt(s)"]
        if status is not None:
            parts.append(explain_status(status))
        if self.detail:
            parts.append(self.detail)
        if self.vendor_message:
            parts.append(f"{vendor} said: {self.vendor_message}")
        if conn_id:
            parts.append(f"Check the Airflow connection '{conn_id}'{_what_to_check(status)}")
        super().__init__(" — ".join(parts))

    @property
    def fatal(self) -> bool:
        """True when retrying cannot help (bad configuration or credentials)."""
        if self._fatal is not None:
            return self._fatal
        return self.status in FATAL_STATUSES
