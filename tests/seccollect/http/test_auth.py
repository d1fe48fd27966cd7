"""Auth objects: the credentials they add, the secrets they declare, and a token that renews itself."""

from __future__ import annotations

import requests

from seccollect.http.auth import BasicAuth, HeaderAuth, TokenAuth


def _prepared() -> requests.PreparedRequest:
    return requests.Request("GET", "https://api.example/x").prepare()


def test_header_and_basic_auth_add_their_credentials_and_declare_them() -> None:
    request = HeaderAuth({"X-Api-Key": "s3cret-key"})(_prepared())
    assert request.headers["X-Api-Key"] == "s3cret-key"
    basic = BasicAuth("user", "pässword")
    header = basic(_prepared()).headers["Authorization"]
    assert header.startswith("Basic ") and header.removeprefix("Basic ") in basic.secrets()
    assert "pässword" in basic.secrets()


def test_a_token_is_cached_for_its_lifetime_and_fetched_again_when_it_expires_or_is_refreshed() -> None:
    now = [0.0]
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    seen: list[str] = []
    auth = TokenAuth(
        lambda: (next(tokens), 100.0),
        lambda request, token: request.headers.__setitem__("Authorization", f"Bearer {token}"),
        static_secrets=["client-secret"],
        margin=10.0,
        clock=lambda: now[0],
    )
    auth.on_new_token = seen.append
    assert auth(_prepared()).headers["Authorization"] == "Bearer tok-1"
    now[0] = 80.0
    assert auth(_prepared()).headers["Authorization"] == "Bearer tok-1"  # still valid
    now[0] = 95.0  # within the margin before expiry
    assert auth(_prepared()).headers["Authorization"] == "Bearer tok-2"
    assert auth.refresh() is True
    assert auth(_prepared()).headers["Authorization"] == "Bearer tok-3"
    assert auth.fetches == 3 and seen == ["tok-1", "tok-2", "tok-3"]
    assert set(auth.secrets()) == {"client-secret", "tok-1", "tok-2", "tok-3"}
