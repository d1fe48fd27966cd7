"""Reading instance files: errors that name file and field, secrets refused, one broken file isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from seccollect.config import loader
from seccollect.config.loader import InstanceFileInvalid, load_all, load_file, load_for_dag_id, parse_instance
from seccollect.vendors.netskope.instance import NetskopeInstance

BASE: dict[str, Any] = {
    "name": "main",
    "tenant": "acme",
    "type": "netskope",
    "conn_id": "netskope_acme",
    "netskope_tenant": "acme",
}


def write(directory: Path, filename: str, settings: Any) -> Path:
    path = directory / filename
    path.write_text(settings if isinstance(settings, str) else yaml.safe_dump(settings), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[loader.InstanceFileError]:
    with pytest.raises(InstanceFileInvalid) as info:
        load_file(path)
    for error in info.value.errors:
        assert error.path == path
        assert str(path) in str(error)
    assert str(path) in str(info.value)
    return info.value.errors


# --- one file ------------------------------------------------------------------------------------


def test_load_file_minimal_netskope_gets_defaults(tmp_path: Path) -> None:
    inst = load_file(write(tmp_path, "a.yaml", BASE))
    assert isinstance(inst, NetskopeInstance)
    assert inst.interval == 5
    assert inst.selected_content_types == ("alert", "event")
    assert inst.dag_id == "acme-netskope-main"


def test_demo_instance_files_are_valid() -> None:
    from tests.conftest import DEMO_INSTANCES as demo
    result = load_all(demo)
    assert result.errors == []
    assert {i.dag_id for i in result.instances} == {
        "globex-netskope-v1",
        "acme-netskope-v2",
        "acme-aws_cloudtrail-cloudtrail",
        "acme-aws_cloudtrail-vpcflow",
        "acme-aws_cloudtrail-waf",
        "acme-connectsecure-v4",
        "acme-qualys-vm",
        "acme-trendmicro_cas-cas",
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"password": "hunter2-s3cr3t"}, "password"),
        ({"api_key": "hunter2-s3cr3t"}, "api_key"),
        ({"apiKey": "hunter2-s3cr3t"}, "apiKey"),
        ({"client_secret": "hunter2-s3cr3t"}, "client_secret"),
        ({"token": "hunter2-s3cr3t"}, "token"),
        ({"ClientSecret": "hunter2-s3cr3t"}, "ClientSecret"),
        (
            {"aws": {"region": "us-east-1", "aws_secret_access_key": "hunter2-s3cr3t"}},
            "aws.aws_secret_access_key",
        ),
        ({"extras": [{"api-key": "hunter2-s3cr3t"}]}, "extras.0.api-key"),
    ],
)
def test_secret_looking_keys_rejected_pointing_to_airflow_connections(
    tmp_path: Path, extra: dict[str, Any], field: str
) -> None:
    path = write(tmp_path, "leaky.yaml", {**BASE, **extra})
    errors = errors_of(path)
    assert [e.field for e in errors] == [field]
    message = str(errors[0])
    assert "must not hold credentials" in message
    assert "Airflow connection" in message and "netskope_acme" in message and "AIRFLOW_CONN_" in message
    # The secret's value is never echoed into the error (it ends up in the UI and logs).
    assert "hunter2-s3cr3t" not in message


def test_several_secrets_are_all_reported(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "leaky.yaml", {**BASE, "password": "x", "api_key": "y"}))
    assert sorted(e.field for e in errors) == ["api_key", "password"]


@pytest.mark.parametrize(
    "extra",
    [
        {"netskope_tenant": "companya"},
        {"settle_lag_seconds": 60},
        {"api_version": "v1"},
        {"max_retry_delay_minutes": 10},
        {"conn_id": "netskope_token_holder"},  # a value, not a key: never inspected
    ],
)
def test_harmless_keys_accepted(tmp_path: Path, extra: dict[str, Any]) -> None:
    inst = load_file(write(tmp_path, "ok.yaml", {**BASE, **extra}))
    for key, value in extra.items():
        assert getattr(inst, key) == value


def test_secret_check_runs_before_schema_check(tmp_path: Path) -> None:
    # An unknown key that looks like a secret is reported as a secret, not as an unknown setting.
    errors = errors_of(write(tmp_path, "leaky.yaml", {**BASE, "netskope_api_token": "x"}))
    assert errors[0].field == "netskope_api_token" and "credentials" in errors[0].message


def test_unknown_key_rejected_naming_allowed_settings(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "typo.yaml", {**BASE, "intervall_minutes": 10}))
    assert [e.field for e in errors] == ["intervall_minutes"]
    assert "unknown setting" in errors[0].message
    for allowed in ("interval_minutes", "content_types", "netskope_tenant", "settle_lag_seconds"):
        assert allowed in errors[0].message
    assert "(field 'intervall_minutes')" in str(errors[0])


@pytest.mark.parametrize(("field", "value"), [("name", "メイン"), ("tenant", "acmé")])
def test_multibyte_name_or_tenant_rejected(tmp_path: Path, field: str, value: str) -> None:
    errors = errors_of(write(tmp_path, "mb.yaml", {**BASE, field: value}))
    assert [e.field for e in errors] == [field]
    assert "ASCII only" in errors[0].message


@pytest.mark.parametrize("value", ["companya.goskope.com", "https://companya.goskope.com"])
def test_netskope_tenant_as_url_rejected_with_hint(tmp_path: Path, value: str) -> None:
    errors = errors_of(write(tmp_path, "url.yaml", {**BASE, "netskope_tenant": value}))
    assert [e.field for e in errors] == ["netskope_tenant"]
    assert "enter only the tenant name" in errors[0].message and "'companya'" in errors[0].message


@pytest.mark.parametrize("content_types", [["alert", "page"], ["pops"]])
def test_v1_with_v2_only_content_types_rejected_naming_the_field(
    tmp_path: Path, content_types: list[str]
) -> None:
    errors = errors_of(
        write(tmp_path, "v1.yaml", {**BASE, "api_version": "v1", "content_types": content_types})
    )
    assert [e.field for e in errors] == ["content_types"]
    assert "need api_version v2" in errors[0].message
    assert "(field 'content_types')" in str(errors[0])


def test_missing_required_setting_named_with_its_description(tmp_path: Path) -> None:
    settings = {k: v for k, v in BASE.items() if k != "conn_id"}
    errors = errors_of(write(tmp_path, "missing.yaml", settings))
    assert [e.field for e in errors] == ["conn_id"]
    assert (
        errors[0].message
        == "required setting is missing (Airflow connection holding this instance's credentials.)"
    )


def test_every_field_error_is_reported_at_once(tmp_path: Path) -> None:
    errors = errors_of(
        write(tmp_path, "many.yaml", {**BASE, "name": "bad name", "interval_minutes": 0, "x": 1})
    )
    assert {e.field for e in errors} == {"name", "interval_minutes", "x"}


@pytest.mark.parametrize(
    ("content", "field", "fragment"),
    [
        ("- just\n- a list\n", "", "YAML mapping"),
        ("", "", "YAML mapping"),
        ("name: [unclosed\n", "", "cannot read the file"),
        (
            {**BASE, "type": "splunk"},
            "type",
            "'splunk' is not a connector type; use one of aws_cloudtrail, connectsecure, netskope",
        ),
        ({k: v for k, v in BASE.items() if k != "type"}, "type", "None is not a connector type"),
    ],
)
def test_unusable_files(tmp_path: Path, content: Any, field: str, fragment: str) -> None:
    errors = errors_of(write(tmp_path, "bad.yaml", content))
    assert errors[0].field == field
    assert fragment in errors[0].message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "cannot read the file" in errors_of(path)[0].message


def test_parse_instance_names_the_given_path() -> None:
    with pytest.raises(InstanceFileInvalid, match=r"^/somewhere/x\.yaml \(field 'name'\)"):
        parse_instance({**BASE, "name": "bad name"}, Path("/somewhere/x.yaml"))


# --- the folder ----------------------------------------------------------------------------------


def test_load_all_isolates_a_broken_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {**BASE, "name": "a"})
    broken = write(tmp_path, "b.yaml", {**BASE, "name": "b", "netskope_tenant": "b.goskope.com"})
    leaky = write(tmp_path, "c.yaml", {**BASE, "name": "c", "password": "x"})
    write(tmp_path, "d.yml", {**BASE, "name": "d"})
    write(tmp_path, "notes.txt", "not an instance")
    write(tmp_path, ".hidden.yaml", {**BASE, "name": "hidden"})
    result = load_all(tmp_path)
    assert [i.name for i in result.instances] == ["a", "d"]
    assert [(e.path, e.field) for e in result.errors] == [(broken, "netskope_tenant"), (leaky, "password")]


def test_load_all_reports_dag_id_clash_and_keeps_the_first(tmp_path: Path) -> None:
    first = write(tmp_path, "1.yaml", {**BASE, "conn_id": "first"})
    second = write(
        tmp_path, "2.yaml", {**BASE, "conn_id": "second", "tenant": "ACME"}
    )  # same dag_id, any case
    result = load_all(tmp_path)
    assert [i.conn_id for i in result.instances] == ["first"]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.path == second and error.field == "name"
    assert "acme-netskope-main" in error.message and str(first) in error.message


def test_disabled_instances_produce_nothing_and_do_not_clash(tmp_path: Path) -> None:
    write(tmp_path, "1.yaml", {**BASE, "enabled": False, "conn_id": "old"})
    write(tmp_path, "2.yaml", {**BASE, "conn_id": "new"})
    write(tmp_path, "3.yaml", {**BASE, "name": "off", "enabled": False})
    result = load_all(tmp_path)
    assert [i.conn_id for i in result.instances] == ["new"]
    assert result.errors == []
    assert load_for_dag_id("acme-netskope-off", tmp_path) is None


def test_load_all_missing_folder_is_an_error_not_zero_dags(tmp_path: Path) -> None:
    # A wrong path must not look like an empty deployment: the error names the folder and the fix.
    result = load_all(tmp_path / "nope")
    assert result.instances == []
    (error,) = result.errors
    assert str(tmp_path / "nope") in error.message and "CONNECTORS_DIR" in error.message


def test_load_all_unreadable_folder_is_an_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "connectors"
    not_a_folder.write_text("a file where the folder should be")
    (error,) = load_all(not_a_folder).errors
    assert "cannot be read" in error.message and str(not_a_folder) in error.message


def test_an_empty_folder_is_zero_dags_without_error(tmp_path: Path) -> None:
    assert load_all(tmp_path).instances == [] and load_all(tmp_path).errors == []


def test_connectors_dir_env_used_when_no_directory_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.yaml", {**BASE, "name": "from-env"})
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    assert [i.name for i in load_all().instances] == ["from-env"]
    # An explicit directory wins over the environment.
    other = tmp_path / "other"
    other.mkdir()
    assert load_all(other).instances == []


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files load_file is asked to read."""
    seen: list[str] = []
    real = loader.load_file

    def spy(path: Path):
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(loader, "load_file", spy)
    return seen


