"""The connector registry: every vendor is one folder exposing one :class:`ConnectorSpec`.

A vendor registers with one line, an entry point of the group ``seccollect.connectors``::

    [project.entry-points."seccollect.connectors"]
    netskope = "seccollect.vendors.netskope.spec:SPEC"

Specs are loaded lazily and one at a time: a DAG parse imports only the vendors it has instances of
(:func:`get`), while the provider info, the warehouse schema, the simulators and the demo, which need
every vendor, call :func:`specs`. Everything in the shared mechanism that differs per vendor comes
from here; the shared code never names a vendor.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from seccollect.config.instance import InstanceBase
    from seccollect.records.tables import Table
    from seccollect.warehouse.base import LoadContext, Warehouse

#: Entry point group vendors register in.
ENTRY_POINT_GROUP = "seccollect.connectors"

#: How a content type is collected (:mod:`seccollect.operators.patterns`):
#:
#: * ``windowed`` - a time-filtered API read page by page for the window;
#: * ``snapshot`` - a full pull compared with the last one (added / changed / removed items);
#: * ``objects``  - files (e.g. S3 objects) chosen by the time in their names, each read once.
CollectPattern = Literal["windowed", "snapshot", "objects"]


@dataclass(frozen=True)
class ContentType:
    """One kind of data a connector collects.

    :param name: the name used in instance files, task ids and the ledger (``alert``).
    :param msg_class: the envelope's ``msg_class`` of its records.
    :param tables: the warehouse tables it fills, Syslog (or its main index) first.
    :param pattern: how it is collected (:data:`CollectPattern`).
    :param title: how the guides name it (``Remediation Plan``); defaults to ``name``.
    :param every: how often a window of it is due when that is not every window (e.g. a daily snapshot:
        one day); the coverage view expects a window only that often.
    """

    name: str
    msg_class: str
    tables: tuple[str, ...]
    pattern: CollectPattern = "windowed"
    title: str = ""
    every: timedelta | None = None

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class ConnectorSpec:
    """Everything the shared mechanism needs to know about one connector type.

    :param connector_type: the ``type`` of its instance files and the middle of its dag ids.
    :param vendor: the vendor's name as people write it (``Netskope``), for docs and messages.
    :param instance_model: the typed schema of its instance files (a subclass of
        :class:`~seccollect.config.instance.InstanceBase`), which also lists its content types.
    :param build_tasks: adds the instance's tasks to its DAG: ``build_tasks(dag, instance)`` (usually a
        :class:`Lazy` reference: the spec module itself must not import Airflow).
    :param connection_types: entries of ``get_provider_info()["connection-types"]`` (the UI's connection
        form and the Test button).
    :param tables: tables the vendor adds beside the shared indices (loaded or intermediate).
    :param post_load: optional step run inside each load's transaction after the rows are inserted:
        ``post_load(warehouse, context) -> {figure: count}``.
    :param notes: the "How windows are read" section of its DAGs' docs (Markdown), or a function of the
        instance that writes it.
    :param simulator: ``"module:attribute"`` of its simulator in the dev package (demo and tests only;
        never imported by workers).
    :param demo_instances: folder of the instance files the demo runs (``make demo``, ``make airflow``).
    :param retention: how far back the vendor serves data (``None``: as far as anyone needs). Catch-up
        never schedules older windows, and the coverage view shows them as lost to retention.
    :param views: ``(name, SELECT statement)`` of views the vendor adds over the warehouse's tables (e.g.
        the current state of items whose versions an index keeps); created with the schema. The SELECT
        must run on every warehouse backend.
    """

    connector_type: str
    vendor: str
    instance_model: type[InstanceBase]
    build_tasks: Callable[[DAG, InstanceBase], None]
    connection_types: tuple[Mapping[str, Any], ...] = ()
    tables: tuple[Table, ...] = ()
    post_load: Callable[[Warehouse, LoadContext], Mapping[str, int]] | None = None
    notes: str | Callable[[InstanceBase], str] = ""
    simulator: str | None = None
    demo_instances: Path | None = None
    retention: timedelta | None = None
    views: tuple[tuple[str, str], ...] = ()

    @property
    def content_types(self) -> dict[str, ContentType]:
        return {ct.name: ct for ct in self.instance_model.content_type_specs}

    def tables_of(self, content_types: Sequence[str]) -> list[str]:
        """The warehouse indices the given content types write, in a stable order."""
        found: list[str] = []
        for name in content_types:
            for table in self.content_types[name].tables:
                if table not in found:
                    found.append(table)
        return found


class Lazy:
    """A function named by ``"module:attribute"``, imported on its first call.

    Specs name their task wiring this way: Airflow calls ``get_provider_info()`` (which reads every spec)
    while it is still initialising its configuration, so a spec module must not import Airflow itself.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._function: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._function is None:
            import importlib

            module, _, attribute = self.target.partition(":")
            self._function = getattr(importlib.import_module(module), attribute)
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


class UnknownConnectorType(KeyError):
    """No vendor registered this connector type."""

    def __str__(self) -> str:
        known = ", ".join(connector_types()) or "none"
        return f"{self.args[0]!r} is not a connector type; use one of {known}"


def _entry_points() -> dict[str, Any]:
    return _entry_points_on(tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _entry_points_on(path: tuple[str, ...]) -> dict[str, Any]:
    # Scanning every installed distribution's metadata costs ~50 ms, and building one DAG asks the
    # registry several times: read once per import path (a path added later, e.g. a test's, is seen).
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def connector_types() -> list[str]:
    """The registered connector types, sorted (no vendor module is imported)."""
    return sorted(_entry_points())


@functools.cache
def _load(connector_type: str, value: str) -> ConnectorSpec:
    spec = _entry_points()[connector_type].load()
    if not isinstance(spec, ConnectorSpec):
        raise TypeError(f"entry point {connector_type} = {value} is not a ConnectorSpec")
    if spec.connector_type != connector_type:
        raise ValueError(f"entry point {connector_type!r} names the spec of {spec.connector_type!r}")
    return spec


def get(connector_type: str) -> ConnectorSpec:
    """The spec of one connector type, importing only that vendor."""
    ep = _entry_points().get(connector_type)
    if ep is None:
        raise UnknownConnectorType(connector_type)
    return _load(connector_type, ep.value)


def specs() -> list[ConnectorSpec]:
    """Every registered spec, by connector type (imports every vendor)."""
    return [get(name) for name in connector_types()]


def demo_instance_files() -> list[Path]:
    """The instance files the demo runs: every registered connector's ``demo_instances``, by name."""
    files = [
        path
        for spec in specs()
        if spec.demo_instances is not None
        for path in spec.demo_instances.iterdir()
        if path.suffix in (".yaml", ".yml")
    ]
    return sorted(files, key=lambda path: path.name)
