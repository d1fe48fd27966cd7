"""Alert mapping: raw Netskope alerts -> Alerts index, seconds and peak memory, DuckDB and PostgreSQL.

Generates raw Netskope-like alerts (breach / connection / malsite with ids from small pools shared by
all users, so keys repeat across users and over time; other alert types; mapped alerts whose id is 0,
empty or missing), stages them as Syslog Parquet parts, with their ``alert_fields`` beside them, with
``StagingWriter`` exactly as the collect task does (what building the fields costs the collect side is
reported with the data), then measures, in one fresh child process per backend, what the mapping and
load tasks do:

1. ``map_window`` over the staged parts (one DuckDB connection, as ``NetskopeAlertMappingOperator``):
   ``map_fields`` per ``alert_fields`` part, the links staged (``alert_sources``), then each key's
   latest link with its raw alert (``alert_latest``, raw alerts read back from the Syslog parts);
2. ``load_window`` of those parts (links inserted, Alerts rows recomputed).

Reported: seconds of 1, 2 and 1+2, and the child's peak RSS. The result is checked against keys
computed independently in Python, and a second ``load_window`` must add no link and change no alert.

    .venv/bin/python bench/alert_mapping.py            # 1,000,000 raw alerts, DuckDB and PostgreSQL
    .venv/bin/python bench/alert_mapping.py --quick    # 100,000 raw alerts
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _common as common

DAG_ID = "bench_netskope_alerts"
TARGET_SECONDS = 15.0
TARGET_MIB = 1024.0


# --- measured steps (each runs in its own child process, as the two Airflow tasks do) -----------------


def map_step(batches: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    """What ``NetskopeAlertMappingOperator`` does: ``map_window`` over the staged parts (links,
    and each key's latest raw alert), timed by wrapping the functions it calls."""
    import duckdb

    import seccollect.staging.store as store
    import seccollect.vendors.netskope.alert_mapping as alert_mapping
    from seccollect.staging.store import StagingWriter, window_folder

    staged = common.warm_up(batches)
    baseline = common.rss_now_mib()
    watch = common.Stopwatch()
    read_batch, map_fields = store.read_batch, alert_mapping.map_fields

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        with watch("read parquet"):
            return read_batch(*args, **kwargs)

    def timed_map(*args: Any, **kwargs: Any) -> Any:
        with watch("map_fields"):
            return map_fields(*args, **kwargs)

    store.read_batch, alert_mapping.map_fields = timed_read, timed_map
    writer = StagingWriter(window_folder(DAG_ID, common.WINDOW_START, common.WINDOW_END, task_id))
    write_table = writer.write_table

    def timed_write(table: str, data: Any) -> None:
        with watch(f"stage {table}"):
            write_table(table, data)

    writer.write_table = timed_write  # type: ignore[method-assign]
    start = time.perf_counter()
    con = duckdb.connect()
    try:
        mapped = alert_mapping.map_window(staged, writer, con)
    finally:
        con.close()
    link_batches = writer.close()
    seconds = time.perf_counter() - start
    store.read_batch, alert_mapping.map_fields = read_batch, map_fields
    parts = dict(watch.totals)
    parts["latest link per key, other"] = seconds - sum(parts.values())
    return {
        "seconds": seconds,
        "parts": parts,
        "mapped": mapped,
        "batches": common.batches_to_json(link_batches),
        "baseline_rss_mib": baseline,
    }


def load_step(
    batches: list[dict[str, Any]], backend: str, target: str, memory_limit: str = ""
) -> dict[str, Any]:
    """What the load task does with the links: ``load_window`` (links inserted, Alerts recomputed)."""
    staged = common.warm_up(batches)
    warehouse = _open(backend, target)
    if memory_limit:
        warehouse.con.execute(f"SET memory_limit = '{memory_limit}'")
    warehouse.ensure_schema()
    window = common.window_key(DAG_ID, "alert")
    baseline = common.rss_now_mib()

    watch = common.Stopwatch()
    restore = _instrument(warehouse, watch)
    start = time.perf_counter()
    from seccollect import registry

    post_load = registry.get("netskope").post_load  # the Alerts recompute, as the load task runs it
    report = warehouse.load_window(window, staged, run_id="bench-1", post_load=post_load)
    seconds = time.perf_counter() - start
    restore()
    parts = dict(watch.totals)
    parts["commit+ledger"] = seconds - sum(parts.values())

    facts = _facts(warehouse)
    start = time.perf_counter()
    again = warehouse.load_window(window, staged, run_id="bench-2", post_load=post_load)
    rerun_seconds = time.perf_counter() - start
    facts_after = _facts(warehouse)
    warehouse.close()
    return {
        "seconds": seconds,
        "parts": parts,
        "rerun_seconds": rerun_seconds,
        "alerts_touched": report.figures.get("alerts_touched", 0),
        "alerts_touched_rerun": again.figures.get("alerts_touched", 0),
        "facts": facts,
        "facts_after_rerun": facts_after,
        "baseline_rss_mib": baseline,
    }


def _instrument(warehouse: Any, watch: common.Stopwatch) -> Any:
    """Time reading the parts, inserting the links and recomputing Alerts (by wrapping them)."""
    import seccollect.staging.store as store

    originals = {"read_batch": store.read_batch}

    def timed_read(batch: Any) -> Any:
        with watch("read parquet"):
            return originals["read_batch"](batch)

    store.read_batch = timed_read
    wrapped = []
    for name, label in (("_insert_absent", "insert links"), ("_recompute_alerts", "recompute Alerts")):
        original = getattr(warehouse, name, None)
        if original is None:  # an older warehouse (the recompute used to run per part, inside the SQL)
            continue
        wrapped.append(name)

        def timed(*args: Any, _original: Any = original, _label: str = label) -> Any:
            with watch(_label):
                return _original(*args)

        setattr(warehouse, name, timed)

    execute = warehouse._execute

    def timed_execute(sql: str, params: Any = ()) -> Any:
        # An older warehouse recomputed Alerts per part, straight from load_window.
        if "INSERT INTO alerts" in sql:
            label = "recompute Alerts"
        elif "alert_sources" in sql:
            label = "insert links"
        else:
            label = "other SQL"
        with watch(label):
            return execute(sql, params)

    warehouse._execute = timed_execute
    wrapped.append("_execute")

    def restore() -> None:
        store.read_batch = originals["read_batch"]
        for name in wrapped:
            delattr(warehouse, name)

    return restore


def _open(backend: str, target: str) -> Any:
    if backend == "duckdb":
        from seccollect.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(target)
    import psycopg

    from seccollect.warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse(psycopg.connect(**common.pg_params(target)))


def _facts(warehouse: Any) -> dict[str, Any]:
    links, linked_records = warehouse.query("SELECT count(*), count(DISTINCT record_id) FROM alert_sources")[
        0
    ]
    alerts, raw_total, keyed = warehouse.query(
        "SELECT count(*), coalesce(sum(raw_count), 0), count(dedup_id) FROM alerts"
    )[0]
    checksum = warehouse.query(
        "SELECT count(DISTINCT latest_record_id), min(first_seen), max(last_seen) FROM alerts"
    )[0]
    return {
        "links": int(links),
        "linked_records": int(linked_records),
        "alerts": int(alerts),
        "raw_count_total": int(raw_total),
        "keyed_alerts": int(keyed),
        "checksum": [str(v) for v in checksum],
    }


# --- data and the expected result, computed independently --------------------------------------------


def stage_step(
    rows: int, seed: int, part_rows: int, users: int, duplicate_fraction: float, missing_id_fraction: float
) -> dict[str, Any]:
    """(child) Generate and stage the raw alerts, and compute the expected Alerts keys."""
    staged, facts = common.stage_netskope(
        rows,
        seed=seed,
        content_type="alert",
        dag_id=DAG_ID,
        task_id="collect_alert",
        part_rows=part_rows,
        users=users,
        event_fraction=0.0,
        duplicate_fraction=duplicate_fraction,
        missing_id_fraction=missing_id_fraction,
    )
    facts["machine"] = common.machine()
    return {"batches": common.batches_to_json(staged), "facts": facts, "expected": _expected(staged)}


def _expected(batches: list[Any]) -> dict[str, int]:
    """Alerts keys by the mapping rules, computed in plain Python from the staged raw JSON."""
    import json

    from seccollect.staging.store import read_batch

    ids = {"breach": "breach_id", "connection": "connection_id", "malsite": "malsite_id"}
    keyed: set[tuple[str, str, str]] = set()
    unkeyed: set[str] = set()
    records: set[str] = set()
    mapped_rows = 0
    for batch in batches:
        if batch.table != "syslog":
            continue
        data = read_batch(batch).select(["record_id", "raw"]).to_pylist()
        for row in data:
            raw = json.loads(row["raw"])
            kind = str(raw.get("type", "")).lower()
            if kind not in ids:
                kind = {"compromised credential": "breach", "malsite": "malsite"}.get(
                    str(raw.get("alert_type", "")).lower(), ""
                )
            if not kind:
                continue
            records.add(row["record_id"])
            mapped_rows += 1
            value = raw.get(ids[kind])
            if value is None or str(value).strip() in ("", "0"):
                unkeyed.add(row["record_id"])
            else:
                keyed.add((kind, str(raw.get("user") or ""), str(value)))
    return {
        "keyed": len(keyed),
        "unkeyed": len(unkeyed),
        "alerts": len(keyed) + len(unkeyed),
        "records": len(records),
        "mapped_rows": mapped_rows,
    }


# --- driver -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="raw alerts to generate (default 1,000,000)"
    )
    parser.add_argument("--part-rows", type=int, default=50_000, help="rows per staged Syslog Parquet part")
    parser.add_argument("--users", type=int, default=2_000, help="distinct users raising alerts")
    parser.add_argument("--duplicate-fraction", type=float, default=0.02, help="re-delivered raw alerts")
    parser.add_argument(
        "--missing-id-fraction",
        type=float,
        default=0.06,
        help="mapped alerts whose id is 0, empty or missing",
    )
    parser.add_argument(
        "--duckdb-memory-limits",
        default="default,600MB",
        help="DuckDB runs to make, by the load connection's memory_limit ('default' = DuckDB's own)",
    )
    common.add_run_arguments(parser, seed=11, quick_help="100,000 raw alerts (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 100_000)
    backends = common.backend_list(args)

    load_at_start = common.load_average()
    common.exit_on_sigterm()
    with common.work_dir(args.keep) as root:
        common.prepare_environment(root)
        print(f"Generating and staging {args.rows:,} raw alerts in {root} ...", file=sys.stderr)
        start = time.perf_counter()
        staged = common.run_step(
            "alert_mapping",
            "stage_step",
            rows=args.rows,
            seed=args.seed,
            part_rows=args.part_rows,
            users=args.users,
            duplicate_fraction=args.duplicate_fraction,
            missing_id_fraction=args.missing_id_fraction,
        )
        batches, facts, expected = staged["batches"], staged["facts"], staged["expected"]
        print(
            f"  staged in {time.perf_counter() - start:.1f} s: {facts}; expected {expected}", file=sys.stderr
        )
        runs: list[tuple[str, str, str, list[dict[str, Any]]]] = []  # label, backend, memory limit, batches
        for backend in backends:
            limits = (
                [x.strip() for x in args.duckdb_memory_limits.split(",")] if backend == "duckdb" else [""]
            )
            for limit in limits:
                limit = "" if limit == "default" else limit
                runs.append((f"{backend} (memory_limit {limit})" if limit else backend, backend, limit, batches))
        results: dict[str, dict[str, Any]] = {}
        for label, backend, limit, run_batches in runs:
            print(f"  {label}: map ...", file=sys.stderr)
            mapped = common.run_step(
                "alert_mapping", "map_step", batches=run_batches, task_id=f"map_alerts_{len(results)}"
            )
            print(f"  {label}: load ...", file=sys.stderr)
            if backend == "duckdb":
                db = root / f"alerts-{len(results)}.duckdb"
                loaded = common.run_step(
                    "alert_mapping",
                    "load_step",
                    batches=mapped["batches"],
                    backend=backend,
                    target=str(db),
                    memory_limit=limit,
                )
                db.unlink(missing_ok=True)
                Path(str(db) + ".wal").unlink(missing_ok=True)
            else:
                with common.postgres_database("seccollect_bench_alerts") as dbname:
                    common.pg_checkpoint()
                    loaded = common.run_step(
                        "alert_mapping",
                        "load_step",
                        batches=mapped["batches"],
                        backend=backend,
                        target=dbname,
                    )
            results[label] = {"backend": backend, "map": mapped, "load": loaded}
        ok = _check(expected, results)
        print(_markdown(facts, expected, results, ok, load_at_start))
        return 0 if ok else 1


def _check(expected: dict[str, int], results: dict[str, dict[str, Any]]) -> bool:
    ok = True
    for label, r in results.items():
        load = r["load"]
        f = load["facts"]
        good = (
            r["map"]["mapped"] == expected["records"] + _duplicates_of_mapped(expected)
            and f["alerts"] == expected["alerts"]
            and f["keyed_alerts"] == expected["keyed"]
            and f["links"] == f["linked_records"] == f["raw_count_total"] == expected["records"]
            and load["facts_after_rerun"] == f
        )
        if not good:
            print(
                f"CORRECTNESS CHECK FAILED on {label}: mapped {r['map']['mapped']}, {f} vs {expected}; "
                f"after re-run {load['facts_after_rerun']}",
                file=sys.stderr,
            )
        ok &= good
    facts = [{k: v for k, v in r["load"]["facts"].items() if k != "checksum"} for r in results.values()]
    if any(f != facts[0] for f in facts):
        print(f"BACKENDS DISAGREE: {facts}", file=sys.stderr)
        ok = False
    return ok


def _duplicates_of_mapped(expected: dict[str, int]) -> int:
    return expected["mapped_rows"] - expected["records"]


def _parts_text(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())


def _markdown(
    facts: dict[str, Any],
    expected: dict[str, int],
    results: dict[str, dict[str, Any]],
    ok: bool,
    load_at_start: str,
) -> str:
    backends = {r["backend"] for r in results.values()}
    lines = [
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; 1-minute load average {load_at_start} before the run, "
        f"{common.load_average()} after it  ",
        f"Machine: {facts['machine']}"
        + (f"; {common.pg_version()}" if "postgres" in backends else "")
        + "  ",
        "Timing: `time.perf_counter` around the measured call inside the child process (imports, connection "
        "and schema set-up excluded). Memory: peak RSS of each child (`ru_maxrss` from `os.wait4` when the "
        "parent reaps it): the mapping and the load run in separate processes, as the two Airflow tasks "
        "do; the figure includes the interpreter, Airflow, PyArrow and DuckDB (the RSS before the measured "
        "call is shown as baseline).",
        "",
        f"Data: {facts['rows']:,} raw alerts ({facts['distinct_record_ids']:,} distinct record_ids, "
        f"{facts['duplicates']:,} re-deliveries), raw JSON {facts['avg_raw_bytes']:.0f} bytes on average, "
        f"{facts['parts']} Syslog Parquet parts. Mapped kinds: {expected['mapped_rows']:,} raw alerts "
        f"({expected['records']:,} distinct) -> {expected['alerts']:,} Alerts keys ({expected['keyed']:,} keyed "
        f"by type/user/id, {expected['unkeyed']:,} with id 0/empty/missing, one key each). Building the "
        f"`alert_fields` beside the raw alerts (collect side, not part of the figures below): "
        f"{facts['alert_fields_seconds']:.2f} s.",
        "",
        "| warehouse | map_window | load_window (links + Alerts) | total | peak RSS map / load "
        "(baseline) | targets (DuckDB: 15 s, 1 GiB) | load again |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for label, r in results.items():
        m, ld = r["map"], r["load"]
        total = m["seconds"] + ld["seconds"]
        peak = max(m["peak_rss_mib"], ld["peak_rss_mib"])
        if r["backend"] == "duckdb":
            verdict = (
                f"time {'met' if total <= TARGET_SECONDS else 'MISSED'}, "
                f"memory {'met' if peak <= TARGET_MIB else 'MISSED'}"
            )
        else:
            verdict = "(no target)"
        lines.append(
            f"| {label} | {m['seconds']:.2f} s | {ld['seconds']:.2f} s | **{total:.2f} s** | "
            f"{m['peak_rss_mib']:,.0f} / **{ld['peak_rss_mib']:,.0f} MiB** "
            f"({m['baseline_rss_mib']:,.0f} / {ld['baseline_rss_mib']:,.0f}) | {verdict} | {ld['rerun_seconds']:.2f} s |"
        )
    lines += ["", "Where the time goes (exclusive seconds; commit+ledger is the rest of `load_window`):", ""]
    for label, r in results.items():
        lines.append(
            f"* {label}: map — {_parts_text(r['map']['parts'])}; load — {_parts_text(r['load']['parts'])}"
        )
    f = next(iter(results.values()))["load"]["facts"]
    lines += [
        "",
        f"Result: {f['links']:,} alert_sources links, {f['alerts']:,} Alerts rows "
        f"(sum of raw_count {f['raw_count_total']:,}); "
        + (
            "matches the independently computed keys on every run, and loading the window again "
            "changed nothing."
            if ok
            else "**CORRECTNESS CHECK FAILED** (see stderr)."
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
