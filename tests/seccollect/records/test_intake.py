"""RecordIntake: every record a window cannot handle becomes a quarantine entry with its reason and its
bytes; the rest of the window is staged, and what is staged stores the same on both warehouses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seccollect.records.envelope import EnvelopeContext, MsgOrigin, make_record_id
from seccollect.records.intake import RecordFields, RecordIntake
from seccollect.records.quarantine import text_bytes
from seccollect.records.values import epoch_seconds, required
from seccollect.staging.store import StagingWriter, read_batch, window_folder

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(minutes=5)
ORIGIN = MsgOrigin("acme_event", "acme", "acme", "testing")

pytestmark = pytest.mark.usefixtures("staging")


def extract(raw: dict[str, Any]) -> RecordFields:
    required(raw, "user")
    ts = raw.get("timestamp")
    typed = {"assets": {"asset_id": raw["host"], "hostname": raw["host"]}} if "host" in raw else {}
    return RecordFields(str(raw["_id"]) if raw.get("_id") else None, epoch_seconds(ts, "timestamp") if ts is not None else None, typed)


def intake(records: list[Any]) -> tuple[RecordIntake, dict[str, list[dict[str, Any]]]]:
    writer = StagingWriter(window_folder("acme-acme-x", START, END, "collect_event"))
    envelope = EnvelopeContext("acme", "x", "event", START, END, START)
    records_in = RecordIntake(writer, envelope, ORIGIN)
    for n, raw in enumerate(records, 1):
        records_in.add(raw, extract, where=f"page 1, record {n}")
    staged: dict[str, list[dict[str, Any]]] = {}
    for batch in writer.close():
        staged.setdefault(batch.table, []).extend(read_batch(batch).to_pylist())
    return records_in, staged


GOOD = [{"_id": f"g{i}", "timestamp": 1772323200 + i, "user": "ana"} for i in range(5)]

POISON = {
    "a string": ("oops, not an object", "the record is a string, not a JSON object"),
    "null": (None, "the record is null, not a JSON object"),
    "a list": ([1, 2], "the record is a list, not a JSON object"),
    "an ISO-string timestamp": ({"_id": "p1", "user": "x", "timestamp": "2026-03-01T00:00:00Z"}, "timestamp '2026-03-01T00:00:00Z' is not a Unix time"),
    "a timestamp of 10^14": ({"_id": "p2", "user": "x", "timestamp": 10**14}, "timestamp 100000000000000 is out of range"),
    "a boolean timestamp": ({"_id": "p3", "user": "x", "timestamp": True}, "timestamp True is not a Unix time"),
    "a lone surrogate": ({"_id": "p4", "timestamp": 1, "user": "\ud800"}, "not valid UTF-8 (or a lone surrogate)"),
    "bytes that are not UTF-8": ({"_id": "p5", "timestamp": 1, "user": b"caf\xe9".decode("utf-8", "surrogateescape")},
                                 "not valid UTF-8"),
    "NaN": ({"_id": "p6", "timestamp": 1, "user": "x", "score": float("nan")}, "Out of range float values are not JSON compliant"),
    "a missing required field": ({"_id": "p7", "timestamp": 1}, "the record has no 'user' (a required field)"),
    "a typed value of the wrong type": ({"_id": "p8", "timestamp": 1, "user": "x", "host": {"n": 1}}, "asset_id {'n': 1} is not text"),
}


@pytest.mark.parametrize("name", list(POISON))
def test_a_poison_record_is_quarantined_with_its_reason_and_the_rest_is_staged(name: str) -> None:
    poison, reason = POISON[name]
    records_in, staged = intake([*GOOD[:2], poison, *GOOD[2:]])
    assert (records_in.received, records_in.staged, records_in.quarantined) == (6, 5, 1)
    assert [r["vendor_id"] for r in staged["syslog"]] == [g["_id"] for g in GOOD]
    (entry,) = staged["quarantine_entries"]
    assert reason in entry["reason"] and "(page 1, record 3)" in entry["reason"]
    assert entry["source_ref"].startswith("event:")
    assert entry["raw_bytes"] and len(entry["raw_sha256"]) == 64


def test_quarantined_bytes_are_the_original_bytes_shown_readably() -> None:
    raw = {"_id": "p5", "timestamp": 1, "user": b"caf\xe9\x00".decode("utf-8", "surrogateescape")}
    _, staged = intake([raw])
    (entry,) = staged["quarantine_entries"]
    assert entry["source_ref"] == "event:p5"
    assert "caf\\xe9" in entry["raw"] and "\x00" not in entry["raw"]  # every warehouse can store it
    original = text_bytes(json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    assert b"caf\xe9" in original and entry["raw_bytes"] == len(original)


def test_a_nul_character_is_kept_escaped_in_text_columns_and_as_json_in_raw() -> None:
    _, staged = intake([{"_id": "n\x001", "timestamp": 1, "user": "a\x00b", "host": "h\x00st"}])
    (row,) = staged["syslog"]
    assert row["vendor_id"] == "n\\u00001"
    assert json.loads(row["raw"])["user"] == "a\x00b"  # the JSON escape: the exact value survives
    (asset,) = staged["assets"]
    assert asset["asset_id"] == "h\\u0000st" and asset["record_id"] == row["record_id"]


def test_a_record_without_an_id_is_identified_by_its_content() -> None:
    _, staged = intake([{"timestamp": 1, "user": "ana"}, {"timestamp": 1, "user": "ana"}])
    first, second = staged["syslog"]
    assert first["vendor_id"] is None and first["record_id"] == second["record_id"]


def test_a_large_quarantined_record_keeps_only_its_hash_and_size(tmp_path: Path) -> None:
    _, staged = intake([{"_id": "big", "user": "ana", "timestamp": "x" * 100_000}])
    (entry,) = staged["quarantine_entries"]
    assert entry["raw"] is None and entry["raw_bytes"] > 100_000 and entry["raw_sha256"]


def versioned_extract(raw: dict[str, Any]) -> RecordFields:
    fields = extract(raw)
    typed = {**fields.typed, **raw.get("typed", {})}  # e.g. a typed value naming an envelope column
    return RecordFields(fields.vendor_id, fields.event_time, typed, version=raw.get("v"))


def test_add_many_stages_exactly_what_add_stages_record_by_record() -> None:
    # Records with and without an id, a version, a row in a second table for some, and poison among them;
    # parts of 4 rows, so part boundaries fall inside and across the batches.
    records: list[Any] = []
    for i in range(23):
        record: dict[str, Any] = {"_id": f"r{i}", "timestamp": 1772323200 + i, "user": "ana"}
        if i % 3 == 0:
            record["host"] = f"h{i}"
        if i % 5 == 0:
            record["v"] = f"2026-03-0{1 + i % 7}"
        if i % 7 == 0:
            del record["_id"]
        records.append(record)
    records[8]["typed"] = {"syslog": {"vendor_id": "renamed"}}
    records[9]["typed"] = {"assets": {"asset_id": "a9", "tenant": "other", "raw": "{}"}}
    records[4:4] = [POISON[name][0] for name in ("null", "a lone surrogate", "a typed value of the wrong type")]
    records.append(POISON["a missing required field"][0])

    def staged_by(use_many: bool) -> tuple[tuple[int, int, int], dict[str, list[list[dict[str, Any]]]]]:
        writer = StagingWriter(window_folder("acme-acme-x", START, END, f"collect_{use_many}"), part_rows=4)
        records_in = RecordIntake(writer, EnvelopeContext("acme", "x", "event", START, END, START), ORIGIN)
        if use_many:
            assert records_in.add_many(records[:10], versioned_extract, where="page 1") == 7
            records_in.add_many(records[10:], versioned_extract, where="page 2")
        else:
            for n, raw in enumerate(records[:10], 1):
                records_in.add(raw, versioned_extract, where=f"page 1, record {n}")
            for n, raw in enumerate(records[10:], 1):
                records_in.add(raw, versioned_extract, where=f"page 2, record {n}")
        parts: dict[str, list[list[dict[str, Any]]]] = {}
        for batch in writer.close():
            parts.setdefault(batch.table, []).append(read_batch(batch).to_pylist())
        return (records_in.received, records_in.staged, records_in.quarantined), parts

    counts, parts = staged_by(True)
    assert counts == (27, 23, 4)
    assert (counts, parts) == staged_by(False)
    assert [len(part) for part in parts["syslog"]] == [4, 4, 4, 4, 4, 3]
    assets = [row for part in parts["assets"] for row in part]
    assert [row["asset_id"] for row in assets] == ["h0", "h3", "h6", "a9", "h12", "h15", "h18", "h21"]
    assert [(row["tenant"], row["raw"]) for row in assets if row["asset_id"] == "a9"] == [("other", "{}")]
    assert {row["tenant"] for row in assets if row["asset_id"] != "a9"} == {"acme"}
    assert "renamed" in [row["vendor_id"] for part in parts["syslog"] for row in part]
    reasons = [entry["reason"] for part in parts["quarantine_entries"] for entry in part]
    assert reasons[0].endswith("(page 1, record 5)") and reasons[-1].endswith("(page 2, record 17)")
    ids = {row["vendor_id"]: row["record_id"] for part in parts["syslog"] for row in part}
    # A record with a version is identified by its id and its version; one without, by its id alone.
    assert ids["r5"] == make_record_id("acme", "acme_event", "r5\x1f2026-03-06")
    assert ids["r4"] == make_record_id("acme", "acme_event", "r4")


def test_texts_a_vendor_made_are_staged_as_given_and_a_missing_one_is_made() -> None:
    from seccollect.records.envelope import canonical_json
    from seccollect.records.intake import TextedRecords

    records = [{"_id": "t1", "timestamp": 1, "user": "ana"}, {"_id": "t2", "timestamp": 2, "user": "bo"}, "poison"]
    # The intake does not serialise a record whose text it is given (here told apart by its spacing).
    given = TextedRecords(records, [json.dumps(records[0]), None, None])
    writer = StagingWriter(window_folder("acme-acme-x", START, END, "collect_texts"))
    records_in = RecordIntake(writer, EnvelopeContext("acme", "x", "event", START, END, START), ORIGIN)
    assert records_in.add_many(given, extract, where="page 1") == 2
    staged = {batch.table: read_batch(batch).to_pylist() for batch in writer.close()}
    assert [row["raw"] for row in staged["syslog"]] == [json.dumps(records[0]), canonical_json(records[1])]
    assert staged["quarantine_entries"][0]["reason"].endswith("(page 1, record 3)")
    with pytest.raises(ValueError, match="2 records but 1 texts"):
        TextedRecords(records[:2], ["{}"])
