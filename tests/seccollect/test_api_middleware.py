"""ConnectionTestPortMiddleware: the UI's ``port: 0`` reaches the API as "no port", nothing else changes."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from seccollect.api_middleware import ConnectionTestPortMiddleware, normalise_test_body


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"body": json.loads(body) if body else None,
                         "length": request.headers.get("content-length"), "raw": len(body)})


def _client() -> TestClient:
    app = Starlette(routes=[Route("/api/v2/connections/test", _echo, methods=["POST"]),
                            Route("/api/v2/connections", _echo, methods=["POST"])])
    return TestClient(ConnectionTestPortMiddleware(app))


@pytest.mark.parametrize("port", [0, "0", ""])
def test_port_zero_or_empty_becomes_null_on_the_test_route(port) -> None:
    sent = {"connection_id": "netskope_demo", "conn_type": "netskope", "host": "demo", "port": port,
            "password": "***"}
    answer = _client().post("/api/v2/connections/test", json=sent).json()
    assert answer["body"] == {**sent, "port": None}
    assert int(answer["length"]) == answer["raw"], "content-length must match the rewritten body"


@pytest.mark.parametrize("port", [443, 5432, None, False])
def test_a_real_port_or_none_is_left_alone(port) -> None:
    sent = {"connection_id": "c", "conn_type": "postgres", "host": "db", "port": port}
    assert _client().post("/api/v2/connections/test", json=sent).json()["body"] == sent


def test_other_routes_and_bodies_are_untouched() -> None:
    sent = {"connection_id": "c", "conn_type": "netskope", "port": 0}
    assert _client().post("/api/v2/connections", json=sent).json()["body"] == sent
    assert normalise_test_body(b"not json") == b"not json"
    assert normalise_test_body(b"[0]") == b"[0]"
    assert normalise_test_body(b'{"host": "x"}') == b'{"host": "x"}'


def test_the_plugin_installs_the_middleware_in_the_api_server() -> None:
    from seccollect.plugin import SeccollectPlugin

    assert [m["middleware"] for m in SeccollectPlugin.fastapi_root_middlewares] == [ConnectionTestPortMiddleware]