def test_load_for_dag_id_reads_only_the_named_file(tmp_path: Path, reads: list[str]) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path, f"acme-netskope-{name}.yaml", {**BASE, "name": name})
    write(tmp_path, "broken.yaml", "{{{")
    inst = load_for_dag_id("acme-netskope-b", tmp_path)
    assert inst is not None and inst.name == "b"
    assert reads == ["acme-netskope-b.yaml"]


def test_load_for_dag_id_tries_yml_too(tmp_path: Path, reads: list[str]) -> None:
    write(tmp_path, "acme-netskope-a.yaml", {**BASE, "name": "a"})
    write(tmp_path, "acme-netskope-b.yml", {**BASE, "name": "b"})
    assert load_for_dag_id("acme-netskope-b", tmp_path).name == "b"
    assert reads == ["acme-netskope-b.yml"]


def test_load_for_dag_id_falls_back_to_a_scan(tmp_path: Path, reads: list[str]) -> None:
    write(tmp_path, "first.yaml", {**BASE, "name": "a"})
    write(tmp_path, "second.yaml", {**BASE, "name": "b"})
    inst = load_for_dag_id("acme-netskope-b", tmp_path)
    assert inst is not None and inst.name == "b"
    assert sorted(reads) == ["first.yaml", "second.yaml"]
    assert load_for_dag_id("acme-netskope-zzz", tmp_path) is None


def test_load_for_dag_id_file_holding_another_dag_falls_back(tmp_path: Path, reads: list[str]) -> None:
    # Named like DAG "b" but actually holds DAG "x"; the real "b" lives in another file.
    write(tmp_path, "acme-netskope-b.yaml", {**BASE, "name": "x"})
    write(tmp_path, "real.yaml", {**BASE, "name": "b", "conn_id": "real"})
    inst = load_for_dag_id("acme-netskope-b", tmp_path)
    assert inst is not None and inst.conn_id == "real"
    assert reads[0] == "acme-netskope-b.yaml" and "real.yaml" in reads


def test_load_for_dag_id_invalid_named_file_gives_nothing(tmp_path: Path) -> None:
    write(tmp_path, "acme-netskope-main.yaml", {**BASE, "password": "x"})
    assert load_for_dag_id("acme-netskope-main", tmp_path) is None
