"""The ConnectSecure V4 simulator: authorize, the list endpoints of assets, remediation and suppressions,
and a data set that changes between pulls and while one is paged.

Faithful to ``vendor-apis/connectsecure-v4.md`` (§0 corrections first), not to our client:

* ``POST /w/authorize`` decodes ``Client-Auth-Token`` (base64 of ``<tenant>+<client id>:<secret>``) and
  answers the recorded body (``access_token`` and ``user_id`` at top level and under ``data``,
  ``token_type``, ``expires_in``: 3600). Wrong credentials: ``{"status": false, "message": "Failed to
  authorize"}`` with HTTP 200 (§0; ``authorize_failure_status`` makes it 401 as §8 has it). The
  intermittent ``"Failed to create customer"`` is injectable (``create_customer_failures``).
* Data calls need ``Authorization: Bearer <token>`` and ``X-USER-ID``. A missing, unknown or expired
  token is HTTP 401 ``{"status": false, "message": ...}``, or - ``expired_token_style="status_false"`` -
  HTTP 200 with ``status: false`` (§0: both are seen).
* Lists: ``skip`` is a record offset, ``limit`` the page size (10 when absent, §0), ``total`` the count of
  matches; ``order_by`` ``... desc`` reverses the stable order; ``condition`` ``field=value [and ...]``
  filters, except on ``remediation_plan_by_company`` which ignores it (§3.3); ``company_id`` on
  ``/r/asset/assets`` is a 400 (§3.1). Times are ``YYYY-MM-DDTHH:MM:SS.ffffff`` with no zone; ids are
  integers (``tenantid`` beyond 2^53), ``user_id`` a numeric string.
* ``status:false`` at HTTP 200, 429, 502, 504 and blank bodies come from the shared fault plan
  (``{"kind": "status", "status": 200, "body": "{\\"status\\": false, ...}"}``).

The data set is generated page by page from (seed, id, version): only the sorted live ids and each
row's version are kept, so 100,000 assets cost a few MB. :meth:`ConnectSecureDataset.mutate` adds,
changes and removes rows between pulls; :meth:`ConnectSecureSimulator.shift_during_pull` applies such a
mutation when the n-th page of a list is requested, so ``total`` changes and offsets shift mid-pull.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import json
import os
import random
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seccollect_dev.simulators.base import SimulatorApp, SimulatorServer, control_route, query_arg
from seccollect_dev.simulators.spec import SimulatorSpec

__all__ = ["DEFAULT_PORT", "SIMULATOR", "ConnectSecureDataset", "ConnectSecureSimulator"]

DEFAULT_PORT = 18803
#: A tenant id beyond 2^53, as the recordings have (and exact here: the sample's went through a float).
TENANT_ID = 383109341093361234
USER_ID = "383109345572815574"
TOKEN_LIFETIME = 3600
_EPOCH = datetime(2025, 3, 2, 14, 5, 11, 204511)

#: Collections the data set holds, and the list endpoints that serve them.
COLLECTIONS = ("asset", "remediation", "plan", "suppression", "company")
PATHS: dict[str, str] = {
    "/r/asset/assets": "asset",
    "/r/asset/asset_view": "asset",
    "/r/report_queries/get_remediation": "remediation",
    "/r/report_queries/remediation_plan_by_company": "plan",
    "/r/asset/get_asset_remediation_plan": "plan",
    "/r/asset/suppress_vulnerability": "suppression",
    "/r/company/companies": "company",
}
#: Endpoints that ignore ``condition`` (§3.3).
IGNORES_CONDITION = frozenset({"/r/report_queries/remediation_plan_by_company"})
#: Query parameters each endpoint rejects with 400 (§3.1: company_id on /r/asset/assets).
REJECTED_PARAMS = {"/r/asset/assets": frozenset({"company_id", "filter", "sort"})}


def _ts(moment: datetime) -> str:
    """ConnectSecure's time format: microseconds, no zone."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _rng(*parts: Any) -> random.Random:
    return random.Random(hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest())


