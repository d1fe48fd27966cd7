"""Every table the pipeline knows: the shared indices, its bookkeeping tables and the vendors' tables."""

from __future__ import annotations

from seccollect.records.bookkeeping import BOOKKEEPING
from seccollect.records.indices import INDICES
from seccollect.records.tables import Table


def tables() -> dict[str, Table]:
    """Name -> table, for the shared tables and those of every registered vendor (in that order)."""
    from seccollect import registry

    found: dict[str, Table] = {**INDICES, **BOOKKEEPING}
    for spec in registry.specs():
        for table in spec.tables:
            if table.name in found and found[table.name] != table:
                raise ValueError(f"{spec.connector_type} declares table {table.name!r}, which already exists")
            found[table.name] = table
    return found


def table(name: str) -> Table:
    """One table by name; the shared ones are found without loading any vendor."""
    shared = INDICES.get(name) or BOOKKEEPING.get(name)
    if shared is not None:
        return shared
    try:
        return tables()[name]
    except KeyError:
        raise KeyError(f"no table {name!r} is declared by the pipeline or a registered vendor") from None
