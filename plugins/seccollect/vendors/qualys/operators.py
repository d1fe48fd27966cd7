"""Qualys operators: collect hosts or host detections processed in the run's window."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from seccollect.operators.windowed import WindowedCollectOperator

# Airflow-free and light: read once per record, so imported once here rather than in every call.
from seccollect.records.envelope import content_hash
from seccollect.records.intake import RecordFields
from seccollect.records.quarantine import RecordError
from seccollect.records.values import iso_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import MsgOrigin
    from seccollect.vendors.qualys.hook import QualysHook

MSG_CLASS = {"hosts": "qualys_hosts", "vulnerabilities": "qualys_vulnerabilities"}


def _text(value: Any) -> str | None:
    """A leaf's text, or ``None`` for absent/empty (a nested value is not text)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("#text"), str):
        return value["#text"] or None
    return None


def _first_time(raw: dict[str, Any], *fields: str) -> datetime | None:
    for field in fields:
        value = _text(raw.get(field))
        if value:
            return iso_time(value, field)
    return None


def detection_identity(raw: dict[str, Any]) -> str:
    """A detection's identity: its ``UNIQUE_VULN_ID`` where present, else (host ID, QID, port, protocol,
    SSL) - the key under which Qualys keeps one finding's state."""
    host = raw.get("HOST") if isinstance(raw.get("HOST"), dict) else {}
    host_id, qid = _text(host.get("ID")), _text(raw.get("QID"))
    if not host_id or not qid:
        raise RecordError("the detection has no host ID or no QID")
    unique = _text(raw.get("UNIQUE_VULN_ID"))
    if unique:
        return f"uvid:{unique}"
    port, protocol, ssl = (_text(raw.get(f)) or "" for f in ("PORT", "PROTOCOL", "SSL"))
    return f"{host_id}:{qid}:{port}:{protocol}:{ssl}"


def read_host(raw: dict[str, Any]) -> RecordFields:
    """Hosts → Syslog and Assets; a host's version is its content (unchanged = nothing new)."""
    host_id = _text(raw.get("ID"))
    if not host_id:
        raise RecordError("the host has no ID")
    dns_data = raw.get("DNS_DATA") if isinstance(raw.get("DNS_DATA"), dict) else {}
    hostname = _text(dns_data.get("FQDN")) or _text(raw.get("DNS")) or _text(raw.get("NETBIOS"))
    return RecordFields(
        vendor_id=host_id,
        event_time=_first_time(raw, "LAST_VULN_SCAN_DATETIME", "LAST_VM_SCANNED_DATE", "LAST_ACTIVITY"),
        typed={"assets": {"asset_id": host_id, "hostname": hostname,
                          "ip_address": _text(raw.get("IP")) or _text(raw.get("IPV6")), "os": _text(raw.get("OS"))}},
        version=content_hash(raw),
    )


def _update_time(raw: dict[str, Any]) -> tuple[datetime, str]:
    """A detection's version time and its text (``LAST_UPDATE_DATETIME``, else ``LAST_PROCESSED_DATETIME``).

    Qualys writes ``YYYY-MM-DDTHH:MM:SSZ``: that text is the version as is (read once per detection, so
    the common form skips the general parser)."""
    for field in ("LAST_UPDATE_DATETIME", "LAST_PROCESSED_DATETIME"):
        text = _text(raw.get(field))
        if not text:
            continue
        if len(text) == 20 and text[-1] == "Z" and text[10] == "T":
            try:
                return datetime.fromisoformat(text), text
            except ValueError:
                pass
        moment = iso_time(text, field)
        return moment, moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise RecordError("the detection has neither LAST_UPDATE_DATETIME nor LAST_PROCESSED_DATETIME")


