"""Vendor-neutral framework for local HTTP simulators of the vendor APIs.

Why this exists: connector code must be exercised against something that behaves like the
vendor (paging, time windows, auth errors, throttling, late data) *and* against the network
failures that happen in production (timeouts, resets, cut bodies). Real tenants cannot be
made to fail on demand, so every vendor simulator is a :class:`SimulatorApp` (pure Python,
callable without sockets) served by a :class:`SimulatorServer` (a real HTTP/1.1 server on
loopback, so real clients such as ``requests`` see real socket behaviour).

Faults are queued in a :class:`FaultPlan` and applied *before* the vendor handler runs, except
``truncate`` (which cuts the vendor's real answer) and ``slow`` (which delays it).

Control endpoints (no auth, not counted in statistics, never faulted):

* ``POST /_sim/faults``   body: a JSON fault object or a list of them -> appended to the plan
* ``GET /_sim/faults``    the plan, with per-fault progress
* ``DELETE /_sim/faults`` clear the plan only
* ``POST /_sim/reset``    clear faults, statistics and vendor throttling state
* ``GET /_sim/stats``     request statistics
* ``GET|POST /_sim/clock`` read / freeze / advance / unfreeze the simulated "now"
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultPlan",
    "Headers",
    "SimClock",
    "SimRequest",
    "SimResponse",
    "SimStats",
    "SimulatorApp",
    "SimulatorServer",
]

CONTROL_PREFIX = "/_sim/"


# --------------------------------------------------------------------------------------------
# Request / response
# --------------------------------------------------------------------------------------------


class Headers:
    """Case-insensitive, multi-valued header collection.

    HTTP header names are case-insensitive, and vendors (and clients) disagree on casing, e.g.
    Netskope documents ``RateLimit-Remaining`` while clients read ``ratelimit-remaining``.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: Any) -> None:
        self._items.append((str(name), str(value)))

    def set(self, name: str, value: Any) -> None:
        """Replace every value of ``name`` by a single one."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        low = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != low]

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for n, v in self._items:
            if n.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self._items if n.lower() == low]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(n for n, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class SimRequest:
    """One HTTP request as seen by a simulator.

    ``query`` maps each name to *all* its values (``?a=1&a=2`` -> ``{"a": ["1", "2"]}``),
    because several vendor APIs repeat parameters. Build one in unit tests with
    :meth:`SimRequest.build` to call :meth:`SimulatorApp.handle` without a socket.
    """

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    client: tuple[str, int] | None = None

    @classmethod
    def build(
        cls,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        json_body: Any = None,
    ) -> SimRequest:
        """Create a request from a raw target such as ``/api/v1/alerts?limit=5``."""
        parts = urlsplit(target)
        hdrs = headers if isinstance(headers, Headers) else Headers(headers)
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if json_body is not None:
            raw = json.dumps(json_body).encode()
            if "content-type" not in hdrs:
                hdrs.add("Content-Type", "application/json")
        return cls(
            method=method.upper(),
            path=parts.path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=hdrs,
            body=raw,
        )

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First query-string value of ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """Parse the body as JSON; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, list[str]]:
        """Parse an ``application/x-www-form-urlencoded`` body (multi-valued)."""
        if not self.body:
            return {}
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def params(self) -> dict[str, list[str]]:
        """Merge query string, form body and JSON-object body parameters.

        Several vendor APIs (Netskope v1 among them) accept a parameter in any of the three
        places. Later sources override earlier ones per name: query < form < JSON body. JSON
        scalars are turned into strings (``true`` -> ``"true"``) so handlers see one type.
        """
        merged: dict[str, list[str]] = {k: list(v) for k, v in self.query.items()}
        if not self.body:
            return merged
        ctype = self.content_type
        if ctype == "application/x-www-form-urlencoded":
            merged.update(self.form())
            return merged
        try:
            payload = self.json()
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            for key, value in payload.items():
                values = value if isinstance(value, list) else [value]
                merged[str(key)] = [_scalar_to_str(v) for v in values]
        elif ctype != "application/json":
            # Clients that forget the content type still send a form body sometimes.
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                if b"=" in self.body:
                    merged.update(self.form())
        return merged


