"""The one rule for a connection's base URL: ``https`` for any host, plain ``http`` only for loopback.

Every hook that takes a vendor API URL from an Airflow connection sends credentials to it, so the rule
lives here once: a bare host name means ``https``; plain ``http`` is accepted only for a loopback host
(a local simulator on ``127.0.0.1``, ``::1`` or ``localhost``), where nothing crosses a network.

**Development escape hatch**: :data:`INSECURE_HTTP_HOSTS_ENV` (``SECCOLLECT_INSECURE_HTTP_HOSTS``)
lists further host names, comma-separated, that may be reached over plain ``http``. It exists for the
development ``docker-compose.yaml`` only, whose simulators run in a container of their own (host
``simulators``, not loopback from the Airflow containers). Every URL let through by it is logged as a
warning. It must never be set in production: credentials sent to such a host travel unencrypted.

What a vendor accepts beyond this (a path or not, which hosts are its documented ones) stays in the
vendor's hook, which builds its base URL from the parts :func:`parse_base_url` returns.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from seccollect.http.redact import strip_query

log = logging.getLogger(__name__)

#: Environment variable listing hosts that may be reached over plain http (development compose only).
INSECURE_HTTP_HOSTS_ENV = "SECCOLLECT_INSECURE_HTTP_HOSTS"

# A DNS host name (labels of letters, digits, '-' and '_', dot-separated): what an allow-list entry
# must be when it is not an IP address. A scheme, port, path or wildcard is refused, not ignored.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
# The user-info part of a URL (``//user:password@``), dropped from every URL a message shows: everything
# from ``//`` to the *last* ``@``, so a password holding ``/``, ``@``, ``#`` or ``?`` is cut whole (a
# path or query with an ``@`` is cut too: a message may show less, never a secret).
_USERINFO = re.compile(r"(//)\S*@")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a host name or IP address, without brackets or port) names this machine."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_http_hosts(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The host names :data:`INSECURE_HTTP_HOSTS_ENV` allows over plain http (empty when unset).

    ``ValueError`` for an entry that is no host name or IP address (``http://simulators``,
    ``simulators:8803``, ``*``): a mistyped entry must fail loudly, not silently allow nothing - or more.
    """
    raw = (os.environ if environ is None else environ).get(INSECURE_HTTP_HOSTS_ENV) or ""
    hosts = set()
    for entry in raw.split(","):
        host = entry.strip().lower()
        if not host:
            continue
        bare = host.strip("[]")
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if not _HOST_NAME.match(host):
                raise ValueError(
                    f"{INSECURE_HTTP_HOSTS_ENV}: {entry.strip()!r} is not a host name; list bare host names "
                    "or IP addresses, comma-separated, without scheme, port or wildcard (e.g. 'simulators')"
                ) from None
        hosts.add(bare)
    return frozenset(hosts)


def shown_url(value: str | None) -> str:
    """``value`` as a message may show it: without user info (``user:password@``) or query string."""
    return strip_query(_USERINFO.sub(r"\1", str(value or "")))


def _split(text: str) -> SplitResult | None:
    """``text``'s parts, trailing ``/`` of the path dropped; None when it cannot be a URL."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is no number raises ValueError only when it is read
    except ValueError:  # also an unclosed IPv6 bracket
        return None
    return parts._replace(path=parts.path.rstrip("/"))


def parse_base_url(
    value: str | None,
    conn_id: str,
    *,
    label: str = "Base URL",
    example: str = "https://api.example.com",
    environ: Mapping[str, str] | None = None,
) -> SplitResult:
    """The parts of a connection's base URL, once it passes the rule; ``ValueError`` naming the connection
    when it does not.

    Surrounding whitespace and trailing ``/`` are dropped and a bare host name gets ``https://`` (as
    consoles show the host). The scheme must be ``https``, or plain ``http`` for a loopback host or a
    host :data:`INSECURE_HTTP_HOSTS_ENV` lists (logged as a warning).

    :param value: the URL as typed in the connection.
    :param conn_id: the Airflow connection, named in every error.
    :param label: what the connection's form calls the field (e.g. ``Base URL``, ``API URL``).
    :param example: a correct value, shown in errors.
    :param environ: where to read :data:`INSECURE_HTTP_HOSTS_ENV` (the process environment by default).
    """
    text = (value or "").strip()
    if not text.rstrip("/"):
        raise ValueError(f"Connection {conn_id!r} has no {label} (e.g. {example})")
    if "://" not in text:
        text = "https://" + text
    parts = _split(text)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"Connection {conn_id!r}: {label} {shown_url(value)!r} is not an http(s) URL such as {example}"
        )
    # Credentials belong in the connection's login and password fields. A backslash or user info in the
    # authority is refused: Python's URL parser and urllib3 (which sends the request) read a host
    # differently around them (``http://remote\@127.0.0.1`` is loopback to one, ``remote`` to the other).
    if "\\" in text or parts.username is not None or parts.password is not None:
        raise ValueError(
            f"Connection {conn_id!r}: the {label} {shown_url(value)!r} must not carry user info ('user@') or a "
            "backslash; put credentials in the connection's login and password fields"
        )
    host = parts.hostname
    if parts.scheme == "http" and not is_loopback(host):
        if host not in insecure_http_hosts(environ):
            raise ValueError(
                f"Connection {conn_id!r}: the {label} must use https, not plain http ({shown_url(value)!r}): "
                "credentials are only sent over https (plain http only for a local simulator on a loopback "
                "address)"
            )
        log.warning(
            "Connection %r: plain http to %s is allowed only because %s lists it; this is for development "
            "(e.g. docker-compose's simulators) and must never be set in production: credentials to this "
            "host travel unencrypted",
            conn_id, host, INSECURE_HTTP_HOSTS_ENV,
        )
    return parts
