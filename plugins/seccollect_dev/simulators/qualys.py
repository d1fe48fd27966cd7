"""A local simulator of the Qualys VM/VMDR FO API: host list and host detection list.

Faithful to ``shared/vendor-apis/qualys-vm.md`` (its §0 corrections first) and Qualys' docs, not to our
client:

* ``/api/{2,3,4,5}.0/fo/asset/host/`` and ``.../host/vm/detection/``, GET or POST (form), ``action=list``;
  HTTP Basic auth and the ``X-Requested-With`` header; a repeated parameter: the last one takes effect;
  an unknown parameter is 400/1901, a bad value 400/1905.
* Hosts sorted by ID; ``truncation_limit`` counts hosts (default 1000, 0 = no limit, at most 1,000,000);
  ``id_min``/``id_max``; a truncated output ends with ``WARNING`` 1980 whose ``URL`` (CDATA padded with
  whitespace) repeats every parameter, adds ``id_min`` = the next *existing* host id and a parameter the
  caller never sent; a response without hosts has no ``HOST_LIST``; hosts without matching detections
  are left out of the detection output.
* Time filters: ``vm_processed_after/before`` (host level), ``detection_processed_after/before``,
  ``detection_updated_since/before`` (detection level); whether ``*_after`` includes its boundary is
  undocumented, so it is an option (:attr:`QualysOptions.after_inclusive`, default: exclusive).
  ``status`` filters detections; without it the believed default set (no Fixed) applies.
* ``X-RateLimit-*`` and ``X-Concurrency-Limit-*`` headers on every data response (a 409/1960 carries
  only the concurrency ones; 2001 and authentication failures none); the rate limit counts calls per
  API function over a sliding window (409/1965 with ``X-RateLimit-ToWait-Sec`` beyond it); more calls at
  once than the concurrency limit get 409/1960. The simulator counts concurrent calls
  (:attr:`QualysSimulator.max_running`).
* Noise real output has: a DOCTYPE naming an external DTD, comments before the root, keep-alive
  comments in the middle of ``HOST_LIST``, CDATA on indented lines, start tags broken across lines.
* Errors on demand (:meth:`QualysSimulator.inject`): 409/1965, 409/1960, 200/2001, 400/1905, 401/2000
  as ``SIMPLE_RETURN`` bodies (which start with the DOCTYPE, without an XML declaration).

Data sets are generated host by host from a seed (:class:`QualysDataset`), never held in memory, so
the benchmark's 100,000 hosts x 10 detections are served page by page.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import functools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from seccollect_dev.simulators.base import SimulatorApp, SimulatorServer, control_route
from seccollect_dev.simulators.spec import SimulatorSpec

DEFAULT_PORT = 18804
DEFAULT_USER = "qualys_demo_user"
DEFAULT_PASSWORD = "qualys-demo-pass-4c1e"

HOST_PATH = "/fo/asset/host/"
DETECTION_PATH = "/fo/asset/host/vm/detection/"
VERSIONS = ("2.0", "3.0", "4.0", "5.0")
ALL_STATUSES = ("New", "Active", "Fixed", "Re-Opened")
#: What the server is believed to return without ``status`` [I]: no Fixed.
DEFAULT_STATUSES = ("New", "Active", "Re-Opened")

_COMMON_PARAMS = {
    "action", "echo_request", "truncation_limit", "ids", "id_min", "id_max", "ips", "ipv6", "ag_ids", "ag_titles",
    "network_ids", "os_pattern", "show_asset_id", "use_tags", "tag_set_by", "tag_include_selector",
    "tag_exclude_selector", "tag_set_include", "tag_set_exclude", "show_tags", "vm_scan_since", "no_vm_scan_since",
    "vm_processed_after", "vm_processed_before", "vm_scan_date_after", "vm_scan_date_before",
    "vm_auth_scan_date_after", "vm_auth_scan_date_before", "max_days_since_last_vm_scan",
    "cloud_agent_activationkey",
}
KNOWN_PARAMS = {
    HOST_PATH: _COMMON_PARAMS | {"details", "compliance_scan_since", "show_cloud_tags", "host_metadata", "show_trurisk"},
    DETECTION_PATH: _COMMON_PARAMS | {
        "qids", "severities", "include_vuln_type", "filter_superseded_qids", "status", "include_ignored",
        "include_disabled", "show_results", "show_igs", "show_reopened_info", "show_qds", "show_qds_factors",
        "qds_min", "qds_max", "output_format", "active_kernels_only", "detection_updated_since",
        "detection_updated_before", "max_days_since_detection_updated", "detection_processed_after",
        "detection_processed_before", "detection_last_tested_since", "detection_last_tested_before",
        "detection_last_tested_since_days", "detection_last_tested_before_days", "suppress_duplicated_data_from_csv",
    },
}
TIME_PARAMS = {
    "vm_processed_after", "vm_processed_before", "detection_processed_after", "detection_processed_before",
    "detection_updated_since", "detection_updated_before",
}
DTD = {
    HOST_PATH: ("HOST_LIST_OUTPUT", "/api/2.0/fo/asset/host/dtd/list/output.dtd"),
    DETECTION_PATH: ("HOST_LIST_VM_DETECTION_OUTPUT", "/api/2.0/fo/asset/host/vm/detection/dtd/output.dtd"),
}
BANNER = "<!-- This report was generated with an evaluation version of Qualys //-->"
TRAILER = (
    "<!-- CONFIDENTIAL AND PROPRIETARY INFORMATION. Qualys provides the QualysGuard Service \"As Is,\" without "
    "any warranty of any kind. Copyright 2026, Qualys, Inc. //-->"
)
#: Code -> (HTTP status, text) of the errors the simulator can answer.
ERRORS: dict[int, tuple[int, str]] = {
    1901: (400, "Unrecognized parameter(s): {detail}"),
    1903: (400, "Missing required parameter(s): {detail}"),
    1905: (400, "Parameter {detail} has invalid value."),
    1960: (409, "This API cannot be run again until {detail} currently running API instance has finished."),
    1965: (409, "This API cannot be run again for another {detail} seconds."),
    2000: (401, "Bad Login/Password"),
    2001: (200, "This account has expired."),
    2003: (409, "Registration must be completed before API requests will be served for this account"),
}


@functools.lru_cache(maxsize=1 << 16)  # a data set reuses few distinct seconds; strftime is most of a detection's cost
def fmt(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def parse_time(value: str) -> float:
    """``YYYY-MM-DD[THH:MM:SSZ]`` (UTC) as epoch seconds; ``ValueError`` otherwise."""
    text = value.strip()
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(value)


def simple_return(code: int, text: str, items: Mapping[str, Any] | None = None, *, now: float | None = None,
                  host: str = "qualysapi.qualys.com") -> bytes:
    """A ``SIMPLE_RETURN`` body as Qualys writes it (DOCTYPE first, no XML declaration)."""
    item_list = ""
    if items:
        item_list = "\n    <ITEM_LIST>" + "".join(
            f"<ITEM><KEY>{k}</KEY><VALUE>{v}</VALUE></ITEM>" for k, v in items.items()) + "</ITEM_LIST>"
    return (
        f'<!DOCTYPE SIMPLE_RETURN SYSTEM "https://{host}/api/2.0/simple_return.dtd">\n'
        f"<SIMPLE_RETURN>\n  <RESPONSE>\n    <DATETIME>{fmt(now or time.time())}</DATETIME>\n"
        f"    <CODE>{code}</CODE>\n    <TEXT>{text}</TEXT>{item_list}\n  </RESPONSE>\n</SIMPLE_RETURN>\n"
    ).encode()


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

PORTS = (("443", "tcp", "1"), ("22", "tcp", "0"), ("3389", "tcp", "1"), ("", "", ""), ("161", "udp", "0"),
         ("80", "tcp", "0"), ("", "", ""), ("8443", "tcp", "1"))
OSES = ("Windows Server 2019 Standard 1809", "Ubuntu 22.04.4 LTS", "Red Hat Enterprise Linux 8.9", "macOS 14.5")
TRACKING = ("IP", "Cloud Agent", "AGENT", "DNS")


@dataclass
class Detection:
    """One detection of one host, as generated (plus any change made since)."""

    index: int
    qid: int
    type: str
    severity: int
    port: str
    protocol: str
    ssl: str
    status: str
    first_found: float
    last_found: float
    last_update: float
    last_processed: float
    unique_id: int | None
    results: str
    last_fixed: float | None = None

    def identity(self, host_id: int) -> str:
        """The identity the connector gives it (for ground truth)."""
        if self.unique_id is not None:
            return f"uvid:{self.unique_id}"
        return f"{host_id}:{self.qid}:{self.port}:{self.protocol}:{self.ssl}"


@dataclass
class Host:
    index: int
    id: int
    asset_id: int
    ip: str
    dns: str
    netbios: str
    os: str
    tracking: str
    processed: float
    scanned: float
    detections: list[Detection]


@dataclass
class QualysDataset:
    """Hosts and their detections, generated from ``seed`` one host at a time (nothing is held).

    Host ``i`` has id ``first_id + 7 i + i % 3`` (sorted, with gaps, so the next page's ``id_min`` is the
    next *existing* id) and was processed at a time spread over ``[start, end)`` in whole seconds (a
    permutation, so a window's hosts are scattered over the id range). Each of its detections was
    processed with it, except every fifth, processed two days earlier (a detection-level filter leaves
    it out while the host is in); its last update is the processing time or one or two days earlier.
    Even hosts' detections carry ``UNIQUE_VULN_ID``. :meth:`change` makes a later state of a detection.
    """

    seed: int
    start: datetime
    end: datetime
    hosts: int = 40
    detections_per_host: int = 5
    first_id: int = 1_000_100
    results_bytes: int = 40
    #: Every this many detections one was processed two days before its host's scan (0: none).
    stale_every: int = 5
    changes: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._start = self.start.timestamp()
        self._span = max(1, int(self.end.timestamp() - self._start))
        self._lock = threading.Lock()

    # --- ids ---------------------------------------------------------------------------------

    def host_id(self, index: int) -> int:
        return self.first_id + 7 * index + index % 3

    def index_at_or_after(self, host_id: int) -> int:
        """The index of the first host whose id is >= ``host_id``."""
        index = max(0, (host_id - self.first_id) // 7 - 1)
        while index < self.hosts and self.host_id(index) < host_id:
            index += 1
        return index

    # --- generation ------------------------------------------------------------------------

    def _mix(self, *values: int) -> int:
        h = (self.seed * 0x9E3779B1) & 0xFFFFFFFF
        for v in values:
            h = ((h ^ (v & 0xFFFFFFFF)) * 0x85EBCA6B + 0xC2B2AE35) & 0xFFFFFFFF
            h ^= h >> 13
        return h

    def host(self, index: int) -> Host:
        processed = self._start + (index * 7919 + self.seed) % self.hosts * self._span // self.hosts
        host_id = self.host_id(index)
        detections = [self._detection(index, j, processed) for j in range(self.detections_per_host)]
        for detection in detections:
            processed = max(processed, detection.last_processed)
        mix = self._mix(index)
        return Host(
            index=index, id=host_id, asset_id=88_000_000 + index, ip=f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}",
            dns=f"host-{index:06d}.corp.example", netbios=f"HOST{index:06d}", os=OSES[mix % len(OSES)],
            tracking=TRACKING[(mix >> 3) % len(TRACKING)], processed=processed, scanned=processed - 240,
            detections=detections,
        )

    def _detection(self, index: int, j: int, processed: float) -> Detection:
        mix = self._mix(index, j)
        port, protocol, ssl = PORTS[mix % len(PORTS)]
        stale = self.stale_every and j % self.stale_every == self.stale_every - 1
        det_processed = processed - 2 * 86400 if stale else processed
        updated = det_processed - (mix >> 5) % 3 * 86400
        status = ALL_STATUSES[(mix >> 8) % 4]
        detection = Detection(
            index=j, qid=10_000 + (index * 31 + j * 97) % 90_000, type=("Confirmed", "Potential")[(mix >> 11) % 2],
            severity=1 + (mix >> 12) % 5, port=port, protocol=protocol, ssl=ssl, status=status,
            first_found=updated - 30 * 86400, last_found=det_processed - 300, last_update=updated,
            last_processed=det_processed, unique_id=7_300_000_000 + index * 1000 + j if index % 2 == 0 else None,
            results=("KB5039217 is not installed; " * 4)[: self.results_bytes],
            last_fixed=updated if status == "Fixed" else None,
        )
        change = self.changes.get((index, j))
        if change is not None:
            detection.status, at = change
            detection.last_update = detection.last_processed = detection.last_found = at
            detection.last_fixed = at if detection.status == "Fixed" else None
        return detection

    def iter_hosts(self, first_index: int = 0) -> Iterator[Host]:
        for index in range(first_index, self.hosts):
            yield self.host(index)

    def change(self, host_index: int, detection_index: int, status: str, at: datetime) -> Detection:
        """Give a detection a new state (``status``) updated and processed at ``at``; returns it."""
        if status not in ALL_STATUSES:
            raise ValueError(f"status must be one of {ALL_STATUSES}")
        with self._lock:
            self.changes[(host_index, detection_index)] = (status, at.timestamp())
        return self.host(host_index).detections[detection_index]

    # --- ground truth (the connector's window [start, end) in whole seconds) ------------------

    def expected_detections(self, start: datetime, end: datetime, statuses: tuple[str, ...] = ALL_STATUSES
                            ) -> dict[str, str]:
        """identity -> version (LAST_UPDATE_DATETIME) of the detections processed in ``[start, end)``."""
        lo, hi = start.timestamp(), end.timestamp()
        return {
            d.identity(h.id): fmt(d.last_update)
            for h in self.iter_hosts() for d in h.detections
            if lo <= d.last_processed < hi and d.status in statuses
        }

    def expected_hosts(self, start: datetime, end: datetime) -> set[str]:
        lo, hi = start.timestamp(), end.timestamp()
        return {str(h.id) for h in self.iter_hosts() if lo <= h.processed < hi}


# --------------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------------


def _host_fields(host: Host, *, detection_output: bool, show_asset_id: bool, show_tags: bool) -> list[str]:
    out = [f"        <ID>{host.id}</ID>"]
    if show_asset_id:
        out.append(f"        <ASSET_ID>{host.asset_id}</ASSET_ID>")
    out += [f"        <IP>{host.ip}</IP>", f"        <TRACKING_METHOD>{host.tracking}</TRACKING_METHOD>"]
    if detection_output:
        out += [
            f"        <OS><![CDATA[{host.os}]]></OS>",
            f"        <DNS><![CDATA[{host.dns}]]></DNS>",
            f"        <DNS_DATA><HOSTNAME><![CDATA[{host.dns.split('.')[0]}]]></HOSTNAME><DOMAIN><![CDATA[corp.example]]>"
            f"</DOMAIN><FQDN><![CDATA[{host.dns}]]></FQDN></DNS_DATA>",
            f"        <NETBIOS><![CDATA[{host.netbios}]]></NETBIOS>",
            f"        <LAST_SCAN_DATETIME>{fmt(host.processed)}</LAST_SCAN_DATETIME>",
            f"        <LAST_VM_SCANNED_DATE>{fmt(host.scanned)}</LAST_VM_SCANNED_DATE>",
            "        <LAST_VM_SCANNED_DURATION>611</LAST_VM_SCANNED_DURATION>",
        ]
    else:
        out += [
            f"        <DNS>\n          <![CDATA[{host.dns}]]>\n        </DNS>",
            f"        <DNS_DATA><HOSTNAME><![CDATA[{host.dns.split('.')[0]}]]></HOSTNAME><DOMAIN><![CDATA[corp.example]]>"
            f"</DOMAIN><FQDN><![CDATA[{host.dns}]]></FQDN></DNS_DATA>",
            f"        <NETBIOS><![CDATA[{host.netbios}]]></NETBIOS>",
            f"        <OS><![CDATA[{host.os}]]></OS>",
            "        <ASSET_GROUP_LIST/>",
            f"        <LAST_VULN_SCAN_DATETIME>{fmt(host.processed)}</LAST_VULN_SCAN_DATETIME>",
            f"        <LAST_VM_SCANNED_DATE>{fmt(host.scanned)}</LAST_VM_SCANNED_DATE>",
            "        <LAST_VM_SCANNED_DURATION>611</LAST_VM_SCANNED_DURATION>",
        ]
    if show_tags:
        out.append(f"        <TAGS><TAG><TAG_ID><![CDATA[{7700 + host.index % 5}]]></TAG_ID><NAME><![CDATA[Servers "
                   f"{host.index % 5}]]></NAME></TAG></TAGS>")
    return out


def _detection_xml(d: Detection, show_results: bool) -> str:
    parts = ["          <DETECTION>"]
    if d.unique_id is not None:
        parts.append(f"            <UNIQUE_VULN_ID>{d.unique_id}</UNIQUE_VULN_ID>")
    parts.append(f"            <QID>{d.qid}</QID>\n            <TYPE>{d.type}</TYPE>\n            <SEVERITY>{d.severity}</SEVERITY>")
    if d.port:
        parts.append(f"            <PORT>{d.port}</PORT>\n            <PROTOCOL>{d.protocol}</PROTOCOL>")
    if d.ssl:
        parts.append(f"            <SSL>{d.ssl}</SSL>")
    if show_results:
        parts.append(f"            <RESULTS\n            ><![CDATA[{d.results}]]></RESULTS>")
    parts.append(
        f"            <STATUS>{d.status}</STATUS>\n"
        f"            <FIRST_FOUND_DATETIME>{fmt(d.first_found)}</FIRST_FOUND_DATETIME>\n"
        f"            <LAST_FOUND_DATETIME\n            >{fmt(d.last_found)}</LAST_FOUND_DATETIME>\n"
        f'            <QDS severity="{("LOW", "MEDIUM", "HIGH", "CRITICAL", "CRITICAL")[d.severity - 1]}">{d.severity * 19}</QDS>\n'
        f"            <TIMES_FOUND>{3 + d.qid % 40}</TIMES_FOUND>\n"
        f"            <LAST_TEST_DATETIME>{fmt(d.last_found)}</LAST_TEST_DATETIME>\n"
        f"            <LAST_UPDATE_DATETIME>{fmt(d.last_update)}</LAST_UPDATE_DATETIME>"
    )
    if d.last_fixed is not None:
        parts.append(f"            <LAST_FIXED_DATETIME>{fmt(d.last_fixed)}</LAST_FIXED_DATETIME>")
    parts.append(
        "            <IS_IGNORED>0</IS_IGNORED>\n            <IS_DISABLED>0</IS_DISABLED>\n"
        f"            <LAST_PROCESSED_DATETIME>{fmt(d.last_processed)}</LAST_PROCESSED_DATETIME>\n          </DETECTION>"
    )
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


@dataclass
class QualysOptions:
    """What the reference leaves open [I], and the subscription's limits."""

    #: Whether ``*_after`` / ``*_since`` include their boundary (undocumented).
    after_inclusive: bool = False
    #: Calls per API function per window, and the window (Standard tier: 300 per hour).
    rate_limit: int = 300
    rate_window: int = 3600
    #: Calls of the account allowed at once (Standard tier: 2).
    concurrency_limit: int = 2
    #: Seconds each data response takes before its first byte (makes concurrency observable).
    response_delay: float = 0.0
    #: A keep-alive comment every this many hosts in ``HOST_LIST``.
    keep_alive_every: int = 25
    #: A parameter the WARNING URL adds that the caller never sent.
    extra_url_param: tuple[str, str] = ("cloud_agent_activationkey", "0")
    #: Reject calls without ``X-Requested-With`` (real behaviour unknown [I]: 400 / 1903 here).
    require_requested_with: bool = True
    #: Hosts per generated chunk of the streamed body.
    hosts_per_chunk: int = 20


class QualysSimulator(SimulatorApp):
    """Serves a :class:`QualysDataset` as the Qualys FO API (see the module docstring).

    Detections processed later than ``clock()`` are not served yet. Extra control endpoints:
    ``POST /_sim/qualys/errors`` ``{"code": 1965, "count": 1, "after": 0, "path": ..., "wait": 2}``,
    ``POST /_sim/qualys/change`` ``{"host": i, "detection": j, "status": "Fixed", "at": "…Z"}``,
    ``GET /_sim/qualys/limits``.
    """

    name = "qualys"

    def __init__(
        self,
        dataset: QualysDataset,
        *,
        users: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        options: QualysOptions | None = None,
    ) -> None:
        self.dataset = dataset
        self.users = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        self.options = options or QualysOptions()
        self.expired = False
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}
        self.running = 0
        self.max_running = 0
        self.concurrency_rejections = 0
        self.rate_rejections = 0
        routes = [
            Route("/api/{version}" + path, self._endpoint(path), methods=["GET", "POST"])
            for path in (HOST_PATH, DETECTION_PATH)
        ]
        super().__init__(
            routes,
            control_routes=[
                control_route("/_sim/qualys/errors", self._ctl_errors, ["POST"]),
                control_route("/_sim/qualys/change", self._ctl_change, ["POST"]),
                control_route("/_sim/qualys/limits", self._ctl_limits, ["GET"]),
            ],
            clock=clock,
        )

    # -- vendor-shaped faults -----------------------------------------------------------------

    def error_body(self, status: int, request: Request) -> Response:
        code = {400: 1905, 401: 2000, 409: 1965}.get(status, 999)
        text = ERRORS.get(code, (status, "Internal error. Please contact customer support."))[1].format(detail="?")
        return Response(simple_return(code, text, now=self.clock()), status_code=status, media_type="text/xml")

    def throttle_response(self, request: Request) -> Response:
        return self.error_response(1965, wait=1)

    def malformed_response(self, request: Request, body: str | None = None) -> Response:
        text = body if body is not None else "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>1</I"
        return Response(text, media_type="text/xml")

    def error_response(self, code: int, *, wait: int = 1, detail: str = "", running: int | None = None) -> Response:
        """The ``SIMPLE_RETURN`` answer of ``code`` with the headers Qualys sends with it."""
        status, text = ERRORS[code]
        items: dict[str, Any] = {}
        headers: dict[str, str] = {}
        limits = {"X-Concurrency-Limit-Limit": str(self.options.concurrency_limit),
                  "X-Concurrency-Limit-Running": str(self.running if running is None else running)}
        if code == 1965:
            text = text.format(detail=wait)
            items = {"SECONDS_TO_WAIT": wait}
            headers = {"X-RateLimit-Limit": str(self.options.rate_limit), "X-RateLimit-Window-Sec": str(self.options.rate_window),
                       "X-RateLimit-Remaining": "0", "X-RateLimit-ToWait-Sec": str(wait), **limits}
        elif code == 1960:
            text = text.format(detail=1)
            items = {"CALLS_TO_FINISH": 1}
            headers = limits  # no X-RateLimit-Remaining / ToWait-Sec on a concurrency refusal
        else:
            text = text.format(detail=detail or "ids")
        return Response(simple_return(code, text, items, now=self.clock()), status_code=status,
                        media_type="text/xml", headers=headers)

    def inject(self, code: int, *, count: int = 1, after: int = 0, path: str | None = None, wait: int = 1) -> None:
        """Answer the next matching data calls with Qualys error ``code`` (1965, 1960, 2001, 1905, 2000 …)."""
        response = self.error_response(code, wait=wait)
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-")}
        self.faults.add("status", status=response.status_code, body=bytes(response.body), headers=headers,
                        path=path, count=count, after=after)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._calls.clear()
            self.max_running = self.concurrency_rejections = self.rate_rejections = 0

    # -- the API --------------------------------------------------------------------------------

    def _endpoint(self, path: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, path)

        return endpoint

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("latin-1").partition(":")
        except (binascii.Error, ValueError):
            return False
        return self.users.get(user) == password

    async def _serve(self, request: Request, path: str) -> Response:
        if request.path_params["version"] not in VERSIONS:
            return self.error_body(404, request)
        if not self._authorized(request):
            return Response(simple_return(2000, "Bad Login/Password", now=self.clock()), status_code=401,
                            media_type="text/xml")
        if self.options.require_requested_with and not request.headers.get("x-requested-with"):
            return self.error_response(1903, detail="X-Requested-With header")
        if self.expired:
            return self.error_response(2001)
        params = await _params(request)
        unknown = sorted(set(params) - KNOWN_PARAMS[path])
        if unknown:
            return self.error_response(1901, detail=", ".join(unknown))
        if params.get("action") != "list":
            return self.error_response(1903, detail="action")
        try:
            query = _Query.of(params, path, self.options.after_inclusive)
        except ValueError as exc:
            return self.error_response(1905, detail=str(exc))
        with self._lock:
            now = time.monotonic()
            calls = self._calls.setdefault(path, deque())
            while calls and now - calls[0] >= self.options.rate_window:
                calls.popleft()
            if self.running >= self.options.concurrency_limit:
                self.concurrency_rejections += 1
                return self.error_response(1960)
            if len(calls) >= self.options.rate_limit:
                self.rate_rejections += 1
                wait = max(1, int(self.options.rate_window - (now - calls[0]) + 0.999))
                return self.error_response(1965, wait=wait)
            calls.append(now)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            running, remaining = self.running, self.options.rate_limit - len(calls)
        headers = {
            "X-RateLimit-Limit": str(self.options.rate_limit), "X-RateLimit-Window-Sec": str(self.options.rate_window),
            "X-RateLimit-Remaining": str(remaining), "X-RateLimit-ToWait-Sec": "0",
            "X-Concurrency-Limit-Limit": str(self.options.concurrency_limit),
            "X-Concurrency-Limit-Running": str(running),
            "X-Powered-By": "Qualys:SIMPOD1:00000000-0000-0000-0000-000000000000:sim-user",
        }
        released = [False]

        def release() -> None:
            with self._lock:
                if not released[0]:
                    released[0] = True
                    self.running -= 1

        try:
            if self.options.response_delay:
                await asyncio.sleep(self.options.response_delay)
            base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
            body = self._body(query, path, params, base, release)
        except BaseException:
            release()
            raise
        return StreamingResponse(body, media_type="text/xml;charset=UTF-8", headers=headers,
                                 background=_Release(release))

    def _body(self, query: _Query, path: str, params: dict[str, str], base: str,
              release: Callable[[], None]) -> Iterator[bytes]:
        opts, dataset, now = self.options, self.dataset, self.clock()
        detection_output = path == DETECTION_PATH
        root, dtd = DTD[path]
        host_name = base.split("/")[2]

        def generate() -> Iterator[bytes]:
            try:
                yield (f'<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE {root} SYSTEM "https://{host_name}{dtd}">\n'
                       f"{BANNER}\n<{root}>\n  <RESPONSE>\n    <DATETIME>{fmt(now)}</DATETIME>\n").encode()
                served, chunk, next_id, opened = 0, [], None, False
                start = dataset.index_at_or_after(query.id_min) if query.id_min is not None else 0
                for host in dataset.iter_hosts(start):
                    if query.id_max is not None and host.id > query.id_max:
                        break
                    detections = query.detections(host, now) if detection_output else None
                    if not query.host_matches(host, now) or (detection_output and not detections):
                        continue
                    if query.limit and served >= query.limit:
                        next_id = host.id
                        break
                    if not opened:
                        chunk.append("    <HOST_LIST>")
                        opened = True
                    chunk.append(self._host_xml(host, detections, query))
                    served += 1
                    if opts.keep_alive_every and served % opts.keep_alive_every == 0:
                        chunk.append("      <!-- keep-alive -->")
                    if len(chunk) >= opts.hosts_per_chunk:
                        yield ("\n".join(chunk) + "\n").encode()
                        chunk = []
                if opened:
                    chunk.append("    </HOST_LIST>")
                if next_id is not None:
                    chunk.append(self._warning(base, params, next_id, query.limit))
                chunk.append(f"  </RESPONSE>\n</{root}>\n{BANNER}\n{TRAILER}\n")
                yield "\n".join(chunk).encode()
            finally:
                release()

        return generate()

    def _host_xml(self, host: Host, detections: list[Detection] | None, query: _Query) -> str:
        lines = ["      <HOST>", *_host_fields(host, detection_output=detections is not None,
                                               show_asset_id=query.show_asset_id, show_tags=query.show_tags)]
        if detections is not None:
            lines.append("        <DETECTION_LIST>")
            lines += [_detection_xml(d, query.show_results) for d in detections]
            lines.append("        </DETECTION_LIST>")
        lines.append("      </HOST>")
        return "\n".join(lines)

    def _warning(self, base: str, params: dict[str, str], next_id: int, limit: int) -> str:
        # Every parameter as received (the last of a repeated one), id_min moved on, one more added.
        carried = {k: v for k, v in params.items() if k != "id_min"}
        extra_key, extra_value = self.options.extra_url_param
        carried.setdefault(extra_key, extra_value)
        url = f"{base}?{urlencode({**carried, 'id_min': next_id}, safe=',:')}"
        return (f"    <WARNING>\n      <CODE>1980</CODE>\n      <TEXT>{limit} record limit exceeded. Use URL to get next "
                f"batch of results.</TEXT>\n      <URL><![CDATA[\n        {url}\n      ]]></URL>\n    </WARNING>")

    # -- control ----------------------------------------------------------------------------------

    async def _ctl_errors(self, request: Request) -> Response:
        body = await request.json()
        self.inject(int(body["code"]), count=int(body.get("count", 1)), after=int(body.get("after", 0)),
                    path=body.get("path"), wait=int(body.get("wait", 1)))
        return JSONResponse({"queued": body})

    async def _ctl_change(self, request: Request) -> Response:
        body = await request.json()
        at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00"))
        detection = self.dataset.change(int(body["host"]), int(body["detection"]), str(body["status"]), at)
        return JSONResponse({"qid": detection.qid, "status": detection.status})

    def _ctl_limits(self, request: Request) -> Response:
        return JSONResponse({"running": self.running, "max_running": self.max_running,
                             "concurrency_rejections": self.concurrency_rejections,
                             "rate_rejections": self.rate_rejections})


