"""How a table is described: its columns, its key and how the load treats it.

Every table the pipeline stages or writes - the guides' indices, the bookkeeping tables and the tables
a vendor adds - is one :class:`Table`. The staging writer (Arrow schema), the DuckDB and PostgreSQL
DDL and the loaders are all derived from these descriptions, so a vendor adds a table by declaring it
in its spec and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``uuid`` holds a 128-bit digest (record ids, alert keys). Python and the staged Parquet carry it as 32
#: hex characters; the warehouse stores the database's ``UUID`` type (16 bytes): half the bytes of the
#: hex text, and fixed-width primary-key entries that DuckDB's ART index inserts and checkpoints about
#: twice as fast, and that PostgreSQL compares without collation rules. Both databases show it in the
#: dashed UUID form; ``CAST(x AS UUID)`` accepts the plain 32 hex characters.
ColumnType = Literal["text", "uuid", "timestamp", "bigint", "double", "boolean", "json"]

#: How the load treats a table's staged parts:
#:
#: * ``records``      - rows are inserted unless their key is present (re-runs never duplicate);
#: * ``intermediate`` - staged for a later task or a post-load step, never inserted by the load;
#: * ``bookkeeping``  - written by the load's own statements (ledger, quarantine, snapshot state).
TableRole = Literal["records", "intermediate", "bookkeeping"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """One table: its columns, its key, and how the load treats it.

    :param name: table name in the warehouse (and in staged part names).
    :param columns: every column, in order.
    :param key: the columns that identify a row (the primary key, where the backend keeps one).
    :param role: see :data:`TableRole`.
    :param append_only: rows are only ever added by insert-if-absent, never updated. DuckDB keeps no
        primary key on such tables (its single writer keeps the key unique; see its warehouse).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    role: TableRole = "records"
    append_only: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")