def read_detection(raw: dict[str, Any]) -> RecordFields:
    """Detections → Syslog and Scans; the version is the detection's last update (else last processing).

    The identity is :func:`detection_identity`'s, read inline: this runs once per detection."""
    host = raw.get("HOST")
    host_id = _text(host.get("ID")) if isinstance(host, dict) else None
    qid = _text(raw.get("QID"))
    if not host_id or not qid:
        raise RecordError("the detection has no host ID or no QID")
    unique = _text(raw.get("UNIQUE_VULN_ID"))
    if unique:
        identity = f"uvid:{unique}"
    else:
        identity = f"{host_id}:{qid}:{_text(raw.get('PORT')) or ''}:{_text(raw.get('PROTOCOL')) or ''}:{_text(raw.get('SSL')) or ''}"
    updated, version = _update_time(raw)
    return RecordFields(
        vendor_id=identity,
        event_time=updated,
        typed={"scans": {"asset_id": host_id, "vulnerability_id": qid,
                         "severity": _text(raw.get("SEVERITY")), "status": _text(raw.get("STATUS"))}},
        version=version,
    )


class QualysCollectOperator(WindowedCollectOperator):
    """Collect Qualys hosts or host detections processed in the run's window (→ Syslog and Assets/Scans).

    Records are selected on processing time (see the DAG docs) over the window shifted back by
    ``settle_lag_seconds``; pages follow Qualys' own continuation URLs and are read as a stream. A record
    that cannot be handled is quarantined with its reason; the rest of the window loads.

    :param qualys_conn_id: Airflow connection with the API URL, user name and password.
    :param api_version: Qualys API version (default: the connection's, else 5.0).
    :param truncation_limit: hosts per response.
    :param settle_lag_seconds: how far the queried range trails the data interval.
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL (without credentials).
    :param kwargs: :class:`~seccollect.operators.windowed.WindowedCollectOperator` arguments.
    """

    #: A detection's raw record (with its host) is ~1.5 KB and staged twice (Syslog, Scans): parts of
    #: 2,000 rows keep the task's buffers near 15 MiB instead of ~250 MiB at the default 50,000.
    staging_part_rows = 2_000

    def __init__(
        self,
        *,
        qualys_conn_id: str,
        api_version: str | None = None,
        truncation_limit: int = 1000,
        settle_lag_seconds: int = 900,
        verify_ssl: bool = True,
        proxy: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.qualys_conn_id = qualys_conn_id
        self.api_version = api_version
        self.truncation_limit = truncation_limit
        self.settle_lag_seconds = settle_lag_seconds
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self._hook: QualysHook | None = None

    @property
    def hook(self) -> QualysHook:
        from seccollect.vendors.qualys.hook import QualysHook

        if self._hook is None:
            self._hook = QualysHook(self.qualys_conn_id, api_version=self.api_version,
                                    truncation_limit=self.truncation_limit, verify_ssl=self.verify_ssl, proxy=self.proxy)
        return self._hook

    def origin(self) -> MsgOrigin:
        from seccollect.records.envelope import MsgOrigin

        return MsgOrigin(MSG_CLASS[self.content_type], "qualys_cloud_platform", "qualys", "security_scan")

    def query_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        lag = timedelta(seconds=self.settle_lag_seconds)
        return start - lag, end - lag

    def describe_query(self, query_start: datetime, query_end: datetime) -> str:
        field = "vm_processed" if self.content_type == "hosts" else "detection_processed"
        return f"{field} in [{query_start}, {query_end})"

    def vendor_clock(self) -> datetime | None:
        # Processing times are on Qualys' clock: its Date header says how far it has got.
        return self.hook.get_conn().server_time

    def pages(self, query_start: datetime, query_end: datetime, context: Context) -> Iterator[Sequence[Any]]:
        return self.hook.iter_window(self.content_type, query_start, query_end)

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        return read_host(raw) if self.content_type == "hosts" else read_detection(raw)

    def request_figures(self) -> dict[str, int]:
        if self._hook is None or self._hook._client is None:
            return {}
        return {"api_requests": self._hook.get_conn().attempts_made, "api_pages": self._hook.pages_read}
