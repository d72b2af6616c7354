"""Benchmark: one reminder dispatch cycle (DESIGN.md budget: 100,000 participants with 20,000
due messages, one cycle <= 60 s; queries bounded per batch, never per message).

A fresh PostgreSQL database of its own (``recovery_bench_dispatch``) and Redis database 9
(flushed), ``migrate``, then ``seed_demo --participants N --seed 1`` as a user would run it
(it plans the invitations and reminders of the surveys still ahead as queued Message rows).
Then exactly ``--due`` queued rows, one per assignment and spread over as many participants
as possible, are made due a minute ago and every other queued row is put in the future; the
assignments of ``--cancellable`` of the due rows are marked completed, so that the settle step
has work.

Each measurement is one ``surveys.dispatch.reminders_dispatch(now=..., batch_size=...,
enqueue=...)`` in a fresh process (``django.setup()``, same environment) against the real
Redis broker with no worker running: the send tasks stay in the queue, are counted and decoded,
and must name exactly the rows the cycle claimed. SQL statements are counted with
``CaptureQueriesContext``; the time of each phase (settle, sweep, claim, enqueue) is taken by
wrapping the module's functions in the measuring process (the app code is not changed). Before
each measurement the rows are put back as they were seeded, staged again and vacuumed.
Afterwards the database is checked: every due row claimed or settled, nothing else claimed.

    .venv/bin/python benchmarks/dispatch.py [--participants 100000] [--due 20000]
        [--compare-due 5000] [--batch-sizes 500,2000] [--profile] [--keep]
"""

import argparse
import base64
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pgdb  # benchmarks/pgdb.py: these scripts run as benchmarks/<name>.py

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "recovery_bench_dispatch"
DB_URL = pgdb.database_url(DB_NAME)
REDIS_DB = 9
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
BUDGET_S = 60.0
STUDY = "bench"
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
    "DJANGO_READ_DOT_ENV_FILE": "false",
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "PYTHONPATH": str(ROOT),
}


# --- Set-up (the parent process) ------------------------------------------------------------


def pg():
    return pgdb.connect(DB_NAME)


def sql(conn, statement: str, params=None) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def snapshot(conn, due: int, cancellable_share: float) -> dict:
    """Remember the seeded state of the queued rows and choose the due rows (bench_due, in
    order ``n``, a fixed pseudo-random order): one row per assignment, and participants' first
    assignments before their second ones; a second row of an assignment only if ``due``
    exceeds the assignments (then the cycle skips the older one as overdue). Every
    1/share-th row is cancellable: its assignment will be completed."""
    sql(
        conn,
        """
        CREATE TABLE bench_seeded AS
        SELECT id, scheduled_at, updated_at FROM surveys_message WHERE status = 'queued'
        """,
    )
    sql(conn, "ALTER TABLE bench_seeded ADD PRIMARY KEY (id)")
    every = max(1, round(1 / cancellable_share)) if cancellable_share > 0 else 0
    sql(
        conn,
        """
        CREATE TABLE bench_due AS
        WITH per_assignment AS (
            SELECT m.id, m.assignment_id, a.participant_id, row_number() OVER (
                PARTITION BY m.assignment_id ORDER BY md5(m.id::text)
            ) AS ra
            FROM surveys_message m
            JOIN surveys_assignment a ON a.id = m.assignment_id
            JOIN surveys_participant p ON p.id = a.participant_id
            WHERE m.status = 'queued' AND p.status = 'active'
              AND a.status IN ('scheduled', 'open', 'in_progress')
              AND a.closes_at > now() + interval '2 days'
        ), eligible AS (
            SELECT id, assignment_id, ra, row_number() OVER (
                PARTITION BY participant_id ORDER BY ra, md5(id::text)
            ) AS rp
            FROM per_assignment
        )
        SELECT row_number() OVER (ORDER BY ra, rp, md5(id::text || 'due')) AS n, id,
               assignment_id
        FROM eligible ORDER BY ra, rp, md5(id::text || 'due') LIMIT %s
        """,
        [due],
    )
    sql(conn, "ALTER TABLE bench_due ADD PRIMARY KEY (id)")
    sql(conn, "ALTER TABLE bench_due ADD COLUMN cancellable boolean NOT NULL DEFAULT false")
    if every:
        sql(conn, "UPDATE bench_due SET cancellable = (n %% %s = 0)", [every])
    sql(
        conn,
        """
        CREATE TABLE bench_assignments AS
        SELECT id, status, completed_at FROM surveys_assignment
        WHERE id IN (SELECT assignment_id FROM bench_due WHERE cancellable)
        """,
    )
    ((chosen, assignments, participants),) = sql(
        conn,
        """
        SELECT count(*), count(DISTINCT d.assignment_id), count(DISTINCT a.participant_id)
        FROM bench_due d JOIN surveys_assignment a ON a.id = d.assignment_id
        """,
    )
    ((eligible_participants,),) = sql(
        conn,
        """
        SELECT count(DISTINCT a.participant_id) FROM surveys_message m
        JOIN surveys_assignment a ON a.id = m.assignment_id WHERE m.status = 'queued'
        """,
    )
    if chosen < due:
        raise SystemExit(f"only {chosen} queued rows can be made due; lower --due")
    return {
        "due_assignments": assignments,
        "due_participants": participants,
        "participants_with_queued": eligible_participants,
    }


