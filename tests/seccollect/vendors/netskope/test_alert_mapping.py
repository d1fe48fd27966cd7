"""Netskope alert mapping: keys from ``map_fields`` and the Alerts rows the warehouse derives from them.

The unit tests feed hand-built raw alerts to :func:`map_fields` (over the ``alert_fields`` the collect
task stages). The warehouse
scenario stages three windows exactly as the DAG does (StagingWriter -> map_window -> load_window, no
Airflow), loads
them out of order and re-runs one, and checks every Alerts row on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seccollect.records.envelope import EnvelopeContext, MsgOrigin, make_record_id

MSG_CLASS = "netskopewsg_alert"
ORIGIN = MsgOrigin(MSG_CLASS, "netskope", "netskope", "web_security")
DAY = datetime(2026, 3, 1, tzinfo=UTC)


def _at(hours: int, minutes: int = 0) -> datetime:
    return DAY + timedelta(hours=hours, minutes=minutes)


def _alert(_id: str, user: str | None, at: datetime, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"_id": _id, "timestamp": int(at.timestamp()), "alert": "yes", **fields}
    if user is not None:
        raw["user"] = user
    raw["_insertion_epoch_timestamp"] = raw["timestamp"] + 30
    return raw


def _envelope(tenant: str, window: tuple[datetime, datetime]) -> EnvelopeContext:
    return EnvelopeContext(
        tenant=tenant,
        instance="unit",
        content_type="alert",
        window_start=window[0],
        window_end=window[1],
        ingest_time=datetime.now(UTC),
    )


def _syslog_rows(raws: list[dict[str, Any]], tenant: str = "acme", window=None) -> list[dict[str, Any]]:
    env = _envelope(tenant, window or (DAY, _at(1)))
    return [
        env.wrap(ORIGIN, raw, vendor_id=raw["_id"], event_time=datetime.fromtimestamp(raw["timestamp"], UTC))
        for raw in raws
    ]


def _table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    from seccollect.staging.store import arrow_schema

    return pa.Table.from_pylist(rows, schema=arrow_schema("syslog"))


def _map(raws: list[dict[str, Any]], tenant: str = "acme") -> dict[str, dict[str, Any]]:
    """Links for the raws, keyed by the raw alert's ``_id``, mapped from the ``alert_fields`` the collect
    task stages beside them."""
    from seccollect.vendors.netskope.alert_mapping import alert_fields, map_fields, with_fields

    rows = _syslog_rows(raws, tenant)
    staged = with_fields(_table(rows), alert_fields(_table(rows)))
    links = sorted(map_fields(staged).to_pylist(), key=lambda link: link["record_id"])
    ids = {make_record_id(tenant, MSG_CLASS, raw["_id"]): raw["_id"] for raw in raws}
    by_id = {ids[link["record_id"]]: link for link in links}
    assert len(by_id) == len(links), "one link per raw alert"
    return by_id


# --- map_fields unit tests - ------------------------------------------------------------------------


def test_kinds_come_from_type_or_alert_type_and_other_alerts_are_ignored() -> None:
    t = _at(0, 10)
    links = _map(
        [
            _alert("b-type", "ana@example.org", t, type="breach", alert_type="Compromised Credential", breach_id="b-1"),
            # The same breach reported with an nspolicy type: the kind comes from alert_type.
            _alert("b-alert-type", "ana@example.org", t, type="nspolicy", alert_type="Compromised Credential",
                   breach_id="b-1"),
            _alert("c-type", "ana@example.org", t, type="connection", alert_type="policy",
                   connection_id=8594277971962832001),
            _alert("m-type", "bo@example.org", t, type="Malsite", alert_type="malsite", malsite_id="07aa11bb"),
            _alert("m-alert-type", "bo@example.org", t, type="nspolicy", alert_type="malsite", malsite_id="07aa11bb"),
            # Not mapped: DLP, anomaly, and a policy alert that merely carries a connection_id.
            _alert("dlp", "ana@example.org", t, type="nspolicy", alert_type="DLP", dlp_incident_id=5),
            _alert("uba", "ana@example.org", t, type="anomaly", alert_type="uba"),
            _alert("policy", "ana@example.org", t, type="nspolicy", alert_type="policy", connection_id=123),
        ]
    )
    assert set(links) == {"b-type", "b-alert-type", "c-type", "m-type", "m-alert-type"}
    kinds = {i: (link["alert_kind"], link["dedup_id"], link["user_name"]) for i, link in links.items()}
    assert kinds == {
        "b-type": ("breach", "b-1", "ana@example.org"),
        "b-alert-type": ("breach", "b-1", "ana@example.org"),
        # A 64-bit connection id keeps every digit.
        "c-type": ("connection", "8594277971962832001", "ana@example.org"),
        "m-type": ("malsite", "07aa11bb", "bo@example.org"),
        "m-alert-type": ("malsite", "07aa11bb", "bo@example.org"),
    }
    assert links["b-type"]["alert_key"] == links["b-alert-type"]["alert_key"]
    assert links["m-type"]["alert_key"] == links["m-alert-type"]["alert_key"]
    for i, link in links.items():
        assert link["msg_class"] == MSG_CLASS
        assert link["tenant"] == "acme"
        assert link["record_id"] == make_record_id("acme", MSG_CLASS, i), "links point at the Syslog row"
        assert link["event_time"] == t


def test_missing_zero_or_empty_ids_never_merge_alerts() -> None:
    t = _at(0, 20)
    user = "ana@example.org"
    raws = [
        _alert("no-breach-1", user, t, type="breach"),
        _alert("no-breach-2", user, t, type="breach"),
        _alert("empty-breach", user, t, type="breach", breach_id=""),
        _alert("blank-breach", user, t, type="breach", breach_id="  "),
        _alert("conn-int-0", user, t, type="connection", connection_id=0),
        _alert("conn-str-0", user, t, type="connection", connection_id="0"),
        _alert("conn-int-0-b", user, t, type="connection", connection_id=0),
        _alert("no-malsite", user, t, type="malsite"),
        _alert("null-malsite", user, t, type="malsite", malsite_id=None),
        _alert("keyed", user, t, type="connection", connection_id=42),
    ]
    links = _map(raws)
    assert set(links) == {r["_id"] for r in raws}
    keys = [link["alert_key"] for link in links.values()]
    assert len(set(keys)) == len(keys), "an alert without a usable id got another alert's key"
    for i, link in links.items():
        assert link["dedup_id"] == (None if i != "keyed" else "42"), i
    # The per-record key is deterministic: the same raw alert re-delivered or re-run maps to the same key.
    again = _map(raws)
    assert {i: link["alert_key"] for i, link in again.items()} == {i: link["alert_key"] for i, link in links.items()}


def test_same_user_and_id_share_a_key_another_user_or_tenant_does_not() -> None:
    raws = [
        _alert("c1", "ana@example.org", _at(0, 1), type="connection", connection_id=777),
        _alert("c2", "ana@example.org", _at(0, 50), type="connection", connection_id="777"),
        _alert("c3", "bo@example.org", _at(0, 2), type="connection", connection_id=777),
        _alert("c4", None, _at(0, 3), type="connection", connection_id=777),
        # Same id value under another kind is another alert.
        _alert("m1", "ana@example.org", _at(0, 4), type="malsite", malsite_id="777"),
    ]
    links = _map(raws)
    assert links["c1"]["alert_key"] == links["c2"]["alert_key"]
    distinct = {links[i]["alert_key"] for i in ("c1", "c3", "c4", "m1")}
    assert len(distinct) == 4
    other_tenant = _map(raws, tenant="globex")
    assert other_tenant["c1"]["alert_key"] != links["c1"]["alert_key"]
    assert other_tenant["c1"]["alert_key"] == other_tenant["c2"]["alert_key"]


def test_an_id_of_any_json_type_keys_by_its_json_text() -> None:
    t = _at(0, 30)
    values = [777, 7.5, True, {"id": 1, "site": "x"}, [1, 2], "naïve id", -3]
    links = _map([
        _alert(f"v{i}", "ana@example.org", t, type="malsite", malsite_id=value) for i, value in enumerate(values)
    ])
    assert [links[f"v{i}"]["dedup_id"] for i in range(len(values))] == [
        "777", "7.5", "true", '{"id":1,"site":"x"}', "[1,2]", "naïve id", "-3"
    ]


def test_map_window_stages_links_without_raw_and_each_keys_latest_raw_alert_once(tmp_path) -> None:
    """From the collect task's ``alert_fields``."""
    from airflow.sdk import ObjectStoragePath

    from seccollect.staging.store import StagingWriter, read_batch
    from seccollect.vendors.netskope.alert_mapping import alert_fields, map_window

    def iter_batches(batches, table):
        return (read_batch(b) for b in batches if b.table == table)

    ana = "ana@example.org"
    raws = [
        _alert("k1-old", ana, _at(0, 1), type="breach", breach_id="b-1"),
        _alert("dlp", ana, _at(0, 2), type="nspolicy", alert_type="DLP"),
        _alert("k1-new", ana, _at(0, 9), type="breach", breach_id="b-1"),  # latest of K1, in part 2
        _alert("k2-a", ana, _at(0, 5), type="malsite", malsite_id="m-9"),
        _alert("k2-b", ana, _at(0, 5), type="malsite", malsite_id="m-9"),  # K2: a tie on event time
        _alert("k1-new", ana, _at(0, 9), type="breach", breach_id="b-1"),  # re-delivered in part 3
        _alert("k1-mid", ana, _at(0, 4), type="breach", breach_id="b-1"),
    ]
    collect = StagingWriter(ObjectStoragePath(f"file://{tmp_path}/collect"), part_rows=2)
    collect.derive("syslog", "alert_fields", alert_fields)
    for row in _syslog_rows(raws):
        collect.add("syslog", row)
    syslog = collect.close()
    assert len([b for b in syslog if b.table == "syslog"]) == 4
    writer = StagingWriter(ObjectStoragePath(f"file://{tmp_path}/map"))
    assert map_window(syslog, writer) == 6  # every mapped raw alert, the re-delivery too
    staged = writer.close()
    links = [row for part in iter_batches(staged, "alert_sources") for row in part.to_pylist()]
    latest = [row for part in iter_batches(staged, "alert_latest") for row in part.to_pylist()]
    assert len(links) == 6 and "raw" not in links[0]
    by_key = {row["alert_key"]: row for row in latest}
    assert len(by_key) == len(latest) == 2, "one latest link per key, a re-delivered record taken once"
    k1 = next(link["alert_key"] for link in links if link["record_id"] == _rid("k1-old"))
    k2 = next(link["alert_key"] for link in links if link["record_id"] == _rid("k2-a"))
    assert by_key[k1]["record_id"] == _rid("k1-new") and json.loads(by_key[k1]["raw"])["_id"] == "k1-new"
    assert by_key[k1]["event_time"] == _at(0, 9)
    tie = max(_rid("k2-a"), _rid("k2-b"))  # the greatest record_id, as the warehouse's recompute
    assert by_key[k2]["record_id"] == tie
    assert json.loads(by_key[k2]["raw"])["_id"] == ("k2-a" if tie == _rid("k2-a") else "k2-b")


