"""Vendor values into warehouse values, or a reason why not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seccollect.records.quarantine import RecordError
from seccollect.records.values import check_bigint, check_text, epoch_seconds, iso_time


@pytest.mark.parametrize(("value", "expected"), [
    (1772323200, datetime(2026, 3, 1, tzinfo=UTC)),
    ("1772323200", datetime(2026, 3, 1, tzinfo=UTC)),
    (1772323200.5, datetime(2026, 3, 1, 0, 0, 0, 500000, tzinfo=UTC)),
])
def test_epoch_seconds(value, expected) -> None:
    assert epoch_seconds(value, "t") == expected


@pytest.mark.parametrize("value", [10**14, -10**14, "soon", None, [], True, float("inf")])
def test_epoch_seconds_refuses_what_is_not_a_storable_unix_time(value) -> None:
    with pytest.raises(RecordError, match="^t "):
        epoch_seconds(value, "t")


def test_iso_time_reads_zones_and_defaults_to_utc() -> None:
    assert iso_time("2026-03-01T01:00:00+01:00", "t") == datetime(2026, 3, 1, tzinfo=UTC)
    assert iso_time("2026-03-01T00:00:00Z", "t") == iso_time("2026-03-01 00:00:00", "t")
    with pytest.raises(RecordError):
        iso_time("yesterday", "t")


def test_text_and_integers() -> None:
    assert check_text("naïve", "x") == "naïve"
    with pytest.raises(RecordError, match="character 1"):
        check_text("a\udc80", "x")
    assert check_bigint(2**63 - 1, "n") == 2**63 - 1
    with pytest.raises(RecordError, match="64-bit"):
        check_bigint(2**63, "n")