def _scalar_to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@dataclass
class SimResponse:
    """An HTTP response plus transport directives used by fault injection.

    ``drop`` closes the connection without sending anything; ``truncate_at`` sends the full
    ``Content-Length`` but only that many body bytes, then closes (a body cut mid-stream).
    """

    status: int = 200
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    drop: bool = False
    truncate_at: int | None = None
    fault: str | None = None

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> SimResponse:
        hdrs = Headers(headers)
        if "content-type" not in hdrs:
            hdrs.add("Content-Type", "application/json")
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        return cls(status=status, headers=hdrs, body=body)

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> SimResponse:
        hdrs = Headers(headers)
        if "content-type" not in hdrs:
            hdrs.add("Content-Type", content_type)
        return cls(status=status, headers=hdrs, body=text.encode("utf-8"))

    @classmethod
    def dropped(cls) -> SimResponse:
        return cls(status=0, drop=True, fault="drop")

    def json_body(self) -> Any:
        """Decode the body (handy when tests call :meth:`SimulatorApp.handle` directly)."""
        return json.loads(self.body.decode("utf-8"))


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
    body: str | None = None  # kind=status/malformed: override of the body
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

    def matches(self, request: SimRequest) -> bool:
        if self.path and not request.path.startswith(self.path):
            return False
        return not (self.method and request.method != self.method)

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
            out["body"] = self.body
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
        body: str | None = None,
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

    def take(self, request: SimRequest) -> Fault | None:
        """Return the fault to apply to ``request`` (consuming one use of it), if any."""
        with self._lock:
            chosen: Fault | None = None
            for fault in self._faults:
                if fault.exhausted or not fault.matches(request):
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

    def record(self, request: SimRequest, response: SimResponse, error: bool = False) -> None:
        status = "dropped" if response.drop else str(response.status)
        query = {k: (["***"] if k.lower() in self.redact else v) for k, v in request.query.items()}
        with self._lock:
            self.total += 1
            self.by_path[request.path] += 1
            self.by_status[status] += 1
            self.by_path_status.setdefault(request.path, Counter())[status] += 1
            if response.fault:
                self.faults[response.fault] += 1
            if error:
                self.errors += 1
            self.recent.append(
                {
                    "t": round(time.time(), 3),
                    "method": request.method,
                    "path": request.path,
                    "query": query,
                    "status": status,
                    "fault": response.fault,
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
# Routing and the app
# --------------------------------------------------------------------------------------------

Handler = Callable[[SimRequest], SimResponse]


@dataclass
class _Route:
    methods: frozenset[str]
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    control: bool


class RouteError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Router:
    """Method + path router; ``{name}`` in a pattern matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self, methods: str | Iterable[str], pattern: str, handler: Handler, control: bool = False
    ) -> None:
        names = {methods} if isinstance(methods, str) else set(methods)
        regex = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$")
        self._routes.append(_Route(frozenset(m.upper() for m in names), pattern, regex, handler, control))

    def match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        """Find the route; raises :class:`RouteError` 404 / 405."""
        path_matched = False
        for route in self._routes:
            m = route.regex.match(path)
            if not m:
                continue
            path_matched = True
            if method in route.methods:
                return route, m.groupdict()
        raise RouteError(405 if path_matched else 404)


class SimulatorApp:
    """Base class of every vendor simulator.

    Subclasses register handlers with :meth:`route` and override the hooks that make fault
    responses look like the vendor's own: :meth:`error_body`, :meth:`throttle_response` and
    (rarely) :meth:`malformed_response`. :meth:`reset` should be extended to clear vendor
    state such as rate-limit windows.
    """

    name = "simulator"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock or time.time
        self.faults = FaultPlan()
        self.stats = SimStats()
        self.router = Router()
        self._wake = threading.Event()  # set on server stop to cut `slow` sleeps short
        self.route("GET", "/_sim/stats", self._ctl_stats, control=True)
        self.route("POST", "/_sim/reset", self._ctl_reset, control=True)
        self.route(("GET", "POST", "DELETE"), "/_sim/faults", self._ctl_faults, control=True)
        self.route(("GET", "POST"), "/_sim/clock", self._ctl_clock, control=True)

    # -- registration -----------------------------------------------------------------------

    def route(
        self, methods: str | Iterable[str], pattern: str, handler: Handler, *, control: bool = False
    ) -> None:
        """Register ``handler`` for ``methods`` on ``pattern``.

        Control routes must live under ``/_sim/``; they skip faults, statistics and auth.
        """
        if control and not pattern.startswith(CONTROL_PREFIX):
            raise ValueError(f"control routes must start with {CONTROL_PREFIX}")
        self.router.add(methods, pattern, handler, control)

    # -- vendor hooks -----------------------------------------------------------------------

    def error_body(self, status: int, request: SimRequest) -> SimResponse:
        """The vendor's own error response for ``status`` (used by faults and routing)."""
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return SimResponse.json({"error": phrase, "status": status}, status=status)

    def throttle_response(self, request: SimRequest) -> SimResponse:
        """The vendor's own "too many requests" response."""
        resp = self.error_body(429, request)
        resp.headers.set("Retry-After", "1")
        return resp

    def malformed_response(self, request: SimRequest, body: str | None = None) -> SimResponse:
        """HTTP 200 whose body is neither valid JSON nor well-formed XML."""
        text = body if body is not None else '{"result": [{"_id": <html><body>upstream error'
        return SimResponse.text(text, content_type="application/json")

    def reset(self) -> None:
        """Clear faults and statistics; subclasses also clear throttling windows."""
        self.faults.clear()
        self.stats.reset()

    # -- pipeline ---------------------------------------------------------------------------

    def handle(self, request: SimRequest) -> SimResponse:
        """Serve one request: control routes, then faults, then the vendor handler."""
        try:
            route, params = self.router.match(request.method, request.path)
        except RouteError as exc:
            route, params = None, {}
            route_error: int | None = exc.status
        else:
            route_error = None
        request.path_params = params

        if route is not None and route.control:
            try:
                return route.handler(request)
            except (ValueError, KeyError, TypeError) as exc:
                return SimResponse.json({"error": f"bad control request: {exc!r}"}, status=400)
        if request.path.startswith(CONTROL_PREFIX):
            return SimResponse.json({"error": "unknown control endpoint"}, status=404)

        error = False
        fault = self.faults.take(request)
        response: SimResponse | None = None
        if fault is not None:
            response = self._apply_fault(fault, request)
        if response is None:
            try:
                if route is None:
                    response = self.error_body(route_error or 404, request)
                else:
                    response = route.handler(request)
            except Exception:
                log.exception("%s: handler failed for %s %s", self.name, request.method, request.path)
                error = True
                response = self.error_body(500, request)
            if fault is not None:
                response.fault = fault.kind
                if fault.kind == "truncate":
                    response.truncate_at = int(len(response.body) * fault.fraction)
        self.stats.record(request, response, error=error)
        return response

    def _apply_fault(self, fault: Fault, request: SimRequest) -> SimResponse | None:
        """Response that replaces the handler's, or ``None`` to run the handler anyway."""
        if fault.kind == "slow":
            self._wake.wait(fault.seconds)
            return None
        if fault.kind == "truncate":
            return None
        if fault.kind == "drop":
            return SimResponse.dropped()
        if fault.kind == "status":
            assert fault.status is not None
            resp = self.error_body(fault.status, request)
            if fault.body is not None:
                resp.body = fault.body.encode("utf-8")
            for name, value in fault.headers.items():
                resp.headers.set(name, value)
        elif fault.kind == "throttle":
            resp = self.throttle_response(request)
        else:  # malformed
            resp = self.malformed_response(request, fault.body)
        resp.fault = fault.kind
        return resp

    # -- control endpoints ------------------------------------------------------------------

    def _ctl_stats(self, request: SimRequest) -> SimResponse:
        return SimResponse.json(self.stats.snapshot())

    def _ctl_reset(self, request: SimRequest) -> SimResponse:
        self.reset()
        return SimResponse.json({"ok": True})

    def _ctl_faults(self, request: SimRequest) -> SimResponse:
        if request.method == "POST":
            try:
                payload = request.json()
            except ValueError as exc:
                raise ValueError(f"body must be JSON: {exc}") from exc
            added = self.faults.load(payload)
            return SimResponse.json({"added": len(added), "faults": self.faults.snapshot()})
        if request.method == "DELETE":
            self.faults.clear()
        return SimResponse.json({"faults": self.faults.snapshot()})

    def _ctl_clock(self, request: SimRequest) -> SimResponse:
        """``{"now": t}`` freezes at t, ``{"advance": s}`` moves on, ``{"real": true}`` unfreezes."""
        if request.method == "POST":
            payload = request.json() if request.body else {}
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
        return SimResponse.json({"now": self.clock(), "frozen": frozen})


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # Idle keep-alive connections give up after this many seconds so threads do not pile up.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        request = SimRequest(
            method=self.command,
            path=parts.path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=Headers(self.headers.items()),
            body=self._read_body(),
            client=self.client_address[:2] if self.client_address else None,
        )
        response = self.server.app.handle(request)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                # RST instead of FIN: the client sees a reset, as with a crashed balancer.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        body = response.body
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        if response.truncate_at is not None:
            sent = body[: min(response.truncate_at, max(len(body) - 1, 0))]
            self.send_header("Content-Length", str(max(len(body), len(sent) + 1)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(sent)
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            # The client gave up (e.g. its timeout fired during a `slow` fault): nothing to do.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimulatorApp) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("simulator connection error from %s", client_address, exc_info=True)


class SimulatorServer:
    """Serve a :class:`SimulatorApp` on loopback from a daemon thread.

    ``port=0`` picks a free port; read :attr:`url` after :meth:`start`. Use as a context
    manager in tests so the port and threads are released even when an assertion fails.
    """

    def __init__(self, app: SimulatorApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorServer:
        if self._server is not None:
            return self
        self.app._wake.clear()
        self._server = _Server((self.host, self.port), self.app)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sim-{self.app.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake `slow` faults, close open connections, free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self.app._wake.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