def stage(conn, now: datetime, due: int) -> dict:
    """Seeded state back, then the first ``due`` rows of bench_due due a minute before ``now``,
    every other queued row after ``now``, and the cancellable ones' assignments completed."""
    started = time.perf_counter()
    sql(
        conn,
        """
        UPDATE surveys_message m SET status = 'queued', reason = '', claimed_at = NULL,
            scheduled_at = s.scheduled_at, updated_at = s.updated_at
        FROM bench_seeded s
        WHERE m.id = s.id AND (m.status <> 'queued' OR m.scheduled_at <> s.scheduled_at
                               OR m.updated_at <> s.updated_at)
        """,
    )
    sql(
        conn,
        """
        UPDATE surveys_assignment a SET status = b.status, completed_at = b.completed_at
        FROM bench_assignments b WHERE a.id = b.id AND a.status <> b.status
        """,
    )
    # Seeded rows already past (the plan's catch-up messages) or close to now go to the future,
    # spread over the next day, so that only the chosen rows are due.
    pushed = sql(
        conn,
        """
        WITH moved AS (
            UPDATE surveys_message SET scheduled_at = %s + (interval '1 hour')
                + (id %% 1440) * interval '1 minute'
            WHERE status = 'queued' AND scheduled_at <= %s + interval '1 hour'
              AND id NOT IN (SELECT id FROM bench_due WHERE n <= %s)
            RETURNING 1
        ) SELECT count(*) FROM moved
        """,
        [now, now, due],
    )[0][0]
    sql(
        conn,
        """
        UPDATE surveys_message SET scheduled_at = %s
        WHERE id IN (SELECT id FROM bench_due WHERE n <= %s)
        """,
        [now - timedelta(minutes=1), due],
    )
    completed = sql(
        conn,
        """
        WITH done AS (
            UPDATE surveys_assignment SET status = 'completed', completed_at = %s
            WHERE id IN (SELECT assignment_id FROM bench_due WHERE n <= %s AND cancellable)
            RETURNING 1
        ) SELECT count(*) FROM done
        """,
        [now - timedelta(hours=1), due],
    )[0][0]
    sql(conn, "VACUUM (ANALYZE) surveys_message")
    sql(conn, "VACUUM (ANALYZE) surveys_assignment")
    ((queued, due_now, due_completed),) = sql(
        conn,
        """
        SELECT count(*), count(*) FILTER (WHERE m.scheduled_at <= %s),
               count(*) FILTER (WHERE m.scheduled_at <= %s AND a.status = 'completed')
        FROM surveys_message m JOIN surveys_assignment a ON a.id = m.assignment_id
        WHERE m.status = 'queued'
        """,
        [now, now],
    )
    if due_now != due:
        raise SystemExit(f"staging made {due_now} rows due, not {due}")
    return {
        "queued": queued,
        "due": due_now,
        "due_completed": due_completed,
        "pushed": pushed,
        "completed_assignments": completed,
        "stage_s": time.perf_counter() - started,
    }


