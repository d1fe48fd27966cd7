"""Redaction: configured secrets (and their URL-encoded forms) and query strings never reach a message."""

from __future__ import annotations

from seccollect.http.errors import VendorApiError
from seccollect.http.redact import MASK, Redactor, strip_query

KEY = "k3y/With+Specials=="


def test_secrets_and_their_url_encoded_forms_are_masked() -> None:
    redact = Redactor([KEY, None, ""])
    assert redact(f"invalid key {KEY}") == f"invalid key {MASK}"
    assert redact("token=k3y%2FWith%2BSpecials%3D%3D rejected") == f"token={MASK} rejected"
    assert redact("token=k3y%2FWith%2BSpecials%3D%3D rejected".replace("%2B", "+")) != ""  # no crash


def test_query_strings_are_stripped_from_urls_and_paths() -> None:
    text = "Max retries exceeded with url: /api/v1/alerts?token=abc&limit=5 (Caused by ...)"
    assert strip_query(text) == "Max retries exceeded with url: /api/v1/alerts (Caused by ...)"
    assert strip_query("GET https://t.goskope.com/api/v2/x?a=1 failed") == "GET https://t.goskope.com/api/v2/x failed"
    assert strip_query("no url here? really") == "no url here? really"


def test_a_longer_secret_is_masked_whole_before_a_shorter_one_it_contains() -> None:
    redact = Redactor(["abcd", "abcdefgh"])
    assert redact("abcdefgh") == MASK


def test_very_short_strings_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"])("about abba") == "about abba"


def test_vendor_api_error_redacts_an_echoed_key_and_names_the_connection() -> None:
    error = VendorApiError(
        vendor="Acme", endpoint="POST /api/v1/alerts?token=" + KEY, status=400,
        vendor_message=f"key {KEY} is not valid", detail=f"sent {KEY}", conn_id="acme_conn",
        redact=Redactor([KEY]),
    )
    text = str(error)
    assert KEY not in text and "token=" not in text
    assert "POST /api/v1/alerts" in text and "Check the Airflow connection 'acme_conn'" in text
    assert error.fatal


def test_a_fatal_override_wins_over_the_status() -> None:
    assert VendorApiError(vendor="A", endpoint="GET /", detail="TLS", fatal=True).fatal
    assert not VendorApiError(vendor="A", endpoint="GET /", status=401, fatal=False).fatal
