"""seccollect.dag_factory.errors: invalid instance files become one import error naming each file."""

from __future__ import annotations

import pytest

from seccollect.dag_factory.errors import ConnectorInstanceFileError, raise_if_instance_files_invalid

GOOD = (
    "name: ok\ntenant: acme\ntype: netskope\nconn_id: x\nnetskope_tenant: acme\n"
    "start_date: 2026-01-01T00:00:00Z\n"
)


def test_valid_files_raise_nothing(tmp_path):
    (tmp_path / "acme-netskope-ok.yaml").write_text(GOOD)
    raise_if_instance_files_invalid(directory=tmp_path)


def test_every_invalid_file_is_named_with_its_field(tmp_path):
    (tmp_path / "acme-netskope-ok.yaml").write_text(GOOD)
    (tmp_path / "acme-netskope-host.yaml").write_text(GOOD.replace("name: ok", "name: host").replace(
        "netskope_tenant: acme", "netskope_tenant: acme.goskope.com"))
    (tmp_path / "acme-netskope-leaky.yaml").write_text(GOOD.replace("name: ok", "name: leaky") + "api_key: abc\n")
    with pytest.raises(ConnectorInstanceFileError) as caught:
        raise_if_instance_files_invalid(directory=tmp_path)
    message = str(caught.value)
    assert message.startswith("2 connector instance file problem(s)")
    assert "acme-netskope-host.yaml" in message and "netskope_tenant" in message
    assert "acme-netskope-leaky.yaml" in message and "api_key" in message
    assert "acme-netskope-ok.yaml" not in message


def test_a_task_runs_parse_does_not_read_the_instance_files(tmp_path):
    (tmp_path / "acme-netskope-host.yaml").write_text("not: [valid")
    raise_if_instance_files_invalid(dag_id="acme-netskope-host", directory=tmp_path)