# --- warehouse scenario ---------------------------------------------------------------------------

ANA, BO = "ana@example.org", "bo@example.org"
WINDOWS = {1: (_at(0), _at(1)), 2: (_at(1), _at(2)), 3: (_at(2), _at(3))}

#: Raw alerts per window: (tenant, raw). Comments name the Alerts key each belongs to.
SCENARIO: dict[int, list[tuple[str, dict[str, Any]]]] = {
    1: [
        ("acme", _alert("a01", ANA, _at(0, 10), type="breach", breach_id="b-1")),  # K1
        ("acme", _alert("a04", ANA, _at(0, 20), type="connection", connection_id=777)),  # K2
        ("acme", _alert("a07", BO, _at(0, 30), type="malsite", malsite_id="m-9")),  # K4
        ("acme", _alert("a11", ANA, _at(0, 40), type="connection", connection_id=0)),  # unkeyed
    ],
    2: [
        ("acme", _alert("a02", ANA, _at(1, 20), type="breach", breach_id="b-1")),  # K1
        ("acme", _alert("a05", ANA, _at(1, 30), type="connection", connection_id=777)),  # K2
        ("acme", _alert("a06", BO, _at(1, 40), type="connection", connection_id=777)),  # K3
        ("globex", _alert("a10", ANA, _at(1, 50), type="breach", breach_id="b-1")),  # K5
        ("acme", _alert("a12", ANA, _at(1, 45), type="connection", connection_id=0)),  # unkeyed
        ("acme", _alert("a14", ANA, _at(1, 55), type="nspolicy", alert_type="DLP")),  # not mapped
    ],
    3: [
        ("acme", _alert("a03", ANA, _at(2, 30), type="breach", breach_id="b-1")),  # K1
        # Inserted late: its event time is earlier than anything else of K1.
        ("acme", _alert("a13", ANA, _at(0, 5), type="nspolicy", alert_type="Compromised Credential",
                        breach_id="b-1")),  # K1
        # A re-delivery of a04 (same _id): one raw alert, counted once.
        ("acme", _alert("a04", ANA, _at(0, 20), type="connection", connection_id=777)),  # K2
        ("acme", _alert("a08", BO, _at(2, 10), type="malsite", malsite_id="m-9")),  # K4
        ("acme", _alert("a09", BO, _at(2, 10), type="malsite", malsite_id="m-9")),  # K4, same second
    ],
}


def _rid(_id: str, tenant: str = "acme") -> str:
    return make_record_id(tenant, MSG_CLASS, _id)


def _stage_and_load(wh, tmp_path, window_no: int, attempt: int):
    """Stage one window like collect + map_alerts do, then load it (one transaction)."""
    from airflow.sdk import ObjectStoragePath

    from seccollect.staging.store import StagingWriter
    from seccollect.vendors.netskope.alert_load import recompute_alerts
    from seccollect.vendors.netskope.alert_mapping import alert_fields, map_window
    from seccollect.warehouse.base import WindowKey

    window = WINDOWS[window_no]
    base = f"file://{tmp_path}/staging/w{window_no}-{attempt}"
    collect = StagingWriter(ObjectStoragePath(f"{base}/collect_alert"))
    collect.derive("syslog", "alert_fields", alert_fields)
    for tenant, raw in SCENARIO[window_no]:
        for row in _syslog_rows([raw], tenant, window):
            collect.add("syslog", row)
    raw_batches = collect.close()
    mapping = StagingWriter(ObjectStoragePath(f"{base}/map_alerts"))
    map_window(raw_batches, mapping)
    batches = raw_batches + mapping.close()
    key = WindowKey("acme-netskope-unit", "alert", *window)
    return wh.load_window(key, batches, run_id=f"w{window_no}-{attempt}", post_load=recompute_alerts)


