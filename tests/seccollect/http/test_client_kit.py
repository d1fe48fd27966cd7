"""What the HTTP layer does for the next vendors: re-authenticate an expired token, follow a vendor's
continuation URL only to its own host, stream a body to an iterating parser, decode strictly, keep a
TLS error's cause without retrying it, log every retry, and keep secrets and query strings out of it all."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from seccollect.http.auth import TokenAuth
from seccollect.http.client import ResponsePolicy, RetryPolicy, VendorHttpClient, Verdict, decode_json
from seccollect.http.errors import VendorApiError
from seccollect_dev.simulators.base import SimulatorApp, SimulatorServer

SECRET = "client-s3cret-value"


class TokenApp(SimulatorApp):
    """A vendor with expiring tokens, continuation links, a large XML stream and a body in Latin-1."""

    name = "kit"

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.other_host = "http://other.example"
        super().__init__(routes=[
            Route("/authorize", self._authorize, methods=["POST"]),
            Route("/items", self._items, methods=["GET"]),
            Route("/hosts.xml", self._hosts, methods=["GET"]),
            Route("/latin1", lambda r: Response(b'{"name":"caf\xe9"}', media_type="application/json"), methods=["GET"]),
        ])

    def _authorize(self, request: Request) -> Response:
        if request.headers.get("x-client-secret") != SECRET:
            return JSONResponse({"status": False, "message": f"bad secret {request.headers.get('x-client-secret')}"},
                                status_code=401)
        token = f"token-{len(self.issued) + 1}-abcdef"
        self.issued.append(token)
        self.valid = {token}
        return JSONResponse({"access_token": token, "expires_in": 3600})

    def expire_tokens(self) -> None:
        self.valid = set()

    def _items(self, request: Request) -> Response:
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return JSONResponse({"status": False, "message": "Token expired"}, status_code=200)
        page = int(request.query_params.get("page", "1"))
        base = str(request.base_url).rstrip("/")
        nxt = {1: f"{base}/items?page=2&cursor=abc", 2: f"{self.other_host}/items?page=3"}.get(page)
        return JSONResponse({"status": True, "data": [page], "next_link": nxt})

    def _hosts(self, request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"<HOST_LIST>"
            for i in range(20_000):
                yield f"<HOST><ID>{i}</ID><DNS>h{i}.example</DNS></HOST>".encode()
            yield b"</HOST_LIST>"

        return StreamingResponse(body(), media_type="application/xml")


class TokenPolicy(ResponsePolicy):
    """The vendor reports an expired token as ``{"status": false, "message": "Token expired"}`` with 200."""

    def classify(self, response: requests.Response) -> Verdict:
        verdict = super().classify(response)
        if verdict.kind == "ok" and b'"status":false' in response.content and b"Token expired" in response.content:
            return Verdict("reauth", "Token expired")
        return verdict


@pytest.fixture
def app() -> TokenApp:
    return TokenApp()


@pytest.fixture
def server(app: TokenApp) -> Iterator[SimulatorServer]:
    with SimulatorServer(app) as srv:
        yield srv


def _client(url: str, **kwargs) -> VendorHttpClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=3, backoff_base=0.01))
    kwargs.setdefault("sleep", lambda seconds: None)
    return VendorHttpClient(vendor="Kit", base_url=url, conn_id="kit_conn", **kwargs)


def _token_auth(url: str) -> TokenAuth:
    def fetch() -> tuple[str, float]:
        response = requests.post(f"{url}/authorize", headers={"X-Client-Secret": SECRET}, timeout=5)
        response.raise_for_status()
        body = response.json()
        return body["access_token"], float(body["expires_in"])

    return TokenAuth(fetch, lambda request, token: request.headers.__setitem__("Authorization", f"Bearer {token}"),
                     static_secrets=[SECRET])


def test_an_expired_token_is_renewed_once_and_the_request_repeated(app: TokenApp, server: SimulatorServer) -> None:
    auth = _token_auth(server.url)
    client = _client(server.url, auth=auth, policy=TokenPolicy())
    assert client.get_json("/items")["data"] == [1]
    app.expire_tokens()  # the token expires mid-pull
    assert client.get_json("/items", params={"page": 2})["data"] == [2]
    assert auth.fetches == 2 and app.issued == ["token-1-abcdef", "token-2-abcdef"]


def test_a_token_refused_again_after_renewal_fails_for_good_naming_the_connection(app: TokenApp, server: SimulatorServer) -> None:
    auth = _token_auth(server.url)
    client = _client(server.url, auth=auth, policy=TokenPolicy())
    client.get_json("/items")
    auth.refresh = lambda: (app.expire_tokens() or True)  # every renewal is refused at once
    app.expire_tokens()
    with pytest.raises(VendorApiError) as failed:
        client.get_json("/items")
    assert failed.value.fatal and failed.value.status == 401
    assert "Check the Airflow connection 'kit_conn'" in str(failed.value)
    assert "token-1-abcdef" not in str(failed.value)


def test_a_continuation_url_is_followed_as_given_but_only_to_the_connections_host(server: SimulatorServer) -> None:
    client = _client(server.url, auth=_token_auth(server.url), policy=TokenPolicy())
    first = client.get_json("/items")
    second = client.get_json(first["next_link"])  # absolute, with its own query string: as given
    assert second["data"] == [2]
    with pytest.raises(VendorApiError) as refused:
        client.get_json(second["next_link"])
    assert refused.value.fatal
    assert "points to ('http', 'other.example', 80)" in str(refused.value) and "page=3" not in str(refused.value)


@pytest.mark.parametrize("trick", ["{origin}\\@other.example/items", "{scheme}://user:pw@{netloc}/items", "@other.example/items"])
def test_a_continuation_url_with_user_info_or_a_backslash_is_not_followed(server: SimulatorServer, trick: str) -> None:
    from urllib.parse import urlsplit

    client = _client(server.url)
    parts = urlsplit(server.url)
    with pytest.raises(VendorApiError) as refused:
        client.url_for(trick.format(origin=server.url, scheme=parts.scheme, netloc=parts.netloc))
    assert refused.value.fatal and "not followed" in str(refused.value) and "pw" not in str(refused.value)
    assert client.url_for(f"{server.url}/items?page=2") == f"{server.url}/items?page=2"


def test_a_body_streams_to_an_iterating_parser(server: SimulatorServer) -> None:
    def count_hosts(response: requests.Response) -> int:
        assert not response._content_consumed, "the body must not have been read up front"
        hosts = 0
        for _, element in ET.iterparse(response.raw, events=("end",)):
            if element.tag == "HOST":
                hosts += 1
                element.clear()
        return hosts

    assert _client(server.url).request("GET", "/hosts.xml", parse=count_hosts, stream=True) == 20_000


def test_a_truncated_xml_page_is_retried_like_a_truncated_json_page(app: TokenApp, server: SimulatorServer) -> None:
    def hosts(response: requests.Response) -> int:
        return sum(1 for _, e in ET.iterparse(response.raw, events=("end",)) if e.tag == "HOST")

    app.faults.add("truncate", path="/hosts.xml", fraction=0.5)
    assert _client(server.url).request("GET", "/hosts.xml", parse=hosts, stream=True) == 20_000
    assert app.stats.count("/hosts.xml") == 2


def test_bytes_that_are_not_utf8_are_kept_not_replaced(server: SimulatorServer) -> None:
    body = _client(server.url).request("GET", "/latin1", parse=decode_json)
    assert body["name"] == "caf\udce9"  # the byte survives (the record intake quarantines it), never U+FFFD
    assert "\ufffd" not in body["name"]


def test_a_tls_error_is_not_retried_and_keeps_its_cause(server: SimulatorServer) -> None:
    tls_url = server.url.replace("http://", "https://")  # TLS to a plain-HTTP port
    client = _client(tls_url, retry=RetryPolicy(max_attempts=5, backoff_base=0.01))
    with pytest.raises(VendorApiError) as failed:
        client.get_json("/items?token=abc")
    assert failed.value.fatal and failed.value.attempts == 1 and client.attempts_made == 1
    text = str(failed.value)
    assert "TLS/SSL error" in text and ("SSL" in text.split("TLS/SSL error", 1)[1]) and "token=abc" not in text


def test_every_retry_of_a_5xx_is_logged_with_the_vendors_words(app: TokenApp, server: SimulatorServer) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("seccollect.http.client")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        app.faults.add("status", path="/latin1", status=502, count=2, body=f'{{"message": "upstream died, key {SECRET}"}}')
        _client(server.url, secrets=[SECRET]).request("GET", "/latin1", parse=decode_json)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 2
    assert "attempt 1 failed (of 3): HTTP 502 (Kit said: upstream died, key ***)" in lines[0]
    assert all(SECRET not in line for line in lines)
