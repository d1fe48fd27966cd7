"""The typed instance schema: defaults per connector type and the rules a hand-edited file must obey."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from seccollect.config.instance import DEFAULT_START_DATE
from seccollect.vendors.aws.instance import AwsCloudTrailInstance
from seccollect.vendors.netskope.instance import NetskopeInstance

NETSKOPE = {
    "name": "main",
    "tenant": "acme",
    "type": "netskope",
    "conn_id": "netskope_acme",
    "netskope_tenant": "acme",
}
AWS = {
    "name": "trail",
    "tenant": "acme",
    "type": "aws_cloudtrail",
    "conn_id": "aws_acme",
    "sub_type": "cloudtrail",
    "bucket": "logs",
    "prefix": "AWSLogs/123456789012/CloudTrail/us-east-1",
}


def netskope(**overrides) -> NetskopeInstance:
    return NetskopeInstance.model_validate({**NETSKOPE, **overrides})


def test_netskope_defaults() -> None:
    inst = netskope()
    assert inst.interval_minutes is None and inst.interval == 5
    assert inst.selected_content_types == ("alert", "event")
    assert inst.api_version == "v2"
    assert inst.verify_ssl is True and inst.proxy is None and inst.enabled is True
    assert inst.settle_lag_seconds == 300
    assert inst.start_date is None and inst.start == DEFAULT_START_DATE  # not from a file: no file time
    assert inst.catchup is True and inst.retries == 10
    assert inst.warehouse_conn_id == "seccollect_warehouse" and inst.load_pool == "warehouse_loads"
    assert inst.dag_id == "acme-netskope-main"


def test_netskope_explicit_settings_and_stable_content_type_order() -> None:
    inst = netskope(interval_minutes=15, content_types=["tunnels", "alert", "page"], api_version="V2")
    assert inst.interval == 15
    assert inst.api_version == "v2"  # case-insensitive
    # The order is the type's own order, whatever order the file lists them in.
    assert inst.selected_content_types == ("alert", "page", "tunnels")


def test_dag_id_is_lowercase() -> None:
    assert netskope(tenant="ACME", name="Main").dag_id == "acme-netskope-main"


def test_aws_defaults_content_type_is_the_sub_type() -> None:
    inst = AwsCloudTrailInstance.model_validate(AWS)
    assert inst.selected_content_types == ("cloudtrail",)
    assert inst.interval == 5 and inst.file_type == "gzip" and inst.lookback_minutes == 60
    assert inst.dag_id == "acme-aws_cloudtrail-trail"
    with pytest.raises(ValidationError, match="always gzip"):
        AwsCloudTrailInstance.model_validate({**AWS, "file_type": "text"})
    with pytest.raises(ValidationError, match="collects only 'cloudtrail'"):
        AwsCloudTrailInstance.model_validate({**AWS, "content_types": ["waf"]})


@pytest.mark.parametrize("field", ["name", "tenant"])
@pytest.mark.parametrize("value", ["テナント", "acmé", "数据"])
def test_name_and_tenant_must_be_ascii(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match="ASCII only") as info:
        netskope(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("value", ["has space", "-leading", "a/b", "x" * 64, ""])
def test_name_charset_and_length(value: str) -> None:
    with pytest.raises(ValidationError):
        netskope(name=value)


def test_name_accepts_dots_dashes_underscores_up_to_63() -> None:
    assert netskope(name="a.b-c_d").name == "a.b-c_d"
    assert netskope(name="x" * 63).name == "x" * 63


@pytest.mark.parametrize(
    "value", ["companya.goskope.com", "https://companya.goskope.com", "companya/api", "http://companya"]
)
def test_netskope_tenant_url_rejected_with_hint(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        netskope(netskope_tenant=value)
    message = str(info.value)
    assert "looks like a URL or host name" in message
    assert "'companya' for https://companya.goskope.com" in message
    assert info.value.errors()[0]["loc"] == ("netskope_tenant",)


def test_netskope_tenant_plain_name_accepted() -> None:
    assert netskope(netskope_tenant="companya").netskope_tenant == "companya"


@pytest.mark.parametrize("v2_only", [["page"], ["pops"], ["tunnels"], ["alert", "pops"]])
def test_v1_serves_only_alert_and_event(v2_only: list[str]) -> None:
    with pytest.raises(ValidationError, match="need api_version v2"):
        netskope(api_version="v1", content_types=v2_only)
    assert netskope(api_version="v1").selected_content_types == ("alert", "event")
    assert netskope(api_version="v2", content_types=v2_only).selected_content_types


@pytest.mark.parametrize(
    ("content_types", "message"),
    [(["nope"], "not allowed for netskope"), ([], "at least one"), (["alert", "alert"], "listed once")],
)
def test_content_types_rules(content_types: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        netskope(content_types=content_types)


def test_unknown_key_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        NetskopeInstance.model_validate({**NETSKOPE, "intervall_minutes": 10})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval_minutes", 0),
        ("interval_minutes", 1441),
        ("settle_lag_seconds", -1),
        ("retries", 31),
        ("max_active_runs", 0),
    ],
)
def test_numeric_bounds(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        netskope(**{field: value})


def test_start_date_normalised_to_utc() -> None:
    naive = netskope(start_date="2026-01-01T00:00:00")
    assert naive.start_date == datetime(2026, 1, 1, tzinfo=UTC)
    offset = netskope(start_date="2026-01-01T02:00:00+02:00")
    assert (
        offset.start_date == datetime(2026, 1, 1, tzinfo=UTC)
        and offset.start_date.utcoffset().total_seconds() == 0
    )


def test_instances_are_frozen() -> None:
    inst = netskope()
    with pytest.raises(ValidationError):
        inst.name = "other"


@pytest.mark.parametrize("proxy", ["http://user:p4ss@proxy.internal:3128", "http://user@proxy.internal:3128"])
def test_a_proxy_with_credentials_is_refused_without_echoing_them(proxy: str) -> None:
    from pathlib import Path

    from seccollect.config.loader import InstanceFileInvalid, parse_instance

    with pytest.raises(InstanceFileInvalid) as raised:
        parse_instance({**NETSKOPE, "proxy": proxy}, Path("acme-netskope-main.yaml"))
    (error,) = raised.value.errors
    assert error.field == "proxy" and "extra of the Airflow connection named by conn_id" in error.message
    assert "p4ss" not in str(raised.value) and "proxy.internal" not in str(raised.value)  # never echoed


def test_a_proxy_without_credentials_is_kept_and_a_malformed_one_refused() -> None:
    assert netskope(proxy="http://proxy.internal:3128").proxy == "http://proxy.internal:3128"
    with pytest.raises(ValidationError, match="proxy must be a URL"):
        netskope(proxy="proxy.internal:3128")


def test_task_timeout_defaults_to_four_intervals_within_an_hour_and_a_day() -> None:
    from datetime import timedelta

    assert netskope().task_timeout == timedelta(minutes=60)  # 4 x 5 min, at least an hour
    assert netskope(interval_minutes=60).task_timeout == timedelta(hours=4)
    assert netskope(interval_minutes=1440).task_timeout == timedelta(hours=24)
    assert netskope(task_timeout_minutes=15).task_timeout == timedelta(minutes=15)


# --- notify -------------------------------------------------------------------------------------


def test_notify_is_off_by_default_and_takes_mail_and_webhook_settings() -> None:
    assert netskope().notify is None
    inst = netskope(notify={"smtp_conn_id": "smtp_ops", "to": "oncall@example.org", "http_conn_id": "slack_ops",
                            "silence_windows": 6})
    assert inst.notify is not None
    assert inst.notify.to == ("oncall@example.org",) and inst.notify.http_conn_id == "slack_ops"
    assert inst.notify.on_failure and inst.notify.on_gap and inst.notify.silence_windows == 6


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"smtp_conn_id": "smtp_ops"}, "needs 'to'"),
        ({"to": ["a@example.org"]}, "needs smtp_conn_id"),
        ({"silence_windows": 3}, "name smtp_conn_id"),
        ({"smtp_conn_id": "s", "to": ["not-an-address"]}, "not an email address"),
        ({"http_conn_id": "h", "silence_windows": 0}, "greater than or equal to 1"),
        ({"http_conn_id": "h", "webhook_url": "https://hooks.example.org/T/B/x"}, "Extra inputs are not permitted"),
    ],
)
def test_notify_settings_that_cannot_deliver_are_refused(notify, message) -> None:
    with pytest.raises(ValidationError, match=message):
        netskope(notify=notify)
