"""How a client proves who it is: a header, HTTP basic, or a token that expires and is fetched again.

Each is a ``requests`` auth object (it adds its credentials to every request) that also knows its
secrets, for redaction, and whether it can :meth:`ClientAuth.refresh` itself: the HTTP layer answers a
"re-authenticate" verdict (an expired token) by refreshing once and repeating the request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth


class ClientAuth(AuthBase):
    """No credentials (the base of every auth; also what a token request itself uses)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def secrets(self) -> list[str]:
        """Every credential this auth sends, so messages can be redacted."""
        return []

    def refresh(self) -> bool:
        """Obtain new credentials; ``True`` when the failed request is worth repeating with them."""
        return False


class HeaderAuth(ClientAuth):
    """Fixed headers (e.g. ``Netskope-Api-Token``, or a bearer API key).

    :param headers: header name -> value; every value is treated as a secret.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers)
        return request

    def secrets(self) -> list[str]:
        return [v.removeprefix("Bearer ").removeprefix("Basic ") for v in self.headers.values()] + list(
            self.headers.values()
        )


class BasicAuth(ClientAuth):
    """HTTP basic authentication.

    :param username: user name.
    :param password: password (a secret).
    """

    def __init__(self, username: str, password: str) -> None:
        self._basic = HTTPBasicAuth(username, password)
        self.password = password

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return self._basic(request)

    def secrets(self) -> list[str]:
        header = self._basic(requests.Request("GET", "http://x").prepare()).headers["Authorization"]
        return [self.password, header.removeprefix("Basic ")]


class TokenAuth(ClientAuth):
    """A token obtained from the vendor, cached for its lifetime and fetched again when it expires.

    :param fetch: obtains a token: returns ``(token, lifetime in seconds or None)``. It must make its
        own request without this auth (see ``VendorHttpClient.request(authenticate=False)``).
    :param apply: puts the token into a request (e.g. ``Authorization: Bearer <token>`` plus a user
        header).
    :param static_secrets: secrets used to fetch the token (client secret …), for redaction.
    :param margin: seconds before the announced expiry at which the token is renewed.
    :param clock: injectable clock (tests).
    """

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float | None]],
        apply: Callable[[requests.PreparedRequest, str], None],
        *,
        static_secrets: list[str] | None = None,
        margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._apply = apply
        self._static = list(static_secrets or [])
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._expires: float | None = None
        self._seen: list[str] = []
        self._lock = threading.Lock()
        #: How many tokens were fetched (tests and logs).
        self.fetches = 0
        #: Called with every new token, so a client can add it to its redactor.
        self.on_new_token: Callable[[str], Any] | None = None

    def _new_token(self) -> str:
        token, lifetime = self._fetch()
        self.fetches += 1
        self._token = token
        self._expires = None if lifetime is None else self._clock() + max(0.0, lifetime - self._margin)
        self._seen.append(token)
        if self.on_new_token is not None:
            self.on_new_token(token)
        return token

    def token(self) -> str:
        with self._lock:
            if self._token is None or (self._expires is not None and self._clock() >= self._expires):
                return self._new_token()
            return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._apply(request, self.token())
        return request

    def refresh(self) -> bool:
        with self._lock:
            self._new_token()
        return True

    def secrets(self) -> list[str]:
        return [*self._static, *self._seen]
