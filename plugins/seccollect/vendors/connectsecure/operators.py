"""ConnectSecure collect operator: a full pull of one content type on the shared snapshot pattern."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from seccollect.operators.snapshot import SnapshotCollectOperator
from seccollect.records.intake import RecordFields
from seccollect.records.values import check_text, iso_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import MsgOrigin
    from seccollect.vendors.connectsecure.hook import ConnectSecureHook

#: msg_class per content type (CONNECTORS.md).
MSG_CLASS = {
    "asset": "connectsecurev4_asset",
    "remediation_plan": "connectsecurev4_remediation",
    "vulnerability_suppression": "connectsecurev4_vulnerability_suppression",
}
#: The field whose time a row carries as its event time (no zone: UTC).
EVENT_TIME_FIELD = {
    "asset": "updated",
    "remediation_plan": "last_vul_discovered",
    "vulnerability_suppression": "updated",
}


def _text(value: Any, what: str) -> str | None:
    """A field as text for a typed column (ints exactly, never through a float)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return check_text(value if isinstance(value, str) else str(value), what)


def _event_time(raw: dict[str, Any], field: str) -> Any:
    value = raw.get(field)
    if value is None or value == "":
        return None
    # ConnectSecure writes times without a zone (2026-07-28T09:01:44.523454): read as UTC.
    return iso_time(value, field)


def extract_fields(content_type: str, raw: dict[str, Any]) -> RecordFields:
    """What a row of ``content_type`` gives the indices (its identity is set by the snapshot pattern)."""
    event_time = _event_time(raw, EVENT_TIME_FIELD[content_type])
    typed: dict[str, dict[str, Any]] = {}
    if content_type == "asset":
        typed["assets"] = {
            "asset_id": _text(raw.get("id"), "id"),
            "hostname": _text(raw.get("host_name") or raw.get("name"), "host_name"),
            "ip_address": _text(raw.get("ip"), "ip"),
            "os": _text(" ".join(str(raw[f]) for f in ("os_name", "os_version") if raw.get(f)) or None, "os_name"),
        }
    elif content_type == "vulnerability_suppression":
        typed["scans"] = {
            "asset_id": _text(raw.get("asset_id"), "asset_id"),
            "vulnerability_id": _text(raw.get("problem_name") or raw.get("problem_id"), "problem_name"),
            "severity": _text(raw.get("severity"), "severity"),
            "status": _text(raw.get("suppression_status"), "suppression_status"),
        }
    return RecordFields(vendor_id=None, event_time=event_time, typed=typed)


class ConnectSecureCollectOperator(SnapshotCollectOperator):
    """Pull one ConnectSecure content type in full and stage it for change detection.

    Every run pulls the whole list (the API has no time filter); the load compares it with the last
    successful pull and loads only new and changed rows, recording removals (see the DAG docs). Paging
    anchors on rows already read, so rows added or removed during the pull neither drop a row nor
    repeat one.

    :param connectsecure_conn_id: Airflow connection (Base URL, Client ID, Client Secret, Tenant Name).
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL (without credentials).
    :param page_size: records per list request.
    :param endpoints: content type -> list endpoint, overriding the defaults.
    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

    #: Asset rows carry ~2.5 KB of raw JSON, twice (Syslog and Assets): parts of 10,000 rows keep the
    #: collect's buffers and each part the load reads near 50 MB (the default 50,000 took ~350 MB).
    staging_part_rows = 10_000

    def __init__(
        self,
        *,
        connectsecure_conn_id: str,
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = 5000,
        endpoints: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.connectsecure_conn_id = connectsecure_conn_id
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = page_size
        self.endpoints = dict(endpoints or {})
        self._hook: ConnectSecureHook | None = None

    @property
    def hook(self) -> ConnectSecureHook:
        from seccollect.vendors.connectsecure.hook import ConnectSecureHook

        if self._hook is None:
            self._hook = ConnectSecureHook(
                self.connectsecure_conn_id,
                verify_ssl=self.verify_ssl,
                proxy=self.proxy,
                page_size=self.page_size,
                endpoints=self.endpoints,
            )
        return self._hook

    def origin(self) -> MsgOrigin:
        from seccollect.records.envelope import MsgOrigin

        return MsgOrigin(MSG_CLASS[self.content_type], "connectsecurev4", "connectsecure", "security_scan")

    def items(self, context: Context) -> Iterator[Sequence[Any]]:
        return self.hook.iter_records(self.content_type)

    def identity(self, raw: dict[str, Any]) -> str:
        from seccollect.records.quarantine import RecordError
        from seccollect.vendors.connectsecure.hook import IdentityError

        try:
            return self.hook.identity(self.content_type, raw)
        except IdentityError as exc:
            raise RecordError(str(exc)) from None

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        return extract_fields(self.content_type, raw)

    def request_figures(self) -> dict[str, int]:
        if self._hook is None or self._hook._client is None:
            return {}
        figures = {"api_requests": self._hook.get_conn().attempts_made}
        paging = self._hook.last_paging
        if paging is not None:
            figures.update({"step_backs": paging.step_backs, "repeated": paging.repeated,
                            "total_changes": max(0, len(paging.totals) - 1)})
        return figures
