"""Local simulators of the vendor APIs (dev-only: tests, the demo, ``make airflow``).

Which simulators exist comes from the runtime connector registry: every registered connector's spec
names its simulator (``ConnectorSpec.simulator``, ``"module:attribute"`` of a :class:`SimulatorSpec`),
so the CLI (``python -m seccollect_dev.simulators``) and the demo name no vendor.
"""

from __future__ import annotations

import importlib

from seccollect_dev.simulators.spec import SimulatorSpec

__all__ = ["SIMULATORS", "simulators"]


def simulators() -> dict[str, SimulatorSpec]:
    """Simulator name -> its spec, for every registered connector that has one (in registry order)."""
    from seccollect import registry

    found: dict[str, SimulatorSpec] = {}
    for spec in registry.specs():
        if not spec.simulator:
            continue
        module, _, attribute = spec.simulator.partition(":")
        simulator = getattr(importlib.import_module(module), attribute)
        if not isinstance(simulator, SimulatorSpec):
            raise TypeError(f"{spec.connector_type}'s simulator {spec.simulator} is not a SimulatorSpec")
        found.setdefault(simulator.name, simulator)
    return found


#: simulator name -> its spec, in start order.
SIMULATORS: dict[str, SimulatorSpec] = simulators()
