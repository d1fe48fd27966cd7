"""Netskope REST API v1 + v2 simulator (faithful to shared/vendor-apis/netskope.md).

Two parts:

* :class:`NetskopeDataset` - deterministic generated alerts, application/page events, IPsec
  POPs and tunnels, with the awkward properties real tenants have (late-arriving records,
  duplicates of the same ``_id``, mapped alert ids that repeat across users and windows, ids
  that are missing or ``0``), plus *ground-truth* helpers so a test can compare what a
  collector loaded with what it should have loaded.
* :class:`NetskopeSimulator` - serves that dataset over the documented endpoints with the
  documented auth, paging, windows, errors and rate limits.

Behaviour that the reference marks [INFERRED] / [UNCONFIRMED] is a field of
:class:`NetskopeOptions`, so a test can flip it and prove the client copes either way.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from random import Random
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seccollect_dev.simulators.base import (
    SimulatorApp,
    SimulatorServer,
    control_route,
    query_arg,
    request_params,
)
from seccollect_dev.simulators.spec import SimulatorSpec

__all__ = [
    "ALL_V2_SCOPES",
    "ALERT_TYPES",
    "MAPPED_ALERT_TYPES",
    "NetskopeDataset",
    "NetskopeOptions",
    "NetskopeSimulator",
    "QUERY_NOT_SIMULATED",
    "SIMULATOR",
    "V1_ALERTS_PATH",
    "V1_EVENTS_PATH",
    "V2_DATA_PATHS",
    "V2_POPS_PATH",
    "V2_TUNNELS_PATH",
]

V1_ALERTS_PATH = "/api/v1/alerts"
V1_EVENTS_PATH = "/api/v1/events"
V2_DATA_PREFIX = "/api/v2/events/data/"
V2_DATA_PATHS = {k: V2_DATA_PREFIX + k for k in ("alert", "application", "page")}
V2_POPS_PATH = "/api/v2/steering/ipsec/pops"
V2_TUNNELS_PATH = "/api/v2/steering/ipsec/tunnels"
ALL_V2_SCOPES: tuple[str, ...] = (*V2_DATA_PATHS.values(), V2_POPS_PATH, V2_TUNNELS_PATH)

# Values of the v1 alerts `type` parameter (doc §2.2); they name `alert_type` values.
ALERT_TYPES = (
    "anomaly",
    "Compromised Credential",
    "policy",
    "Legal Hold",
    "malsite",
    "Malware",
    "DLP",
    "Security Assessment",
    "watchlist",
    "quarantine",
    "Remediation",
    "uba",
)
V1_EVENT_TYPES = ("page", "application", "audit", "infrastructure", "network")
V2_EVENT_KINDS = ("alert", "application", "page", "audit", "infrastructure", "network")
# Record `type` values of the three alert kinds the warehouse maps, and their id field.
MAPPED_ALERT_TYPES = {"breach": "breach_id", "connection": "connection_id", "malsite": "malsite_id"}
TIMEPERIODS = (3600, 86400, 604800, 2592000, 5184000, 7776000)


def _norm_type(value: str) -> str:
    """`Compromised Credential`, `compromisedcredential` and `compromised_credential` are one type."""
    return re.sub(r"[\s_-]+", "", value).lower()


# --------------------------------------------------------------------------------------------
# Options for behaviour the reference does not confirm
# --------------------------------------------------------------------------------------------


@dataclass
class NetskopeOptions:
    """Switches for [INFERRED]/[UNCONFIRMED] behaviour (defaults = the simulator's best reading)."""

    #: HTTP status of a v1 auth failure: the doc shows both 200 and 403 with the error body.
    v1_auth_error_status: int = 200
    #: v1 page size when `limit` is absent (not documented).
    v1_default_limit: int = 5000
    #: Largest v1 `limit`: the doc says "a positive integer less than 10000" (§2.2), so a tenant
    #: enforcing it answers `limit=10000` with the v1 error body; 9999 is the largest page.
    v1_max_limit: int = 9999
    #: (requests, seconds) sliding window for v1 (doc: 24 per 5 s); None disables.
    v1_rate_limit: tuple[int, float] | None = (24, 5.0)
    #: Reject a v1 call without any time selector (the doc only forbids using several).
    v1_require_time_selector: bool = True
    #: `timeperiod` values accepted by v1; None accepts any positive integer.
    v1_allowed_timeperiods: tuple[int, ...] | None = TIMEPERIODS
    #: Require `type` on /api/v1/events (otherwise page + application events are served).
    v1_events_require_type: bool = False
    #: v2 page size when `limit` is absent (not documented).
    v2_default_limit: int = 100
    #: Largest v2 `limit` accepted (collectors use <= 10000).
    v2_max_limit: int = 10000
    #: Largest v2 `offset` accepted; XSOAR's MAX_SKIP=50000 is [UNCONFIRMED]; None = no cap.
    v2_max_offset: int | None = None
    #: Reject a v2 data call without starttime/endtime or insertionstarttime/insertionendtime.
    v2_require_time_selector: bool = True
    #: v2 data ordering: "asc" (oldest event first) or "desc"; ties broken by `_id`.
    v2_order: str = "asc"
    #: Accept `Authorization: Bearer <token>` alone (doc: [UNCONFIRMED]).
    v2_accept_bearer: bool = False
    #: Requests per second per v2 endpoint path when not set in `v2_rate_limits`.
    v2_default_rate_limit: int = 1000
    #: Per-path requests-per-second overrides, e.g. {"/api/v2/events/data/alert": 4}.
    v2_rate_limits: dict[str, int] = field(default_factory=dict)
    #: Windows are `> start and <= end` (doc, v1); True makes the start inclusive.
    window_start_inclusive: bool = False
    #: Record field matched by the alert `type` filter: the doc's values are `alert_type`s.
    alert_type_filter_field: str = "alert_type"
    #: Reject alert `type` values outside ALERT_TYPES (else: unknown value -> no records).
    strict_alert_types: bool = True
    #: Honour `query.site` / `query.pop` / `query.status` on tunnels ([UNCONFIRMED]).
    tunnel_query_filters: bool = True


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------

_DEFAULT_USERS = (
    "ana@example.org",
    "bo@example.org",
    "cy@example.org",
    "dee@example.org",
    "eli@example.org",
    "fay@example.org",
)
# (kind, weight): the mix of generated alerts.
_ALERT_MIX = (
    ("policy", 18),
    ("dlp", 12),
    ("watchlist", 8),
    ("malware", 8),
    ("anomaly", 4),
    ("breach", 15),
    ("connection", 20),
    ("malsite", 15),
)
_APPS = (
    ("Google Drive", "Cloud Storage", "Google"),
    ("Box", "Cloud Storage", ""),
    ("Microsoft Teams", "Collaboration", "Office365"),
    ("Slack", "Collaboration", ""),
    ("Dropbox", "Cloud Storage", ""),
    ("Salesforce", "CRM", ""),
    ("Microsoft OneDrive for Business", "Cloud Storage", "Office365"),
)
_SITES = (
    ("config.teams.microsoft.com", "Microsoft Teams", "Collaboration"),
    ("drive.google.com", "Google Drive", "Cloud Storage"),
    ("news.example.com", "example", "News & Media"),
    ("test.update.microsoft.com", "microsoft", "Business"),
    ("www.wikipedia.org", "wikipedia", "Reference"),
    ("files.example.net", "example", "Cloud Storage"),
)
_SRC_GEO = (
    ("US", "Pennsylvania", "Willow Grove", 40.1578, -75.1236, "America/New_York"),
    ("IL", "Tel Aviv", "Tel Aviv", 32.0803, 34.7805, "Asia/Jerusalem"),
    ("DE", "Hesse", "Frankfurt", 50.1109, 8.6821, "Europe/Berlin"),
    ("US", "California", "San Jose", 37.3382, -121.8863, "America/Los_Angeles"),
)
_DST_GEO = (
    ("US", "Washington", "Redmond", 47.6829, -122.1209, "America/Los_Angeles"),
    ("US", "California", "Mountain View", 37.4059, -122.0785, "America/Los_Angeles"),
    ("IE", "Leinster", "Dublin", 53.3498, -6.2603, "Europe/Dublin"),
)
_POPS_ALL = ("US-SJC1", "US-NYC2", "IL-TLV1", "DE-FRA1", "GB-LON2")
_ACTIVITIES = ("Browse", "Upload", "Download", "Login Successful", "Edit", "Share", "Create")
_DLP_PROFILES = (
    ("Best Practice PII DLP Profile", "FullName-Near-SSN-Unique"),
    ("PCI", "CC-Number"),
    ("HIPAA", "Medical-Record-Number"),
)
_MALWARE = (
    ("Trojan.GenericKD.4711", "Trojan"),
    ("EICAR-Test-File", "Virus"),
    ("Ransom.Locky.A", "Ransomware"),
)
_MALSITE_GEO = (
    ("RU", "Moscow", 55.7558, 37.6173),
    ("CN", "Beijing", 39.9042, 116.4074),
    ("NL", "North Holland", 52.3676, 4.9041),
    ("US", "Virginia", 38.0336, -78.508),
)
_BREACH_DESCRIPTIONS = (
    "Credentials found in a public paste",
    "Combo list sold on a forum",
    "Third-party SaaS breach disclosure",
)
# (name, region, location, lat, long) of IPsec POPs.
_POP_SITES = (
    ("sfo1", "US", "San Francisco, CA, US", 37.7749, -122.4194),
    ("sjc1", "US", "San Jose, CA, US", 37.3382, -121.8863),
    ("lax1", "US", "Los Angeles, CA, US", 34.0522, -118.2437),
    ("sea1", "US", "Seattle, WA, US", 47.6062, -122.3321),
    ("dfw1", "US", "Dallas, TX, US", 32.7767, -96.7970),
    ("ord1", "US", "Chicago, IL, US", 41.8781, -87.6298),
    ("nyc2", "US", "New York, NY, US", 40.7128, -74.0060),
    ("iad2", "US", "Ashburn, VA, US", 39.0438, -77.4874),
    ("lon2", "GB", "London, GB", 51.5074, -0.1278),
    ("ams1", "NL", "Amsterdam, NL", 52.3676, 4.9041),
    ("fra1", "DE", "Frankfurt, DE", 50.1109, 8.6821),
    ("tlv1", "IL", "Tel Aviv, IL", 32.0853, 34.7818),
    ("sin1", "SG", "Singapore, SG", 1.3521, 103.8198),
    ("syd1", "AU", "Sydney, AU", -33.8688, 151.2093),
)
_REFERENCE_POINT = (37.7749, -122.4194)  # distance origin when the caller sends no lat/long


def _epoch(value: datetime | float | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware (UTC)")
        return int(value.timestamp())
    return int(value)


def _miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 3958.8 * 2 * math.asin(math.sqrt(a))


class NetskopeDataset:
    """Deterministic Netskope tenant data between ``start`` and ``end`` (event time).

    ``rates`` are records per hour per content type (``alert``, ``application``, ``page``).
    Each content type draws from its own seeded RNG, so changing one rate does not reshuffle
    the others. Records are plain dicts shaped like the real payloads in
    shared/samples/netskope/; treat them as read-only.

    Delivery delay (``_insertion_epoch_timestamp - timestamp``) is 1..300 s for most records
    and 1200..2400 s for a ``late_fraction`` of them; ``duplicate_fraction`` of the records get
    a second, identical copy (same ``_id``) inserted 60..1800 s after the first.
    """

    CONTENT_TYPES = ("alert", "application", "page")
    DEFAULT_RATES: Mapping[str, float] = {"alert": 600.0, "application": 900.0, "page": 1500.0}

    def __init__(
        self,
        seed: int = 7,
        start: datetime | None = None,
        end: datetime | None = None,
        rates: Mapping[str, float] | None = None,
        *,
        users: Sequence[str] = _DEFAULT_USERS,
        late_fraction: float = 0.02,
        duplicate_fraction: float = 0.005,
        missing_id_fraction: float = 0.05,
        n_pops: int = len(_POP_SITES),
        n_tunnels: int = 8,
    ) -> None:
        if end is None:
            end = datetime.now(UTC).replace(microsecond=0)
        if start is None:
            start = datetime.fromtimestamp(_epoch(end) - 7200, UTC)
        self.seed = seed
        self.start = _epoch(start)
        self.end = _epoch(end)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        unknown = set(rates or {}) - set(self.CONTENT_TYPES)
        if unknown:
            raise ValueError(f"unknown content type(s) in rates: {sorted(unknown)}")
        self.rates = {**self.DEFAULT_RATES, **(rates or {})}
        self.users = tuple(users)
        if not self.users:
            raise ValueError("users must not be empty")
        self.late_fraction = late_fraction
        self.duplicate_fraction = duplicate_fraction
        self.missing_id_fraction = missing_id_fraction
        self._seen_ids: set[str] = set()
        self._records: dict[str, list[dict[str, Any]]] = {}
        for content in self.CONTENT_TYPES:
            rng = Random(f"netskope:{seed}:{content}")
            count = round(self.rates[content] * (self.end - self.start) / 3600.0)
            self._records[content] = self._generate(rng, content, count)
        #: POP name -> (lat, long), used to order POPs by distance from a caller's lat/long.
        self.pop_coordinates: dict[str, tuple[float, float]] = {}
        self.pops = self._make_pops(Random(f"netskope:{seed}:pops"), n_pops)
        self.tunnels = self._make_tunnels(Random(f"netskope:{seed}:tunnels"), n_tunnels)

    # -- ground truth -------------------------------------------------------------------------

    @staticmethod
    def _content_types(endpoint: str) -> tuple[str, ...]:
        name = endpoint.rstrip("/").rsplit("/", 1)[-1]
        aliases = {
            "alert": ("alert",),
            "alerts": ("alert",),
            "application": ("application",),
            "page": ("page",),
            "events": ("application", "page"),
            "audit": (),
            "infrastructure": (),
            "network": (),
        }
        if name not in aliases:
            raise ValueError(f"unknown Netskope endpoint {endpoint!r}")
        return aliases[name]

    def records(self, endpoint: str) -> list[dict[str, Any]]:
        """All records of an endpoint (``alert``, ``application``, ``page``, ``events`` = both
        event kinds, or a full API path), duplicates included, ordered by event time."""
        if endpoint.rstrip("/").endswith("pops"):
            return list(self.pops)
        if endpoint.rstrip("/").endswith("tunnels"):
            return list(self.tunnels)
        out: list[dict[str, Any]] = []
        for content in self._content_types(endpoint):
            out.extend(self._records[content])
        return out

    def expected_records(
        self,
        endpoint: str,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        *,
        by: str = "insertion",
        alert_type: str | Iterable[str] | None = None,
        type: str | Iterable[str] | None = None,  # noqa: A002 - the Netskope field name
    ) -> list[dict[str, Any]]:
        """Records with ``start < t <= end``, where t is the insertion time (``by="insertion"``)
        or the event time (``by="timestamp"``); optional filters on ``alert_type``
        (case/space-insensitive) and on the record ``type``."""
        key = "_insertion_epoch_timestamp" if by == "insertion" else "timestamp"
        if by not in ("insertion", "timestamp"):
            raise ValueError("by must be 'insertion' or 'timestamp'")
        lo = None if start is None else _epoch(start)
        hi = None if end is None else _epoch(end)
        alert_types = (
            None
            if alert_type is None
            else {_norm_type(a) for a in ([alert_type] if isinstance(alert_type, str) else alert_type)}
        )
        types = None if type is None else set([type] if isinstance(type, str) else type)
        out = []
        for rec in self.records(endpoint):
            t = rec[key]
            if (lo is not None and t <= lo) or (hi is not None and t > hi):
                continue
            if alert_types is not None and _norm_type(str(rec.get("alert_type", ""))) not in alert_types:
                continue
            if types is not None and rec.get("type") not in types:
                continue
            out.append(rec)
        return out

    def expected_ids(
        self,
        endpoint: str,
        insertion_start: datetime | float | None = None,
        insertion_end: datetime | float | None = None,
        **filters: Any,
    ) -> set[str]:
        """``_id``s a loss-free collector must hold for that insertion window
        (``insertion_start < _insertion_epoch_timestamp <= insertion_end``).
        ``filters`` as in :meth:`expected_records` (``by``, ``alert_type``, ``type``)."""
        return {r["_id"] for r in self.expected_records(endpoint, insertion_start, insertion_end, **filters)}

    def alert_keys(
        self,
        insertion_start: datetime | float | None = None,
        insertion_end: datetime | float | None = None,
    ) -> set[tuple[str, str, str]]:
        """Distinct ``(type, user, id)`` of the mapped alert kinds (breach / connection /
        malsite) whose id is present and not ``0``/empty: one Alerts row each."""
        keys = set()
        for rec in self.expected_records(
            "alert", insertion_start, insertion_end, type=MAPPED_ALERT_TYPES.keys()
        ):
            ident = rec.get(MAPPED_ALERT_TYPES[rec["type"]])
            if ident in (None, "", 0, "0"):
                continue
            keys.add((rec["type"], rec["user"], str(ident)))
        return keys

    def duplicate_ids(self, endpoint: str = "alert") -> set[str]:
        """``_id``s that occur more than once (the deliberate re-deliveries)."""
        seen: set[str] = set()
        dups: set[str] = set()
        for rec in self.records(endpoint):
            (dups if rec["_id"] in seen else seen).add(rec["_id"])
        return dups

    def late_records(self, endpoint: str, min_delay: int = 1200) -> list[dict[str, Any]]:
        """Records delivered at least ``min_delay`` seconds after their event time."""
        return [
            r for r in self.records(endpoint) if r["_insertion_epoch_timestamp"] - r["timestamp"] >= min_delay
        ]

    # -- generation ---------------------------------------------------------------------------

    def _new_id(self, rng: Random) -> str:
        while True:
            ident = f"{rng.getrandbits(96):024x}"
            if ident not in self._seen_ids:
                self._seen_ids.add(ident)
                return ident

    def _generate(self, rng: Random, content: str, count: int) -> list[dict[str, Any]]:
        span = self.end - self.start
        times = sorted(self.start + int(rng.random() * span) for _ in range(count))
        kinds = [k for k, _ in _ALERT_MIX]
        cum = []
        total = 0
        for _, weight in _ALERT_MIX:
            total += weight
            cum.append(total)
        records = []
        for ts in times:
            if rng.random() < self.late_fraction:
                delay = rng.randint(1200, 2400)
            else:
                delay = min(300, 1 + int(rng.expovariate(1 / 45.0)))
            inserted = ts + delay
            base = {
                "_id": self._new_id(rng),
                "timestamp": ts,
                "_insertion_epoch_timestamp": inserted,
                "_creation_timestamp": max(ts, inserted - rng.randint(0, 3)),
            }
            if content == "alert":
                kind = kinds[bisect.bisect_right(cum, rng.random() * total)]
                records.append(self._alert(rng, base, kind))
            elif content == "application":
                records.append(self._app_event(rng, base))
            else:
                records.append(self._page_event(rng, base))
        n_dups = round(len(records) * self.duplicate_fraction)
        if n_dups == 0 and len(records) >= 50 and self.duplicate_fraction > 0:
            n_dups = 1
        for original in rng.sample(records, n_dups):
            copy = dict(original)
            copy["_insertion_epoch_timestamp"] = original["_insertion_epoch_timestamp"] + rng.randint(
                60, 1800
            )
            records.append(copy)
        records.sort(key=lambda r: (r["timestamp"], r["_id"], r["_insertion_epoch_timestamp"]))
        return records

    def _common(self, rng: Random, base: dict[str, Any]) -> dict[str, Any]:
        user = rng.choice(self.users)
        src = rng.choice(_SRC_GEO)
        dst = rng.choice(_DST_GEO)
        rec = dict(base)
        rec.update(
            {
                "access_method": "Client",
                "count": 1,
                "device": rng.choice(("Windows Device", "Mac Device", "Other")),
                "dst_country": dst[0],
                "dst_region": dst[1],
                "dst_location": dst[2],
                "dst_latitude": dst[3],
                "dst_longitude": dst[4],
                "dst_timezone": dst[5],
                "dst_zipcode": "N/A",
                "dstip": f"203.0.113.{rng.randint(1, 254)}",
                "netskope_pop": rng.choice(_POPS_ALL),
                "organization_unit": "",
                "os": rng.choice(("Windows 10", "Windows 11", "macOS 14", "unknown")),
                "src_country": src[0],
                "src_region": src[1],
                "src_location": src[2],
                "src_latitude": src[3],
                "src_longitude": src[4],
                "src_timezone": src[5],
                "src_zipcode": "N/A",
                "srcip": f"198.51.100.{rng.randint(1, 254)}",
                "traffic_type": "CloudApp",
                "ur_normalized": user,
                "user": user,
                "userip": f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}",
                "userkey": user,
            }
        )
        return rec

    def _app_fields(self, rng: Random, rec: dict[str, Any]) -> None:
        app, cat, suite = rng.choice(_APPS)
        rec.update(
            {
                "app": app,
                "appcategory": cat,
                "category": cat,
                "site": app,
                "cci": rng.choice((72, 85, 91, 92)),
                "ccl": rng.choice(("high", "excellent")),
                "activity": rng.choice(_ACTIVITIES),
            }
        )
        if suite:
            rec["appsuite"] = suite

    def _web_fields(self, rng: Random, rec: dict[str, Any]) -> None:
        domain, site, cat = rng.choice(_SITES)
        rec.update(
            {
                "domain": domain,
                "page": domain,
                "site": site,
                "appcategory": cat,
                "category": cat,
                "url": f"{domain}/{rng.choice(('', 'index.html', 'v1/sync', 'x'))}",
                "traffic_type": "Web",
            }
        )

    def _alert(self, rng: Random, base: dict[str, Any], kind: str) -> dict[str, Any]:
        rec = self._common(rng, base)
        rec.update(
            {
                "alert": "yes",
                "acked": "true" if rng.random() < 0.1 else "false",
                "request_id": rng.getrandbits(63),
                "connection_id": 0,
                "transaction_id": 0,
                "app_session_id": 0,
            }
        )
        missing = rng.random() < self.missing_id_fraction
        if kind in ("policy", "watchlist", "connection"):
            name = {
                "policy": "Block risky uploads",
                "watchlist": "Watch finance users",
                "connection": "Block uncategorized sites",
            }[kind]
            if kind == "connection":
                self._web_fields(rng, rec)
                alert_type = "watchlist" if rng.random() < 0.25 else "policy"
            else:
                self._app_fields(rng, rec)
                alert_type = kind
            rec.update(
                {
                    "type": "connection" if kind == "connection" else "nspolicy",
                    "alert_type": alert_type,
                    "alert_name": name,
                    "policy": name,
                    "policy_id": f"{rng.getrandbits(64):016x}",
                    "action": rng.choice(("alert", "block", "useralert")),
                    "app_session_id": rng.getrandbits(63),
                    "transaction_id": rng.getrandbits(63),
                }
            )
            if kind == "connection":
                # A small pool so (user, connection_id) repeats across windows and users.
                rec["connection_id"] = 0 if missing else 8594277971962832000 + rng.randint(1, 12)
            else:
                rec["connection_id"] = rng.getrandbits(63) | 1
        elif kind == "dlp":
            self._app_fields(rng, rec)
            profile, rule = rng.choice(_DLP_PROFILES)
            incident = rng.getrandbits(63)
            obj = rng.choice(("q3.xlsx", "payroll.csv", "customers.docx", "notes.txt"))
            rec.update(
                {
                    "type": "nspolicy",
                    "alert_type": "DLP",
                    "alert_name": f"Alert on {profile}",
                    "policy": f"Alert on {profile}",
                    "action": rng.choice(("alert", "block")),
                    "access_method": "API Connector",
                    "dlp_incident_id": incident,
                    "dlp_parent_id": incident,
                    "dlp_profile": profile,
                    "dlp_rule": rule,
                    "dlp_rule_count": rng.randint(1, 40),
                    "dlp_rule_severity": rng.choice(("Low", "Medium", "High")),
                    "dlp_file": obj,
                    "object": obj,
                    "object_type": "File",
                    "object_id": f"{rng.getrandbits(128):032x}",
                    "file_size": rng.randint(1000, 5_000_000),
                    "md5": f"{rng.getrandbits(128):032x}",
                    "sha256": f"{rng.getrandbits(256):064x}",
                    "owner": rec["user"],
                    "from_user": rec["user"],
                }
            )
        elif kind == "malware":
            self._app_fields(rng, rec)
            name, mtype = rng.choice(_MALWARE)
            rec.update(
                {
                    "type": "nspolicy",
                    "alert_type": "Malware",
                    "alert_name": name,
                    "action": "block",
                    "malware_id": f"{rng.getrandbits(160):040x}",
                    "malware_name": name,
                    "malware_type": mtype,
                    "malware_profile": "Default Malware Scan",
                    "detection_engine": rng.choice(("Netskope AV", "Sandbox")),
                    "local_md5": f"{rng.getrandbits(128):032x}",
                    "local_sha256": f"{rng.getrandbits(256):064x}",
                    "severity_level": rng.randint(1, 4),
                }
            )
        elif kind == "anomaly":
            self._app_fields(rng, rec)
            rec.update(
                {
                    "type": "anomaly",
                    "alert_type": "uba",
                    "alert_name": "Unusual volume of downloads",
                    "action": "alert",
                    "severity": rng.choice(("low", "medium", "high")),
                }
            )
        elif kind == "breach":
            breach_no = rng.randint(1, 5)
            rec.update(
                {
                    "type": "breach",
                    "alert_type": "Compromised Credential",
                    "alert_name": "Compromised credential detected",
                    "action": "alert",
                    "access_method": "",
                    "traffic_type": "",
                    "breach_date": 1716854400 + breach_no * 86400,
                    "breach_score": 40 + breach_no * 10,
                    "breach_description": _BREACH_DESCRIPTIONS[breach_no % 3],
                    "matched_username": rec["user"].replace("@example.org", "@mail.example.com"),
                }
            )
            if not missing:
                rec["breach_id"] = f"b-202405{28 + breach_no % 3:02d}-{breach_no:03d}"
        elif kind == "malsite":
            self._web_fields(rng, rec)
            site_no = rng.randint(1, 8)
            geo = _MALSITE_GEO[site_no % len(_MALSITE_GEO)]
            host = f"bad{site_no}.example.net"
            rec.update(
                {
                    "type": "malsite",
                    "alert_type": "malsite",
                    "alert_name": f"{host}/x",
                    "url": f"{host}/x",
                    "domain": host,
                    "page": host,
                    "site": host,
                    "action": "block",
                    "malsite_category": "['Malicious Site']",
                    "malsite_country": geo[0],
                    "malsite_region": geo[1],
                    "malsite_latitude": geo[2],
                    "malsite_longitude": geo[3],
                    "malsite_ip_host": f"192.0.2.{site_no}",
                    "severity_level": rng.randint(1, 4),
                }
            )
            if not missing:
                rec["malsite_id"] = f"{site_no:02d}aa11bb22cc33dd44ee55ff"[:24]
        else:  # pragma: no cover - _ALERT_MIX and this chain must agree
            raise AssertionError(kind)
        return rec

    def _app_event(self, rng: Random, base: dict[str, Any]) -> dict[str, Any]:
        rec = self._common(rng, base)
        self._app_fields(rng, rec)
        rec.update(
            {
                "type": "nspolicy",
                "alert": "no",
                "browser": rng.choice(("Chrome", "Native", "Edge")),
                "connection_id": rng.getrandbits(63),
                "app_session_id": rng.getrandbits(63),
                "browser_session_id": rng.getrandbits(63),
                "transaction_id": rng.getrandbits(63),
                "request_id": rng.getrandbits(63),
                "instance_id": "example.org",
                "object": rng.choice(("", "report.pdf", "budget.xlsx", "team chat")),
                "policy": rng.choice(("", "Allow sanctioned apps")),
                "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            }
        )
        return rec

    def _page_event(self, rng: Random, base: dict[str, Any]) -> dict[str, Any]:
        rec = self._common(rng, base)
        self._web_fields(rng, rec)
        bypass = rng.random() < 0.1
        rec.update(
            {
                "type": "connection",
                "alert": "no",
                "cci": rng.choice((0, 55, 80)),
                "ccl": rng.choice(("unknown", "medium", "high")),
                "connection_id": 0 if rng.random() < 0.15 else rng.getrandbits(63),
                "transaction_id": 0,
                "dstport": 443,
                "user_generated": "yes",
                "numbytes": rng.randint(500, 2_000_000),
                "req_cnt": rng.randint(1, 30),
                "resp_cnt": rng.randint(1, 30),
                "ssl_decrypt_policy": "no",
                "src_time": time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(rec["timestamp"])),
            }
        )
        if bypass:
            rec.update(
                {"bypass_traffic": "yes", "bypass_reason": "Steering Exception - Default tenant config"}
            )
        return rec

    def _make_pops(self, rng: Random, n: int) -> list[dict[str, Any]]:
        pops = []
        for i, (name, region, location, lat, lon) in enumerate(_POP_SITES[:n]):
            pops.append(
                {
                    "id": f"0x{0xA1 + i:04X}",
                    "name": name,
                    "region": region,
                    "location": location,
                    "gateway": f"192.0.2.{10 + i}",
                    "probeip": f"10.0.{i}.1",
                    "distance": f"{round(_miles(*_REFERENCE_POINT, lat, lon))} miles",
                    "acceptingtunnels": rng.random() > 0.15,
                    "options": {
                        "phase1": {
                            "ikeversion": "IKEv2",
                            "encryptionalgo": "AES256-CBC, AES256-GCM",
                            "integrityalgo": "SHA2-256",
                            "dhgroup": "14,19,20",
                            "salifetime": "24 hours",
                            "dpd": "on",
                        },
                        "phase2": {
                            "encryptionalgo": "AES256-CBC, AES256-GCM",
                            "integrityalgo": "SHA2-256",
                            "dhgroup": "14,19,20",
                            "pfs": "enabled",
                            "salifetime": "8 hours",
                        },
                    },
                    "bandwidth": rng.choice(("50 mbps, 100 mbps", "50 mbps, 100 mbps, 150 mbps, 250 mbps")),
                    "releasedeploymentday": f"Day-{rng.randint(1, 4)}",
                }
            )
            self.pop_coordinates[name] = (lat, lon)
        return pops

    def _make_tunnels(self, rng: Random, n: int) -> list[dict[str, Any]]:
        tunnels = []
        names = [p[0] for p in _POP_SITES]
        for i in range(1, n + 1):
            primary, backup = rng.sample(names, 2)
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start - rng.randint(0, 86400 * 30)))
            tunnels.append(
                {
                    "id": i,
                    "site": f"site-{i:02d}",
                    "enabled": rng.random() > 0.1,
                    "pops": [
                        {
                            "name": pop,
                            "gateway": f"192.0.2.{10 + names.index(pop)}",
                            "probeip": f"10.0.{names.index(pop)}.1",
                            "primary": pop == primary,
                            "status": "up" if rng.random() > 0.2 else "down",
                            "since": since,
                            "throughput": f"{rng.randint(1, 250)} mbps",
                        }
                        for pop in (primary, backup)
                    ],
                    "vendor": rng.choice(("Cisco", "Palo Alto Networks", "Fortinet", "Juniper")),
                    "template": "default",
                    "sourcetype": rng.choice(("FQDN", "IP")),
                    "notes": "",
                    "bandwidth": rng.choice((50, 100, 150, 250)),
                    "encryption": "AES256-CBC",
                    "srcidentity": f"site-{i:02d}.example.org",
                    "srcipidentity": f"198.51.100.{100 + i}",
                    "options": {
                        "rekey": True,
                        "reauth": True,
                        "xff": {"enabled": False, "iplist": []},
                        "qos": {"enabled": False, "linkid": ""},
                    },
                    "version": "IKEv2",
                }
            )
        return tunnels


