"""Local simulators of the vendor APIs (dev-only: tests, the demo, ``make airflow``).

:data:`SIMULATORS` is the one list of vendor simulators the CLI (``python -m
seccollect_dev.simulators``) and the demo loop over; keep it the only place that names them, so it
can later be replaced by a lookup in the runtime connector registry.
"""

from __future__ import annotations

from seccollect_dev.simulators import aws, netskope
from seccollect_dev.simulators.spec import SimulatorSpec

__all__ = ["SIMULATORS"]

#: vendor key -> its simulator, in start order.
SIMULATORS: dict[str, SimulatorSpec] = {
    "netskope": netskope.SIMULATOR,
    "aws": aws.SIMULATOR,
}
