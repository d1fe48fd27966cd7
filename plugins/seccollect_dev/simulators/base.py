"""Vendor-neutral framework for local HTTP simulators of the vendor APIs, on Starlette + uvicorn.

Why this exists: connector code must be exercised against something that behaves like the
vendor (paging, time windows, auth errors, throttling, late data) *and* against the network
failures that happen in production (timeouts, resets, cut bodies). Real tenants cannot be
made to fail on demand, so every vendor simulator is a :class:`SimulatorApp` - a Starlette
application whose routes are the vendor's endpoints - served on loopback by uvicorn through a
:class:`SimulatorServer`, so real clients such as ``requests`` see real socket behaviour.

Faults are queued in a :class:`FaultPlan` and applied by one shared pure-ASGI middleware,
:class:`FaultMiddleware`, *before* the vendor's route runs, except ``truncate`` (which cuts the
vendor's real answer) and ``slow`` (which delays it). The middleware also keeps the request
statistics (:class:`SimStats`). What a fault response looks like (error body, throttle
response, malformed body) is the vendor's business: :class:`SimulatorApp` hooks.

A fault is a JSON object (``POST /_sim/faults``) or the arguments of :meth:`FaultPlan.add`:

* ``kind`` (required): ``status`` (answer ``status`` with the vendor's error body, or ``body``,
  plus ``headers``), ``throttle`` (the vendor's "too many requests" answer), ``slow`` (wait
  ``seconds`` before answering normally), ``drop`` (close the connection with a reset and no
  HTTP response at all, like a crashed balancer), ``malformed`` (HTTP 200 whose body is neither
  JSON nor XML, or ``body``), ``truncate`` (announce the full ``Content-Length``, send only
  ``fraction`` of the body, close);
* ``path``: only requests whose path starts with it (default: every path);
  ``method``: only this method (default: any);
* ``after``: let this many matching requests through first (default 0);
  ``count``: then fault this many matching requests (default 1).

Control endpoints (no auth, not counted in statistics, never faulted):

* ``POST /_sim/faults``   body: a JSON fault object or a list of them -> appended to the plan
* ``GET /_sim/faults``    the plan, with per-fault progress
* ``DELETE /_sim/faults`` clear the plan only
* ``POST /_sim/reset``    clear faults, statistics and vendor throttling state
* ``GET /_sim/stats``     request statistics
* ``GET|POST /_sim/clock`` read / freeze / advance / unfreeze the simulated "now"
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import json
import logging
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

__all__ = [
    "CONTROL_PREFIX",
    "FAULT_INJECTION_HELP",
    "FAULT_KINDS",
    "Fault",
    "FaultMiddleware",
    "FaultPlan",
    "SimClock",
    "SimStats",
    "SimulatorApp",
    "SimulatorServer",
    "control_route",
    "merge_params",
    "query_arg",
    "request_params",
]

CONTROL_PREFIX = "/_sim/"

#: How to inject faults, for ``python -m seccollect_dev.simulators --help`` (README: "Fault injection").
FAULT_INJECTION_HELP = """\
fault injection:
  Faults are queued per simulator over HTTP and act on the next matching requests, in the order
  queued, at most one per request. A fault is a JSON object:

    kind      required, one of:
                status     answer `status` with the vendor's error body (or `body`), plus `headers`
                throttle   the vendor's own "too many requests" answer (e.g. 429 + Retry-After)
                slow       wait `seconds`, then answer normally (client timeouts)
                drop       reset the connection: no HTTP response at all (a crashed balancer)
                malformed  HTTP 200 whose body is neither JSON nor XML (or `body`)
                truncate   announce the full Content-Length, send `fraction` of the body, close
    path      only requests whose path starts with this             (default: every path)
    method    only this HTTP method                                 (default: any)
    after     let this many matching requests through first         (default: 0)
    count     then fault this many matching requests                (default: 1)
    status    kind=status: HTTP status, 100-599                     (required for status)
    seconds   kind=slow: the delay in seconds                       (default: 1.0)
    fraction  kind=truncate: share of the body sent, in [0, 1)      (default: 0.5)
    body      kind=status/malformed: body sent instead (string; other JSON is serialised)
    headers   kind=status: extra response headers, e.g. {"Retry-After": "3"}