# --------------------------------------------------------------------------------------------
# Simulator
# --------------------------------------------------------------------------------------------


#: The answer to any `query` parameter. The simulator once parsed the filter language; the collector
#: never sends it, and a client that relied on it would silently get unfiltered data, so it fails loudly.
QUERY_NOT_SIMULATED = (
    "query filters are not simulated: this Netskope simulator serves only the documented type/acked and "
    "time-window filters, remove the query parameter"
)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NetskopeSimulator(SimulatorApp):
    """Serves a :class:`NetskopeDataset` over Netskope REST API v1 and v2.

    ``v2_tokens`` maps each v2 token to the endpoint paths it is scoped to (a scope also covers
    sub-paths). Records whose ``_insertion_epoch_timestamp`` is later than ``clock()`` are not
    served yet. ``monotonic`` drives the rate limiters, separate from ``clock`` so a test can
    freeze "now" for the data and still get (or freeze) throttling.

    Not simulated: the ``query`` filter language (doc §2.2/§3.2); a request carrying ``query`` gets
    the vendor-shaped error (v1: HTTP 200 ``status: error``; v2: 400 ``{"message"}``) rather than
    unfiltered data. v1 ``limit`` must be below 10000 (doc §2.2), as a strict tenant demands.

    Extra control endpoints: ``POST /_sim/netskope/tokens`` ``{"token", "version": 1|2,
    "scopes": [...]}``, ``POST /_sim/netskope/expire`` ``{"token"}``, ``POST
    /_sim/netskope/rate_limit`` ``{"path", "rps"}``.
    """

    name = "netskope"

    def __init__(
        self,
        dataset: NetskopeDataset,
        *,
        v1_token: str | None = "v1-token",
        v2_tokens: Mapping[str, Iterable[str]] | None = None,
        clock: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        options: NetskopeOptions | None = None,
    ) -> None:
        self.dataset = dataset
        # A private copy: set_rate_limit() must not leak into other simulators sharing options.
        opts = options or NetskopeOptions()
        self.options = dataclasses.replace(opts, v2_rate_limits=dict(opts.v2_rate_limits))
        self.monotonic: Callable[[], float] = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._v1_tokens: set[str] = {v1_token} if v1_token else set()
        if v2_tokens is None:
            v2_tokens = {"v2-token": ALL_V2_SCOPES}
        self._v2_tokens: dict[str, tuple[str, ...]] = {t: tuple(s) for t, s in v2_tokens.items()}
        self._expired: set[str] = set()
        self._v1_window: deque[float] = deque()
        self._v2_windows: dict[str, tuple[int, int]] = {}  # path -> (second, requests)
        # Sorted views, built once: by insertion time for visibility and insertion windows.
        self._by_insertion: dict[str, list[dict[str, Any]]] = {}
        self._insertion_keys: dict[str, list[int]] = {}
        for content in NetskopeDataset.CONTENT_TYPES:
            recs = sorted(dataset.records(content), key=lambda r: (r["_insertion_epoch_timestamp"], r["_id"]))
            self._by_insertion[content] = recs
            self._insertion_keys[content] = [r["_insertion_epoch_timestamp"] for r in recs]

        super().__init__(
            routes=[
                Route(V1_ALERTS_PATH, self._v1, methods=["GET", "POST"]),
                Route(V1_EVENTS_PATH, self._v1, methods=["GET", "POST"]),
                Route(V2_DATA_PREFIX + "{kind}", self._v2_data, methods=["GET"]),
                Route(V2_POPS_PATH, self._v2_pops, methods=["GET"]),
                Route(V2_TUNNELS_PATH, self._v2_tunnels, methods=["GET"]),
            ],
            control_routes=[
                control_route("/_sim/netskope/tokens", self._ctl_tokens, ["POST"]),
                control_route("/_sim/netskope/expire", self._ctl_expire, ["POST"]),
                control_route("/_sim/netskope/rate_limit", self._ctl_rate_limit, ["POST"]),
            ],
            clock=clock,
        )

    # -- tokens and limits --------------------------------------------------------------------

    def add_v1_token(self, token: str) -> None:
        with self._lock:
            self._v1_tokens.add(token)
            self._expired.discard(token)

    def add_v2_token(self, token: str, scopes: Iterable[str] = ALL_V2_SCOPES) -> None:
        """Create (or re-scope) a v2 token bound to the given endpoint paths."""
        with self._lock:
            self._v2_tokens[token] = tuple(scopes)
            self._expired.discard(token)

    def expire_token(self, token: str) -> None:
        """From now on ``token`` is rejected (v2: 401; v1: the auth error body)."""
        with self._lock:
            self._expired.add(token)

    def set_rate_limit(self, path: str, rps: int | None) -> None:
        """Requests per second for one v2 endpoint path (None = back to the default)."""
        with self._lock:
            if rps is None:
                self.options.v2_rate_limits.pop(path, None)
            else:
                self.options.v2_rate_limits[path] = int(rps)
            self._v2_windows.pop(path, None)

    def reset(self) -> None:
        """Clear faults, statistics and rate-limit windows (tokens are kept)."""
        super().reset()
        with self._lock:
            self._v1_window.clear()
            self._v2_windows.clear()

    # -- vendor error shapes ------------------------------------------------------------------

    @staticmethod
    def _is_v1(request: Request) -> bool:
        return request.url.path.startswith("/api/v1/")

    @staticmethod
    def _phrase(status: int) -> str:
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return "Error"

    def _v1_error(self, message: str, error_code: str = "Invalid Request", status: int = 200) -> Response:
        return JSONResponse(
            {"status": "error", "errorCode": error_code, "errors": [message]}, status_code=status
        )

    def error_body(self, status: int, request: Request) -> Response:
        """v1: ``{"status":"error","errorCode":...,"errors":[...]}``; v2: ``{"message":...}``."""
        phrase = self._phrase(status)
        if self._is_v1(request):
            return self._v1_error(phrase, error_code=phrase, status=status)
        return JSONResponse({"message": phrase}, status_code=status)

    def throttle_response(self, request: Request) -> Response:
        if self._is_v1(request):
            return self._v1_throttled()
        limit = self._v2_limit(request.url.path)
        return JSONResponse(
            {"message": "API rate limit exceeded"},
            status_code=429,
            headers={
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "1",
                "Retry-After": "1",
            },
        )

    # -- v1 -----------------------------------------------------------------------------------

    def _v1_rate_ok(self) -> bool:
        limit = self.options.v1_rate_limit
        if limit is None:
            return True
        count, seconds = limit
        now = self.monotonic()
        with self._lock:
            while self._v1_window and self._v1_window[0] <= now - seconds:
                self._v1_window.popleft()
            if len(self._v1_window) >= count:
                return False
            self._v1_window.append(now)
            return True

    def _v1_throttled(self) -> Response:
        return self._v1_error("Too many requests", error_code="Too Many Requests", status=429)

    async def _v1(self, request: Request) -> Response:
        """v1 takes its parameters from the query string, a JSON body or a form body (doc §2.1)."""
        params = await request_params(request)
        # The selection is CPU work under a threading lock: keep it off the event loop.
        return await run_in_threadpool(self._v1_serve, request.url.path, params)

    def _v1_serve(self, path: str, params: Mapping[str, list[str]]) -> Response:
        if not self._v1_rate_ok():
            return self._v1_throttled()

        def arg(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        token = arg("token")
        with self._lock:
            valid = token in self._v1_tokens and token not in self._expired
        if not valid:
            return self._v1_error(
                "Invalid token" if token else "Token is required",
                error_code="Authorization Error",
                status=self.options.v1_auth_error_status,
            )
        try:
            return self._v1_query(path, arg)
        except _BadRequest as exc:
            return self._v1_error(exc.message)

    def _v1_query(self, path: str, arg: Callable[[str], str | None]) -> Response:
        opts = self.options
        is_alerts = path == V1_ALERTS_PATH
        if is_alerts:
            contents: tuple[str, ...] = ("alert",)
        else:
            etype = arg("type")
            if etype is None and opts.v1_events_require_type:
                raise _BadRequest("type is required")
            if etype is not None and etype not in V1_EVENT_TYPES:
                raise _BadRequest(f"Invalid type {etype!r}; expected one of {', '.join(V1_EVENT_TYPES)}")
            contents = (
                ("application", "page")
                if etype is None
                else tuple(c for c in ("application", "page") if c == etype)
            )
        now = int(self.clock())
        window = self._v1_window_args(arg, now)
        limit = self._int_arg(arg("limit"), "limit", opts.v1_default_limit, 1, opts.v1_max_limit)
        skip = self._int_arg(arg("skip"), "skip", 0, 0, None)
        if arg("query") is not None:
            raise _BadRequest(QUERY_NOT_SIMULATED)
        alert_type = (arg("type") or arg("alert_type")) if is_alerts else None
        records = self._select(
            contents,
            window,
            now,
            alert_type=alert_type,
            acked=arg("acked") if is_alerts else None,
        )
        if (arg("unsorted") or "").lower() == "true":
            records.sort(key=lambda r: r["_id"])
        else:
            records.sort(
                key=lambda r: (r["timestamp"], r["_id"], r["_insertion_epoch_timestamp"]), reverse=True
            )
        return JSONResponse({"status": "success", "msg": "", "data": records[skip : skip + limit]})

    def _v1_window_args(self, arg: Callable[[str], str | None], now: int) -> tuple[str, int, int] | None:
        opts = self.options
        used = []
        if arg("timeperiod") is not None:
            used.append("timeperiod")
        if arg("starttime") is not None or arg("endtime") is not None:
            used.append("starttime/endtime")
        if arg("insertionstarttime") is not None or arg("insertionendtime") is not None:
            used.append("insertionstarttime/insertionendtime")
        if len(used) > 1:
            raise _BadRequest(
                "Only one of timeperiod, starttime/endtime or insertionstarttime/insertionendtime may be used"
            )
        if not used:
            if opts.v1_require_time_selector:
                raise _BadRequest(
                    "One of timeperiod, starttime/endtime or insertionstarttime/insertionendtime is required"
                )
            return None
        if used[0] == "timeperiod":
            period = self._int_arg(arg("timeperiod"), "timeperiod", None, 1, None)
            if opts.v1_allowed_timeperiods is not None and period not in opts.v1_allowed_timeperiods:
                raise _BadRequest(f"Invalid timeperiod {period}")
            return ("timestamp", now - period, now)
        return self._pair_window(arg, "insertion" if used[0].startswith("insertion") else "")

    def _pair_window(self, arg: Callable[[str], str | None], prefix: str) -> tuple[str, int, int]:
        s_name, e_name = f"{prefix}starttime", f"{prefix}endtime"
        if arg(s_name) is None or arg(e_name) is None:
            raise _BadRequest(f"{s_name} and {e_name} must be used together")
        start = self._int_arg(arg(s_name), s_name, None, 0, None)
        end = self._int_arg(arg(e_name), e_name, None, 0, None)
        if start > end:
            raise _BadRequest(f"{s_name} must not be later than {e_name}")
        field_name = "_insertion_epoch_timestamp" if prefix else "timestamp"
        return (field_name, start, end)

    # -- v2 -----------------------------------------------------------------------------------

    def _v2_limit(self, path: str) -> int:
        return self.options.v2_rate_limits.get(path, self.options.v2_default_rate_limit)

    def _v2_guard(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Rate limit then auth; returns (error response or None, RateLimit-* headers)."""
        path = request.url.path
        limit = self._v2_limit(path)
        now = self.monotonic()
        second = int(now)
        with self._lock:
            window, used = self._v2_windows.get(path, (second, 0))
            if window != second:
                window, used = second, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._v2_windows[path] = (window, used)
        reset = max(1, math.ceil(second + 1 - now))
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(max(0, limit - used)),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            resp = JSONResponse(
                {"message": "API rate limit exceeded"},
                status_code=429,
                headers={**headers, "Retry-After": str(reset)},
            )
            return resp, headers
        token = request.headers.get("Netskope-Api-Token")
        if not token and self.options.v2_accept_bearer:
            auth = request.headers.get("Authorization") or ""
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        with self._lock:
            scopes = self._v2_tokens.get(token or "")
            expired = token in self._expired
        if not token:
            return JSONResponse({"message": "Missing Netskope-Api-Token header"}, 401, headers), headers
        if scopes is None or expired:
            msg = "Token expired" if expired else "Invalid token"
            return JSONResponse({"message": msg}, 401, headers), headers
        if not any(path == s or path.startswith(s.rstrip("/") + "/") for s in scopes):
            return JSONResponse({"message": f"Token is not authorized for {path}"}, 403, headers), headers
        return None, headers

    def _v2_data(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in V2_EVENT_KINDS:
            return self.error_body(404, request)
        denied, headers = self._v2_guard(request)
        if denied is not None:
            return denied
        opts = self.options

        def arg(name: str) -> str | None:
            return query_arg(request, name)

        try:
            now = int(self.clock())
            has_ev = arg("starttime") is not None or arg("endtime") is not None
            has_ins = arg("insertionstarttime") is not None or arg("insertionendtime") is not None
            if has_ev and has_ins:
                raise _BadRequest("Use either starttime/endtime or insertionstarttime/insertionendtime")
            if has_ev or has_ins:
                window: tuple[str, int, int] | None = self._pair_window(arg, "insertion" if has_ins else "")
            elif opts.v2_require_time_selector:
                raise _BadRequest("starttime/endtime or insertionstarttime/insertionendtime is required")
            else:
                window = None
            limit = self._int_arg(arg("limit"), "limit", opts.v2_default_limit, 1, opts.v2_max_limit)
            offset = self._int_arg(arg("offset"), "offset", 0, 0, opts.v2_max_offset)
            if arg("query") is not None:
                raise _BadRequest(QUERY_NOT_SIMULATED)
            is_alert = kind == "alert"
            contents = (kind,) if kind in NetskopeDataset.CONTENT_TYPES else ()
            records = self._select(
                contents,
                window,
                now,
                alert_type=arg("type") if is_alert else None,
                acked=arg("acked") if is_alert else None,
            )
        except _BadRequest as exc:
            return JSONResponse({"message": exc.message}, exc.status, headers)
        fields_arg = arg("fields")
        if fields_arg:
            agg = re.fullmatch(r"\s*(\w+)\s*:\s*count\(\s*_id\s*\)\s*", fields_arg)
            if agg:
                return JSONResponse({"ok": 1, "result": [{agg.group(1): len(records)}]}, headers=headers)
        records.sort(
            key=lambda r: (r["timestamp"], r["_id"], r["_insertion_epoch_timestamp"]),
            reverse=opts.v2_order == "desc",
        )
        page = records[offset : offset + limit]
        if fields_arg:
            wanted = [f.strip() for f in fields_arg.split(",") if f.strip()]
            page = [{f: r[f] for f in wanted if f in r} for r in page]
        return JSONResponse({"ok": 1, "result": page}, headers=headers)

    def _paging(self, request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Steering lists: `offset`/`limit`, everything when `limit` is absent (not documented)."""
        offset = self._int_arg(query_arg(request, "offset"), "offset", 0, 0, None)
        if not query_arg(request, "limit"):
            return items[offset:]
        limit = self._int_arg(query_arg(request, "limit"), "limit", None, 1, None)
        return items[offset : offset + limit]

    def _v2_pops(self, request: Request) -> Response:
        denied, headers = self._v2_guard(request)
        if denied is not None:
            return denied
        try:
            lat_arg, long_arg = query_arg(request, "lat"), query_arg(request, "long")
            try:
                lat = float(lat_arg) if lat_arg is not None else _REFERENCE_POINT[0]
                lon = float(long_arg) if long_arg is not None else _REFERENCE_POINT[1]
            except ValueError as exc:
                raise _BadRequest("lat and long must be numbers") from exc
            pops = []
            for pop in self.dataset.pops:
                miles = _miles(lat, lon, *self.dataset.pop_coordinates[pop["name"]])
                pops.append((miles, {**pop, "distance": f"{round(miles)} miles"}))
            if lat_arg is not None and long_arg is not None:
                pops.sort(key=lambda p: p[0])
            items = [p for _, p in pops]
            page = self._paging(request, items)
        except _BadRequest as exc:
            return JSONResponse({"message": exc.message}, exc.status, headers)
        return JSONResponse({"total": len(items), "result": page}, headers=headers)

    def _v2_tunnels(self, request: Request) -> Response:
        denied, headers = self._v2_guard(request)
        if denied is not None:
            return denied
        items = list(self.dataset.tunnels)
        if self.options.tunnel_query_filters:
            site, pop, status = (
                query_arg(request, "query.site"),
                query_arg(request, "query.pop"),
                query_arg(request, "query.status"),
            )
            if site is not None:
                items = [t for t in items if t["site"] == site]
            if pop is not None:
                items = [t for t in items if any(p["name"] == pop for p in t["pops"])]
            if status is not None:
                items = [t for t in items if any(p["status"] == status for p in t["pops"])]
        try:
            page = self._paging(request, items)
        except _BadRequest as exc:
            return JSONResponse({"message": exc.message}, exc.status, headers)
        return JSONResponse({"status": 200, "total": len(items), "result": page}, headers=headers)

    # -- shared selection -----------------------------------------------------------------------

    @staticmethod
    def _int_arg(raw: str | None, name: str, default: int | None, lo: int, hi: int | None) -> int:
        if raw is None or raw == "":
            if default is None:
                raise _BadRequest(f"{name} is required")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _BadRequest(f"{name} must be an integer, got {raw!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise _BadRequest(f"{name} must be {bound}, got {value}")
        return value

    def _select(
        self,
        contents: Iterable[str],
        window: tuple[str, int, int] | None,
        now: int,
        *,
        alert_type: str | None = None,
        acked: str | None = None,
    ) -> list[dict[str, Any]]:
        """Visible records (inserted by ``now``) in ``window``, after the filters."""
        opts = self.options
        wanted_type = None
        if alert_type:
            wanted_type = {_norm_type(v) for v in alert_type.split(",") if v.strip()}
            known = {_norm_type(t) for t in ALERT_TYPES}
            if opts.strict_alert_types and not wanted_type <= known:
                raise _BadRequest(f"Invalid alert type {alert_type!r}")
        if acked is not None and acked.lower() not in ("true", "false"):
            raise _BadRequest("acked must be true or false")
        out = []
        for content in contents:
            recs = self._by_insertion[content]
            keys = self._insertion_keys[content]
            lo_idx, hi_idx = 0, bisect.bisect_right(keys, now)
            ev_lo = ev_hi = None
            if window is not None:
                field_name, lo, hi = window
                if field_name == "_insertion_epoch_timestamp":
                    lo_idx = (
                        bisect.bisect_left(keys, lo)
                        if opts.window_start_inclusive
                        else bisect.bisect_right(keys, lo)
                    )
                    hi_idx = min(hi_idx, bisect.bisect_right(keys, hi))
                else:
                    ev_lo, ev_hi = lo, hi
            for rec in recs[lo_idx:hi_idx]:
                if ev_lo is not None:
                    ts = rec["timestamp"]
                    if ts > ev_hi or ts < ev_lo or (ts == ev_lo and not opts.window_start_inclusive):
                        continue
                if (
                    wanted_type is not None
                    and _norm_type(str(rec.get(opts.alert_type_filter_field, ""))) not in wanted_type
                ):
                    continue
                if acked is not None and rec.get("acked") != acked.lower():
                    continue
                out.append(rec)
        return out

    # -- control ------------------------------------------------------------------------------

    async def _ctl_tokens(self, request: Request) -> Response:
        payload = await request.json()
        token = str(payload["token"])
        if int(payload.get("version", 2)) == 1:
            self.add_v1_token(token)
        else:
            self.add_v2_token(token, payload.get("scopes", ALL_V2_SCOPES))
        return JSONResponse({"ok": True})

    async def _ctl_expire(self, request: Request) -> Response:
        self.expire_token(str((await request.json())["token"]))
        return JSONResponse({"ok": True})

    async def _ctl_rate_limit(self, request: Request) -> Response:
        payload = await request.json()
        self.set_rate_limit(str(payload["path"]), payload.get("rps"))
        return JSONResponse({"ok": True})


# --------------------------------------------------------------------------------------------
# As a process (python -m seccollect_dev.simulators) and in the demo
# --------------------------------------------------------------------------------------------

#: The demo's fixed port for the Netskope simulator.
DEFAULT_PORT = 18801


def _tokens() -> tuple[str, str, tuple[str, ...]]:
    """(v1 token, v2 token, v2 scopes) from the environment.

    The environment, because the simulator process and the demo (or docker-compose) that writes
    the Airflow connections must agree on the tokens without talking to each other.
    """
    scopes_env = os.environ.get("SIM_NETSKOPE_V2_SCOPES")
    scopes = tuple(s.strip() for s in scopes_env.split(",") if s.strip()) if scopes_env else ALL_V2_SCOPES
    return (
        os.environ.get("SIM_NETSKOPE_V1_TOKEN", "sim-netskope-v1-token"),
        os.environ.get("SIM_NETSKOPE_V2_TOKEN", "sim-netskope-v2-token"),
        scopes,
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("netskope")
    group.add_argument(
        "--netskope-rates", default="", help="records per hour, e.g. alert=600,application=900,page=1500"
    )


def build_simulator(args: argparse.Namespace) -> NetskopeSimulator:
    """The simulator the CLI serves: ``args.hours`` of data up to now and ``args.ahead_hours`` after it
    (served as the real clock reaches each record's insertion time), tokens from the environment
    (``SIM_NETSKOPE_V1_TOKEN``, ``SIM_NETSKOPE_V2_TOKEN``, ``SIM_NETSKOPE_V2_SCOPES``)."""
    rates: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in args.netskope_rates.split(","))):
        key, _, value = item.partition("=")
        rates[key.strip()] = float(value)
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = timedelta(hours=getattr(args, "ahead_hours", 0.0))
    dataset = NetskopeDataset(seed=args.seed, start=now - timedelta(hours=args.hours), end=now + ahead, rates=rates)
    v1_token, v2_token, scopes = _tokens()
    return NetskopeSimulator(dataset, v1_token=v1_token, v2_tokens={v2_token: scopes})


def _start(args: argparse.Namespace, host: str, port: int) -> SimulatorServer:
    return SimulatorServer(build_simulator(args), host=host, port=port).start()


def _connections(url: str) -> dict[str, dict[str, Any]]:
    """The demo's two Netskope instances: ``acme`` over v2, ``globex`` over v1."""
    v1_token, v2_token, _ = _tokens()
    return {
        "netskope_demo": {
            "conn_type": "netskope",
            "host": "demo",
            "password": v2_token,
            "extra": json.dumps({"api_version": "v2", "base_url": url}),
        },
        "netskope_demo_v1": {
            "conn_type": "netskope",
            "host": "demo",
            "password": v1_token,
            "extra": json.dumps({"api_version": "v1", "base_url": url}),
        },
    }


SIMULATOR = SimulatorSpec(
    name="netskope",
    default_port=DEFAULT_PORT,
    add_arguments=_add_arguments,
    start=_start,
    connections=_connections,
    help="""\
netskope control endpoints (besides /_sim/faults, /_sim/reset, /_sim/stats, /_sim/clock):
  POST /_sim/netskope/tokens      {"token": "...", "version": 1|2, "scopes": ["/api/v2/..."]}
  POST /_sim/netskope/expire      {"token": "..."}: from now on 401 (v2) / the auth error body (v1)
  POST /_sim/netskope/rate_limit  {"path": "/api/v2/events/data/alert", "rps": 4} (null = default)
  Tokens: SIM_NETSKOPE_V1_TOKEN, SIM_NETSKOPE_V2_TOKEN (scopes: SIM_NETSKOPE_V2_SCOPES) in the environment.
""",
)
