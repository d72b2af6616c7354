"""Benchmark: the retention dashboard and the call list (DESIGN.md budget: retention dashboard,
50,000 participants: query count independent of N, <= 500 ms).

A fresh PostgreSQL database of its own (``recovery_bench_dashboard``), ``migrate``, then two
studies seeded with ``seed_demo`` as a user would run it: ``bench-small`` (``--small``, 5,000
participants) and ``bench`` (``--participants``, 50,000), seed 1. The seed writes no message
history (it plans only the messages still ahead), so the script adds what the reminder rules of
the template would have sent to every completed or missed survey: the invitation as the window
opens, reminders 3 and 6 days later and a last call 2 days before the window closes, each only
while the survey was not yet completed (one ``INSERT … SELECT``). Then ``VACUUM ANALYZE``, and
three staff members per study: a principal investigator, a coordinator of one site (NYC, about
a third of the participants) and a researcher.

Each study is measured in a fresh process (``django.setup()``, ``recovery.settings.local`` with
``DJANGO_DEBUG=false``), through Django's test client, so that the time is the server's whole
work for a request: middleware, session, the selector's SQL, the template and the SVG:

* the selector ``surveys.retention.retention_summary`` alone, and
* the pages ``/admin/surveys/study/<id>/retention/`` (without and with a split) and
  ``/admin/surveys/assignment/call-list/`` (its first page, and as the PI its last),

as each kind of user. Each is run once to warm up, then ``--runs`` times; the median and the
slowest are reported. Statements are counted with ``CaptureQueriesContext`` in one more run.

    .venv/bin/python benchmarks/dashboard.py [--participants 50000] [--small 5000] [--runs 7]
        [--keep] [--reuse] [--explain]

``--keep`` leaves the database; ``--reuse`` measures an existing one without seeding again;
``--explain`` prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the dashboard's statements (50,000, PI).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pgdb  # benchmarks/pgdb.py: these scripts run as benchmarks/<name>.py

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "recovery_bench_dashboard"
DB_URL = pgdb.database_url(DB_NAME)
BUDGET_MS = 500.0
STUDIES = ("bench-small", "bench")
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
    "DJANGO_READ_DOT_ENV_FILE": "false",
    "DJANGO_DEBUG": "false",
    "DATABASE_URL": DB_URL,
    "PYTHONPATH": str(ROOT),
}
PASSWORD = "benchmark-only-password-123"  # noqa: S105 — a throwaway database's staff

# What the template's reminder rules would have sent to the surveys that are over: sequence,
# time. Only those before completion (and before the window closed) went out.
HISTORY_SQL = """
INSERT INTO surveys_message (assignment_id, sequence, channel, scheduled_at, status, reason,
    provider_id, attempts, sent_at, created_at, updated_at)
SELECT a.id, plan.sequence, p.preferred_channel, plan.at, 'sent', '', '', 1, plan.at, plan.at,
    plan.at
FROM surveys_assignment a
JOIN surveys_participant p ON p.id = a.participant_id
JOIN surveys_study s ON s.id = p.study_id
CROSS JOIN LATERAL (VALUES
    (0, a.opens_at),
    (1, a.opens_at + interval '3 days'),
    (2, a.opens_at + interval '6 days'),
    (3, a.closes_at - interval '2 days')
) AS plan(sequence, at)
WHERE s.slug = ANY(%s) AND a.status IN ('completed', 'missed') AND plan.at < a.closes_at
  AND (a.status = 'missed' OR plan.at < a.completed_at)
  AND NOT EXISTS (SELECT 1 FROM surveys_message m WHERE m.assignment_id = a.id)
"""
# What message_send keeps on each survey as the messages go (only those before completion
# were inserted above).
COUNTERS_SQL = """
UPDATE surveys_assignment a SET messages_sent = h.n, first_message_at = h.first
FROM (SELECT assignment_id, COUNT(*) AS n, MIN(sent_at) AS first FROM surveys_message
      WHERE status = 'sent' GROUP BY assignment_id) h
