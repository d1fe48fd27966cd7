"""Reading Qualys records: identity and version, and the records that are quarantined with their reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seccollect.records.envelope import EnvelopeContext, MsgOrigin
from seccollect.records.intake import RecordIntake
from seccollect.staging.store import StagingWriter, read_batch, window_folder
from seccollect.vendors.qualys.operators import read_detection, read_host

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(hours=1)
HOST = {"ID": "6506432", "IP": "10.10.10.11", "DNS": "2k8r2-u-10-11", "OS": "Windows 2008 R2"}
DETECTION = {"QID": "38170", "PORT": "3389", "PROTOCOL": "tcp", "SSL": "1", "STATUS": "Active", "SEVERITY": "2",
             "LAST_UPDATE_DATETIME": "2026-03-01T00:10:00Z", "LAST_PROCESSED_DATETIME": "2026-03-01T00:20:00Z",
             "HOST": HOST}

pytestmark = pytest.mark.usefixtures("staging")


def test_identity_is_the_unique_vuln_id_else_the_finding_key_and_the_version_its_update():
    fields = read_detection(DETECTION)
    assert fields.vendor_id == "6506432:38170:3389:tcp:1"
    assert (fields.version, fields.event_time) == ("2026-03-01T00:10:00Z", datetime(2026, 3, 1, 0, 10, tzinfo=UTC))
    assert fields.typed["scans"] == {"asset_id": "6506432", "vulnerability_id": "38170", "severity": "2",
                                     "status": "Active"}
    assert read_detection({**DETECTION, "UNIQUE_VULN_ID": "7300112233"}).vendor_id == "uvid:7300112233"
    no_update = {k: v for k, v in DETECTION.items() if k != "LAST_UPDATE_DATETIME"}
    assert read_detection(no_update).version == "2026-03-01T00:20:00Z"
    # A port-less detection (no PORT/PROTOCOL/SSL) still has a stable identity.
    bare = {k: v for k, v in DETECTION.items() if k not in ("PORT", "PROTOCOL", "SSL")}
    assert read_detection(bare).vendor_id == "6506432:38170:::"


def test_a_host_is_its_id_and_its_content_is_its_version():
    fields = read_host(HOST)
    assert fields.vendor_id == "6506432" and fields.typed["assets"]["hostname"] == "2k8r2-u-10-11"
    assert read_host(dict(HOST)).version == fields.version
    assert read_host({**HOST, "OS": "Windows 2012"}).version != fields.version


@pytest.mark.parametrize(("record", "reason"), [
    ({**DETECTION, "QID": ""}, "the detection has no host ID or no QID"),
    ({**DETECTION, "HOST": {"IP": "10.0.0.1"}}, "the detection has no host ID or no QID"),
    ({k: v for k, v in DETECTION.items() if not k.startswith("LAST_")},
     "the detection has neither LAST_UPDATE_DATETIME nor LAST_PROCESSED_DATETIME"),
    ({**DETECTION, "LAST_UPDATE_DATETIME": "yesterday"}, "LAST_UPDATE_DATETIME 'yesterday' is not an ISO 8601 time"),
])
def test_a_detection_that_cannot_be_read_is_quarantined_with_its_reason_and_the_rest_loads(record, reason):
    writer = StagingWriter(window_folder("acme-qualys-x", START, END, "collect_vulnerabilities"))
    intake = RecordIntake(writer, EnvelopeContext("acme", "x", "vulnerabilities", START, END, START),
                          MsgOrigin("qualys_vulnerabilities", "qualys_cloud_platform", "qualys", "security_scan"))
    for position, raw in enumerate([DETECTION, record], 1):
        intake.add(raw, read_detection, where=f"page 1, record {position}")
    staged: dict[str, list] = {}
    for batch in writer.close():
        staged.setdefault(batch.table, []).extend(read_batch(batch).to_pylist())
    assert (intake.staged, intake.quarantined) == (1, 1)
    assert len(staged["syslog"]) == len(staged["scans"]) == 1
    (entry,) = staged["quarantine_entries"]
    assert reason in entry["reason"] and "page 1, record 2" in entry["reason"]
