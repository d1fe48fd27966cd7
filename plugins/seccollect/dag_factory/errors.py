"""Report invalid instance files where a data engineer looks first: the UI's import errors."""

from __future__ import annotations

from pathlib import Path

from seccollect.config.loader import load_all


class ConnectorInstanceFileError(Exception):
    """One or more instance files produced no DAG; the message names each file, field and fix."""


def raise_if_instance_files_invalid(dag_id: str | None = None, directory: Path | None = None) -> None:
    """Raise :class:`ConnectorInstanceFileError` listing every invalid instance file.

    Skipped for a task run's parse (``dag_id`` set): a worker has no use for the report and must not
    read every instance file before running one task.
    """
    if dag_id is not None:
        return
    errors = load_all(directory).errors
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ConnectorInstanceFileError(
            f"{len(errors)} connector instance file problem(s); these instances have no DAG until fixed "
            f"(the other instances are unaffected):\n{lines}"
        )
