"""Prefix validation, window expansion, account discovery and key selection for the AWS connector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seccollect.vendors.aws.prefix_pattern import (
    DEFAULT_LOOKBACK,
    PrefixError,
    expand,
    expand_all,
    is_log_object,
    key_time,
    parse_prefix,
    validate_prefix,
)

Z = timedelta(0)


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


CT = "AWSLogs/111122223333/CloudTrail/us-east-1"
CT_ORG = "AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1"
CT_TOWER = "o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/*/CloudTrail/us-east-1"
VPC = "AWSLogs/111122223333/vpcflowlogs/eu-west-1"
VPC_HIVE = "AWSLogs/aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=eu-west-1"
WAF = "AWSLogs/111122223333/WAFLogs/us-east-1/TEST-WEBACL"


# ------------------------------------------------------------------------------------------------
# standard forms (no date variables): the standard date folders are appended
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [CT, CT_ORG, f"my/extra/prefix/{CT}"])
def test_cloudtrail_forms_one_prefix_per_day_across_year_boundary(prefix: str) -> None:
    got = expand(prefix, "cloudtrail", t(2024, 12, 31, 23, 55), t(2025, 1, 1, 0, 5), Z)
    assert got == [f"{prefix}/2024/12/31/", f"{prefix}/2025/01/01/"]


def test_cloudtrail_window_inside_one_day_is_one_prefix_and_hour_boundary_changes_nothing() -> None:
    assert expand(CT, "cloudtrail", t(2025, 3, 4, 9, 55), t(2025, 3, 4, 10, 5), Z) == [f"{CT}/2025/03/04/"]


def test_cloudtrail_month_boundary_and_leap_day() -> None:
    got = expand(CT, "cloudtrail", t(2024, 2, 28, 23, 0), t(2024, 3, 1, 0, 10), Z)
    assert got == [f"{CT}/2024/02/28/", f"{CT}/2024/02/29/", f"{CT}/2024/03/01/"]


def test_full_days_and_months_collapse_to_the_coarser_folder() -> None:
    # a backfill of all of February plus the edges lists Feb as one prefix, not 29
    got = expand(CT, "cloudtrail", t(2024, 1, 31, 12, 0), t(2024, 3, 1, 6, 0), Z)
    assert got == [f"{CT}/2024/01/31/", f"{CT}/2024/02/", f"{CT}/2024/03/01/"]
    assert expand(CT, "cloudtrail", t(2023, 1, 1), t(2024, 1, 1), Z) == [f"{CT}/2023/"]


def test_vpcflow_default_and_hive_layouts() -> None:
    assert expand(VPC, "vpcflow", t(2024, 12, 31, 23, 50), t(2025, 1, 1, 0, 0), Z) == [f"{VPC}/2024/12/31/"]
    assert expand(VPC_HIVE, "vpcflow", t(2024, 12, 31, 23, 50), t(2025, 1, 1, 0, 5), Z) == [
        f"{VPC_HIVE}/year=2024/month=12/day=31/",
        f"{VPC_HIVE}/year=2025/month=01/day=01/",
    ]


def test_waf_standard_layout_is_per_minute_and_crosses_hour_day_month_year() -> None:
    got = expand(WAF, "waf", t(2024, 12, 31, 23, 58), t(2025, 1, 1, 0, 2), Z)
    assert got == [
        f"{WAF}/2024/12/31/23/58/",
        f"{WAF}/2024/12/31/23/59/",
        f"{WAF}/2025/01/01/00/00/",
        f"{WAF}/2025/01/01/00/01/",
    ]


def test_waf_full_hour_is_one_prefix() -> None:
    assert expand(WAF, "waf", t(2021, 10, 28, 19, 0), t(2021, 10, 28, 20, 0), Z) == [f"{WAF}/2021/10/28/19/"]
    got = expand(WAF, "waf", t(2021, 10, 28, 18, 58), t(2021, 10, 28, 20, 1), Z)
    assert got == [
        f"{WAF}/2021/10/28/18/58/",
        f"{WAF}/2021/10/28/18/59/",
        f"{WAF}/2021/10/28/19/",
        f"{WAF}/2021/10/28/20/00/",
    ]


def test_unaligned_window_edges_include_the_partial_periods() -> None:
    got = expand(WAF, "waf", t(2021, 10, 28, 19, 50, 30), t(2021, 10, 28, 19, 51, 0, 1), Z)
    assert got == [f"{WAF}/2021/10/28/19/50/", f"{WAF}/2021/10/28/19/51/"]


def test_lookback_reaches_into_the_previous_day_folder() -> None:
    start, end = t(2025, 1, 1, 0, 10), t(2025, 1, 1, 0, 15)
    assert expand(VPC, "vpcflow", start, end, Z) == [f"{VPC}/2025/01/01/"]
    assert expand(VPC, "vpcflow", start, end, timedelta(minutes=30)) == [
        f"{VPC}/2024/12/31/",
        f"{VPC}/2025/01/01/",
    ]
    # default look-back per sub type
    assert DEFAULT_LOOKBACK["vpcflow"] >= timedelta(minutes=15)
    assert expand(VPC, "vpcflow", start, end) == [f"{VPC}/2024/12/31/", f"{VPC}/2025/01/01/"]
    got = expand(WAF, "waf", t(2025, 1, 1, 0, 3), t(2025, 1, 1, 0, 5), timedelta(minutes=4))
    assert got[0] == f"{WAF}/2024/12/31/23/59/" and got[-1] == f"{WAF}/2025/01/01/00/04/" and len(got) == 6


def test_empty_window_and_bad_windows() -> None:
    assert expand(CT, "cloudtrail", t(2025, 1, 1), t(2025, 1, 1), Z) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        expand(CT, "cloudtrail", datetime(2025, 1, 1), t(2025, 1, 2), Z)
    with pytest.raises(ValueError, match="before window_start"):
        expand(CT, "cloudtrail", t(2025, 1, 2), t(2025, 1, 1), Z)
    with pytest.raises(ValueError, match="negative"):
        expand(CT, "cloudtrail", t(2025, 1, 1), t(2025, 1, 2), timedelta(minutes=-1))


def test_non_utc_windows_are_converted() -> None:
    from datetime import timezone

    cet = timezone(timedelta(hours=1))
    # 00:30 CET on Jan 1 is 23:30 UTC on Dec 31
    got = expand(
        CT, "cloudtrail", datetime(2025, 1, 1, 0, 30, tzinfo=cet), datetime(2025, 1, 1, 0, 40, tzinfo=cet), Z
    )
    assert got == [f"{CT}/2024/12/31/"]


# ------------------------------------------------------------------------------------------------
# date variables
# ------------------------------------------------------------------------------------------------


def test_guide_example_renders_as_documented() -> None:
    pattern = "CustomPrefix/year=///YYYY///month=///mm///day=///dd//"
    assert expand(pattern, "waf", t(2020, 10, 27, 12), t(2020, 10, 27, 12, 5), Z) == [
        "CustomPrefix/year=/2020/month=/10/day=/27/"
    ]


@pytest.mark.parametrize(
    ("pattern", "start", "end", "expected"),
    [
        # //YYYY// alone: one prefix per year
        ("c/y=//YYYY//", t(2024, 12, 31, 23, 59), t(2025, 1, 1, 0, 1), ["c/y=2024/", "c/y=2025/"]),
        # //m// (unpadded) vs //mm// across a month boundary
        ("c/y=//YYYY///m=//m//", t(2024, 9, 30, 23), t(2024, 10, 1, 1), ["c/y=2024/m=10/", "c/y=2024/m=9/"]),
        (
            "c/y=//YYYY///m=//mm//",
            t(2024, 9, 30, 23),
            t(2024, 10, 1, 1),
            ["c/y=2024/m=09/", "c/y=2024/m=10/"],
        ),
        # //d// vs //dd// across a month and year boundary
        (
            "c///YYYY/////m/////d//",
            t(2024, 12, 31, 22),
            t(2025, 1, 1, 2),
            ["c/2024/12/31/", "c/2025/1/1/"],
        ),
        (
            "c///YYYY/////mm/////dd//",
            t(2024, 12, 31, 22),
            t(2025, 1, 1, 2),
            ["c/2024/12/31/", "c/2025/01/01/"],
        ),
        # //H// vs //HH// across a day boundary
        (
            "c/dt=//YYYY//-//mm//-//dd///h=//H//",
            t(2025, 1, 1, 23, 30),
            t(2025, 1, 2, 1, 30),
            ["c/dt=2025-01-01/h=23/", "c/dt=2025-01-02/h=0/", "c/dt=2025-01-02/h=1/"],
        ),
        (
            "c/dt=//YYYY//-//mm//-//dd///h=//HH//",
            t(2025, 1, 1, 23, 30),
            t(2025, 1, 2, 1, 30),
            ["c/dt=2025-01-01/h=23/", "c/dt=2025-01-02/h=00/", "c/dt=2025-01-02/h=01/"],
        ),
        # //M// vs //MM// across an hour boundary
        (
            "c///YYYY/////mm/////dd/////HH/////M//",
            t(2025, 6, 30, 23, 58),
            t(2025, 7, 1, 0, 1),
            ["c/2025/06/30/23/58/", "c/2025/06/30/23/59/", "c/2025/07/01/00/0/"],
        ),
        (
            "c///YYYY/////mm/////dd/////HH/////MM//",
            t(2025, 6, 30, 23, 58),
            t(2025, 7, 1, 0, 1),
            ["c/2025/06/30/23/58/", "c/2025/06/30/23/59/", "c/2025/07/01/00/00/"],
        ),
        # variables adjacent to each other (fixed width) and inside a folder name
        (
            "c/dt=//YYYY////mm////dd//",
            t(2025, 2, 28, 23),
            t(2025, 3, 1, 1),
            ["c/dt=20250228/", "c/dt=20250301/"],
        ),
        # a literal after the last variable
        (
            "c/dt=//YYYY//-//mm//-//dd///waf",
            t(2025, 2, 28, 23),
            t(2025, 3, 1, 1),
            ["c/dt=2025-02-28/waf/", "c/dt=2025-03-01/waf/"],
        ),
    ],
)
def test_each_date_variable(pattern: str, start: datetime, end: datetime, expected: list[str]) -> None:
    assert expand(pattern, "waf", start, end, Z) == expected


def test_unpadded_variable_at_the_end_does_not_match_longer_numbers() -> None:
    pattern = "logs/y=//YYYY///m=//m///d=//d//"
    got = expand(pattern, "waf", t(2025, 1, 1, 10), t(2025, 1, 1, 11), Z)
    assert got == ["logs/y=2025/m=1/d=1/"]
    keys = [
        "logs/y=2025/m=1/d=1/a.log",
        "logs/y=2025/m=1/d=10/b.log",
        "logs/y=2025/m=1/d=19/c.log",
        "logs/y=2025/m=10/d=1/d.log",
    ]
    assert [k for k in keys if any(k.startswith(p) for p in got)] == ["logs/y=2025/m=1/d=1/a.log"]


def test_collapse_keeps_the_separator_after_an_unpadded_variable() -> None:
    pattern = "logs/y=//YYYY///m=//m///d=//d///h=//H//"
    got = expand(pattern, "waf", t(2025, 1, 31, 22), t(2025, 2, 2, 0), Z)
    # a full day listed via ".../d=1/h=" can not pick up day 10..19
    assert got == ["logs/y=2025/m=1/d=31/h=22/", "logs/y=2025/m=1/d=31/h=23/", "logs/y=2025/m=2/d=1/h="]


def test_out_of_order_variables_expand_per_unit_without_collapsing() -> None:
    pattern = "c/dt=//dd//-//mm//-//YYYY//"
    got = expand(pattern, "waf", t(2025, 2, 1), t(2025, 3, 2), Z)
    assert len(got) == 29 and "c/dt=01-03-2025/" in got and "c/dt=28-02-2025/" in got


def test_pattern_properties() -> None:
    p = parse_prefix(CT, "cloudtrail")
    assert p.appended_standard_folders and p.granularity == "day" and not p.has_wildcard
    assert parse_prefix(WAF, "waf").granularity == "minute"
    assert parse_prefix("c/h=//YYYY//-//mm//-//dd//T//HH//", "waf").granularity == "hour"
    assert not parse_prefix("c/x=//YYYY//", "waf").appended_standard_folders
    assert validate_prefix(CT, "cloudtrail") == p


# ------------------------------------------------------------------------------------------------
# validation errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "sub_type", "message"),
    [
        (f"{CT}/", "cloudtrail", "ends with '/'"),
        ("c/year=///YYYY///", "waf", "ends with '/'"),
        (f"/{CT}", "cloudtrail", "starts with '/'"),
        ("", "cloudtrail", "empty"),
        (f" {CT}", "cloudtrail", "spaces"),
        (f"s3://bucket/{CT}", "cloudtrail", "S3 URI"),
        ("AWSLogs/1/WAFLogs/us-east-1/acl", "cloudfront", "unknown sub type"),
        ("c/d=//DD//", "waf", "//DD// is not a date variable"),
        ("c/y=//yyyy//", "waf", "not a date variable"),
        ("c//YYYY///mm//", "waf", "malformed date variable"),
        ("c/h=//HH//", "waf", "no year, month, day variable"),
        ("c/y=//YYYY///d=//dd//", "waf", "no month variable"),
        ("c///YYYY////m////d//", "waf", "touches another number"),
        ("c///YYYY/////m//1", "waf", "touches another number"),
        ("o-x/AWSLogs/o-x/*/WAFLogs/us-east-1/acl", "waf", "not supported for sub type 'waf'"),
        ("o-x/AWSLogs/o-x/1*/CloudTrail/us-east-1", "cloudtrail", "whole folder name"),
        ("o-x/AWSLogs/*/*/CloudTrail/us-east-1", "cloudtrail", "must be followed by /CloudTrail/<region>"),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/*", "cloudtrail", "account position"),
        ("AWSLogs/1,2/CloudTrail/us-east-1", "cloudtrail", "only allowed as the region folder"),
        ("AWSLogs/111122223333/CloudTrail/us-east-1,", "cloudtrail", "without spaces or empty items"),
        ("AWSLogs/111122223333/CloudTrail/us-east-1, eu-west-1", "cloudtrail", "without spaces"),
        ("o-x/*/AWSLogs/o-x/1/CloudTrail/us-east-1", "cloudtrail", "account position"),
        ("o-x/AWSLogs/o-x/*/vpcflowlogs/us-east-1", "cloudtrail", "vpcflowlogs path"),
        ("o-x/AWSLogs/o-x/*/CloudTrail", "cloudtrail", "end with the region"),
        ("AWSLogs/111122223333/CloudTrail", "cloudtrail", "end with the region"),
        ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1", "cloudtrail", "CloudTrail-Digest"),
        ("AWSLogs/111122223333/CloudTrail-Insight/us-east-1", "cloudtrail", "Insight files"),
        ("o-x/AWSLogs/111122223333/Config/us-east-1", "cloudtrail", "AWS Config"),
        (VPC, "cloudtrail", "sub type is 'cloudtrail'"),
        (CT, "vpcflow", "choose sub type 'cloudtrail'"),
    ],
)
def test_invalid_prefixes_are_explained(prefix: str, sub_type: str, message: str) -> None:
    with pytest.raises(PrefixError, match=message.replace("*", r"\*").replace("(", r"\(")):
        parse_prefix(prefix, sub_type)


def test_prefix_error_is_a_value_error_with_a_hint() -> None:
    with pytest.raises(ValueError) as info:
        parse_prefix(f"{CT}/", "cloudtrail")
    assert repr(CT) in str(info.value)  # suggests the corrected prefix
    with pytest.raises(PrefixError) as info2:
        parse_prefix("c/d=//DD//", "waf")
    assert "//dd// (2-digit day)" in str(info2.value)  # lists what is allowed


@pytest.mark.parametrize(
    "prefix",
    [
        CT_TOWER,
        "extra/o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/*/CloudTrail/us-east-1",
        "o-a1b2c3d4e5/AWSLogs/*/CloudTrail/us-east-1",  # older Control Tower layout, no middle org id
        "AWSLogs/o-a1b2c3d4e5/*/vpcflowlogs/us-east-1",
    ],
)
def test_wildcard_forms_accepted(prefix: str) -> None:
    sub_type = "vpcflow" if "vpcflowlogs" in prefix else "cloudtrail"
    p = parse_prefix(prefix, sub_type)
    assert p.has_wildcard
    with pytest.raises(PrefixError, match="discover"):
        p.expand(t(2025, 1, 1), t(2025, 1, 2), Z)


# ------------------------------------------------------------------------------------------------
# Control Tower account discovery
# ------------------------------------------------------------------------------------------------

ACCOUNTS = ["111122223333", "444455556666", "777788889999"]


class FakeLister:
    """Stands in for ListObjectsV2(Delimiter='/'), counting calls."""

    def __init__(self, folders: dict[str, list[str]]) -> None:
        self.folders = folders
        self.calls: list[str] = []

    def __call__(self, prefix: str) -> list[str]:
        self.calls.append(prefix)
        return self.folders.get(prefix, [])


def test_discovery_is_one_delimiter_listing_of_the_account_folder() -> None:
    base = "o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/"
    lister = FakeLister({base: [base + a + "/" for a in reversed(ACCOUNTS)]})
    got = expand_all(CT_TOWER, "cloudtrail", t(2025, 1, 1), t(2025, 1, 1, 0, 5), lister, Z)
    assert lister.calls == [base]
    assert got == [f"{base}{a}/CloudTrail/us-east-1/2025/01/01/" for a in ACCOUNTS]


def test_expand_all_list_calls_scale_with_accounts_and_window_not_history() -> None:
    base = "o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/"
    lister = FakeLister({base: ACCOUNTS})  # bare folder names are accepted as well
    got = expand_all(CT_TOWER, "cloudtrail", t(2024, 12, 31, 23, 55), t(2025, 1, 1, 0, 5), lister, Z)
    assert lister.calls == [base]
    assert got == sorted(
        f"{base}{a}/CloudTrail/us-east-1/{day}/" for a in ACCOUNTS for day in ("2024/12/31", "2025/01/01")
    )
    # 1 discovery LIST + accounts x days: 3 x 2 = 6 prefixes to LIST, whatever the bucket holds
    assert len(lister.calls) + len(got) == 7


def test_expand_all_without_wildcard_makes_no_discovery_call() -> None:
    lister = FakeLister({})
    assert expand_all(CT, "cloudtrail", t(2025, 1, 1), t(2025, 1, 1, 0, 5), lister, Z) == [
        f"{CT}/2025/01/01/"
    ]
    assert lister.calls == []
    with pytest.raises(PrefixError, match="list_common_prefixes"):
        expand_all(CT_TOWER, "cloudtrail", t(2025, 1, 1), t(2025, 1, 2), None, Z)


def test_discovery_of_older_control_tower_layout_lists_awslogs() -> None:
    lister = FakeLister({"o-x/AWSLogs/": ["o-x/AWSLogs/o-a1b2c3d4e5/", "o-x/AWSLogs/111122223333/"]})
    skipped: list[str] = []
    got = expand_all(
        "o-x/AWSLogs/*/CloudTrail/eu-west-1", "cloudtrail", t(2025, 1, 1), t(2025, 1, 1, 0, 5), lister, Z, skipped
    )
    # a folder named like an organisation id is never taken for an account
    assert got == ["o-x/AWSLogs/111122223333/CloudTrail/eu-west-1/2025/01/01/"]
    assert skipped == ["o-x/AWSLogs/o-a1b2c3d4e5/"]


def test_region_wildcard_and_region_list() -> None:
    base = "o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/"
    lister = FakeLister({
        base: [base + a + "/" for a in ACCOUNTS[:2]],
        **{f"{base}{a}/CloudTrail/": [f"{base}{a}/CloudTrail/{r}/" for r in ("eu-west-1", "us-east-1")]
           for a in ACCOUNTS[:2]},
    })
    window = (t(2025, 1, 1), t(2025, 1, 1, 0, 5))
    everywhere = expand_all(base + "*/CloudTrail/*", "cloudtrail", *window, lister, Z)
    assert everywhere == [
        f"{base}{a}/CloudTrail/{r}/2025/01/01/" for a in ACCOUNTS[:2] for r in ("eu-west-1", "us-east-1")
    ]
    assert lister.calls == [base, *(f"{base}{a}/CloudTrail/" for a in ACCOUNTS[:2])]
    listed = expand_all(base + "*/CloudTrail/us-east-1,eu-west-1", "cloudtrail", *window, lister, Z)
    assert listed == everywhere
    single = f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/us-east-1,eu-west-1"
    assert expand(single, "vpcflow", *window, Z) == [
        f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/{r}/2025/01/01/" for r in ("eu-west-1", "us-east-1")
    ]
    # key times and the log filter work for every listed region, not for others
    pattern = parse_prefix(base + "*/CloudTrail/us-east-1,eu-west-1", "cloudtrail")
    for region in ("us-east-1", "eu-west-1"):
        key = (f"{base}{ACCOUNTS[0]}/CloudTrail/{region}/2025/01/01/{ACCOUNTS[0]}_CloudTrail_{region}_"
               "20250101T0003Z_abcdefghijklmnop.json.gz")
        assert pattern.folder_time(key) == t(2025, 1, 1)
    assert pattern.folder_time(f"{base}{ACCOUNTS[0]}/CloudTrail/ap-south-1/2025/01/01/x.json.gz") is None


def test_check_layout_names_what_was_found_instead() -> None:
    from seccollect.vendors.aws.prefix_pattern import check_layout

    org = "o-a1b2c3d4e5"
    # A Control Tower bucket with organisation trail layout, AWS Config beside it.
    lister = FakeLister({
        "": [f"{org}/"],
        f"{org}/": [f"{org}/AWSLogs/"],
        f"{org}/AWSLogs/": [f"{org}/AWSLogs/{org}/", *(f"{org}/AWSLogs/{a}/" for a in ACCOUNTS[:2])],
        **{f"{org}/AWSLogs/{a}/": [f"{org}/AWSLogs/{a}/Config/"] for a in ACCOUNTS[:2]},
        f"{org}/AWSLogs/{org}/": [f"{org}/AWSLogs/{org}/{a}/" for a in ACCOUNTS],
        **{f"{org}/AWSLogs/{org}/{a}/": [f"{org}/AWSLogs/{org}/{a}/CloudTrail/",
                                         f"{org}/AWSLogs/{org}/{a}/CloudTrail-Digest/"] for a in ACCOUNTS},
        **{f"{org}/AWSLogs/{org}/{a}/CloudTrail/": [f"{org}/AWSLogs/{org}/{a}/CloudTrail/us-east-1/"]
           for a in ACCOUNTS},
    })
    right = f"{org}/AWSLogs/{org}/*/CloudTrail/us-east-1"
    assert check_layout(right, "cloudtrail", lister, "b") == []
    assert check_layout(f"{org}/AWSLogs/{org}/*/CloudTrail/*", "cloudtrail", lister, "b") == []
    [problem] = check_layout(f"{org}/AWSLogs/*/CloudTrail/us-east-1", "cloudtrail", lister, "b")
    assert f"s3://b/{org}/AWSLogs/{org}/ is an organisation id, never an account" in problem
    assert "Config/" in problem and ACCOUNTS[0] in problem
    assert problem.endswith(f"use the prefix {right!r}")
    [problem] = check_layout(f"{org}/AWSLogs/{org}/*/CloudTrail/eu-west-1", "cloudtrail", lister, "b")
    assert "has no eu-west-1/ folder (found: us-east-1/)" in problem
    [problem] = check_layout(f"AWSLogs/{ACCOUNTS[0]}/CloudTrail/us-east-1", "cloudtrail", lister, "b")
    assert problem.endswith(f"s3://b/ has no AWSLogs/ folder (found: {org}/)")
    # one problem per listed region that does not exist
    assert len(check_layout(f"{org}/AWSLogs/{org}/*/CloudTrail/us-east-1,ap-south-1", "cloudtrail", lister)) == 1


# ------------------------------------------------------------------------------------------------
# key filter and key times
# ------------------------------------------------------------------------------------------------

CT_KEY = f"{CT}/2020/09/11/111122223333_CloudTrail_us-east-1_20200911T1930Z_l2pGqVS53QcGdAkp.json.gz"


@pytest.mark.parametrize(
    ("key", "sub_type", "expected"),
    [
        (CT_KEY, "cloudtrail", True),
        (CT_KEY.replace("_CloudTrail_", "_CloudTrail-Digest_"), "cloudtrail", False),
        (
            "AWSLogs/1/CloudTrail-Digest/us-west-2/2020/09/11/"
            "1_CloudTrail-Digest_us-west-2_leh-ct-test_us-west-2_20200911T193649Z.json.gz",
            "cloudtrail",
            False,
        ),
        (
            "AWSLogs/1/CloudTrail-Insight/us-east-1/2020/09/11/1_CloudTrail-Insight_us-east-1_20200911T1930Z_x.json.gz",
            "cloudtrail",
            False,
        ),
        (
            "AWSLogs/1/CloudTrail-NetworkActivity/us-east-1/2020/09/11/1_CloudTrail_us-east-1_20200911T1930Z_x.json.gz",
            "cloudtrail",
            False,
        ),
        (
            "o-x/AWSLogs/1/Config/ca-central-1/2020/8/31/ConfigHistory/1_Config_ca-central-1_x.json.gz",
            "cloudtrail",
            False,
        ),
        ("o-x/AWSLogs/1/Config/ConfigWritabilityCheckFile", "cloudtrail", False),
        (f"{CT}/2020/09/11/", "cloudtrail", False),
        ("", "cloudtrail", False),
        (f"{CT}/2020/09/11/notes.txt", "cloudtrail", False),
        (
            f"{CT}/2020/09/11/111122223333_CloudTrail_us-east-1_20140620T1255ZHdkvFTXOA3Vnhbc.json.gz",
            "cloudtrail",
            True,
        ),
        (
            f"{VPC}/2020/08/31/123456789012_vpcflowlogs_us-east-1_fl-04af3543c74402594_20200831T1720Z_73d3922a.log.gz",
            "vpcflow",
            True,
        ),
        (CT_KEY, "vpcflow", False),
        (
            f"{WAF}/2021/10/28/19/50/11111111111_waflogs_us-east-1_TEST-WEBACL_20211028T1950Z_e0ca43b5.log.gz",
            "waf",
            True,
        ),
        ("firehose/2021/10/28/19/aws-waf-logs-x-1-2021-10-28-19-50-12-abcd", "waf", True),
        (CT_KEY, "waf", False),
        (f"{WAF}/2021/10/28/19/50/", "waf", False),
    ],
)
def test_is_log_object(key: str, sub_type: str, expected: bool) -> None:
    assert is_log_object(key, sub_type) is expected


def test_key_time_per_sub_type() -> None:
    assert key_time(CT_KEY, "cloudtrail") == t(2020, 9, 11, 19, 30)
    assert key_time(
        f"{CT}/x/1_CloudTrail_us-east-1_20140620T1255ZHdkvFTXOA3Vnhbc.json.gz", "cloudtrail"
    ) == t(2014, 6, 20, 12, 55)
    vpc_key = "x/123456789012_vpcflowlogs_us-east-1_fl-04af3543c74402594_20200831T1720Z_73d3922a.log.gz"
    assert key_time(vpc_key, "vpcflow") == t(2020, 8, 31, 17, 20)
    waf_key = (
        "AWSLogs/11111111111/WAFLogs/us-east-1/TEST-WEBACL/2021/10/28/19/50/"
        "11111111111_waflogs_us-east-1_TEST-WEBACL_20211028T1950Z_e0ca43b5.log.gz"
    )
    assert key_time(waf_key, "waf") == t(2021, 10, 28, 19, 50)
    # custom folders: the WAF file name (ACL name with "_", cloudfront scope) gives the time
    assert key_time("c/x/1_waflogs_cloudfront_my_acl_20250507T0350Z_ab12.log", "waf") == t(2025, 5, 7, 3, 50)
    assert (
        key_time(
            "AWSLogs/1/CloudTrail-Digest/r/2020/09/11/1_CloudTrail-Digest_r_t_r_20200911T193649Z.json.gz",
            "cloudtrail",
        )
        is None
    )
    with pytest.raises(ValueError):
        key_time(CT_KEY, "s3")


def test_pattern_key_time_falls_back_to_date_folders() -> None:
    p = parse_prefix("fh/waf/year=//YYYY///month=//mm///day=//dd///hour=//H//", "waf")
    assert p.key_time(
        "fh/waf/year=2025/month=01/day=02/hour=7/aws-waf-logs-s-1-2025-01-02-07-13-00-uuid"
    ) == t(2025, 1, 2, 7)
    assert p.folder_time("other/2025/01/02/x") is None
    assert p.folder_time("fh/waf/year=2025/month=13/day=02/hour=7/x") is None
    tower = parse_prefix(CT_TOWER, "cloudtrail")
    key = "o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/us-east-1/2025/01/01/odd-name.json.gz"
    assert tower.folder_time(key) == t(2025, 1, 1)
    assert tower.with_account("444455556666").folder_time(key) == t(2025, 1, 1)
    assert tower.with_account("111122223333").folder_time(key) is None