def outcome(conn, now: datetime, due: int) -> dict:
    """What the cycle did to the rows, read back from the database: every due row claimed
    ('sending') or settled, none left queued, no row claimed that was not due, and what
    settle cancelled or skipped, by reason."""
    ((claimed_due, settled_due, left_due),) = sql(
        conn,
        """
        SELECT count(*) FILTER (WHERE m.status = 'sending'),
               count(*) FILTER (WHERE m.status IN ('cancelled', 'skipped')),
               count(*) FILTER (WHERE m.status = 'queued')
        FROM surveys_message m JOIN bench_due d ON d.id = m.id WHERE d.n <= %s
        """,
        [due],
    )
    ((claimed_all,),) = sql(conn, "SELECT count(*) FROM surveys_message WHERE status = 'sending'")
    reasons = sql(
        conn,
        """
        SELECT status, reason, count(*), count(*) FILTER (WHERE scheduled_at <= %s)
        FROM surveys_message
        WHERE status IN ('cancelled', 'skipped') AND updated_at = %s
        GROUP BY status, reason ORDER BY count(*) DESC
        """,
        [now, now],
    )
    return {
        "claimed_due": claimed_due,
        "settled_due": settled_due,
        "left_due": left_due,
        "claimed_not_due": claimed_all - claimed_due,
        "settled": sum(r[2] for r in reasons),
        "reasons": [
            {"status": st, "reason": why, "rows": n, "due": n_due} for st, why, n, n_due in reasons
        ],
    }


def broker_check(conn, expected: int) -> dict:
    """The tasks left in Redis: their number, and whether they name exactly the rows now in
    'sending' (each once, with the send task's name)."""
    client = redis_client()
    length = client.llen("celery")
    ids, names = [], set()
    for raw in client.lrange("celery", 0, -1):
        envelope = json.loads(raw)
        names.add(envelope["headers"]["task"])
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)  # Celery's task message protocol 2
        ids.append(args[0])
    sending = {
        row[0] for row in sql(conn, "SELECT id FROM surveys_message WHERE status = 'sending'")
    }
    return {
        "llen": length,
        "distinct": len(set(ids)),
        "matches": set(ids) == sending and len(ids) == len(sending) == expected,
        "task_names": sorted(names),
    }


def measure(now: datetime, batch_size: int, enqueue: bool, profile: str | None) -> dict:
    """One cycle in a fresh process."""
    child = {"now": now.isoformat(), "batch_size": batch_size, "enqueue": enqueue}
    if profile:
        child["profile"] = profile
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(child)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- The measuring process ------------------------------------------------------------------