class _Release:
    """Background task of a streamed response: frees its concurrency slot once the body is sent (or the
    client went away), whichever happens first (the generator's ``finally`` covers the other case)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release

    async def __call__(self) -> None:
        self._release()


async def _params(request: Request) -> dict[str, str]:
    """Query string and form body; a repeated parameter: the last one takes effect (Qualys' rule)."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        body = await request.body()
        if body:
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


@dataclass
class _Query:
    limit: int
    id_min: int | None
    id_max: int | None
    times: dict[str, float]
    statuses: tuple[str, ...]
    show_asset_id: bool
    show_tags: bool
    show_results: bool
    after_inclusive: bool

    @classmethod
    def of(cls, params: dict[str, str], path: str, after_inclusive: bool) -> _Query:
        def number(name: str, default: int | None) -> int | None:
            value = params.get(name)
            if value is None or value == "":
                return default
            if not value.isdigit():
                raise ValueError(name)
            return int(value)

        limit = number("truncation_limit", 1000)
        assert limit is not None
        if limit > 1_000_000:
            raise ValueError("truncation_limit")
        times = {}
        for name in TIME_PARAMS & set(params):
            try:
                times[name] = parse_time(params[name])
            except ValueError:
                raise ValueError(name) from None
        statuses = DEFAULT_STATUSES
        if path == DETECTION_PATH and params.get("status"):
            statuses = tuple(s.strip() for s in params["status"].split(","))
            if not set(statuses) <= set(ALL_STATUSES):
                raise ValueError("status")
        return cls(limit, number("id_min", None), number("id_max", None), times, statuses,
                   params.get("show_asset_id") == "1", params.get("show_tags") == "1",
                   params.get("show_results", "1") != "0", after_inclusive)

    def _after(self, value: float, name: str) -> bool:
        bound = self.times.get(name)
        return bound is None or (value >= bound if self.after_inclusive else value > bound)

    def _before(self, value: float, name: str) -> bool:
        bound = self.times.get(name)
        return bound is None or value < bound

    def host_matches(self, host: Host, now: float) -> bool:
        return host.processed <= now and self._after(host.processed, "vm_processed_after") and self._before(
            host.processed, "vm_processed_before")

    def detections(self, host: Host, now: float) -> list[Detection]:
        return [
            d for d in host.detections
            if d.last_processed <= now and d.status in self.statuses
            and self._after(d.last_processed, "detection_processed_after")
            and self._before(d.last_processed, "detection_processed_before")
            and (("detection_updated_since" not in self.times) or d.last_update >= self.times["detection_updated_since"])
            and self._before(d.last_update, "detection_updated_before")
        ]


# --------------------------------------------------------------------------------------------
# CLI and demo
# --------------------------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("qualys")
    group.add_argument("--qualys-hosts", type=int, default=200, help="hosts in the data set")
    group.add_argument("--qualys-detections", type=int, default=5, help="detections per host")


def _credentials() -> tuple[str, str]:
    return os.environ.get("SIM_QUALYS_USER", DEFAULT_USER), os.environ.get("SIM_QUALYS_PASSWORD", DEFAULT_PASSWORD)


def build_simulator(args: argparse.Namespace) -> QualysSimulator:
    """The simulator the CLI serves: ``args.hours`` of processing up to now (and ``args.ahead_hours`` after)."""
    now = datetime.now(UTC).replace(microsecond=0)
    # Data after now (``ahead_hours``) is served as the real clock reaches each record's processing time.
    ahead = timedelta(hours=getattr(args, "ahead_hours", 0.0))
    dataset = QualysDataset(seed=args.seed, start=now - timedelta(hours=args.hours), end=now + ahead,
                            hosts=getattr(args, "qualys_hosts", 200), detections_per_host=getattr(args, "qualys_detections", 5))
    user, password = _credentials()
    return QualysSimulator(dataset, users={user: password})


def _start(args: argparse.Namespace, host: str, port: int) -> SimulatorServer:
    return SimulatorServer(build_simulator(args), host=host, port=port).start()


def _connections(url: str) -> dict[str, dict[str, Any]]:
    user, password = _credentials()
    return {
        "qualys_demo": {
            "conn_type": "qualys",
            "host": url.rstrip("/") + "/",
            "login": user,
            "password": password,
            "extra": json.dumps({"api_version": "5.0", "concurrency_limit": 2, "concurrency_wait_seconds": 2}),
        }
    }


SIMULATOR = SimulatorSpec(
    name="qualys",
    default_port=DEFAULT_PORT,
    add_arguments=_add_arguments,
    start=_start,
    connections=_connections,
    help="""\
qualys control endpoints (besides /_sim/faults, /_sim/reset, /_sim/stats, /_sim/clock):
  POST /_sim/qualys/errors  {"code": 1965|1960|2001|1905|2000, "count": 1, "after": 0, "path": "/api/5.0/...", "wait": 2}
  POST /_sim/qualys/change  {"host": <index>, "detection": <index>, "status": "Fixed", "at": "2026-03-01T00:30:00Z"}
  GET  /_sim/qualys/limits  concurrent calls now and at most, 409 refusals
  Credentials: SIM_QUALYS_USER, SIM_QUALYS_PASSWORD in the environment.
""",
)
