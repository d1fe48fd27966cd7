"""The toy connector: a vendor defined outside the package, registered by one entry point line
(``tests/seccollect/toy_vendor_registration/toyvendor-0.1.dist-info/entry_points.txt``) and nothing else."""

from __future__ import annotations

from seccollect.records.tables import Column, Table
from seccollect.registry import ConnectorSpec, Lazy
from tests.seccollect.toy_vendor.instance import ToyInstance

TOY_WINDOWS = Table(
    "toy_windows",
    (
        Column("dag_id", "text", nullable=False),
        Column("window_start", "timestamp", nullable=False),
        Column("sightings", "bigint", nullable=False),
    ),
    ("dag_id", "window_start"),
)

SPEC = ConnectorSpec(
    connector_type="toy",
    vendor="Toy",
    instance_model=ToyInstance,
    build_tasks=Lazy("tests.seccollect.toy_vendor.dag:add_tasks"),
    connection_types=(
        {
            "connection-type": "toy",
            "hook-class-name": "tests.seccollect.toy_vendor.hook.ToyHook",
            "ui-field-behaviour": {"hidden-fields": ["schema", "port", "extra"], "relabeling": {"password": "Toy Key"}},
        },
    ),
    tables=(TOY_WINDOWS,),
    notes="## How windows are read\n\nThe toy API reports every minute's sightings.",
)
