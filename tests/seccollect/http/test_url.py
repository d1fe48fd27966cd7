"""The shared base-URL rule: https for any host, plain http only for loopback or a listed development host."""

from __future__ import annotations

import pytest

from seccollect.http import url as url_module
from seccollect.http.url import (
    INSECURE_HTTP_HOSTS_ENV,
    insecure_http_hosts,
    is_loopback,
    parse_base_url,
    shown_url,
)

NO_ALLOW_LIST: dict[str, str] = {}


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    """The warnings the module logs (tests run with pytest's logging plugin off, so no caplog)."""
    said: list[str] = []
    monkeypatch.setattr(url_module.log, "warning", lambda msg, *args: said.append(msg % args))
    return said


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "simulators", "localhost.example.org", "::2", "", "0.0.0.0"])
def test_hosts_that_are_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize(("typed", "scheme", "netloc", "path"), [
    ("https://api.example.com", "https", "api.example.com", ""),
    ("  api.example.com/  ", "https", "api.example.com", ""),  # a bare host, as consoles show it
    ("HTTPS://API.example.com:8443/base/", "https", "API.example.com:8443", "/base"),
    ("http://127.0.0.1:8080", "http", "127.0.0.1:8080", ""),
    ("http://localhost:8080/", "http", "localhost:8080", ""),
    ("http://[::1]:8080", "http", "[::1]:8080", ""),
])
def test_https_anywhere_and_plain_http_on_loopback_are_accepted(typed, scheme, netloc, path):
    parts = parse_base_url(typed, "c", environ=NO_ALLOW_LIST)
    assert (parts.scheme, parts.netloc, parts.path) == (scheme, netloc, path)


@pytest.mark.parametrize("typed", ["http://api.example.com", "http://simulators:8803", "http://10.1.2.3/"])
def test_plain_http_to_any_other_host_is_refused_naming_the_connection(typed, warnings):
    with pytest.raises(ValueError) as refused:
        parse_base_url(typed, "acme_conn", label="Acme URL", environ=NO_ALLOW_LIST)
    message = str(refused.value)
    assert "'acme_conn'" in message and "Acme URL must use https" in message and "plain http" in message
    assert warnings == []


@pytest.mark.parametrize(("typed", "hint"), [
    ("", "has no Base URL (e.g. https://api.acme.test)"),
    (None, "has no Base URL"),
    ("   /  ", "has no Base URL"),
    ("ftp://api.example.com", "is not an http(s) URL such as https://api.acme.test"),
    ("https://", "is not an http(s) URL"),
    ("https://api.example.com:port", "is not an http(s) URL"),
    ("https://[::1", "is not an http(s) URL"),
])
def test_what_is_no_url_is_refused_with_an_example(typed, hint):
    with pytest.raises(ValueError) as refused:
        parse_base_url(typed, "acme_conn", example="https://api.acme.test", environ=NO_ALLOW_LIST)
    assert hint in str(refused.value) and "'acme_conn'" in str(refused.value)


def test_messages_never_show_user_info_or_a_query_string():
    with pytest.raises(ValueError) as refused:
        parse_base_url("http://user:s3cret-pass@api.example.com/?token=abcd1234", "c", environ=NO_ALLOW_LIST)
    message = str(refused.value)
    assert "s3cret-pass" not in message and "abcd1234" not in message and "api.example.com" in message
    assert shown_url("https://u:p@h.example/x?k=v") == "https://h.example/x"


@pytest.mark.parametrize("password", ["pa/ss-w0rd", "p@ss-w0rd", "pass#w0rd?"])
def test_a_password_with_url_characters_is_never_shown(password):
    typed = f"https://user:{password}@api.example.com/v1"
    with pytest.raises(ValueError) as refused:
        parse_base_url(typed, "c", environ=NO_ALLOW_LIST)
    assert "w0rd" not in str(refused.value)
    assert "w0rd" not in shown_url(typed)


@pytest.mark.parametrize("typed", [
    "http://evil.example\\@127.0.0.1:8801",  # loopback to urlsplit, evil.example to urllib3
    "https://evil.example\\@api.example.com",
    "https://user@api.example.com",
    "https://user:secret@api.example.com",
])
def test_user_info_or_a_backslash_in_the_url_is_refused(typed):
    with pytest.raises(ValueError, match="login and password fields") as refused:
        parse_base_url(typed, "c", environ=NO_ALLOW_LIST)
    assert "secret" not in str(refused.value)


def test_a_listed_host_is_allowed_over_plain_http_with_a_warning(warnings):
    environ = {INSECURE_HTTP_HOSTS_ENV: "other, Simulators"}
    parts = parse_base_url("http://simulators:8803/", "acme_conn", environ=environ)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "simulators", 8803)
    assert len(warnings) == 1
    assert "'acme_conn'" in warnings[0] and "simulators" in warnings[0] and INSECURE_HTTP_HOSTS_ENV in warnings[0]
    assert "never" in warnings[0] and "production" in warnings[0]


def test_the_allow_list_names_whole_hosts_only():
    environ = {INSECURE_HTTP_HOSTS_ENV: "simulators"}
    for typed in ("http://simulators.example.org", "http://api.example.com", "http://xsimulators"):
        with pytest.raises(ValueError, match="must use https"):
            parse_base_url(typed, "c", environ=environ)


def test_https_and_loopback_never_warn_even_with_an_allow_list(warnings):
    environ = {INSECURE_HTTP_HOSTS_ENV: "simulators,api.example.com"}
    parse_base_url("https://simulators", "c", environ=environ)
    parse_base_url("https://api.example.com", "c", environ=environ)
    parse_base_url("http://127.0.0.1:1", "c", environ=environ)
    assert warnings == []


def test_the_allow_list_is_read_from_the_process_environment(monkeypatch):
    monkeypatch.setenv(INSECURE_HTTP_HOSTS_ENV, "simulators")
    assert parse_base_url("http://simulators:8806", "c").hostname == "simulators"
    monkeypatch.delenv(INSECURE_HTTP_HOSTS_ENV)
    with pytest.raises(ValueError, match="must use https"):
        parse_base_url("http://simulators:8806", "c")


@pytest.mark.parametrize(("raw", "hosts"), [
    ("", set()),
    (" , ,", set()),
    ("simulators", {"simulators"}),
    (" Simulators , sim-2.dev.internal ,10.0.0.7,[fd00::7]", {"simulators", "sim-2.dev.internal", "10.0.0.7", "fd00::7"}),
])
def test_allow_list_entries(raw, hosts):
    assert insecure_http_hosts({INSECURE_HTTP_HOSTS_ENV: raw}) == hosts


def test_no_allow_list_when_the_variable_is_unset():
    assert insecure_http_hosts({}) == frozenset()


@pytest.mark.parametrize("entry", ["http://simulators", "simulators:8803", "*", "*.internal", "sim/x", "a b"])
def test_an_allow_list_entry_that_is_no_host_fails_loudly(entry):
    with pytest.raises(ValueError, match=INSECURE_HTTP_HOSTS_ENV) as refused:
        insecure_http_hosts({INSECURE_HTTP_HOSTS_ENV: f"ok-host,{entry}"})
    assert "not a host name" in str(refused.value)
    with pytest.raises(ValueError, match=INSECURE_HTTP_HOSTS_ENV):
        parse_base_url("http://ok-host", "c", environ={INSECURE_HTTP_HOSTS_ENV: f"ok-host,{entry}"})
