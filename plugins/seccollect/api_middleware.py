"""ConnectionTestPortMiddleware: the UI's Test button on a connection stored without a port.

Airflow 3.3.2's connection form posts ``"port": 0`` to ``POST /api/v2/connections/test`` when the port
field is empty (a number input has no "empty"). The API compares the requested host and port with the
stored connection and, when they differ, refuses to reuse the stored credentials: 0 differs from the
stored NULL, so every connection without a port (Netskope, DuckDB, AWS ...) fails with 400 "The host or
port to test differs from the stored connection" and the UI shows only "Bad Request".

Port 0 is never a destination (no server listens on it), so it can only mean "no port": this ASGI
middleware, installed in the api-server by the package's Airflow plugin (``fastapi_root_middlewares``),
rewrites it to ``null`` before the API sees the request. The API's own check then compares NULL with
NULL and keeps working for a host or a real port that really differs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The route whose body is normalised (any prefix: the api-server may be mounted under a base path).
TEST_ROUTE = "/api/v2/connections/test"
#: Request bodies larger than this are passed on untouched (a connection test body is a few KB).
MAX_BODY = 1_000_000


def normalise_test_body(body: bytes) -> bytes:
    """``body`` with ``"port": 0`` (or ``"0"``/``""``) replaced by ``null``; anything else unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or "port" not in data or data["port"] not in (0, "0", ""):
        return body
    if isinstance(data["port"], bool):  # False == 0 in Python, but a boolean is no port at all
        return body
    data["port"] = None
    return json.dumps(data).encode()


class ConnectionTestPortMiddleware:
    """ASGI middleware: ``port: 0`` in a connection-test request means "no port" (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not str(scope.get("path", "")).endswith(TEST_ROUTE):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False) or size > MAX_BODY:
                break
        body = b"".join(chunks)
        more = size > MAX_BODY and message.get("more_body", False)
        if not more:
            body = normalise_test_body(body)
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            scope = {**scope, "headers": headers}
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": more}], receive), send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """A ``receive`` that returns ``messages`` first, then defers to ``then`` (the server's own, which
    reports a later disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive
