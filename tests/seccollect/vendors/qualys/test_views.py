"""The Qualys view over Scans: the current status of each finding is its latest version."""

from __future__ import annotations

from datetime import UTC, datetime


def test_the_finding_status_view_keeps_the_latest_version(wh):
    import json

    common = ("acme", "vm", "vulnerabilities", "qualys_vulnerabilities", "qualys_cloud_platform", "qualys",
              "security_scan")
    rows = [
        ("00000000000000000000000000000001", "f1", datetime(2026, 3, 1, 0, 10, tzinfo=UTC), "Active"),
        ("00000000000000000000000000000002", "f1", datetime(2026, 3, 1, 1, 10, tzinfo=UTC), "Fixed"),
        ("00000000000000000000000000000003", "f2", datetime(2026, 3, 1, 0, 20, tzinfo=UTC), "New"),
    ]
    with wh.transaction():
        for record_id, finding, at, status in rows:
            wh.execute(
                "INSERT INTO scans (record_id, tenant, instance, content_type, msg_class, msg_origin_source, "
                "msg_origin_vendor, msg_origin_category, vendor_id, event_time, ingest_time, window_start, window_end, "
                "raw, asset_id, vulnerability_id, severity, status) VALUES (CAST(? AS UUID), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, CAST(? AS JSON), ?, ?, ?, ?)",
                (record_id, *common, finding, at, at, at, at, json.dumps({}), "1", "2", "3", status),
            )
    assert sorted(wh.query("SELECT finding_id, status FROM qualys_finding_status")) == [("f1", "Fixed"), ("f2", "New")]
