"""The ConnectSecure V4 connector: assets, remediation plans and vulnerability suppressions, pulled in
full (the API has no time filter) with exact change detection."""

from __future__ import annotations

from pathlib import Path

from seccollect.registry import ConnectorSpec, Lazy
from seccollect.vendors.connectsecure.docs import NOTES
from seccollect.vendors.connectsecure.instance import ConnectSecureInstance

CONNECTION_TYPE = {
    "connection-type": "connectsecure",
    "hook-class-name": "seccollect.vendors.connectsecure.hook.ConnectSecureHook",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "Base URL", "login": "Client ID", "password": "Client Secret"},
        "placeholders": {"host": "https://pod106.myconnectsecure.com (the pod API host, not the portal)"},
    },
    "conn-fields": {
        "tenant_name": {
            "label": "Tenant Name",
            "description": "The tenant (organisation) name used at portal login.",
            "schema": {"type": ["string", "null"]},
        },
        "proxy": {
            "label": "Proxy URL",
            "description": "Optional HTTP(S) proxy, with its user and password if it needs them.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
    },
}

SPEC = ConnectorSpec(
    connector_type="connectsecure",
    vendor="ConnectSecure",
    instance_model=ConnectSecureInstance,
    build_tasks=Lazy("seccollect.vendors.connectsecure.dag:add_tasks"),
    connection_types=(CONNECTION_TYPE,),
    notes=NOTES,
    simulator="seccollect_dev.simulators.connectsecure:SIMULATOR",
    demo_instances=Path(__file__).parent / "demo",
)