_OS = (("windows", "Windows 11 Pro", "23H2", "22631"), ("windows", "Windows 10 Pro", "22H2", "19045"),
       ("darwin", "macOS", "15.5", "24F74"), ("linux", "Ubuntu", "22.04", "5.15.0"))
_PRODUCTS = (("Google Chrome", "Update Google Chrome to 126.0.6478.126 or later", "https://chromereleases.googleblog.com/"),
             ("Mozilla Firefox", "Update Firefox to 128.0 or later", "https://www.mozilla.org/security/"),
             ("Microsoft Windows", "Install the latest cumulative update", "https://msrc.microsoft.com/"),
             ("OpenSSL", "Update OpenSSL to 3.0.14 or later", "https://www.openssl.org/news/"))
_SEVERITIES = ("Critical", "High", "Medium", "Low")


@dataclass
class ConnectSecureDataset:
    """What the tenant holds: per collection, the sorted live keys and each row's version.

    :param seed: makes every row reproducible.
    :param assets: number of assets at the start.
    :param remediation: rows of ``get_remediation`` (host x fix) at the start.
    :param plans: rows of the plan endpoints at the start.
    :param suppressions: suppressions at the start.
    :param companies: companies.
    """

    seed: int = 7
    assets: int = 200
    remediation: int = 120
    plans: int = 30
    suppressions: int = 40
    companies: int = 3
    keys: dict[str, list[int]] = field(default_factory=dict)
    versions: dict[str, dict[int, int]] = field(default_factory=dict)
    #: Rows served broken, per collection: key -> ``no_id``, ``bad_time`` or ``not_object``.
    corrupt: dict[str, dict[int, str]] = field(default_factory=dict)

    #: Keys are spaced so rows can be added anywhere in the order (between two existing ones).
    SPACING = 16

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        sizes = {"asset": self.assets, "remediation": self.remediation, "plan": self.plans,
                 "suppression": self.suppressions, "company": self.companies}
        for name in COLLECTIONS:
            self.keys.setdefault(name, [(k + 1) * self.SPACING for k in range(sizes[name])])
            self.versions.setdefault(name, {})

    # --- rows ------------------------------------------------------------------------------------

    def row(self, collection: str, key: int) -> dict[str, Any]:
        """The row ``key`` of ``collection`` as the API serves it (its current version)."""
        version = self.versions[collection].get(key, 0)
        row = getattr(self, f"_{collection}")(key, version)
        broken = self.corrupt.get(collection, {}).get(key)
        if broken == "no_id":
            row.pop("id", None)
        elif broken == "bad_time":
            row["updated"] = row["last_vul_discovered"] = "31/02/2026 25:00"
        elif broken == "not_object":
            return f"<row {key} unavailable>"  # type: ignore[return-value]
        return row

    def _asset_key(self, key: int) -> int:
        # From the key alone, so a row never changes because another collection did.
        return ((key // self.SPACING) % max(1, self.assets) + 1) * self.SPACING

    def _company_id(self, key: int) -> int:
        return 20417 + (key // self.SPACING) % max(1, self.companies)

    def _asset(self, key: int, version: int) -> dict[str, Any]:
        rng = _rng(self.seed, "asset", key)
        platform, os_name, os_version, os_build = _OS[rng.randrange(len(_OS))]
        asset_id = 90_210_000 + key
        created = _EPOCH + timedelta(seconds=key * 37)
        updated = created + timedelta(days=30, hours=version, microseconds=key % 999_999)
        host = f"host-{asset_id}"
        return {
            "id": asset_id, "company_id": self._company_id(key), "tenantid": TENANT_ID,
            "name": host.upper(), "visible_name": None, "host_name": host,
            "ip": f"10.{(key >> 16) & 255}.{(key >> 8) & 255}.{key & 255}", "ip_extra": None,
            "mac": ":".join(f"{(key >> s) & 255:02x}" for s in (40, 32, 24, 16, 8, 0)),
            "platform": platform, "os_name": os_name, "os_version": os_version,
            "os_build": f"{os_build}.{version}" if version else os_build, "os_full_name": None,
            "agent_id": 771_000 + key, "agent_type": "LIGHTWEIGHT", "asset_type": "discovered",
            "discovered_protocols": [{"credential_id": "", "protocol": "LIGHTWEIGHT", "status": True}],
            "tags": {"Asset Type": ["Workstation"], "Scan Status": ["Scanned"]}, "manual_tags": {},
            "unique_id": [hashlib.md5(f"{self.seed}:{key}".encode()).hexdigest()],  # noqa: S324 - not security
            "importance": 25, "status": True, "is_deprecated": False, "is_deleted": False,
            "deprecated_time": None, "logged_in_user": f"user{key % 97}",
            "logged_user_time": str(1_761_210_000 + key + version * 3600),
            "physical_memory": "17179869184", "uptime": str(3600 * (version + 1) + key % 3600),
            "created": _ts(created), "discovered": _ts(created),
            "last_discovered_time": _ts(updated), "last_ping_time": _ts(updated + timedelta(minutes=5)),
            "updated": _ts(updated),
        }

    def _asset_view(self, key: int) -> dict[str, Any]:
        row = self.row("asset", key)
        rng = _rng(self.seed, "asset_view", key, self.versions["asset"].get(key, 0))
        critical, high = rng.randrange(5), rng.randrange(20)
        return {**row, "company_name": f"Company {row['company_id']}", "critical": critical, "high": high,
                "medium": 3, "low": 1, "total_vul": critical + high + 4, "online_status": True}

    def _remediation(self, key: int, version: int) -> dict[str, Any]:
        rng = _rng(self.seed, "remediation", key)
        product, fix, url = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        asset_key = self._asset_key(key)
        total = 4 + version
        first = _EPOCH + timedelta(days=40, seconds=key)
        # Rows without solution_id exist (§0): identified by the fix's descriptive fields.
        solution = None if key % (13 * self.SPACING) == 5 * self.SPACING else 4000 + key
        return {
            "solution_id": solution, "product": product,
            "fix": fix if solution is not None else f"{fix} (manual step {key})", "url": url,
            "severity": _SEVERITIES[rng.randrange(4)], "remediation_action": "Update", "os_type": "windows",
            "asset_id": 90_210_000 + asset_key, "agent_id": 771_000 + asset_key, "host_name": f"host-{90_210_000 + asset_key}",
            "ip": "10.20.1.15", "online_status": True, "company_id": self._company_id(key),
            "total_vuls_count": total, "critical_vuls_count": 1, "high_vuls_count": total - 2,
            "medium_vuls_count": 1, "low_vuls_count": 0, "epss_vuls": round(0.01 * (key % 90), 2),
            "install_source": "", "first_vul_discovered": _ts(first),
            "last_vul_discovered": _ts(first + timedelta(days=1 + version)),
        }

    def _plan(self, key: int, version: int) -> dict[str, Any]:
        rng = _rng(self.seed, "plan", key)
        product, fix, url = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        total = 10 + version
        return {
            "solution_id": 5000 + key, "company_id": self._company_id(key), "os_name": "Windows 11 Pro",
            "fix": fix, "fix_script": "", "url": url, "product": product, "epss_vuls": 0.2,
            "remediation_action": "Update", "is_patchable": True, "severity": _SEVERITIES[rng.randrange(4)],
            "critical_problems": 1, "high_problems": total - 3, "medium_problems": 1, "low_problems": 1,
            "total_problems": total, "asset_ids": [90_210_000 + key], "affected_assets": 1,
            "install_source": "", "ports": "", "patch_status": "", "evidence": "", "unconfirmed": False,
        }

    def _suppression(self, key: int, version: int) -> dict[str, Any]:
        asset_key = self._asset_key(key)
        created = _EPOCH + timedelta(days=60, seconds=key * 11)
        return {
            "id": 5100 + key, "company_id": self._company_id(key), "company_name": f"Company {self._company_id(key)}",
            "asset_id": 90_210_000 + asset_key, "asset_name": f"HOST-{90_210_000 + asset_key}", "tenantid": TENANT_ID,
            "problem_id": 88_000 + key, "problem_name": f"CVE-2024-{38000 + key}", "solution_id": None,
            "check_id": None, "url": "", "reason": "Compensating control", "internal_users": [], "external_user": {},
            "suppress_comments": f"reviewed {version}", "unsuppress_comments": "", "approver_comments": "",
            "suppression_status": "Approved" if version % 2 == 0 else "Pending",
            "approved_by": "it-admin@acme.example", "requested_by": "it-admin@acme.example",
            "software_names": "Windows 11 Pro", "vulnerabilities": f"CVE-2024-{38000 + key}",
            "suppressed_on": _ts(created.replace(microsecond=0)), "suppressed_till": _ts(created + timedelta(days=180)),
            "unsuppressed_on": None, "created": _ts(created), "updated": _ts(created + timedelta(hours=version)),
        }

    def _company(self, key: int, version: int) -> dict[str, Any]:
        company_id = 20417 + key // self.SPACING - 1
        stamp = _ts(_EPOCH + timedelta(hours=version))
        return {"id": company_id, "name": f"Company {company_id}", "description": "", "customer_name": "",
                "domain": None, "is_assessment": False, "is_deleted": False, "is_migrated": False,
                "tags": [], "manual_tags": [], "meta_info": {}, "tenantid": TENANT_ID,
                "created": _ts(_EPOCH), "updated": stamp}

    # --- listing ---------------------------------------------------------------------------------

    def live(self, collection: str) -> list[int]:
        with self._lock:
            return list(self.keys[collection])

    def rows(self, collection: str) -> list[dict[str, Any]]:
        """Every current row, in the stable order (the ground truth of a pull)."""
        return [self.row(collection, key) for key in self.live(collection)]

    # --- changes ---------------------------------------------------------------------------------

    def mutate(
        self, collection: str, *, adds: int = 0, changes: int = 0, removes: int = 0, where: str = "anywhere",
        seed: Any = None,
    ) -> dict[str, list[int]]:
        """Add, change and remove rows; ``where="start"`` touches the first rows of the order (the ones a
        pull in progress has already passed, which shifts every later offset). Returns the keys."""
        with self._lock:
            rng = _rng(self.seed, "mutate", collection, seed if seed is not None else len(self.keys[collection]),
                       sum(self.versions[collection].values()))
            keys = self.keys[collection]
            pool = keys[: max(removes + changes + 1, 8)] if where == "start" else keys
            removed = rng.sample(pool, min(removes, len(pool)))
            for key in removed:
                keys.remove(key)
                self.versions[collection].pop(key, None)
            candidates = keys[: max(changes, 8)] if where == "start" else keys
            changed = rng.sample(candidates, min(changes, len(candidates)))
            for key in changed:
                self.versions[collection][key] = self.versions[collection].get(key, 0) + 1
            added: list[int] = []
            span = keys[: max(adds, 8)] if where == "start" else keys
            attempts = 0
            while len(added) < adds and attempts < adds * 50 + 100:
                attempts += 1
                base = rng.choice(span) if span else self.SPACING
                key = base - rng.randrange(1, self.SPACING) if where == "start" else base + rng.randrange(1, self.SPACING)
                if key <= 0 or key in self.versions[collection] or _contains(keys, key):
                    continue
                bisect.insort(keys, key)
                added.append(key)
            return {"added": added, "changed": changed, "removed": removed}


def _contains(keys: list[int], key: int) -> bool:
    at = bisect.bisect_left(keys, key)
    return at < len(keys) and keys[at] == key


@dataclass
class _Shift:
    """A change applied when the ``after``-th page of a list is requested (a pull in progress)."""

    path: str
    after: int
    adds: int = 0
    changes: int = 0
    removes: int = 0
    where: str = "start"
    #: Expire every token instead of (or besides) changing data: a token that runs out mid-pull.
    expire: bool = False
    seen: int = 0
    done: bool = False
    applied: dict[str, list[int]] = field(default_factory=dict)


class ConnectSecureSimulator(SimulatorApp):
    """Serves a :class:`ConnectSecureDataset` over the ConnectSecure V4 API (see the module docstring).

    :param dataset: the tenant's data.
    :param tenant: tenant name of the credentials.
    :param client_id: the API key's client id.
    :param client_secret: the API key's client secret.
    :param token_lifetime: ``expires_in`` of a token, in seconds of ``clock``.
    :param expired_token_style: ``"401"`` or ``"status_false"`` (HTTP 200) for an expired token.
    :param authorize_failure_status: HTTP status of ``Failed to authorize`` (200 per §0; 401 per §8).
    :param clock: the simulated time (tokens expire on it).

    Extra control endpoints: ``POST /_sim/connectsecure/mutate`` ``{"collection", "adds", "changes",
    "removes", "where"}``, ``POST /_sim/connectsecure/shift`` ``{"path", "after", "adds", "changes",
    "removes", "where"}``, ``POST /_sim/connectsecure/expire`` (every token expires now),
    ``POST /_sim/connectsecure/create_customer_failures`` ``{"count"}``, ``GET /_sim/connectsecure/truth``.
    """

    name = "connectsecure"

    def __init__(
        self,
        dataset: ConnectSecureDataset,
        *,
        tenant: str = "acme",
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        token_lifetime: int = TOKEN_LIFETIME,
        expired_token_style: str = "401",
        authorize_failure_status: int = 200,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.dataset = dataset
        self.credentials = (tenant, client_id, client_secret)
        self.token_lifetime = token_lifetime
        self.expired_token_style = expired_token_style
        self.authorize_failure_status = authorize_failure_status
        self.create_customer_failures = 0
        self._tokens: dict[str, float] = {}
        self._shifts: list[_Shift] = []
        self._lock = threading.Lock()
        self.authorizations = 0
        super().__init__(
            routes=[
                Route("/w/authorize", self._authorize, methods=["POST"]),
                *(Route(path, self._list, methods=["GET"]) for path in PATHS),
            ],
            control_routes=[
                control_route("/_sim/connectsecure/mutate", self._ctl_mutate, ["POST"]),
                control_route("/_sim/connectsecure/shift", self._ctl_shift, ["POST"]),
                control_route("/_sim/connectsecure/expire", self._ctl_expire, ["POST"]),
                control_route("/_sim/connectsecure/create_customer_failures", self._ctl_create_customer, ["POST"]),
                control_route("/_sim/connectsecure/truth", self._ctl_truth, ["GET"]),
            ],
            clock=clock,
        )

    # --- vendor-shaped errors ----------------------------------------------------------------

    def error_body(self, status: int, request: Request) -> Response:
        from http import HTTPStatus

        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return JSONResponse({"status": False, "message": phrase}, status_code=status)

    def throttle_response(self, request: Request) -> Response:
        # Whether ConnectSecure sends Retry-After is unknown (§6): none is sent.
        return JSONResponse({"status": False, "message": "Too Many Requests"}, status_code=429)

    # --- test helpers ------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = self.clock() - 1

    def shift_during_pull(self, path: str, after: int, *, adds: int = 0, changes: int = 0, removes: int = 0,
                          where: str = "start") -> _Shift:
        """When the ``after``-th request of ``path`` arrives, change the data first (a pull in progress
        then sees ``total`` change and later offsets shift)."""
        shift = _Shift(path, after, adds, changes, removes, where)
        with self._lock:
            self._shifts.append(shift)
        return shift

    def expire_during_pull(self, path: str, after: int) -> _Shift:
        """Expire every token when the ``after``-th request of ``path`` arrives (it then gets the expired
        answer, and so does every request with the old token)."""
        shift = _Shift(path, after, expire=True)
        with self._lock:
            self._shifts.append(shift)
        return shift

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._shifts.clear()
            self.create_customer_failures = 0

    # --- routes ------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        self.authorizations += 1
        with self._lock:
            if self.create_customer_failures > 0:
                self.create_customer_failures -= 1
                return JSONResponse({"status": False, "message": "Failed to create customer"})
        header = request.headers.get("client-auth-token", "")
        try:
            decoded = base64.b64decode(header, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        tenant, _, rest = decoded.partition("+")
        client_id, _, secret = rest.partition(":")
        if (tenant, client_id, secret) != self.credentials:
            return JSONResponse({"status": False, "message": "Failed to authorize"},
                                status_code=self.authorize_failure_status)
        token = "eyJ" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self.clock() + self.token_lifetime
        return JSONResponse({
            "status": True, "access_token": token, "user_id": USER_ID, "token_type": "bearer",
            "expires_in": self.token_lifetime, "data": {"access_token": token, "user_id": USER_ID},
        })

    def _check_auth(self, request: Request) -> Response | None:
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme == "JWT":  # one client sends "JWT Bearer <token>" (§2.2)
            scheme, _, token = token.partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None:
            return JSONResponse({"status": False, "message": "Unauthorized"}, status_code=401)
        if expires <= self.clock():
            if self.expired_token_style == "status_false":
                return JSONResponse({"status": False, "message": "Token expired"})
            return JSONResponse({"status": False, "message": "Token expired"}, status_code=401)
        if request.headers.get("x-user-id") != USER_ID:
            return JSONResponse({"status": False, "message": "X-USER-ID header is required"}, status_code=400)
        return None

    def _list(self, request: Request) -> Response:
        path = request.url.path
        self._apply_shifts(path)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        rejected = REJECTED_PARAMS.get(path, frozenset()) & set(request.query_params)
        if rejected:
            return JSONResponse({"status": False, "message": f"Invalid parameter(s): {', '.join(sorted(rejected))}"},
                                status_code=400)
        try:
            skip = int(query_arg(request, "skip") or 0)
            limit = int(query_arg(request, "limit") or 10)  # the observed default (§0)
        except ValueError:
            return JSONResponse({"status": False, "message": "Failed to retrieve data"})
        if skip < 0 or limit < 1:
            return JSONResponse({"status": False, "message": "Failed to retrieve data"})
        collection = PATHS[path]
        keys = self.dataset.live(collection)
        if (query_arg(request, "order_by") or "").strip().lower().endswith("desc"):
            keys.reverse()
        condition = query_arg(request, "condition")
        make = self.dataset._asset_view if path == "/r/asset/asset_view" else (
            lambda key: self.dataset.row(collection, key))
        if condition and path not in IGNORES_CONDITION:
            terms = _condition(condition)
            if terms is None:
                return JSONResponse({"status": False, "message": "Failed to retrieve data"})
            matching = [row for row in map(make, keys) if all(str(row.get(f)) == v for f, v in terms)]
            return _page_response(matching[skip : skip + limit], len(matching))
        return _page_response([make(key) for key in keys[skip : skip + limit]], len(keys))

    def _apply_shifts(self, path: str) -> None:
        with self._lock:
            due = []
            for shift in self._shifts:
                if shift.done or shift.path != path:
                    continue
                shift.seen += 1
                if shift.seen >= shift.after:
                    shift.done = True
                    due.append(shift)
        for shift in due:
            if shift.expire:
                self.expire_tokens()
            shift.applied = self.dataset.mutate(PATHS[path], adds=shift.adds, changes=shift.changes,
                                                removes=shift.removes, where=shift.where, seed=("shift", path, shift.after))

    # --- control -----------------------------------------------------------------------------

    async def _ctl_mutate(self, request: Request) -> Response:
        body = await request.json()
        result = self.dataset.mutate(str(body["collection"]), adds=int(body.get("adds", 0)),
                                     changes=int(body.get("changes", 0)), removes=int(body.get("removes", 0)),
                                     where=str(body.get("where", "anywhere")))
        return JSONResponse({k: len(v) for k, v in result.items()})

    async def _ctl_shift(self, request: Request) -> Response:
        body = await request.json()
        if body["path"] not in PATHS:
            raise ValueError(f"unknown list path {body['path']!r}")
        self.shift_during_pull(str(body["path"]), int(body["after"]), adds=int(body.get("adds", 0)),
                               changes=int(body.get("changes", 0)), removes=int(body.get("removes", 0)),
                               where=str(body.get("where", "start")))
        return JSONResponse({"ok": True})

    def _ctl_expire(self, request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"ok": True})

    async def _ctl_create_customer(self, request: Request) -> Response:
        body = await request.json()
        self.create_customer_failures = int(body.get("count", 1))
        return JSONResponse({"ok": True})

    def _ctl_truth(self, request: Request) -> Response:
        return JSONResponse({name: len(self.dataset.live(name)) for name in COLLECTIONS})


def _condition(text: str) -> list[tuple[str, str]] | None:
    """``field=value`` terms joined by `` and `` (§3.3); ``None`` for anything else."""
    terms = []
    for term in text.split(" and "):
        name, sep, value = term.strip().partition("=")
        if not sep or not name.strip() or any(c in name for c in "<>! "):
            return None
        terms.append((name.strip(), value.strip()))
    return terms


def _page_response(rows: list[dict[str, Any]], total: int) -> Response:
    # json.dumps writes Python ints exactly (the large tenantid included).
    body = json.dumps({"status": True, "data": rows, "total": total}, separators=(",", ":"))
    return Response(body, media_type="application/json")


# --- CLI and demo ------------------------------------------------------------------------------


def _credentials() -> tuple[str, str, str]:
    return (
        os.environ.get("SIM_CONNECTSECURE_TENANT", "acme"),
        os.environ.get("SIM_CONNECTSECURE_CLIENT_ID", "demo-client-id"),
        os.environ.get("SIM_CONNECTSECURE_CLIENT_SECRET", "demo-client-secret"),
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connectsecure")
    group.add_argument("--connectsecure-assets", type=int, default=500, help="assets in the simulated tenant")


def build_simulator(args: argparse.Namespace) -> ConnectSecureSimulator:
    assets = getattr(args, "connectsecure_assets", 500)
    dataset = ConnectSecureDataset(seed=getattr(args, "seed", 7), assets=assets, remediation=max(10, assets // 2),
                                   plans=max(5, assets // 10), suppressions=max(5, assets // 5))
    tenant, client_id, secret = _credentials()
    return ConnectSecureSimulator(dataset, tenant=tenant, client_id=client_id, client_secret=secret)


def _start(args: argparse.Namespace, host: str, port: int) -> SimulatorServer:
    return SimulatorServer(build_simulator(args), host=host, port=port).start()


def _connections(url: str) -> dict[str, dict[str, Any]]:
    tenant, client_id, secret = _credentials()
    return {
        "connectsecure_demo": {
            "conn_type": "connectsecure",
            "host": url,
            "login": client_id,
            "password": secret,
            "extra": json.dumps({"tenant_name": tenant}),
        }
    }


SIMULATOR = SimulatorSpec(
    name="connectsecure",
    default_port=DEFAULT_PORT,
    add_arguments=_add_arguments,
    start=_start,
    connections=_connections,
    help="""\
connectsecure control endpoints (besides /_sim/faults, /_sim/reset, /_sim/stats, /_sim/clock):
  POST /_sim/connectsecure/mutate   {"collection": "asset", "adds": 5, "changes": 5, "removes": 5}
  POST /_sim/connectsecure/shift    {"path": "/r/asset/assets", "after": 2, "removes": 3}: mid-pull change
  POST /_sim/connectsecure/expire   every token issued so far expires now
  POST /_sim/connectsecure/create_customer_failures {"count": 2}: authorize answers "Failed to create customer"
  GET  /_sim/connectsecure/truth    rows per collection
  Credentials: SIM_CONNECTSECURE_TENANT, SIM_CONNECTSECURE_CLIENT_ID, SIM_CONNECTSECURE_CLIENT_SECRET.
""",
)


def expected_identities(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> set[str]:
    """The identities of ground-truth rows (tests compare the warehouse with these)."""
    return {key(row) for row in rows}