def _alerts(wh) -> dict[tuple[str, str, str | None, str | None], tuple]:
    """Alerts rows keyed by (tenant, kind, user, dedup_id); unkeyed rows by their latest raw _id."""
    out, record_ids = {}, set()
    for tenant, kind, user, dedup, first, last, count, latest, raw, event_time, record_id in wh.query(
        "SELECT tenant, alert_kind, user_name, dedup_id, first_seen, last_seen, raw_count, latest_record_id, raw, "
        "event_time, record_id FROM alerts"
    ):
        raw = raw if isinstance(raw, dict) else json.loads(raw)
        latest, record_id = latest.hex, record_id.hex  # uuid columns come back as uuid.UUID
        # The row carries the latest raw alert behind the key, and is dated by it.
        assert make_record_id(tenant, MSG_CLASS, raw["_id"]) == latest
        assert event_time == last
        key = (tenant, kind, user, dedup if dedup is not None else "unkeyed:" + raw["_id"])
        assert key not in out, f"two Alerts rows for {key}"
        out[key] = (first, last, count, latest)
        record_ids.add(record_id)
    keys = {r[0].hex for r in wh.query("SELECT DISTINCT alert_key FROM alert_sources")}
    assert record_ids == keys, "every key with links has exactly one Alerts row, identified by the key"
    return out


