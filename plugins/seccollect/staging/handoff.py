"""StagedWindow: what a collect (or mapping) task hands to the load task, through XCom.

Only paths, counts and the vendor query range travel: the records themselves stay in the staged
Parquet parts, so XCom stays small whatever the window's volume, and a failed load retries from the
staged files without calling the vendor again. The load task receives these objects through the
upstream task's ``.output`` (an Airflow XComArg), typed end to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from seccollect.staging.store import StagedBatch


@dataclass(frozen=True)
class StagedWindow:
    """One task's staged output for one window.

    :param content_type: the content type collected (the ledger key).
    :param pattern: how it was collected (``windowed``, ``snapshot``, ``objects``, or ``derived`` for a
        task that works on another task's output, e.g. an alert mapping).
    :param window_start: the window's start (aware UTC).
    :param window_end: the window's end.
    :param batches: the staged Parquet parts (records, side tables, quarantine entries).
    :param cursor: what the vendor was actually asked, e.g. ``{"query_start": ..., "query_end": ...}``:
        stored with the window in the ledger.
    :param collected_at: when the vendor was read (a snapshot's state never goes back to an older pull).
    :param figures: counts for logs and the ledger (fetched, requests, objects …).
    """

    __version__: ClassVar[int] = 1

    content_type: str
    pattern: str
    window_start: datetime
    window_end: datetime
    batches: tuple[StagedBatch, ...] = ()
    cursor: Mapping[str, Any] | None = None
    collected_at: datetime | None = None
    figures: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Staged rows of the record indices (not of side tables or quarantine)."""
        from seccollect.records.indices import INDICES

        return sum(b.rows for b in self.batches if b.table in INDICES)

    def parts(self, table: str) -> list[StagedBatch]:
        return [b for b in self.batches if b.table == table]

    # Airflow's XCom serde calls these (``serialize``/``deserialize`` with a class version).
    def serialize(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "pattern": self.pattern,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "batches": [b.to_xcom() for b in self.batches],
            "cursor": dict(self.cursor) if self.cursor is not None else None,
            "collected_at": self.collected_at.isoformat() if self.collected_at else None,
            "figures": dict(self.figures),
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> StagedWindow:
        if version > StagedWindow.__version__:
            raise TypeError(f"StagedWindow version {version} is newer than this code's {StagedWindow.__version__}")
        return StagedWindow(
            content_type=data["content_type"],
            pattern=data["pattern"],
            window_start=datetime.fromisoformat(data["window_start"]),
            window_end=datetime.fromisoformat(data["window_end"]),
            batches=tuple(StagedBatch.from_xcom(b) for b in data.get("batches", ())),
            cursor=data.get("cursor"),
            collected_at=datetime.fromisoformat(data["collected_at"]) if data.get("collected_at") else None,
            figures=data.get("figures") or {},
        )


def flatten(staged: Any) -> list[StagedWindow]:
    """The StagedWindows in what a load task received: one, a list of them, a mapped task's lazy
    sequence, or lists of those (skipped upstream tasks give ``None``, which is left out)."""
    if staged is None:
        return []
    if isinstance(staged, StagedWindow):
        return [staged]
    if isinstance(staged, Iterable) and not isinstance(staged, str | bytes):
        found: list[StagedWindow] = []
        for item in staged:
            found.extend(flatten(item))
        return found
    raise TypeError(f"a load task received {type(staged).__name__}, not staged windows")


def _allow_in_xcom() -> None:
    """Let Airflow deserialize StagedWindow from XCom in this process (its default allow list is
    ``airflow.*``); every task process that runs our operators imports this module."""
    try:
        from airflow.sdk.serde import allow_class
    except ImportError:  # an Airflow without per-process allow lists: set allowed_deserialization_classes
        return
    allow_class(StagedWindow)


_allow_in_xcom()
