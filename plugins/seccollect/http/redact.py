"""Keep secrets and query strings out of every message the HTTP layer writes.

Vendors echo what they were sent: an API key in an error body, a token in a URL that requests puts
into its exception text. Every message the layer produces (log lines, :class:`VendorApiError`) goes
through a :class:`Redactor` that knows the connection's secrets, and loses the query string of any URL,
so what a person reads at 3 a.m. - and what Airflow stores - never carries a credential. The secrets
are also registered with Airflow's own secret masker, which covers the task log lines Airflow writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: Shown instead of a secret.
MASK = "***"

#: Secrets shorter than this are not masked in free text (masking "ab" everywhere would garble messages
#: and reveal nothing; no real credential is that short).
MIN_SECRET_LENGTH = 4

# A URL (or a path) followed by a query string: the query string goes, the rest stays.
_QUERY = re.compile(r"((?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*|/[^\s?#'\"<>]*))\?[^\s'\"<>)]*")


def strip_query(text: str) -> str:
    """``text`` with the query string of every URL or path removed (``/a/b?token=x`` -> ``/a/b``)."""
    return _QUERY.sub(r"\1", text)


class Redactor:
    """Masks known secrets (and their URL-encoded forms) and strips query strings from text.

    :param secrets: the credentials a client was configured with (API keys, tokens, passwords).
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Add secrets (e.g. a token obtained later); each is also registered with Airflow's masker."""
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
            for form in forms:
                if form not in self._secrets:
                    self._secrets.append(form)
            _mask_in_airflow_logs(secret)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str | None) -> str:
        if not text:
            return text or ""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return strip_query(text)


def _mask_in_airflow_logs(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # outside an Airflow environment (e.g. a simulator or a script)
        return
    mask_secret(secret)
