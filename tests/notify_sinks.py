"""Local sinks for notifications on 127.0.0.1: an SMTP server (aiosmtpd) and a webhook receiver
(Starlette on uvicorn), each with the Airflow connection that points at it."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SmtpSink:
    """Mails received: ``(sender, recipients, message)``."""

    port: int
    mails: list[tuple[str, list[str], email.message.EmailMessage]] = field(default_factory=list)

    def connection(self) -> dict[str, Any]:
        """An Airflow ``smtp`` connection to this sink (plain SMTP, no login)."""
        return {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "seccollect@example.org",
                          "timeout": 10, "retry_limit": 1}}

    def text(self, mail: email.message.EmailMessage) -> str:
        """The mail's subject and body as a person reads them (HTML tags and escapes resolved)."""
        import html
        import re

        body = mail.get_body(preferencelist=("html", "plain"))
        content = body.get_content() if body is not None else ""
        return f"{mail['Subject']}\n{html.unescape(re.sub(r'<[^>]+>', '', content))}"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    from seccollect_dev.airflow_stack import free_port

    sink = SmtpSink(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            sink.mails.append((envelope.mail_from, list(envelope.rcpt_tos), message))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class WebhookSink:
    """JSON bodies POSTed to the receiver."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)

    def connection(self) -> dict[str, Any]:
        """An Airflow ``http`` connection whose URL is the receiver."""
        host, port = self.url.removeprefix("http://").split(":")
        return {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from seccollect_dev.airflow_stack import free_port

    port = free_port()
    sink = WebhookSink(url=f"http://127.0.0.1:{port}")

    async def receive(request: Request) -> JSONResponse:
        sink.posts.append(json.loads(await request.body()))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/", receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the webhook receiver did not start")
        time.sleep(0.05)
    try:
        yield sink
    finally:
        server.should_exit = True
        thread.join(timeout=10)