WHERE h.assignment_id = a.id
"""

# (label, user, what, query string)
SCENARIOS = [
    ("selector, no split", "pi", "selector", {}),
    ("selector, by race/ethnicity", "pi", "selector", {"subgroup": "race_ethnicity"}),
    ("selector, by main fellowship", "pi", "selector", {"subgroup": "main_fellowship"}),
    ("dashboard, no split", "pi", "dashboard", {}),
    ("dashboard, by race/ethnicity", "pi", "dashboard", {"subgroup": "race_ethnicity"}),
    ("dashboard, by main fellowship", "pi", "dashboard", {"subgroup": "main_fellowship"}),
    ("dashboard, by gender", "researcher", "dashboard", {"subgroup": "gender"}),
    ("dashboard, no split", "coordinator", "dashboard", {}),
    ("dashboard, by race/ethnicity", "coordinator", "dashboard", {"subgroup": "race_ethnicity"}),
    ("dashboard, one site (NYC)", "pi", "dashboard", {"site": "NYC", "subgroup": "gender"}),
    ("call list", "pi", "call_list", {}),
    ("call list", "researcher", "call_list", {}),
    ("call list", "coordinator", "call_list", {}),
    # Past the end: the last page, the deepest OFFSET.
    ("call list, last page", "pi", "call_list", {"page": 9999}),
]


# --- Set-up (the parent process) ------------------------------------------------------------


def manage(*args: str) -> str:
    return pgdb.manage(*args, env=ENV)


def pg():
    return pgdb.connect(DB_NAME)


def seed(args) -> dict:
    timings = {}
    started = time.perf_counter()
    manage("migrate", "-v0")
    timings["migrate_s"] = time.perf_counter() - started
    for slug, n in zip(STUDIES, (args.small, args.participants), strict=True):
        started = time.perf_counter()
        out = manage("seed_demo", "--participants", str(n), "--seed", "1", "--study", slug)
        timings[f"seed_{slug}_s"] = time.perf_counter() - started
        print(f"seed_demo --participants {n} --study {slug}: {timings[f'seed_{slug}_s']:.0f} s")
        print("  " + out.strip().splitlines()[0], flush=True)
    conn = pg()
    try:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(HISTORY_SQL, [list(STUDIES)])
            timings["history_rows"] = cursor.rowcount
            cursor.execute(COUNTERS_SQL)
            cursor.execute("VACUUM ANALYZE")
        timings["history_s"] = time.perf_counter() - started
        print(
            f"message history: {timings['history_rows']:,} sent messages in "
            f"{timings['history_s']:.0f} s (with VACUUM ANALYZE)",
            flush=True,
        )
    finally:
        conn.close()
    child("setup", {})
    return timings


def sizes() -> dict:
    conn = pg()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                """
                SELECT s.slug, count(DISTINCT p.id), count(a.id),
                       (SELECT count(*) FROM surveys_message m
                        JOIN surveys_assignment a2 ON a2.id = m.assignment_id
                        JOIN surveys_participant p2 ON p2.id = a2.participant_id
                        WHERE p2.study_id = s.id AND m.status = 'sent')
                FROM surveys_study s
                JOIN surveys_participant p ON p.study_id = s.id
                JOIN surveys_assignment a ON a.participant_id = p.id
                GROUP BY s.id, s.slug
                """
            )
            return {
                slug: {"participants": p, "assignments": a, "sent_messages": m}
                for slug, p, a, m in cursor.fetchall()
            }
    finally:
        conn.close()


def child(mode: str, spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({"mode": mode, **spec})],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


# --- The measuring process ------------------------------------------------------------------


def child_setup() -> dict:
    from django.contrib.auth import get_user_model

    from surveys.models import StaffRole, Study
    from surveys.services import staff_role_assign

    user_model = get_user_model()
    for study in Study.objects.filter(slug__in=STUDIES):
        for role, name, sites in (
            (StaffRole.Role.PRINCIPAL_INVESTIGATOR, "pi", []),
            (StaffRole.Role.COORDINATOR, "coordinator", list(study.sites.filter(code="NYC"))),
            (StaffRole.Role.RESEARCHER, "researcher", []),
        ):
            user, _ = user_model.objects.get_or_create(username=f"{name}-{study.slug}")
            user.set_password(PASSWORD)
            user.save()
            staff_role_assign(user=user, study=study, role=role, sites=sites)
    return {}


def child_measure(spec: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from surveys.models import Study
    from surveys.retention import retention_summary

    study = Study.objects.get(slug=spec["study"])
    sites = {site.code: site for site in study.sites.all()}
    users = {
        name: get_user_model().objects.get(username=f"{name}-{study.slug}")
        for name in ("pi", "coordinator", "researcher")
    }
    clients = {}
    for name, user in users.items():
        clients[name] = Client(HTTP_HOST="localhost")
        clients[name].force_login(user)

    results = []
    for label, who, what, params in SCENARIOS:
        params = dict(params)
        if "site" in params:
            params["site"] = sites[params["site"]].pk

        if what == "selector":

            def run(who=who, params=params):
                summary = retention_summary(
                    user=users[who], study=study, subgroup=params.get("subgroup")
                )
                return len(summary.waves)

        else:
            url = (
                f"/admin/surveys/study/{study.pk}/retention/"
                if what == "dashboard"
                else "/admin/surveys/assignment/call-list/"
            )

            def run(who=who, url=url, params=params):
                response = clients[who].get(url, params)
                if response.status_code != 200:
                    raise SystemExit(f"{url} {params} as {who}: HTTP {response.status_code}")
                return len(response.content)

        size = run()  # warm: the connection, the session, templates, caches
        times = []
        for _ in range(spec["runs"]):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as captured:
            run()
        statements = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
        results.append(
            {
                "label": label,
                "user": who,
                "what": what,
                "median_ms": statistics.median(times),
                "min_ms": min(times),
                "max_ms": max(times),
                "queries": len(statements),
                "sql_ms": sum(t for t, _ in statements),
                "bytes": size if what != "selector" else None,
                "slowest": sorted(statements, reverse=True)[:3] if spec.get("slowest") else [],
            }
        )
    explained = []
    if spec.get("explain"):
        with CaptureQueriesContext(connection) as captured:
            retention_summary(user=users["pi"], study=study, subgroup="main_fellowship")
        with connection.cursor() as cursor:
            for query in captured.captured_queries:
                sql = query["sql"]
                if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                explained.append([sql, [row[0] for row in cursor.fetchall()]])
    return {
        "study": study.slug,
        "results": results,
        "explained": explained,
        "load": os.getloadavg()[0],
    }


def child_main(spec: dict) -> None:
    import django

    django.setup()
    print(json.dumps(child_setup() if spec["mode"] == "setup" else child_measure(spec)))


# --- Report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Measure the existing database.")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    with tempfile.TemporaryDirectory() as tmp:
        ENV["VAR_DIR"] = tmp
        if not args.reuse:
            pgdb.database_create(DB_NAME)
        try:
            ok = run(args)
        finally:
            if args.keep or args.reuse:
                print(f"kept database {DB_NAME} (dropdb -h 127.0.0.1 -U postgres {DB_NAME})")
            else:
                pgdb.database_drop(DB_NAME)
    if not ok:
        sys.exit(1)


def run(args) -> bool:
    timings = {} if args.reuse else seed(args)
    counts = sizes()
    measured = {}
    for slug in STUDIES:
        measured[slug] = child(
            "measure",
            {"study": slug, "runs": args.runs, "explain": args.explain and slug == "bench",
             "slowest": True},
        )  # fmt: skip
    small, large = (measured[slug]["results"] for slug in STUDIES)
    n_small, n_large = (counts[slug]["participants"] for slug in STUDIES)

    print(
        f"\n{n_small:,} and {n_large:,} participants ({counts['bench']['assignments']:,} surveys "
        f"and {counts['bench']['sent_messages']:,} sent messages in the larger study); median of "
        f"{args.runs} runs after one warm-up (python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs)\n"
    )
    print(
        f"| what | as | queries at {n_small:,} | queries at {n_large:,} | median at {n_small:,} "
        f"| median at {n_large:,} | fastest / slowest run at {n_large:,} | SQL at {n_large:,} "
        f"| page size at {n_large:,} |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ok = True
    for a, b in zip(small, large, strict=True):
        size = f"{b['bytes'] / 1024:.0f} KB" if b["bytes"] else "—"
        print(
            f"| {a['label']} | {a['user']} | {a['queries']} | {b['queries']} | "
            f"{a['median_ms']:.0f} ms | {b['median_ms']:.0f} ms | "
            f"{b['min_ms']:.0f} / {b['max_ms']:.0f} ms | "
            f"{b['sql_ms']:.0f} ms | {size} |"
        )
        if a["queries"] != b["queries"]:
            ok = False
        if b["what"] == "dashboard" and b["median_ms"] > BUDGET_MS:
            ok = False
    print("\nslowest statements at the larger size:")
    for r in large:
        for ms, sql in r["slowest"][:1]:
            print(f"  {r['label']} ({r['user']}): {ms:.0f} ms  {' '.join(sql.split())[:140]}")
    for sql, plan in measured["bench"]["explained"]:
        print("\nEXPLAIN ANALYZE " + " ".join(sql.split())[:300])
        print("\n".join("  " + line for line in plan))
    dashboards = [r for r in large if r["what"] == "dashboard"]
    worst = max(dashboards, key=lambda r: r["median_ms"])
    same = all(a["queries"] == b["queries"] for a, b in zip(small, large, strict=True))
    print(
        f"\nverdict: queries {'the same' if same else 'DIFFER'} at {n_small:,} and "
        f"{n_large:,}; slowest dashboard median {worst['median_ms']:.0f} ms "
        f"({worst['label']}, {worst['user']}): "
        f"{'within' if worst['median_ms'] <= BUDGET_MS else 'OVER'} budget (<= {BUDGET_MS:.0f} ms)"
    )
    loads = ", ".join(f"{measured[slug]['load']:.1f}" for slug in STUDIES)
    print(f"load average (1 min) after measuring each study: {loads} on {os.cpu_count()} CPUs")
    if timings:
        print(f"set-up: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    return ok


if __name__ == "__main__":
    main()