control endpoints (no auth, never faulted, not counted in the statistics):
  POST   /_sim/faults   queue a fault object or a list of them (all-or-nothing: 400 if one is bad)
  GET    /_sim/faults   the plan, with each fault's progress (seen, applied)
  DELETE /_sim/faults   clear the plan
  POST   /_sim/reset    clear faults, statistics and the vendor's throttling windows
  GET    /_sim/stats    requests by path / status / fault, errors, the recent requests
  GET    /_sim/clock    the simulated "now";
  POST   /_sim/clock    {"now": t} freezes at t, {"advance": s} moves on, {"real": true} unfreezes

examples (the Netskope simulator on the demo's port 18801):
  # the next two v2 alert requests fail with 503
  curl -X POST http://127.0.0.1:18801/_sim/faults \\
       -d '{"kind": "status", "status": 503, "path": "/api/v2/events/data/alert", "count": 2}'
  # throttle the next request, whatever its path
  curl -X POST http://127.0.0.1:18801/_sim/faults -d '{"kind": "throttle"}'
  # let two alert pages through, then cut the third one in half
  curl -X POST http://127.0.0.1:18801/_sim/faults \\
       -d '{"kind": "truncate", "path": "/api/v2/events/data/alert", "after": 2, "fraction": 0.5}'
  # what happened
  curl http://127.0.0.1:18801/_sim/stats
"""
#: How :class:`SimStats` names the status of a request that got no HTTP response (``drop``).
DROPPED = "dropped"


# --------------------------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------------------------


def query_arg(request: Request, name: str, default: str | None = None) -> str | None:
    """First query-string value of ``name``.

    The first, not Starlette's last: several vendor APIs repeat parameters, and the simulators
    have always read the first occurrence.
    """
    values = request.query_params.getlist(name)
    return values[0] if values else default


def merge_params(query: Mapping[str, list[str]], body: bytes, content_type: str) -> dict[str, list[str]]:
    """Merge query string, form body and JSON-object body parameters (multi-valued).

    Several vendor APIs (Netskope v1 among them) accept a parameter in any of the three
    places. Later sources override earlier ones per name: query < form < JSON body. JSON
    scalars are turned into strings (``true`` -> ``"true"``) so handlers see one type.
    """
    merged: dict[str, list[str]] = {k: list(v) for k, v in query.items()}
    if not body:
        return merged
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        merged.update(_form(body))
        return merged
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict):
        for key, value in payload.items():
            values = value if isinstance(value, list) else [value]
            merged[str(key)] = [_scalar_to_str(v) for v in values]
    elif ctype != "application/json":
        # Clients that forget the content type still send a form body sometimes.
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            if b"=" in body:
                merged.update(_form(body))
    return merged


async def request_params(request: Request) -> dict[str, list[str]]:
    """:func:`merge_params` of a Starlette request (reads the body)."""
    query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    body = await request.body()
    return merge_params(query, body, request.headers.get("content-type", ""))


def _form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8"), keep_blank_values=True)


def _scalar_to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _replace_body(response: Response, body: bytes) -> Response:
    """Swap a rendered response's body, keeping ``Content-Length`` true."""
    response.body = body
    response.headers["content-length"] = str(len(body))
    return response


# --------------------------------------------------------------------------------------------
# Clock
# --------------------------------------------------------------------------------------------


class SimClock:
    """A settable wall clock: real time plus an offset, or frozen.

    Simulators decide "what data exists yet" from ``clock()``; tests freeze it to make late
    arrival deterministic, and the HTTP control endpoint lets an out-of-process test do the same.
    """

    def __init__(self, now: float | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen: float | None = now
        self._offset = 0.0

    def __call__(self) -> float:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self, at: float | None = None) -> None:
        """Stop the clock at ``at`` (default: the current reading)."""
        now = self() if at is None else float(at)
        with self._lock:
            self._frozen = now

    def set(self, now: float) -> None:
        self.freeze(now)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (frozen or not)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def unfreeze(self) -> None:
        """Return to real time (keeping no offset)."""
        with self._lock:
            self._frozen = None
            self._offset = 0.0


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------

FAULT_KINDS = ("status", "throttle", "slow", "drop", "malformed", "truncate")


@dataclass
class Fault:
    """One queued fault.

    A request *matches* when its path starts with ``path`` (and its method equals ``method``,
    when given). The first ``after`` matching requests pass untouched; the fault then fires on
    up to ``count`` matching requests that no earlier fault in the plan took.
    """

    kind: str
    path: str | None = None
    method: str | None = None
    count: int = 1
    after: int = 0
    status: int | None = None  # kind=status
    seconds: float = 1.0  # kind=slow
    fraction: float = 0.5  # kind=truncate: share of the body actually sent
    body: str | bytes | None = None  # kind=status/malformed: override of the body (bytes: from Python only)
    headers: dict[str, str] = field(default_factory=dict)  # kind=status: extra headers
    seen: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.kind == "status" and (self.status is None or not 100 <= int(self.status) <= 599):
            raise ValueError("a 'status' fault needs an HTTP status between 100 and 599")
        if self.count < 1 or self.after < 0:
            raise ValueError("count must be >= 1 and after >= 0")
        if self.kind == "slow" and self.seconds < 0:
            raise ValueError("seconds must be >= 0")
        if self.kind == "truncate" and not 0 <= self.fraction < 1:
            raise ValueError("fraction must be in [0, 1)")
        if not isinstance(self.headers, dict):
            raise ValueError("headers must be a JSON object")
        if self.method:
            self.method = self.method.upper()

    @property
    def exhausted(self) -> bool:
        return self.applied >= self.count

    def matches(self, method: str, path: str) -> bool:
        if self.path and not path.startswith(self.path):
            return False
        return not (self.method and method.upper() != self.method)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "path": self.path,
            "method": self.method,
            "count": self.count,
            "after": self.after,
            "seen": self.seen,
            "applied": self.applied,
        }
        if self.kind == "status":
            out["status"] = self.status
        if self.kind == "slow":
            out["seconds"] = self.seconds
        if self.kind == "truncate":
            out["fraction"] = self.fraction
        if self.body is not None:
            out["body"] = self.body.decode("utf-8", "backslashreplace") if isinstance(self.body, bytes) else self.body
        if self.headers:
            out["headers"] = dict(self.headers)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        allowed = {
            "kind",
            "path",
            "method",
            "count",
            "after",
            "status",
            "seconds",
            "fraction",
            "body",
            "headers",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        kwargs = dict(data)
        body = kwargs.get("body")
        if body is not None and not isinstance(body, str):
            kwargs["body"] = json.dumps(body)
        for name, conv in (
            ("count", int),
            ("after", int),
            ("status", int),
            ("seconds", float),
            ("fraction", float),
        ):
            if kwargs.get(name) is not None:
                kwargs[name] = conv(kwargs[name])
        return cls(**kwargs)


class FaultPlan:
    """Thread-safe queue of faults consulted before every non-control request.

    Faults are considered in insertion order and at most one fires per request, so adding
    ``[status 500, drop]`` (both ``count=1``) yields "first request 500, second dropped".
    Every matching fault counts the request toward its ``after``, whether or not it fires.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        *,
        path: str | None = None,
        method: str | None = None,
        count: int = 1,
        after: int = 0,
        status: int | None = None,
        seconds: float = 1.0,
        fraction: float = 0.5,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Queue a fault; see :class:`Fault` for the meaning of each argument."""
        fault = Fault(
            kind=kind,
            path=path,
            method=method,
            count=count,
            after=after,
            status=status,
            seconds=seconds,
            fraction=fraction,
            body=body,
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def extend(self, faults: Iterable[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def load(self, payload: Any) -> list[Fault]:
        """Queue faults from decoded JSON (one object or a list); all-or-nothing."""
        items = payload if isinstance(payload, list) else [payload]
        faults = []
        for item in items:
            if not isinstance(item, Mapping):
                raise ValueError("each fault must be a JSON object")
            faults.append(Fault.from_dict(item))
        self.extend(faults)
        return faults

    def take(self, method: str, path: str) -> Fault | None:
        """Return the fault to apply to a ``method path`` request (consuming one use), if any."""
        with self._lock:
            chosen: Fault | None = None
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path):
                    continue
                fault.seen += 1
                if chosen is None and fault.seen > fault.after:
                    fault.applied += 1
                    chosen = fault
            return chosen

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def __len__(self) -> int:
        return len(self.pending())


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


class SimStats:
    """Counts of served requests, so tests can assert *how* a client used the API
    (number of pages, retries after a fault, requests per endpoint)."""

    def __init__(self, history: int = 500, redact: Iterable[str] = ("token",)) -> None:
        self._lock = threading.Lock()
        self._history_size = history
        self.redact = {r.lower() for r in redact}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_path: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.by_path_status: dict[str, Counter[str]] = {}
            self.faults: Counter[str] = Counter()
            self.errors = 0
            self.recent: deque[dict[str, Any]] = deque(maxlen=self._history_size)

    def record(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        status: int | str,
        fault: str | None = None,
        error: bool = False,
    ) -> None:
        """Count one request; ``status`` is the HTTP status, or ``"dropped"`` for no response."""
        status = str(status)
        query = {k: (["***"] if k.lower() in self.redact else v) for k, v in query.items()}
        with self._lock:
            self.total += 1
            self.by_path[path] += 1
            self.by_status[status] += 1
            self.by_path_status.setdefault(path, Counter())[status] += 1
            if fault:
                self.faults[fault] += 1
            if error:
                self.errors += 1
            self.recent.append(
                {
                    "t": round(time.time(), 3),
                    "method": method,
                    "path": path,
                    "query": query,
                    "status": status,
                    "fault": fault,
                }
            )

    def count(self, path: str | None = None, status: int | str | None = None) -> int:
        """Number of requests to ``path`` (exact) with ``status`` (either may be omitted)."""
        with self._lock:
            if path is None and status is None:
                return self.total
            if path is None:
                return self.by_status.get(str(status), 0)
            if status is None:
                return self.by_path.get(path, 0)
            return self.by_path_status.get(path, Counter()).get(str(status), 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "by_path_status": {p: dict(c) for p, c in self.by_path_status.items()},
                "faults": dict(self.faults),
                "errors": self.errors,
                "recent": list(self.recent),
            }


# --------------------------------------------------------------------------------------------
# The fault middleware
# --------------------------------------------------------------------------------------------


def with_date(headers: Sequence[tuple[bytes, bytes]], now: float) -> list[tuple[bytes, bytes]]:
    """Response headers with ``Date`` from the simulator's clock: a client that reads the vendor's
    time from its ``Date`` header sees the simulated vendor's time (e.g. a clock running behind)."""
    date = email.utils.formatdate(now, usegmt=True).encode()
    return [(n, v) for n, v in headers if n.lower() != b"date"] + [(b"date", date)]


class _Exchange:
    """One non-control request on its way through :class:`FaultMiddleware`.

    Statistics are recorded *before* the last body bytes leave, so a test that asserts on
    them right after its request returned never races the server.
    """

    def __init__(self, stats: SimStats, scope: Scope, fault: Fault | None, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.stats = stats
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        self.fault = fault.kind if fault else None
        self.status: int | None = None
        self.started = False
        self.error = False
        self._recorded = False

    def record(self, status: int | str | None = None) -> None:
        if self._recorded:
            return
        self._recorded = True
        final = status if status is not None else (self.status if self.status is not None else 500)
        self.stats.record(self.method, self.path, self.query, final, fault=self.fault, error=self.error)

    def recording(self, send: Send) -> Send:
        """``send`` that notes the status and records the request before the body ends."""

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
                self.status = int(message["status"])
                message = {**message, "headers": with_date(message.get("headers", []), self.clock())}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self.record()
            await send(message)

        return _send


class FaultMiddleware:
    """The one pure-ASGI middleware that applies a :class:`SimulatorApp`'s queued faults.

    Why pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: faults act on the transport
    (no response at all, a body shorter than its ``Content-Length``), which needs the raw
    ``send`` messages and, for ``drop``/``truncate``, the connection itself. Control routes
    (``/_sim/...``) pass straight through; every other request is counted in the app's
    :class:`SimStats`, and an exception in a vendor route becomes the vendor's own 500.
    """

    #: Longest wait for the client side of a dropped/cut connection to be gone.
    DISCONNECT_TIMEOUT = 10.0

    def __init__(self, app: ASGIApp, simulator: SimulatorApp) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _origin_form(scope)
        if scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        sim = self.simulator
        fault = sim.faults.take(scope["method"], scope["path"])
        exchange = _Exchange(sim.stats, scope, fault, sim.clock)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "drop":
            exchange.record(DROPPED)
            await self._drop(scope, receive)
            return
        if fault is not None and kind == "slow":
            await sim.pause(fault.seconds)
        if fault is not None and kind in ("status", "throttle", "malformed"):
            response = sim.fault_response(fault, Request(scope))
            await response(scope, receive, exchange.recording(send))
            return
        if fault is not None and kind == "truncate":
            await self._truncate(scope, receive, send, exchange, fault.fraction)
            return
        await self._serve(scope, receive, exchange.recording(send), exchange)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange) -> None:
        """The vendor's route; an exception in it becomes the vendor's 500 (and is counted)."""
        try:
            await self.app(scope, receive, send)
        except Exception:
            if exchange.started:
                raise
            log.exception("%s: handler failed for %s %s", self.simulator.name, scope["method"], scope["path"])
            exchange.error = True
            await self.simulator.error_body(500, Request(scope))(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive) -> None:
        """Reset the connection without a byte of response, as a crashed balancer would."""
        transport = self.simulator.transport_for(scope)
        if transport is None:
            raise RuntimeError(
                "a 'drop' fault needs the connection: serve the simulator with SimulatorServer"
            )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # RST instead of FIN: the client sees a reset, not a tidy close.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await self._disconnected(receive)

    async def _truncate(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange, fraction: float
    ) -> None:
        """Send the full ``Content-Length`` but only ``fraction`` of the body, then close."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                exchange.started = True
                exchange.status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._serve(scope, receive, buffer, exchange)
        if start is None:  # the route sent nothing: nothing to cut
            return
        body = b"".join(chunks)
        cut = body[: min(int(len(body) * fraction), max(len(body) - 1, 0))]
        declared = max(len(body), len(cut) + 1)
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() not in (b"content-length", b"transfer-encoding", b"connection")
        ]
        headers += [(b"content-length", str(declared).encode()), (b"connection", b"close")]
        exchange.record()
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": cut, "more_body": True})
        transport = self.simulator.transport_for(scope)
        if transport is None:
            return  # the server closes an unfinished response itself (and logs it)
        transport.close()  # flushes what was written, then FIN
        await self._disconnected(receive)

    async def _disconnected(self, receive: Receive) -> None:
        """Wait until the server has noticed the closed connection.

        Returning earlier would make uvicorn answer the (gone) request with its own 500 or log
        an unfinished response.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(self.DISCONNECT_TIMEOUT):
                while (await receive())["type"] != "http.disconnect":
                    pass


def _origin_form(scope: Scope) -> None:
    """Turn an absolute-form target (``GET http://host/path``, sent to a proxy) into its path.

    The simulators double as forward proxies in tests of the clients' proxy settings. uvicorn's
    httptools parser already does this; its h11 parser hands the absolute URI through.
    """
    path: str = scope["path"]
    if path.startswith(("http://", "https://")):
        scope["path"] = urlsplit(path).path or "/"
        scope["raw_path"] = scope["path"].encode()


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------

ControlEndpoint = Callable[[Request], Response | Awaitable[Response]]


def control_route(path: str, endpoint: ControlEndpoint, methods: Sequence[str]) -> Route:
    """A ``/_sim/...`` route whose bad input (``ValueError``/``KeyError``/``TypeError``) is a 400.

    Control routes skip faults, statistics and the vendor's auth; the 400 tells a test author
    what was wrong with the control request instead of a stack trace.
    """
    if not path.startswith(CONTROL_PREFIX):
        raise ValueError(f"control routes must start with {CONTROL_PREFIX}")

    async def guarded(request: Request) -> Response:
        try:
            result = endpoint(request)
            if inspect.isawaitable(result):
                result = await result
            return result
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad control request: {exc!r}"}, status_code=400)

    return Route(path, guarded, methods=list(methods))


class SimulatorApp(Starlette):
    """Base class of every vendor simulator: a Starlette app plus faults, statistics and a clock.

    Subclasses pass their vendor routes (plain Starlette ``Route`` objects; sync endpoints run
    in Starlette's thread pool) and extra ``/_sim/`` routes (see :func:`control_route`), and
    override the hooks that make fault responses look like the vendor's own:
    :meth:`error_body`, :meth:`throttle_response` and (rarely) :meth:`malformed_response`.
    :meth:`reset` should be extended to clear vendor state such as rate-limit windows.
    Unknown paths and methods are answered with :meth:`error_body` 404 / 405.
    """

    name = "simulator"

    def __init__(
        self,
        routes: Sequence[BaseRoute] = (),
        *,
        control_routes: Sequence[BaseRoute] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.clock: Callable[[], float] = clock or time.time
        self.faults = FaultPlan()
        self.stats = SimStats()
        self._wake = threading.Event()  # set on server stop to cut `slow` waits short
        self._connection_finders: list[Callable[[Scope], asyncio.Transport | None]] = []
        builtin = [
            control_route("/_sim/stats", self._ctl_stats, ["GET"]),
            control_route("/_sim/reset", self._ctl_reset, ["POST"]),
            control_route("/_sim/faults", self._ctl_faults, ["GET", "POST", "DELETE"]),
            control_route("/_sim/clock", self._ctl_clock, ["GET", "POST"]),
        ]
        super().__init__(
            routes=[*builtin, *control_routes, *routes],
            middleware=[Middleware(FaultMiddleware, simulator=self)],
            exception_handlers={HTTPException: self._http_error},
        )
        # A vendor answers /x/ with its 404, not with a redirect to /x.
        self.router.redirect_slashes = False

    # -- vendor hooks -----------------------------------------------------------------------

    def error_body(self, status: int, request: Request) -> Response:
        """The vendor's own error response for ``status`` (used by faults and routing)."""
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return JSONResponse({"error": phrase, "status": status}, status_code=status)

    def throttle_response(self, request: Request) -> Response:
        """The vendor's own "too many requests" response."""
        resp = self.error_body(429, request)
        resp.headers["Retry-After"] = "1"
        return resp

    def malformed_response(self, request: Request, body: str | None = None) -> Response:
        """HTTP 200 whose body is neither valid JSON nor well-formed XML."""
        text = body if body is not None else '{"result": [{"_id": <html><body>upstream error'
        return Response(text, media_type="application/json")

    def reset(self) -> None:
        """Clear faults and statistics; subclasses also clear throttling windows."""
        self.faults.clear()
        self.stats.reset()

    # -- used by the middleware and the server ----------------------------------------------

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """The response replacing the route's for a ``status``/``throttle``/``malformed`` fault."""
        if fault.kind == "status":
            assert fault.status is not None
            resp = self.error_body(fault.status, request)
            if fault.body is not None:
                _replace_body(resp, fault.body if isinstance(fault.body, bytes) else fault.body.encode("utf-8"))
            for name, value in fault.headers.items():
                resp.headers[name] = str(value)
            return resp
        if fault.kind == "throttle":
            return self.throttle_response(request)
        if fault.kind == "malformed":
            return self.malformed_response(request, fault.body)
        raise ValueError(f"fault kind {fault.kind!r} has no response of its own")

    async def pause(self, seconds: float) -> None:
        """A ``slow`` fault's wait; ends early when the server stops."""
        deadline = time.monotonic() + seconds
        while not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.05))

    def add_connection_finder(self, finder: Callable[[Scope], asyncio.Transport | None]) -> None:
        """Let ``drop``/``truncate`` reach the connection of a request (see :class:`SimulatorServer`)."""
        self._connection_finders.append(finder)

    def remove_connection_finder(self, finder: Callable[[Scope], asyncio.Transport | None]) -> None:
        with contextlib.suppress(ValueError):
            self._connection_finders.remove(finder)

    def transport_for(self, scope: Scope) -> asyncio.Transport | None:
        """The transport carrying the request of ``scope``: ASGI hands apps no socket."""
        for finder in list(self._connection_finders):
            transport = finder(scope)
            if transport is not None:
                return transport
        return None

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Routing errors (404/405) in the vendor's shape; unknown control endpoints are ours."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if request.url.path.startswith(CONTROL_PREFIX):
            return JSONResponse({"error": "unknown control endpoint"}, status_code=404)
        return self.error_body(status, request)

    # -- control endpoints ------------------------------------------------------------------

    def _ctl_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.snapshot())

    def _ctl_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _ctl_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                payload = await request.json()
            except ValueError as exc:
                raise ValueError(f"body must be JSON: {exc}") from exc
            added = self.faults.load(payload)
            return JSONResponse({"added": len(added), "faults": self.faults.snapshot()})
        if request.method == "DELETE":
            self.faults.clear()
        return JSONResponse({"faults": self.faults.snapshot()})

    async def _ctl_clock(self, request: Request) -> Response:
        """``{"now": t}`` freezes at t, ``{"advance": s}`` moves on, ``{"real": true}`` unfreezes."""
        if request.method == "POST":
            payload = await request.json() if await request.body() else {}
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            if not isinstance(self.clock, SimClock):
                self.clock = SimClock()
            clock = self.clock
            if payload.get("real"):
                clock.unfreeze()
            if "now" in payload:
                clock.freeze(float(payload["now"]))
            if "advance" in payload:
                clock.advance(float(payload["advance"]))
        frozen = isinstance(self.clock, SimClock) and self.clock.frozen
        return JSONResponse({"now": self.clock(), "frozen": frozen})


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class SimulatorServer:
    """Serve a :class:`SimulatorApp` with uvicorn on loopback, from a daemon thread.

    ``port=0`` picks a free port; read :attr:`url` after :meth:`start`, which returns once the
    server accepts connections. Use as a context manager in tests so the port and the thread are
    released even when an assertion fails. The server also tells the app how to find a
    request's connection, which ``drop`` and ``truncate`` faults need.
    """

    #: Seconds uvicorn may spend finishing in-flight requests on stop before cancelling them.
    GRACEFUL_SHUTDOWN = 3

    def __init__(self, app: SimulatorApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        if self._bound is None:
            raise RuntimeError("server not started")
        host, port = self._bound
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._bound = sock.getsockname()[:2]
        self.port = self._bound[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_config=None,  # leave the host process's logging (Airflow's, pytest's) alone
            log_level="warning",
            proxy_headers=False,  # scope["client"] is the real peer
            server_header=False,
            date_header=False,  # the simulator's own clock writes Date (see FaultMiddleware)
            loop="asyncio",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=self.GRACEFUL_SHUTDOWN,
        )
        server = uvicorn.Server(config)
        self.app._wake.clear()
        self.app.add_connection_finder(self._transport_for)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"sim-{self.app.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"simulator {self.app.name} did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def _transport_for(self, scope: Scope) -> asyncio.Transport | None:
        """Find the uvicorn connection of ``scope``; runs on the server's event loop."""
        server = self._server
        if server is None:
            return None
        connections = list(server.server_state.connections)
        for conn in connections:
            cycle = getattr(conn, "cycle", None)
            if getattr(conn, "scope", None) is scope or getattr(cycle, "scope", None) is scope:
                return getattr(conn, "transport", None)
        client = tuple(scope.get("client") or ())
        for conn in connections:  # a middleware may have copied the scope: match the peer
            if client and tuple(getattr(conn, "client", None) or ()) == client:
                return getattr(conn, "transport", None)
        return None

    def stop(self) -> None:
        """Stop accepting, wake `slow` faults, close open connections, free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self.app._wake.set()
        server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.GRACEFUL_SHUTDOWN + 5)
            self._thread = None
        self.app.remove_connection_finder(self._transport_for)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