EXPECTED_AFTER_2 = {
    ("acme", "breach", ANA, "b-1"): (_at(1, 20), _at(1, 20), 1, _rid("a02")),
    ("acme", "connection", ANA, "777"): (_at(1, 30), _at(1, 30), 1, _rid("a05")),
    ("acme", "connection", BO, "777"): (_at(1, 40), _at(1, 40), 1, _rid("a06")),
    ("globex", "breach", ANA, "b-1"): (_at(1, 50), _at(1, 50), 1, _rid("a10", "globex")),
    ("acme", "connection", ANA, "unkeyed:a12"): (_at(1, 45), _at(1, 45), 1, _rid("a12")),
}
EXPECTED_AFTER_2_3 = {
    **EXPECTED_AFTER_2,
    ("acme", "breach", ANA, "b-1"): (_at(0, 5), _at(2, 30), 3, _rid("a03")),
    ("acme", "connection", ANA, "777"): (_at(0, 20), _at(1, 30), 2, _rid("a05")),
    # Two raw alerts in the same second: the tie is broken by record_id, the same way on every load.
    ("acme", "malsite", BO, "m-9"): (_at(2, 10), _at(2, 10), 2, max(_rid("a08"), _rid("a09"))),
}
EXPECTED_FINAL = {
    **EXPECTED_AFTER_2_3,
    ("acme", "breach", ANA, "b-1"): (_at(0, 5), _at(2, 30), 4, _rid("a03")),
    ("acme", "connection", ANA, "777"): (_at(0, 20), _at(1, 30), 2, _rid("a05")),
    ("acme", "malsite", BO, "m-9"): (_at(0, 30), _at(2, 10), 3, max(_rid("a08"), _rid("a09"))),
    ("acme", "connection", ANA, "unkeyed:a11"): (_at(0, 40), _at(0, 40), 1, _rid("a11")),
}


@pytest.mark.parametrize("warehouse_conn", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_alerts_exact_across_out_of_order_windows_and_rerun(open_test_warehouse, tmp_path) -> None:
    with open_test_warehouse() as wh:
        report = _stage_and_load(wh, tmp_path, 2, attempt=1)
        assert report.tables["syslog"].inserted == 6
        assert _alerts(wh) == EXPECTED_AFTER_2

        _stage_and_load(wh, tmp_path, 3, attempt=1)
        assert _alerts(wh) == EXPECTED_AFTER_2_3

        _stage_and_load(wh, tmp_path, 1, attempt=1)
        assert _alerts(wh) == EXPECTED_FINAL
        before = sorted(wh.query("SELECT record_id, raw_count, first_seen, last_seen, latest_record_id FROM alerts"))

        rerun = _stage_and_load(wh, tmp_path, 2, attempt=2)
        assert rerun.tables["syslog"].inserted == 0
        assert rerun.tables["syslog"].duplicates == 6
        assert _alerts(wh) == EXPECTED_FINAL
        assert sorted(wh.query(
            "SELECT record_id, raw_count, first_seen, last_seen, latest_record_id FROM alerts")) == before

        # Syslog holds each distinct raw alert once (a04 was delivered twice), mapped or not.
        syslog = wh.query("SELECT tenant, vendor_id FROM syslog")
        assert len(syslog) == 14
        assert {v for _, v in syslog} == {f"a{i:02d}" for i in range(1, 15)}
        (links,) = wh.query("SELECT count(*) FROM alert_sources")[0]
        assert links == 13, "one link per distinct mapped raw alert (a14 is DLP)"


def test_alert_fields_out_of_step_with_their_syslog_part_are_refused() -> None:
    from seccollect.vendors.netskope.alert_mapping import alert_fields, with_fields

    raws = [_alert(f"s{i}", ANA, _at(0, i), type="breach", breach_id="b-1") for i in range(3)]
    rows = _syslog_rows(raws)
    assert with_fields(_table(rows), alert_fields(_table(rows))).num_rows == 3
    with pytest.raises(ValueError, match="out of step"):
        with_fields(_table(rows), alert_fields(_table(rows[1:] + rows[:1])))
    with pytest.raises(ValueError, match="out of step"):
        with_fields(_table(rows), alert_fields(_table(rows[:2])))
