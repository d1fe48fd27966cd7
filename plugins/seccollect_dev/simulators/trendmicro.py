"""Trend Micro Cloud App Security Log Retrieval API simulator (faithful to
shared/vendor-apis/trendmicro-cas.md, its §0 corrections first).

* :class:`CasDataset` - deterministic security events per (service, event type), oldest first, with
  records exactly on 5-minute boundaries, fields of other event types absent, a generation time up to
  10 s after the detection time, and ground-truth helpers.
* :class:`CasSimulator` - ``GET /v1/siem/security_events``: bearer auth (401 ``{code, traceId, msg}``),
  parameter validation (400 with the documented body), the 5-minute defaults when bounds are missing,
  the two 72-hour rules, ``next_link`` paging, and a fixed-window rate limit of N requests per period
  per token (429 ``-4290001 "Maximum allowed requests exceeded"``). Every request is kept in
  :attr:`CasSimulator.request_log` (also ``GET /_sim/trendmicro/requests``). The rate window's length
  (``rate_period``, 60 s) can be shortened so rate-limit tests and benchmarks run in seconds: a
  sped-up clock for the limiter, with the client's budget period shortened to match.

What the reference marks [INFERRED]/[UNCONFIRMED] is a field of :class:`CasOptions`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seccollect_dev.simulators.base import SimulatorApp, SimulatorServer, control_route, query_arg
from seccollect_dev.simulators.spec import SimulatorSpec

__all__ = ["CasDataset", "CasOptions", "CasSimulator", "EVENTS", "PATH", "SERVICES", "SIMULATOR"]

PATH = "/v1/siem/security_events"
SERVICES = (
    "exchange", "sharepoint", "onedrive", "dropbox", "box", "googledrive", "gmail", "teams",
    "exchangeserver", "salesforce_sandbox", "salesforce_production", "teams_chat",
)
EVENTS = ("securityrisk", "virtualanalyzer", "ransomware", "dlp")
#: Display names of the services in records (``service`` is "OneDrive", not the request token).
SERVICE_NAMES = {
    "exchange": "Exchange", "sharepoint": "SharePoint", "onedrive": "OneDrive", "dropbox": "Dropbox", "box": "Box",
    "googledrive": "Google Drive", "gmail": "Gmail", "teams": "Teams", "exchangeserver": "Exchange Server",
    "salesforce_sandbox": "Salesforce Sandbox", "salesforce_production": "Salesforce Production",
    "teams_chat": "Teams Chat",
}
#: Record ``event`` values: securityrisk and ransomware confirmed (§0, §3.3); the others invented.
RECORD_EVENT = {
    "securityrisk": "security_risk_scan",
    "virtualanalyzer": "virtual_analyzer",
    "ransomware": "ransomware",
    "dlp": "dlp",
}
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
HORIZON = timedelta(hours=72)
DEFAULT_SPAN = timedelta(minutes=5)


@dataclass
class CasOptions:
    """Switches for behaviour the reference does not confirm (defaults: the simulator's best reading)."""

    #: Requests allowed per rate window per scope (docs: 20; an older KB: 10). None disables.
    rate_limit: int | None = 20
    #: The rate window's length in seconds (60; shorter = a sped-up limiter clock for tests).
    rate_period: float = 60.0
    #: "token" (per API key, the guide's reading) or "customer" (every token shares one window, the KB's).
    rate_scope: str = "token"
    #: Send ``Retry-After`` with a 429 ([UNCONFIRMED]; default: no header).
    retry_after: bool = False
    #: Which record time ``start``/``end`` filter on: "generation" or "detection" ([UNCONFIRMED]).
    filter_on: str = "generation"
    #: Whether ``end`` is inclusive (a record exactly on ``end`` is served) ([UNCONFIRMED]).
    end_inclusive: bool = True
    #: How the last page says "done": "", "null" (the string), None (JSON null) or "missing".
    last_link: str | None = ""
    #: next_link style: "absolute" (https://host/...), or "schemeless" (host/... : one client copes with it).
    link_style: str = "absolute"
    #: Reject a window whose ``start`` is older than 72 h (else clamp it silently) ([UNCONFIRMED]).
    reject_old_start: bool = True


@dataclass(frozen=True)
class CasRecord:
    record: dict[str, Any]
    generated: float  # epoch seconds (ms precision)
    detected: float

    @property
    def log_item_id(self) -> str:
        return self.record["log_item_id"]


def _iso_ms(epoch: float) -> str:
    moment = datetime.fromtimestamp(round(epoch, 3), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> float:
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in text
                             else "%Y-%m-%dT%H:%M:%S%z").timestamp()


class CasDataset:
    """Deterministic security events over ``[start, end)``.

    :param seed: the generator's seed (same seed, same records).
    :param start: first record time (aware).
    :param end: end of the records (aware).
    :param per_hour: records per hour per (service, event type); boundary records come on top.
    :param services: the services that have records (others answer empty pages).
    :param boundary_every: a record is generated exactly on every such boundary (``None``: none).
    """

    def __init__(self, seed: int, start: datetime, end: datetime, *, per_hour: float = 6.0,
                 services: Sequence[str] = SERVICES, boundary_every: timedelta | None = timedelta(minutes=5)) -> None:
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.per_hour = per_hour
        self.services = tuple(services)
        self.boundary_every = boundary_every
        self._cache: dict[tuple[str, str], list[CasRecord]] = {}
        self._lock = threading.Lock()

    def records(self, service: str, event: str) -> list[CasRecord]:
        """Every record of the pair, oldest generation time first (ties by id)."""
        key = (service, event)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._generate(service, event) if service in self.services else []
            return self._cache[key]

    def select(self, service: str, event: str, lo: float, hi: float, *, on: str = "generation",
               end_inclusive: bool = True) -> list[CasRecord]:
        out = []
        for rec in self.records(service, event):
            t = rec.generated if on == "generation" else rec.detected
            if t >= lo and (t <= hi if end_inclusive else t < hi):
                out.append(rec)
        return out

    def expected_ids(self, service: str, event: str, start: datetime, end: datetime, **kwargs: Any) -> set[str]:
        """Ground truth: the ``log_item_id`` of every record a query ``start``..``end`` serves."""
        return {r.log_item_id for r in self.select(service, event, start.timestamp(), end.timestamp(), **kwargs)}

    def boundary_ids(self, service: str, event: str) -> set[str]:
        """Records whose generation time is exactly on a boundary."""
        step = self.boundary_every.total_seconds() if self.boundary_every else None
        return {r.log_item_id for r in self.records(service, event) if step and r.generated % step == 0}

    def _generate(self, service: str, event: str) -> list[CasRecord]:
        digest = hashlib.sha256(f"{self.seed}:{service}:{event}".encode()).digest()
        rng = Random(int.from_bytes(digest[:8], "big"))
        span = (self.end - self.start).total_seconds()
        count = int(span / 3600 * self.per_hour)
        times = sorted(round(self.start.timestamp() + rng.random() * span, 3) for _ in range(count))
        boundary: set[float] = set()
        if self.boundary_every:
            step = self.boundary_every.total_seconds()
            t = -(-self.start.timestamp() // step) * step  # aligned, like the windows
            while t < self.end.timestamp():
                boundary.add(t)
                t += step
        out = []
        for t in sorted([*times, *boundary]):
            detected = round(t - rng.choice((0, 0, 0.5, 3, 10)), 3)
            out.append(CasRecord(self._record(rng, service, event, t, detected), t, detected))
        return out

    def _record(self, rng: Random, service: str, event: str, generated: float, detected: float) -> dict[str, Any]:
        item = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user = rng.choice(("ana@example.org", "bo@example.org", "cy@example.org", "dee@example.org"))
        message: dict[str, Any] = {
            "log_item_id": item,
            "detection_time": _iso_ms(detected),
            "affected_user": user,
            "location": f"https://example.sharepoint.com/sites/team{rng.randint(1, 9)}/Shared Documents",
            "action": rng.choice(("Quarantine", "Delete", "Pass")),
            "action_result": "success",
            "scan_type": rng.choice(("Real-time scan", "Manual scan")),
            "detected_by": rng.choice(("Pattern-based scanning", "Machine learning", "")),
            "triggered_policy_name": f"Default {SERVICE_NAMES[service]} Policy",
            "file_name": f"file{rng.randint(1, 999)}.{rng.choice(('docx', 'xlsm', 'pdf', 'exe'))}",
            # §0: about 12 h off the detection time in every public sample; not the event time.
            "file_upload_time": _iso_ms(detected - 12 * 3600 + rng.randint(0, 60)),
        }
        if event == "securityrisk":
            message |= {"triggered_security_filter": rng.choice(("Malware Scanning", "File Blocking", "Web Reputation")),
                        "security_risk_name": rng.choice(("TROJ_GEN.R002C0", "payload.exe", "HEUR_OLEXP.B")),
                        "virus_name": "TROJ_GEN.R002C0", "risk_level": rng.choice(("", "High", "Medium"))}
        elif event == "virtualanalyzer":
            message |= {"file_sha1": f"{rng.getrandbits(160):040x}", "file_sha256": f"{rng.getrandbits(256):064x}",
                        "detection_type": rng.choice(("File", "URL")), "virus_name": "VAN_DROPPER.UMXX",
                        "risk_level": "High"}
        elif event == "ransomware":
            message |= {"ransomware_name": rng.choice(("Ransom.Win32.LOCKBIT", "Ransom.Win32.CONTI"))}
        else:
            message |= {"triggered_dlp_template": [rng.choice(("U.S. Social Security Number", "PCI-DSS", "GDPR"))]}
        if service in ("exchange", "gmail", "exchangeserver"):
            message |= {"mail_message_id": f"<{item[:8]}@mail.example.net>", "mail_message_sender": "bad@example.net",
                        "mail_message_recipient": [user], "mail_message_subject": "Invoice",
                        "mail_message_submit_time": _iso_ms(detected - 9), "mail_message_delivery_time": _iso_ms(detected - 8)}
        return {"event": RECORD_EVENT[event], "log_item_id": item, "service": SERVICE_NAMES[service], "message": message}


@dataclass
class LoggedRequest:
    """One request as the simulator saw it (tests read these)."""

    at: float  # the server's real time.time() at arrival
    token: str  # a digest of the bearer token, never the token
    path: str
    params: dict[str, str]
    status: int


class _Error(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class CasSimulator(SimulatorApp):
    """Serves a :class:`CasDataset` over the Log Retrieval API (see the module docstring).

    :param dataset: the records.
    :param tokens: the valid API keys (bearer tokens).
    :param options: :class:`CasOptions`.
    :param clock: the data clock ("now" for the 72-hour and 5-minute rules and which records exist).
    :param rate_clock: the limiter's and the request log's clock (real time; tests may drive it).
    """

    name = "trendmicro"

    def __init__(self, dataset: CasDataset, tokens: Iterable[str], options: CasOptions | None = None,
                 clock: Any = None, rate_clock: Any = time.time) -> None:
        self.dataset = dataset
        self.rate_clock = rate_clock
        self.tokens = set(tokens)
        self.options = options or CasOptions()
        self.request_log: list[LoggedRequest] = []
        self._windows: dict[str, tuple[float, int]] = {}  # scope -> (window opened at, requests in it)
        self._rate_lock = threading.Lock()
        super().__init__(
            [Route(PATH, self._security_events, methods=["GET"])],
            control_routes=[
                control_route("/_sim/trendmicro/requests", self._ctl_requests, ["GET"]),
                control_route("/_sim/trendmicro/options", self._ctl_options, ["POST"]),
            ],
            clock=clock,
        )

    # -- vendor responses ---------------------------------------------------------------------

    @staticmethod
    def _body(code: int, msg: str) -> dict[str, Any]:
        return {"code": code, "traceId": str(uuid.uuid4()), "msg": msg}

    def error_body(self, status: int, request: Request) -> Response:
        msg = {401: "Authentication token not found", 429: "Maximum allowed requests exceeded",
               404: "API not found", 405: "Method not allowed", 403: "No permission"}.get(status, "Internal error"
                                                                                          if status >= 500 else "Bad request")
        return JSONResponse(self._body(-(status * 10_000 + 1), msg), status_code=status)

    def throttle_response(self, request: Request) -> Response:
        response = self.error_body(429, request)
        if self.options.retry_after:
            response.headers["Retry-After"] = str(max(1, int(self.options.rate_period)))
        return response

    def reset(self) -> None:
        super().reset()
        with self._rate_lock:
            self._windows.clear()
            self.request_log.clear()

    # -- the endpoint ---------------------------------------------------------------------------

    def _rate_ok(self, token: str, now: float) -> bool:
        """The KB's fixed window: it opens at its first request; more than N in it are refused."""
        opts = self.options
        if opts.rate_limit is None:
            return True
        scope = token if opts.rate_scope == "token" else "*"
        with self._rate_lock:
            opened, count = self._windows.get(scope, (now, 0))
            if now - opened >= opts.rate_period:
                opened, count = now, 0
            if count >= opts.rate_limit:
                self._windows[scope] = (opened, count)
                return False
            self._windows[scope] = (opened, count + 1)
            return True

    async def _security_events(self, request: Request) -> Response:
        # Auth and the rate window are judged here, in the event loop, the moment the request arrives (as
        # the vendor's gateway would); only building the page runs in the thread pool, where a busy
        # machine may queue it.
        arrived = self.rate_clock()
        params = {k: v for k, v in request.query_params.items()}
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        digest = hashlib.sha256(token.encode()).hexdigest()[:12]
        try:
            if token not in self.tokens:
                raise _Error(401, -4010001, "Authentication token not found")
            if not self._rate_ok(token, arrived):
                self._log(arrived, digest, request, params, 429)
                return self.throttle_response(request)
            body = await run_in_threadpool(self._page, request, params)
        except _Error as exc:
            self._log(arrived, digest, request, params, exc.status)
            return JSONResponse(self._body(exc.code, exc.msg), status_code=exc.status)
        self._log(arrived, digest, request, params, 200)
        return JSONResponse(body)

    def _log(self, arrived: float, digest: str, request: Request, params: dict[str, str], status: int) -> None:
        with self._rate_lock:
            self.request_log.append(LoggedRequest(arrived, digest, request.url.path, params, status))

    def _page(self, request: Request, params: dict[str, str]) -> dict[str, Any]:
        opts = self.options
        service, event = query_arg(request, "service"), query_arg(request, "event")
        if not service:
            raise _Error(400, -4000001, "Missing mandatory parameter: service")
        if service not in SERVICES:
            raise _Error(400, -4000002, f"Invalid parameter: service={service}")
        if not event:
            raise _Error(400, -4000001, "Missing mandatory parameter: event")
        if event not in EVENTS:
            raise _Error(400, -4000002, f"Invalid parameter: event={event}")
        raw_limit = query_arg(request, "limit")
        try:
            limit = 500 if raw_limit in (None, "") else int(raw_limit)
        except ValueError:
            raise _Error(400, -4000002, "Invalid parameter: limit") from None
        if not 1 <= limit <= 500:
            raise _Error(400, -4000002, "Invalid parameter: limit must be between 1 and 500")
        bounds = {}
        for name in ("start", "end"):
            value = query_arg(request, name)
            if value in (None, ""):
                continue
            if not _TIME.match(value):
                raise _Error(400, -4000003, f"Invalid time format: {name} (yyyy-mm-ddThh:mm:ssZ or yyyy-mm-ddThh:mm:ss.mmmZ)")
            bounds[name] = _parse_time(value)
        now = self.clock()
        span = DEFAULT_SPAN.total_seconds()
        # §3.1: both -> that window; only start -> 5 min after it; only end -> 5 min before; none -> last 5 min.
        start = bounds.get("start", bounds["end"] - span if "end" in bounds else now - span)
        end = bounds.get("end", start + span if "start" in bounds else now)
        if end < start:
            raise _Error(400, -4000004, "Invalid parameter: end must not be earlier than start")
        if end - start > HORIZON.total_seconds():
            raise _Error(400, -4000005, "The time interval must not exceed 72 hours")
        if start < now - HORIZON.total_seconds():
            if opts.reject_old_start:
                raise _Error(400, -4000006, "Only data from the last 72 hours can be retrieved")
            start = now - HORIZON.total_seconds()
        token = query_arg(request, "page_token")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
            except (ValueError, UnicodeDecodeError):
                raise _Error(400, -4000002, "Invalid parameter: page_token") from None
        # Only records that exist by now are served.
        selected = [r for r in self.dataset.select(service, event, start, end, on=opts.filter_on,
                                                   end_inclusive=opts.end_inclusive) if r.generated <= now]
        page = selected[offset:offset + limit]
        base = f"{request.url.scheme}://{request.url.netloc}"
        query = {"service": service, "event": event, "start": _iso_ms(start), "end": _iso_ms(end), "limit": limit}
        current = f"{base}{PATH}?{urlencode(query if not token else {**query, 'page_token': token})}"
        body: dict[str, Any] = {
            "current_link": current,
            "last_log_item_generation_time": _iso_ms(page[-1].generated) if page else "",
            "traceId": str(uuid.uuid4()),
            "security_events": [r.record for r in page],
        }
        if offset + limit < len(selected):
            next_token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
            link = f"{base}{PATH}?{urlencode({**query, 'page_token': next_token})}"
            body["next_link"] = link.split("://", 1)[1] if opts.link_style == "schemeless" else link
        elif opts.last_link != "missing":
            body["next_link"] = opts.last_link
        return body

    # -- control --------------------------------------------------------------------------------

    def _ctl_requests(self, request: Request) -> Response:
        with self._rate_lock:
            rows = [vars(r) for r in self.request_log]
        return JSONResponse({"requests": rows})

    async def _ctl_options(self, request: Request) -> Response:
        payload = await request.json()
        for key, value in payload.items():
            if not hasattr(self.options, key):
                raise ValueError(f"unknown option {key!r}")
            setattr(self.options, key, value)
        return JSONResponse({"options": vars(self.options)})


def max_in_window(times: Sequence[float], period: float) -> int:
    """The most requests in any window of ``period`` seconds (for tests and the benchmark)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --------------------------------------------------------------------------------------------
# As a process (python -m seccollect_dev.simulators) and in the demo
# --------------------------------------------------------------------------------------------

DEFAULT_PORT = 18806


def _token() -> str:
    return os.environ.get("SIM_TRENDMICRO_TOKEN", "sim-trendmicro-cas-token")


def _rate_period() -> float:
    """The simulator's rate window in seconds, which the demo's connection must share: the environment
    (``SIM_TRENDMICRO_RATE_PERIOD``), because the simulator process and the demo's connections are set up
    apart. Default 6 s (a minute sped up ×10), so the demo's hour of windows takes seconds, not minutes."""
    return float(os.environ.get("SIM_TRENDMICRO_RATE_PERIOD", "6"))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trendmicro")
    group.add_argument("--trendmicro-per-hour", type=float, default=6.0, help="records per hour per service/event")


def build_simulator(args: argparse.Namespace) -> CasSimulator:
    """``args.hours`` of data up to now (at most the 72 hours served) and ``args.ahead_hours`` after it;
    the token from ``SIM_TRENDMICRO_TOKEN``."""
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = timedelta(hours=getattr(args, "ahead_hours", 0.0))
    dataset = CasDataset(args.seed, now - timedelta(hours=min(args.hours, 72)), now + ahead,
                         per_hour=getattr(args, "trendmicro_per_hour", 6.0))
    options = CasOptions(rate_period=_rate_period())
    return CasSimulator(dataset, [_token()], options)


def _start(args: argparse.Namespace, host: str, port: int) -> SimulatorServer:
    return SimulatorServer(build_simulator(args), host=host, port=port).start()


def _connections(url: str) -> dict[str, dict[str, Any]]:
    return {
        "trendmicro_cas_demo": {
            "conn_type": "trendmicro_cas",
            "host": url,
            "password": _token(),
            "extra": json.dumps({"requests_per_minute": 20, "rate_period_seconds": _rate_period()}),
        }
    }


SIMULATOR = SimulatorSpec(
    name="trendmicro",
    default_port=DEFAULT_PORT,
    add_arguments=_add_arguments,
    start=_start,
    connections=_connections,
    help="""\
trendmicro control endpoints (besides /_sim/faults, /_sim/reset, /_sim/stats, /_sim/clock):
  GET  /_sim/trendmicro/requests  every request seen: time, token digest, path, parameters, status
  POST /_sim/trendmicro/options   e.g. {"rate_limit": 10, "rate_period": 2, "last_link": "null"}
  Token: SIM_TRENDMICRO_TOKEN; rate window: SIM_TRENDMICRO_RATE_PERIOD seconds (default 6: a sped-up
  minute; 60 for the real one), shared with the demo's connection.
""",
)
