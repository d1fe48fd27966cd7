"""Trend Micro CAS: a 72-hour backfill of four event types by two instances sharing one API key.

Two collector processes (each one instance: every 5-minute window of the backfill, oldest first, for the
four log event types, through ``TrendMicroCasHook``) read the simulator at the same time with one key.
The simulator enforces the documented fixed window (20 requests per "minute" per key, 429 beyond it)
on a sped-up clock: one minute lasts ``60 / speed`` seconds, and the client's budget period is set to
the same length (connection extra ``rate_period_seconds``). Its data clock is frozen at the start, so
the 72 hours do not age while the backfill runs.

Side by side in one run:

* **shared** (ours): both processes draw from the key's shared budget (:mod:`seccollect.http.shared_budget`);
* **per-process** (the kit's :class:`~seccollect.http.budget.ProcessBudget`, what a budget that does not
  span processes gives): each process keeps the limit on its own.

Printed per mode: requests needed, 429s, requests per minute used and the share of the budget (target
≥ 90 % with zero 429s), the most requests the simulator saw in any window, and the wall time against
the ideal (requests needed ÷ budget).

    .venv/bin/python bench/trendmicro_budget.py --hours 3        # reduced size, ~3 min for both modes
    .venv/bin/python bench/trendmicro_budget.py --modes shared   # the full 72 hours, ours only (~31 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
EVENTS = ("dlp", "ransomware", "securityrisk", "virtualanalyzer")
LIMIT = 20


def child(conn_json: str, start: str, end: str, mode: str, out: str) -> None:
    """One instance's backfill: every 5-minute window of [start, end), the four event types, oldest first."""
    os.environ["AIRFLOW_CONN_CAS_BENCH"] = conn_json
    if mode == "per-process":
        from seccollect.http import budget as process_budgets
        from seccollect.http import shared_budget

        shared_budget.shared_budget = lambda key, limits, margin=None: process_budgets.process_budget(
            key, limits[0].max_calls, limits[0].period + (margin or 0.0))
    from seccollect.vendors.trendmicro.hook import TrendMicroCasHook

    hook = TrendMicroCasHook("cas_bench")
    moment, stop = datetime.fromisoformat(start), datetime.fromisoformat(end)
    ids: dict[str, list[str]] = {e: [] for e in EVENTS}
    began = time.perf_counter()
    while moment < stop:
        for event in EVENTS:
            for page in hook.iter_events("sharepoint", event, moment, moment + timedelta(minutes=5)):
                ids[event] += [r["log_item_id"] for r in page]
        moment += timedelta(minutes=5)
    Path(out).write_text(json.dumps({"ids": ids, "seconds": time.perf_counter() - began,
                                     "attempts": hook.get_conn().attempts_made}))


def run_mode(mode: str, hours: float, speed: float, margin: float, per_hour: float) -> dict[str, object]:
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.trendmicro import CasDataset, CasOptions, CasSimulator, max_in_window

    period = 60.0 / speed
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now -= timedelta(minutes=now.minute % 5)
    start = now - timedelta(hours=hours)
    dataset = CasDataset(3, start - timedelta(hours=1), now, per_hour=per_hour, services=("sharepoint",))
    token = f"bench-key-{mode}-{time.time_ns()}"
    app = CasSimulator(dataset, [token], CasOptions(rate_limit=LIMIT, rate_period=period), clock=lambda: now.timestamp())
    with tempfile.TemporaryDirectory(prefix="cas-bench-") as tmp, SimulatorServer(app) as server:
        conn = json.dumps({"conn_type": "trendmicro_cas", "host": server.url, "password": token,
                           "extra": {"requests_per_minute": LIMIT, "rate_period_seconds": period,
                                     "rate_margin_seconds": margin}})
        env = {**os.environ, "SECCOLLECT_BUDGET_PATH": str(Path(tmp) / "budget.sqlite3"),
               "AIRFLOW_HOME": tmp, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
        env.pop("SECCOLLECT_BUDGET_CONN_ID", None)
        outs = [Path(tmp) / f"out-{n}.json" for n in range(2)]
        began = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "child", conn, start.isoformat(), now.isoformat(), mode,
                                   str(out)], env=env, cwd=REPO) for out in outs]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"a collector process failed ({mode})")
        wall = time.perf_counter() - began
        results = [json.loads(out.read_text()) for out in outs]
    ok = [r.at for r in app.request_log if r.status == 200]
    throttled = sum(1 for r in app.request_log if r.status == 429)
    expected = {e: dataset.expected_ids("sharepoint", e, start, now) for e in EVENTS}
    complete = all(set(res["ids"][e]) == expected[e] for res in results for e in EVENTS)
    active = max(ok) - min(ok) if len(ok) > 1 else 0.0
    per_minute = (len(ok) - 1) / active * period if active else 0.0
    ideal = len(ok) / LIMIT * period
    return {
        "mode": mode, "requests": len(ok), "throttled": throttled, "complete": complete,
        "per_minute": per_minute, "share": per_minute / LIMIT, "max_window": max_in_window(ok, period),
        "wall": wall, "active": active, "ideal": ideal, "period": period,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=72.0, help="backfill length (default: the API's 72 hours)")
    parser.add_argument("--speed", type=float, default=12.0, help="clock speed-up: a minute lasts 60/speed s")
    parser.add_argument("--margin", type=float, default=None,
                        help="budget margin per period in seconds (default: the connection default, 2 %% of the "
                        "minute and at least 0.25 s: a first request on a new connection can take that long)")
    parser.add_argument("--per-hour", type=float, default=2.0, help="records per hour per event type")
    parser.add_argument("--modes", default="shared,per-process", help="comma-separated: shared, per-process")
    args = parser.parse_args()
    margin = args.margin if args.margin is not None else max(0.25, 0.02 * 60.0 / args.speed)
    rows = []
    for mode in args.modes.split(","):
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        rows.append(run_mode(mode, args.hours, args.speed, margin, args.per_hour))
    print(f"\n## Trend Micro CAS shared request budget (issue 16)\n\nCommand: `.venv/bin/python bench/trendmicro_budget.py "
          f"--hours {args.hours:g} --speed {args.speed:g}` — {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores. "
          f"Two collector processes, one API key, {args.hours:g} h × 4 event types of Sharepoint Log in 5-minute "
          f"windows; budget {LIMIT} per minute, one minute = {60 / args.speed:g} s (sped up ×{args.speed:g}).\n")
    print("| budget | requests | 429s | all data | requests / minute | share of budget | max in any minute "
          "| wall s (first→last request) | ideal s | wall ÷ ideal | wall s incl. process start |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['requests']} | {r['throttled']} | {'yes' if r['complete'] else 'NO'} | "
              f"{r['per_minute']:.1f} | {r['share']:.1%} | {r['max_window']} | {r['active']:.1f} | {r['ideal']:.1f} | "
              f"{r['active'] / r['ideal']:.2f} | {r['wall']:.1f} |")
    print("\nIdeal = requests needed ÷ budget (one minute per 20 requests); requests / minute over the span from "
          "the first to the last request, in sped-up minutes.")
    shared = next((r for r in rows if r["mode"] == "shared"), None)
    if shared and (shared["throttled"] or not shared["complete"] or shared["share"] < 0.9):
        print("\nTARGET MISSED: shared budget needs >= 90 % of the budget, zero 429s, all data", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:7])
    else:
        main()
