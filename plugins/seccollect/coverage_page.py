"""The Coverage page inside the Airflow UI: which windows of every instance were collected.

A FastAPI app the api-server mounts at ``/seccollect`` (the plugin's ``fastapi_apps``), shown in the UI's
navigation by the plugin's ``external_views`` entry. Per instance (DAG) and content type it draws, from
the warehouse's ``coverage`` view (:mod:`seccollect.warehouse.coverage`):

* a timeline of windows coloured by status (collected / late / pending / failed / missing / lost to
  retention), each linking to the run that loaded it or failed it (a missing window, which no run
  collected, links to the DAG, where the Backfill dialog fills it);
* a chart of rows inserted per window;
* the list of gaps (missing and failed windows), with the failure's reason.

Server-rendered HTML with inline SVG: no script and nothing fetched from the internet. The page needs
an Airflow login (the UI's session cookie or a bearer token) and shows only the DAGs the user may read.
Only the api-server imports this module (the plugin builds the app on first use).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse

#: Where the api-server mounts the app, and the page's path inside it.
URL_PREFIX = "/seccollect"
PAGE_PATH = "/coverage"

#: Status -> (colour, label), in the legend's order.
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "collected": ("#2e7d32", "collected"),
    "late": ("#f9a825", "late"),
    "pending": ("#90caf9", "pending"),
    "failed": ("#b71c1c", "failed"),
    "missing": ("#ef5350", "missing"),
    "lost_to_retention": ("#9e9e9e", "lost to retention"),
}
GAP_STATUSES = ("missing", "failed")
#: Widest timeline drawn (the latest windows of a long range are kept).
MAX_WINDOWS = 400


def readable_dag_ids() -> set[str] | None:
    """The DAG ids the page may show (FastAPI dependency; None: all). The app overrides it with
    :func:`_readable_by_user`; tests with a set of their own."""
    return set()


def _readable_by_user(user: Annotated[Any, Depends(get_user)]) -> set[str] | None:
    """The DAG ids the logged-in user may read (401 without a login: the UI's cookie or a bearer token)."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def warehouse_conn_id() -> str:
    """The warehouse connection the page reads (FastAPI dependency; tests override it)."""
    import os

    return os.environ.get("SECCOLLECT_WAREHOUSE_CONN_ID", "seccollect_warehouse")


def load_coverage(conn_id: str, since: datetime, dag_id: str | None) -> tuple[list[dict[str, Any]], dict[tuple, str]]:
    """Coverage rows since ``since`` (all instances, or one) and the run of each loaded or failed window."""
    from seccollect.warehouse.frames import coverage_df, warehouse_hook

    hook = warehouse_hook(conn_id)
    frame = coverage_df(dag_id, since=since, hook=hook)
    rows = [
        {key: (None if _is_null(value) else _plain(value)) for key, value in record.items()}
        for record in frame.to_dict("records")
    ]
    mark = hook.placeholder
    runs: dict[tuple, str] = {}
    where = f" WHERE window_start >= {mark}" + (f" AND dag_id = {mark}" if dag_id else "")
    params = (since, dag_id) if dag_id else (since,)
    for table, column in (("window_failures", "run_id"), ("collection_ledger", "run_ids")):
        for d, ct, start, value in hook.get_records(
            f"SELECT dag_id, content_type, window_start, {column} FROM {table}{where}", parameters=params
        ):
            run_id = _last_run(value)
            if run_id:
                runs[(d, ct, _aware(start))] = run_id
    return rows, runs


def _last_run(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    if isinstance(value, list | tuple):
        return str(value[-1]) if value else None
    return str(value)


def _is_null(value: Any) -> bool:
    try:
        return value is None or value != value  # NaN / NaT
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    if hasattr(value, "to_pydatetime"):
        return _aware(value.to_pydatetime())
    if isinstance(value, datetime):
        return _aware(value)
    if hasattr(value, "item"):
        value = value.item()
    # A count column with a gap in it comes out of pandas as floats (NaN): show counts as integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- rendering ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _window_text(row: Mapping[str, Any]) -> str:
    start, end = row["window_start"], row["window_end"]
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} – {until} UTC"


def _link(ui: str, row: Mapping[str, Any], runs: Mapping[tuple, str]) -> str:
    run_id = runs.get((row["dag_id"], row["content_type"], row["window_start"]))
    if run_id and row["status"] != "missing":
        return f"{ui}/dags/{quote(row['dag_id'])}/runs/{quote(run_id, safe='')}"
    return f"{ui}/dags/{quote(row['dag_id'])}"


def _tooltip(row: Mapping[str, Any]) -> str:
    parts = [_window_text(row), STATUS_STYLE.get(row["status"], ("", row["status"]))[1]]
    if row.get("rows_inserted") is not None:
        parts.append(f"{row['rows_inserted']} rows inserted")
    if row.get("failure"):
        parts.append(f"{row.get('failed_task')}: {str(row['failure'])[:300]}")
    return " · ".join(parts)


def _timeline(rows: Sequence[Mapping[str, Any]], runs: Mapping[tuple, str], ui: str) -> str:
    width, height = 900, 26
    step = width / max(len(rows), 1)
    cells = []
    for n, row in enumerate(rows):
        colour = STATUS_STYLE.get(row["status"], ("#000", ""))[0]
        cells.append(
            f'<a href="{_e(_link(ui, row, runs))}" target="_top" class="window" data-status="{_e(row["status"])}" '
            f'data-window-start="{row["window_start"].isoformat()}"><rect x="{n * step:.2f}" y="0" '
            f'width="{max(step - 1, 1):.2f}" height="{height}" fill="{colour}"><title>{_e(_tooltip(row))}</title>'
            "</rect></a>"
        )
    return (f'<svg class="timeline" role="img" aria-label="windows by status" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(cells)}</svg>')


def _rows_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    width, height = 900, 80
    step = width / max(len(rows), 1)
    top = max([r.get("rows_inserted") or 0 for r in rows] + [1])
    bars = []
    for n, row in enumerate(rows):
        value = row.get("rows_inserted") or 0
        bar = (height - 12) * value / top
        colour = STATUS_STYLE.get(row["status"], ("#000", ""))[0]
        bars.append(f'<rect x="{n * step:.2f}" y="{height - bar:.2f}" width="{max(step - 1, 1):.2f}" '
                    f'height="{bar:.2f}" fill="{colour}"><title>{_e(_window_text(row))}: {value} rows</title></rect>')
    return (f'<svg class="rows" role="img" aria-label="rows inserted per window" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><text x="2" y="10" font-size="10">max {top} rows</text>'
            f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>{"".join(bars)}</svg>')


def _gaps(rows: Sequence[Mapping[str, Any]], runs: Mapping[tuple, str], ui: str) -> str:
    gaps = [r for r in rows if r["status"] in GAP_STATUSES]
    if not gaps:
        return '<p class="no-gaps">No gaps: every window due was collected.</p>'
    items = []
    for row in gaps:
        why = f" — {_e(row.get('failed_task'))}: {_e(str(row.get('failure'))[:300])}" if row["status"] == "failed" else \
            " — no run collected it; fill it with the DAG's Backfill (Missing and Errored Runs)"
        items.append(f'<li class="gap" data-status="{_e(row["status"])}" data-window-start="{row["window_start"].isoformat()}">'
                     f'<a href="{_e(_link(ui, row, runs))}" target="_top">{_e(_window_text(row))}</a> '
                     f'<b>{_e(row["status"])}</b>{why}</li>')
    return f'<ul class="gaps">{"".join(items)}</ul>'


def render_page(rows: Sequence[Mapping[str, Any]], runs: Mapping[tuple, str], *, ui: str, hours: int,
                dag_id: str | None, dag_ids: Sequence[str]) -> str:
    """The whole page for coverage ``rows`` (the view's rows, oldest first per instance and content type)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dag_id"], row["content_type"]), []).append(row)
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{_e(label)}</span>'
                     for c, label in STATUS_STYLE.values())
    options = "".join(f'<option value="{_e(d)}"{" selected" if d == dag_id else ""}>{_e(d)}</option>' for d in dag_ids)
    sections = []
    for current in sorted({d for d, _ in groups}):
        parts = [f'<section class="instance" data-dag-id="{_e(current)}"><h2><a href="{_e(ui)}/dags/{_e(quote(current))}" '
                 f'target="_top">{_e(current)}</a></h2>']
        for (d, content_type), windows in sorted(groups.items()):
            if d != current:
                continue
            shown = windows[-MAX_WINDOWS:]
            counts = {s: sum(1 for w in windows if w["status"] == s) for s in STATUS_STYLE}
            summary = ", ".join(f"{n} {STATUS_STYLE[s][1]}" for s, n in counts.items() if n)
            parts.append(
                f'<div class="content-type" data-content-type="{_e(content_type)}"><h3>{_e(content_type)} '
                f'<small>{_e(summary)}</small></h3>{_timeline(shown, runs, ui)}{_rows_chart(shown)}'
                f"{_gaps(windows, runs, ui)}</div>"
            )
        parts.append("</section>")
        sections.append("".join(parts))
    body = "".join(sections) or (
        '<p class="empty">No windows yet: the coverage view fills once a connector DAG has run (its '
        "check_coverage task records the instance's schedule).</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Coverage</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 8px; }} h2 {{ font-size: 16px; margin: 18px 0 4px; }}
h3 {{ font-size: 14px; margin: 10px 0 4px; }} h3 small {{ font-weight: normal; color: #555; }}
.key {{ margin-right: 12px; font-size: 12px; }} .key i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
svg {{ display: block; max-width: 100%; height: auto; margin: 2px 0; }} ul.gaps {{ font-size: 13px; margin: 4px 0; }}
.no-gaps {{ font-size: 13px; color: #2e7d32; margin: 4px 0; }} form {{ margin: 8px 0; font-size: 13px; }}
</style></head><body>
<h1>Coverage of collection windows</h1>
<form method="get"><label>Instance <select name="dag_id"><option value="">all</option>{options}</select></label>
<label> last <input type="number" name="hours" min="1" max="2160" value="{hours}"> hours</label>
<button type="submit">Show</button></form>
<div class="legend">{legend}</div>
{body}
<p style="font-size:12px;color:#555">From the warehouse's <code>coverage</code> view, windows starting in the last {hours} h
(UTC). In a notebook: <code>seccollect.warehouse.frames.coverage_df(dag_id)</code>.</p>
</body></html>"""


def create_app() -> FastAPI:
    """The app the plugin mounts at :data:`URL_PREFIX`."""
    app = FastAPI(title="seccollect coverage", docs_url=None, redoc_url=None, openapi_url=None)

    app.dependency_overrides[readable_dag_ids] = _readable_by_user

    @app.get(PAGE_PATH, response_class=HTMLResponse)
    def coverage_page(
        request: Request,
        readable: Annotated[set[str] | None, Depends(readable_dag_ids)],
        conn_id: Annotated[str, Depends(warehouse_conn_id)],
        dag_id: Annotated[str | None, Query()] = None,
        hours: Annotated[int, Query(ge=1, le=2160)] = 24,
    ) -> HTMLResponse:
        since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=hours)
        rows, runs = load_coverage(conn_id, since, dag_id or None)
        if readable is not None:
            rows = [r for r in rows if r["dag_id"] in readable]
        # The UI's root: the mount's root path without this app's prefix (a deployment under a subpath too).
        ui = str(request.scope.get("root_path", "")).removesuffix(URL_PREFIX).rstrip("/")
        dag_ids = sorted({r["dag_id"] for r in rows} | ({dag_id} if dag_id else set()))
        return HTMLResponse(render_page(rows, runs, ui=ui, hours=hours, dag_id=dag_id, dag_ids=dag_ids))

    return app