def child_main(spec: dict) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys import dispatch

    phases = {
        name: {"s": 0.0, "calls": 0, "queries": 0}
        for name in ("settle", "sweep", "claim", "enqueue")
    }
    capture = CaptureQueriesContext(connection)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            before = len(capture.captured_queries)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[name]["s"] += time.perf_counter() - started
                phases[name]["calls"] += 1
                phases[name]["queries"] += len(capture.captured_queries) - before

        return wrapper

    dispatch.messages_settle = timed("settle", dispatch.messages_settle)
    dispatch.messages_sweep = timed("sweep", dispatch.messages_sweep)
    dispatch._claim_batch = timed("claim", dispatch._claim_batch)
    dispatch._enqueue = timed("enqueue", dispatch._enqueue)

    now = datetime.fromisoformat(spec["now"])
    connection.ensure_connection()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    with capture:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = dispatch.reminders_dispatch(
            now=now, batch_size=spec["batch_size"], enqueue=spec["enqueue"]
        )
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
    if profiler:
        profiler.dump_stats(spec["profile"])
    statements = [q["sql"] for q in capture.captured_queries]
    slowest = sorted(
        ((float(q["time"]), " ".join(q["sql"].split())[:110]) for q in capture.captured_queries),
        reverse=True,
    )[:6]
    print(
        json.dumps(
            {
                "wall_s": elapsed,
                "cancelled": result.cancelled,
                "requeued": result.requeued,
                "to_review": result.to_review,
                "claimed": result.claimed,
                "distinct_claimed": len(set(result.claimed_ids)),
                "batches": result.batches,
                "queries": len(statements),
                "phases": phases,
                "transaction_statements": sum(
                    1 for q in statements if q.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK")
                ),
                "slowest": slowest,
                "rss_before_kb": rss_before,
                "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


# --- Report ---------------------------------------------------------------------------------


def row(label: str, due: int, batch: int, enqueue: bool, r: dict, broker: dict | None) -> str:
    p = r["phases"]
    per_batch = r["queries"] / r["batches"] if r["batches"] else float("nan")
    tasks = f"{broker['llen']:,}" if broker else "—"
    return (
        f"| {label} | {due:,} | {batch:,} | {'yes' if enqueue else 'no'} | {r['wall_s']:.2f} s | "
        f"{p['settle']['s']:.2f} / {p['sweep']['s']:.2f} / {p['claim']['s']:.2f} / "
        f"{p['enqueue']['s']:.2f} | {r['claimed']:,} | {r['batches']} | {r['cancelled']:,} | "
        f"{r['queries']} | {per_batch:.2f} | {p['claim']['queries']} | {tasks} | "
        f"{r['rss_peak_kb'] / 1024:.0f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument(
        "--compare-due", type=int, default=5_000, help="A second, smaller set of due rows."
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="The app's BATCH_SIZE.")
    parser.add_argument(
        "--batch-sizes",
        default="500,2000",
        help="Other batch sizes to run the full --due with (comma-separated; '' for none).",
    )
    parser.add_argument(
        "--cancellable", type=float, default=0.05, help="Share of due rows settle cancels."
    )
    parser.add_argument(
        "--profile", action="store_true", help="Also run the main cycle under cProfile."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    if args.compare_due >= args.due:
        args.compare_due = max(1, args.due // 4)

    with tempfile.TemporaryDirectory() as tmp:
        ENV["VAR_DIR"] = tmp  # the local settings' runtime folders (outbox, beat file)
        pgdb.database_create(DB_NAME)
        client = redis_client()
        client.flushdb()
        try:
            ok = run(args, tmp)
        finally:
            client.flushdb()
            if args.keep:
                print(f"kept database {DB_NAME} (dropdb -h 127.0.0.1 -U postgres {DB_NAME})")
            else:
                pgdb.database_drop(DB_NAME)
    if not ok:
        sys.exit(1)


def run(args, tmp: str) -> bool:
    started = time.perf_counter()
    pgdb.manage("migrate", "-v0", env=ENV)
    print(f"migrate: {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    out = pgdb.manage(
        "seed_demo",
        "--participants",
        str(args.participants),
        "--seed",
        "1",
        "--study",
        STUDY,
        env=ENV,
    )
    seed_s = time.perf_counter() - started
    print(f"seed_demo --participants {args.participants}: {seed_s:.1f} s", flush=True)
    print("  " + out.strip().splitlines()[0], flush=True)

    conn = pg()
    try:
        return report(args, tmp, conn, seed_s)
    finally:
        conn.close()


def report(args, tmp: str, conn, seed_s: float) -> bool:
    ((messages, queued, seeded_due),) = sql(
        conn,
        """
        SELECT count(*), count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'queued' AND scheduled_at <= now())
        FROM surveys_message
        """,
    )
    print(
        f"messages seeded: {messages:,} rows, {queued:,} queued "
        f"({seeded_due:,} of them already due by the plan's catch-up)",
        flush=True,
    )
    spread = snapshot(conn, args.due, args.cancellable)
    now = datetime.now(UTC).replace(microsecond=0)

    runs = [("main", args.due, args.batch_size, True)]
    runs.append(("claim only", args.due, args.batch_size, False))
    runs.append(("fewer due", args.compare_due, args.batch_size, True))
    for size in filter(None, args.batch_sizes.split(",")):
        runs.append(("batch size", args.due, int(size), True))
    if args.profile:
        runs.append(("under cProfile", args.due, args.batch_size, True))

    results = []
    for label, due, batch, enqueue in runs:
        redis_client().flushdb()
        staged = stage(conn, now, due)
        print(
            f"\n[{label}] staged in {staged['stage_s']:.1f} s: {staged['queued']:,} queued rows, "
            f"{staged['due']:,} due ({staged['due_completed']:,} of them on "
            f"{staged['completed_assignments']:,} assignments marked completed), "
            f"{staged['pushed']:,} seeded rows moved after now",
            flush=True,
        )
        profile = str(Path(tmp) / "cycle.prof") if label == "under cProfile" else None
        r = measure(now, batch, enqueue, profile)
        broker = broker_check(conn, r["claimed"]) if enqueue else None
        print(f"  cycle: {json.dumps(r)}", flush=True)
        if broker:
            print(f"  broker: {json.dumps(broker)}", flush=True)
        done = outcome(conn, now, due)
        print(f"  database: {json.dumps(done)}", flush=True)
        problems = []
        if r["claimed"] != done["claimed_due"] or done["claimed_not_due"]:
            problems.append(
                f"claimed {r['claimed']}: {done['claimed_due']} due rows and "
                f"{done['claimed_not_due']} rows that were not due"
            )
        if r["distinct_claimed"] != r["claimed"]:
            problems.append("a row was claimed twice")
        if done["left_due"]:
            problems.append(f"{done['left_due']} due rows left queued")
        if r["cancelled"] != done["settled"]:
            problems.append(f"settle reported {r['cancelled']}, the database {done['settled']}")
        if broker and not (broker["llen"] == r["claimed"] and broker["matches"]):
            problems.append(f"broker holds {broker['llen']} tasks for {r['claimed']} claimed")
        if problems:
            print("  PROBLEM: " + "; ".join(problems), flush=True)
        if profile:
            import pstats

            print("\n  cProfile of the cycle (cumulative, top 25):")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        results.append((label, due, batch, enqueue, r, broker, done, problems))

    main_r = results[0][4]
    claim_only = results[1][4]
    print(
        f"\n{args.participants:,} participants ({seed_s:.0f} s to seed), {queued:,} queued "
        f"messages on {spread['participants_with_queued']:,} of them; the {args.due:,} due rows "
        f"are on {spread['due_assignments']:,} assignments of {spread['due_participants']:,} "
        f"participants; {args.cancellable:.0%} of them on assignments marked completed "
        f"(python {platform.python_version()}, {os.cpu_count()} CPUs)\n"
    )
    print(
        "| run | due | batch size | enqueue | cycle wall time | settle / sweep / claim / "
        "enqueue (s) | claimed | batches | settled | statements | per batch "
        "| claim UPDATEs | tasks in Redis | peak RSS |"
    )
    print("| --- | ---: | ---: | --- | ---: | --- |" + " ---: |" * 8)
    for label, due, batch, enqueue, r, broker, _, _ in results:
        print(row(label, due, batch, enqueue, r, broker))
    print("\nsettled by the main cycle (cancelled or skipped, of them due now):")
    for reason in results[0][6]["reasons"]:
        print(f"  {reason['status']}, {reason['reason']}: {reason['rows']:,} ({reason['due']:,})")
    print("slowest statements of the main cycle:")
    for seconds, text in main_r["slowest"]:
        print(f"  {seconds:.3f} s  {text}")
    p = main_r["phases"]
    per_round = (main_r["queries"] - p["settle"]["queries"] - p["sweep"]["queries"]) / (
        main_r["batches"] + 1
    )
    print(
        f"\nstatements = settle {p['settle']['queries']} + sweep {p['sweep']['queries']} + "
        f"{per_round:g} per claim round (BEGIN, UPDATE … RETURNING, COMMIT) × "
        f"({main_r['batches']} batches + the last, empty claim) = {main_r['queries']}"
    )
    enqueue_share = main_r["phases"]["enqueue"]["s"] / main_r["wall_s"]
    print(
        f"claiming alone (enqueue=False): {claim_only['wall_s']:.2f} s; enqueueing "
        f"{main_r['claimed']:,} tasks: {main_r['phases']['enqueue']['s']:.2f} s "
        f"({enqueue_share:.0%} of the cycle, "
        f"{main_r['phases']['enqueue']['s'] / max(1, main_r['claimed']) * 1e6:.0f} µs per task)"
    )
    rss_growth = (main_r["rss_peak_kb"] - main_r["rss_before_kb"]) / 1024
    print(
        f"peak RSS of the measuring process: {main_r['rss_peak_kb'] / 1024:.0f} MB "
        f"({rss_growth:+.0f} MB during the cycle)"
    )
    ok = main_r["wall_s"] <= BUDGET_S and not any(res[7] for res in results)
    verdict = "within" if main_r["wall_s"] <= BUDGET_S else "OVER"
    print(
        f"verdict: one cycle {main_r['wall_s']:.1f} s for {args.due:,} due messages: {verdict} "
        f"budget (<= {BUDGET_S:.0f} s)"
    )
    return ok


if __name__ == "__main__":
    main()
