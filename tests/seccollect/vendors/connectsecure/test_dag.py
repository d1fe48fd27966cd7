"""A ConnectSecure instance file becomes its DAG: Asset always, the indices of CONNECTORS.md, docs that
say how full pulls are compared, the connection form."""

from __future__ import annotations

from pathlib import Path

import pytest

from seccollect.config.loader import InstanceFileInvalid, load_file, parse_instance
from seccollect.dag_factory.builder import build_dag, indices_of
from seccollect.vendors.connectsecure.spec import SPEC

DEMO = Path(__file__).resolve().parents[4] / "plugins/seccollect/vendors/connectsecure/demo/acme-connectsecure-v4.yaml"


def _instance(**settings):
    return parse_instance({"name": "t", "tenant": "acme", "type": "connectsecure", "conn_id": "cs", **settings},
                          Path("acme-connectsecure-t.yaml"))


def test_asset_is_collected_even_when_left_out():
    assert _instance(content_types=["remediation_plan"]).selected_content_types == ("asset", "remediation_plan")
    assert _instance().selected_content_types == ("asset",)
    dag = build_dag(_instance(content_types=["vulnerability_suppression"]))
    assert {"collect_asset", "load_asset", "collect_vulnerability_suppression"} <= set(dag.task_ids)
    assert "Asset is always collected" in dag.doc_md


def test_indices_follow_connectors_md():
    instance = load_file(DEMO)
    assert indices_of(instance, "asset") == ["syslog", "assets"]
    assert indices_of(instance, "remediation_plan") == ["syslog"]
    assert indices_of(instance, "vulnerability_suppression") == ["syslog", "scans"]
    specs = {ct.name: ct for ct in SPEC.content_types.values()}
    assert {ct.msg_class for ct in specs.values()} == {
        "connectsecurev4_asset", "connectsecurev4_remediation", "connectsecurev4_vulnerability_suppression"}
    assert all(ct.pattern == "snapshot" for ct in specs.values())


def test_dag_docs_explain_change_detection_paging_and_utc():
    doc = build_dag(load_file(DEMO)).doc_md
    for phrase in ("no server-side time filter", "snapshot_changes", "current_assets", "read as **UTC**",
                   "order_by=id asc", "steps back"):
        assert phrase in doc, phrase


def test_endpoints_are_configurable_within_what_is_documented():
    assert _instance(asset_endpoint="/r/asset/asset_view").endpoints["asset"] == "/r/asset/asset_view"
    with pytest.raises(InstanceFileInvalid):
        _instance(asset_endpoint="https://evil.example/r/asset/assets")
    with pytest.raises(InstanceFileInvalid):
        _instance(remediation_endpoint="/r/report_queries/unknown")


def test_connection_form_has_the_four_fields_and_the_test_button():
    (conn,) = SPEC.connection_types
    assert conn["connection-type"] == "connectsecure"
    assert conn["ui-field-behaviour"]["relabeling"] == {"host": "Base URL", "login": "Client ID",
                                                       "password": "Client Secret"}
    assert "tenant_name" in conn["conn-fields"]
    from seccollect.vendors.connectsecure.hook import ConnectSecureHook

    assert conn["hook-class-name"].endswith(ConnectSecureHook.__name__) and ConnectSecureHook.conn_type == "connectsecure"
