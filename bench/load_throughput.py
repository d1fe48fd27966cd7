"""Loading throughput: ``load_window`` beside the bare bulk-copy rate of the same rows, in one run.

Generates Netskope-like records (raw JSON ~400-800 bytes, 2 % re-deliveries of the same ``_id``),
wraps them in the record envelope and stages them as Syslog Parquet parts with ``StagingWriter``, then,
for each backend, measures in fresh child processes:

* DuckDB   bare: read the same Parquet parts (``read_batch``) and ``INSERT INTO t SELECT * FROM arrow``
                 into a table with the same columns and no constraints, one transaction.
           load: ``DuckDBWarehouse.load_window`` of the same parts into a fresh database file.
           load_pk: the same, into a file whose tables have a PRIMARY KEY (the schema before it was
                 dropped from the append-only tables): what the ART index costs, side by side.
* Postgres bare: read the same parts, encode the same CSV payload (``arrow_to_csv``) and plain ``COPY``
                 it into a table with the same columns and no constraints, one transaction.
           load: ``PostgresWarehouse.load_window`` into a fresh database (created and dropped here).
           floor: the new rows known in advance, plain ``COPY`` into the table with its PRIMARY KEY.

The ratio is load rows/s over bare rows/s (target >= 70 %). Each load is then run a second time on
the same database and must insert 0 rows (idempotency); that re-run is timed too.

    .venv/bin/python bench/load_throughput.py            # 1,000,000 rows, DuckDB and PostgreSQL
    .venv/bin/python bench/load_throughput.py --quick    # 100,000 rows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _common as common

DAG_ID = "bench_netskope_acme"
TABLE = "syslog"


# --- measured steps (each runs in its own child process) ---------------------------------------------


def _instrument(warehouse: Any, watch: common.Stopwatch) -> None:
    """Time the parts of ``load_window`` (reading Parquet, staging, the SQL) without changing them.

    Times are exclusive: "stage" is what staging costs besides encoding and COPY, which have their own.
    Only what the warehouse code has is wrapped, so the same script also measures older versions of it.
    """
    import seccollect.staging.store as store

    backend_module = sys.modules[type(warehouse).__module__]
    functions = [(store, "read_batch", "read parquet"), (backend_module, "first_row_mask", "dedupe")]
    if warehouse.kind == "postgres":
        functions += [(backend_module, "arrow_to_csv", "encode csv"), (backend_module, "_copy_in", "copy")]
    methods = [
        (warehouse, "_stage", "stage"),
        (warehouse, "_execute", "sql"),
        (warehouse, "_unstage", "unstage"),
        (warehouse, "_absent_rows", "lookup"),
    ]
    for owner, name, label in functions + methods:
        original = getattr(owner, name, None)
        if original is None:
            continue

        def timed(*args: Any, _original: Any = original, _label: str = label) -> Any:
            with watch(_label):
                return _original(*args)

        setattr(owner, name, timed)


def duckdb_bare(batches: list[dict[str, Any]], database: str) -> dict[str, Any]:
    import duckdb

    from seccollect.records.catalog import table
    from seccollect.staging.store import read_batch
    from seccollect.warehouse.duckdb import SQL_TYPES

    staged = common.warm_up(batches)
    con = duckdb.connect(database)
    columns = ", ".join(f"{c.name} {SQL_TYPES[c.type]}" for c in table(TABLE).columns)
    con.execute(f"CREATE TABLE bare ({columns})")
    baseline = common.rss_now_mib()
    watch = common.Stopwatch()
    start = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    for batch in staged:
        with watch("read parquet"):
            arrow = read_batch(batch)
        with watch("insert"):
            # DuckDB's replacement scan finds the local variable ``arrow``. Not con.register(): inside a
            # transaction DuckDB keeps every registered object alive until the commit, which would
            # make the baseline hold the whole window in memory and page-fault through it.
            con.execute("INSERT INTO bare SELECT * FROM arrow")
        del arrow
    with watch("commit"):
        con.execute("COMMIT")
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM bare").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows, "parts": watch.totals, "baseline_rss_mib": baseline}


def duckdb_load(batches: list[dict[str, Any]], database: str) -> dict[str, Any]:
    from seccollect.warehouse.duckdb import DuckDBWarehouse

    staged = common.warm_up(batches)
    warehouse = DuckDBWarehouse(database)
    warehouse.ensure_schema()
    return _load_and_reload(warehouse, staged)


def pg_bare(batches: list[dict[str, Any]], dbname: str) -> dict[str, Any]:
    import psycopg

    from seccollect.records.catalog import table
    from seccollect.warehouse.postgres import SQL_TYPES

    staged = common.warm_up(batches)
    conn = psycopg.connect(**common.pg_params(dbname))
    columns = ", ".join(f"{c.name} {SQL_TYPES[c.type]}" for c in table(TABLE).columns)
    conn.execute(f"CREATE TABLE bare ({columns})")
    conn.commit()  # created beforehand, so COPY is WAL-logged like any load into an existing table
    return _pg_copy_parts(conn, "bare", staged)


def _first_occurrences(staged: list[Any]) -> list[Any]:
    """Per part, which rows are the first of their record_id in the whole window (computed untimed)."""
    import pyarrow as pa

    from seccollect.staging.store import read_batch

    seen: set[str] = set()
    masks = []
    for batch in staged:
        ids = read_batch(batch).column("record_id").to_pylist()
        masks.append(pa.array([not (i in seen or seen.add(i)) for i in ids]))
    return masks


def duckdb_load_pk(batches: list[dict[str, Any]], database: str) -> dict[str, Any]:
    """``load_window`` into a file whose append-only tables have a PRIMARY KEY, as DuckDB files created
    before that key was dropped have: what the ART index costs the same load, side by side."""
    import duckdb

    from seccollect.records.catalog import tables
    from seccollect.warehouse.base import create_table_sql
    from seccollect.warehouse.duckdb import SQL_TYPES, DuckDBWarehouse

    staged = common.warm_up(batches)
    con = duckdb.connect(database)
    for name in tables():
        con.execute(create_table_sql(name, SQL_TYPES))
    con.close()
    warehouse = DuckDBWarehouse(database)
    warehouse.ensure_schema()
    return _load_and_reload(warehouse, staged)


def pg_floor(batches: list[dict[str, Any]], dbname: str) -> dict[str, Any]:
    """The new rows, known in advance (first of their record_id, before the timer), sorted by key as the
    load does and COPYed into the table with its PRIMARY KEY: what the index alone costs."""
    import psycopg
    import pyarrow.compute as pc

    from seccollect.warehouse.base import create_table_sql
    from seccollect.warehouse.postgres import SQL_TYPES

    staged = common.warm_up(batches)
    masks = _first_occurrences(staged)
    conn = psycopg.connect(**common.pg_params(dbname))
    conn.execute("CREATE SCHEMA IF NOT EXISTS floor")
    conn.execute(create_table_sql(TABLE, SQL_TYPES, schema="floor"))
    conn.commit()

    def new_rows_in_key_order(part: int, data: Any, watch: common.Stopwatch) -> Any:
        with watch("read parquet"):
            data = data.filter(masks[part])
        with watch("sort"):  # key order, as the load does: kinder to the primary-key index
            return data.take(pc.sort_indices(data.column("record_id")))

    return _pg_copy_parts(conn, f"floor.{TABLE}", staged, new_rows_in_key_order)


def _pg_copy_parts(conn: Any, target: str, staged: list[Any], prepare: Any = None) -> dict[str, Any]:
    """(child) Plain CSV ``COPY`` of every staged part into ``target``, one transaction, timed per step;
    ``prepare(part_number, data, watch)`` may reduce a part first. Closes ``conn``."""
    from seccollect.records.catalog import table
    from seccollect.staging.store import read_batch
    from seccollect.warehouse.postgres import arrow_to_csv

    names = [c.name for c in table(TABLE).columns]
    baseline = common.rss_now_mib()
    watch = common.Stopwatch()
    start = time.perf_counter()
    with conn.cursor() as cur:
        for part, batch in enumerate(staged):
            with watch("read parquet"):
                data = read_batch(batch)
            if prepare is not None:
                data = prepare(part, data, watch)
            with watch("encode csv"):
                payload = arrow_to_csv(data.select(names))
            with (
                watch("copy"),
                cur.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                copy.write(payload)
    with watch("commit"):
        conn.commit()
    seconds = time.perf_counter() - start
    rows = conn.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    conn.close()
    return {"seconds": seconds, "rows": rows, "parts": watch.totals, "baseline_rss_mib": baseline}


def pg_load(batches: list[dict[str, Any]], dbname: str) -> dict[str, Any]:
    import psycopg

    from seccollect.warehouse.postgres import PostgresWarehouse

    staged = common.warm_up(batches)
    warehouse = PostgresWarehouse(psycopg.connect(**common.pg_params(dbname)))
    warehouse.ensure_schema()
    return _load_and_reload(warehouse, staged)


def _load_and_reload(warehouse: Any, staged: list[Any]) -> dict[str, Any]:
    window = common.window_key(DAG_ID, "alert")
    baseline = common.rss_now_mib()
    watch = common.Stopwatch()
    _instrument(warehouse, watch)
    start = time.perf_counter()
    report = warehouse.load_window(window, staged, run_id="bench-1")
    seconds = time.perf_counter() - start
    parts = dict(watch.totals)
    parts["commit+ledger"] = seconds - sum(parts.values())
    rows = warehouse.query(f"SELECT count(*) FROM {TABLE}")[0][0]
    # Idempotency: the same window loaded again adds nothing.
    start = time.perf_counter()
    again = warehouse.load_window(window, staged, run_id="bench-2")
    rerun_seconds = time.perf_counter() - start
    rows_after = warehouse.query(f"SELECT count(*) FROM {TABLE}")[0][0]
    ledger = warehouse.query("SELECT inserted_rows, staged_rows FROM collection_ledger")
    warehouse.close()
    first = report.tables[TABLE]
    return {
        "seconds": seconds,
        "staged": first.staged,
        "inserted": first.inserted,
        "rows": rows,
        "parts": parts,
        "rerun_seconds": rerun_seconds,
        "rerun_inserted": again.tables[TABLE].inserted,
        "rows_after_rerun": rows_after,
        "ledger": [list(r) for r in ledger],
        "baseline_rss_mib": baseline,
    }


# --- driver -----------------------------------------------------------------------------------------


def _seconds(runs: list[dict[str, Any]], field: str = "seconds") -> str:
    return ", ".join(f"{r[field]:.2f}" for r in runs)


def _parts_text(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="records to generate (default 1,000,000)")
    parser.add_argument("--part-rows", type=int, default=50_000, help="rows per staged Parquet part")
    parser.add_argument("--duplicate-fraction", type=float, default=0.02, help="re-delivered records")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="measure bare, load and the third path this many times, rotating which goes first (best run reported)",
    )
    common.add_run_arguments(parser, seed=7, quick_help="100,000 rows (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 100_000)
    backends = common.backend_list(args)

    load_at_start = common.load_average()
    common.exit_on_sigterm()
    with common.work_dir(args.keep) as root:
        common.prepare_environment(root)
        print(f"Generating and staging {args.rows:,} rows in {root} ...", file=sys.stderr)
        start = time.perf_counter()
        staged = common.run_step(
            "load_throughput",
            "stage_step",
            rows=args.rows,
            seed=args.seed,
            part_rows=args.part_rows,
            duplicate_fraction=args.duplicate_fraction,
        )
        batches, facts = staged["batches"], staged["facts"]
        print(f"  staged in {time.perf_counter() - start:.1f} s: {facts}", file=sys.stderr)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for backend in backends:
            # DuckDB: the load beside the same load into tables with a primary key (the earlier schema);
            # PostgreSQL: beside the floor (new rows known in advance, COPYed into the keyed table).
            kinds = ("bare", "load", "load_pk" if backend == "duckdb" else "floor")
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for rep in range(args.repeat):
                # Rotate which path runs first, so none always meets a cold server or cache.
                order = kinds[rep % 3 :] + kinds[: rep % 3]
                if backend == "duckdb":
                    for kind in order:
                        db = str(root / f"{kind}-{rep}.duckdb")
                        print(f"  duckdb {kind} #{rep + 1} ...", file=sys.stderr)
                        runs[kind].append(
                            common.run_step("load_throughput", f"duckdb_{kind}", batches=batches, database=db)
                        )
                        Path(db).unlink(missing_ok=True)
                        Path(db + ".wal").unlink(missing_ok=True)
                else:
                    with common.postgres_database("seccollect_bench") as dbname:
                        for kind in order:
                            common.pg_checkpoint()
                            print(f"  postgres {kind} #{rep + 1} ...", file=sys.stderr)
                            runs[kind].append(
                                common.run_step(
                                    "load_throughput", f"pg_{kind}", batches=batches, dbname=dbname
                                )
                            )
            results[backend] = runs
        print(_markdown(args, facts, results, backends, load_at_start))
        return _check(facts, results)


def stage_step(rows: int, seed: int, part_rows: int, duplicate_fraction: float) -> dict[str, Any]:
    """(child) Generate and stage the rows; 60 % page/application events, 40 % alerts."""
    staged, facts = common.stage_netskope(
        rows,
        seed=seed,
        content_type="alert",
        dag_id=DAG_ID,
        task_id="collect_alert",
        part_rows=part_rows,
        event_fraction=0.6,
        duplicate_fraction=duplicate_fraction,
    )
    staged = [b for b in staged if b.table == "syslog"]  # not the alert mapping's input: never loaded
    facts["machine"] = common.machine()
    return {"batches": common.batches_to_json(staged), "facts": facts}


def _check(facts: dict[str, Any], results: dict[str, dict[str, list[dict[str, Any]]]]) -> int:
    ok = True
    for backend, runs in results.items():
        for run in runs["bare"]:
            ok &= run["rows"] == facts["rows"]
        for run in runs.get("floor", []):
            ok &= run["rows"] == facts["distinct_record_ids"]
        for run in runs["load"] + runs.get("load_pk", []):
            ok &= run["rows"] == facts["distinct_record_ids"] == run["inserted"] == run["rows_after_rerun"]
            ok &= run["rerun_inserted"] == 0
        if not ok:
            print(f"CORRECTNESS CHECK FAILED on {backend}", file=sys.stderr)
    return 0 if ok else 1


def _markdown(
    args: argparse.Namespace,
    facts: dict[str, Any],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    backends: list[str],
    load_at_start: str,
) -> str:
    rows = facts["rows"]
    lines = [
        f"Command: `{common.command_line()}`  ",
        f"Date: {common.today()}; 1-minute load average {load_at_start} before the run, "
        f"{common.load_average()} after it  ",
        f"Machine: {facts['machine']}"
        + (f"; {common.pg_version()}" if "postgres" in backends else "")
        + "  ",
        "Timing: `time.perf_counter` around the measured call, inside a fresh child process per step; "
        "memory: the child's peak RSS (`ru_maxrss` from `os.wait4` when the parent reaps it).",
        "",
        f"Data: {rows:,} envelope rows ({facts['distinct_record_ids']:,} distinct record_ids, "
        f"{facts['duplicates']:,} re-deliveries), raw JSON {facts['avg_raw_bytes']:.0f} bytes on average, "
        f"{facts['parts']} Parquet parts ({facts['parquet_mib']:.0f} MiB zstd), one window, one transaction.",
        "",
        "| backend | path | seconds (best) | rows/s (best) | every run, s | ratio load/bare | peak RSS | "
        "breakdown of the best run |",
        "|---|---|---:|---:|---|---:|---:|---|",
    ]
    for backend in backends:
        runs = results[backend]
        best_bare = min(runs["bare"], key=lambda r: r["seconds"])
        best_load = min(runs["load"], key=lambda r: r["seconds"])
        bare, load = best_bare["seconds"], best_load["seconds"]
        third = "load_pk" if backend == "duckdb" else "floor"
        best_third = min(runs[third], key=lambda r: r["seconds"])
        floor = best_third["seconds"]
        pairs = ", ".join(
            f"{b['seconds'] / ld['seconds']:.0%}" for b, ld in zip(runs["bare"], runs["load"], strict=True)
        )
        bare_desc = "bare `INSERT INTO t SELECT * FROM arrow`" if backend == "duckdb" else "bare CSV `COPY`"
        lines.append(
            f"| {backend} | {bare_desc} | {bare:.2f} | {rows / bare:,.0f} | {_seconds(runs['bare'])} | | "
            f"{max(r['peak_rss_mib'] for r in runs['bare']):,.0f} MiB | {_parts_text(best_bare['parts'])} |"
        )
        versus = "" if backend == "duckdb" else f"; {floor / load:.0%} of the floor"
        lines.append(
            f"| {backend} | `load_window` | {load:.2f} | {rows / load:,.0f} | {_seconds(runs['load'])} | "
            f"**{bare / load:.0%}** (per repetition: {pairs}){versus} | "
            f"{max(r['peak_rss_mib'] for r in runs['load']):,.0f} MiB | {_parts_text(best_load['parts'])} |"
        )
        if backend == "duckdb":
            third_desc = "`load_window` into tables with a PRIMARY KEY (files created before it was dropped)"
            third_ratio = f"{bare / floor:.0%}"
        else:
            third_desc = "floor: new rows known in advance, plain `COPY` into the table with its PRIMARY KEY"
            third_ratio = f"{bare / floor:.0%} (the best an idempotent load can reach)"
        lines.append(
            f"| {backend} | {third_desc} | {floor:.2f} | {rows / floor:,.0f} | {_seconds(runs[third])} | "
            f"{third_ratio} | "
            f"{max(r['peak_rss_mib'] for r in runs[third]):,.0f} MiB | {_parts_text(best_third['parts'])} |"
        )
        rerun = min(r["rerun_seconds"] for r in runs["load"])
        lines.append(
            f"| {backend} | `load_window` again (all duplicates) | {rerun:.2f} | {rows / rerun:,.0f} | "
            f"{_seconds(runs['load'], 'rerun_seconds')} | | | "
            f"inserted {', '.join(str(r['rerun_inserted']) for r in runs['load'])} |"
        )
    lines += [
        "",
        f"{args.repeat} repetition(s) per backend, rotating which path runs first (bare, load, third / "
        "load, third, bare / ...); the headline figures are the best run of each path (the least disturbed by "
        "anything else on the machine), and the ratio of those; the ratio of each adjacent bare/load pair is "
        f"shown beside it. Rows/s are staged rows ({rows:,}) per second for every path. "
        "Breakdown: exclusive time in the warehouse's own steps, timed by wrapping them; commit+ledger is "
        "the rest (quarantine, ledger rows, COMMIT).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
