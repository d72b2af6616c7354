"""Benchmark: the full analysis suite on 10,000 participants × 5 waves (DESIGN.md budget: ≤ 30 s).

A fresh PostgreSQL database of its own (``recovery_bench_analyses``), ``migrate``, then
``seed_demo --participants N --seed 1`` as a user would run it, and ``VACUUM ANALYZE``. Each
run is a new process (``django.setup()``) that does what the admin's Analyses page does for a
run of every analysis with the suggested choices: ``recovery.analyses.analysis_run_start``
(the dataset builder's long frame → the analysis frame → every section of the suite, charts
included → the stored run and its audit event). It reports the whole time, the time of the
data (dataset builder and analysis frame) and of each section, and the peak memory.

    .venv/bin/python benchmarks/analyses.py [--participants 10000] [--runs 3] [--keep]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pgdb  # benchmarks/pgdb.py: these scripts run as benchmarks/<name>.py

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "recovery_bench_analyses"
STUDY = "bench"
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
    "DJANGO_READ_DOT_ENV_FILE": "false",
    "DATABASE_URL": pgdb.database_url(DB_NAME),
    "PYTHONPATH": str(ROOT),
}


def child(study: str) -> dict:
    import django

    django.setup()
    from recovery import analyses
    from recovery.analysis import suite
    from surveys.models import Study

    timings: dict[str, float] = {}
    build = analyses.analysis_data

    def timed_data(**kwargs):
        started = time.perf_counter()
        out = build(**kwargs)
        timings["data"] = time.perf_counter() - started
        return out

    runners = dict(suite._RUNNERS)

    def timed(key, runner):
        def run(*args):
            started = time.perf_counter()
            try:
                return runner(*args)
            finally:
                timings[key] = time.perf_counter() - started

        return run

    analyses.analysis_data = timed_data
    for key, runner in runners.items():
        suite._RUNNERS[key] = timed(key, runner)
    found = Study.objects.get(slug=study)
    spec = analyses.default_spec(study=found)
    started = time.perf_counter()
    run = analyses.analysis_run_start(user=None, study=found, spec=spec, background=False)
    seconds = time.perf_counter() - started
    errors = {s["key"]: s["error"] for s in run.results["sections"] if s["error"]}
    return {
        "seconds": seconds,
        "status": run.status,
        "message": run.message,
        "errors": errors,
        "participants": run.participants,
        "rows": run.rows,
        "timings": timings,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(study: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", study],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    pgdb.database_create(DB_NAME)
    try:
        pgdb.manage("migrate", "-v0", env=ENV)
        started = time.perf_counter()
        pgdb.manage(
            "seed_demo", "--participants", str(args.participants), "--seed", "1",
            "--study", STUDY, env=ENV,
        )  # fmt: skip
        print(f"seeded {args.participants:,} participants in {time.perf_counter() - started:.0f} s")
        pgdb.connect(DB_NAME).cursor().execute("VACUUM ANALYZE")
        results = [run_child(STUDY) for _ in range(args.runs)]
    finally:
        if not args.keep:
            pgdb.database_drop(DB_NAME)
    last = results[-1]
    if last["status"] != "done" or last["errors"]:
        raise SystemExit(f"the run did not complete: {last['message']} {last['errors']}")
    print(
        f"\n{last['participants']:,} participants, {last['rows']:,} participant × wave rows "
        f"(python {platform.python_version()}, {os.cpu_count()} CPUs), {args.runs} runs\n"
    )
    print("| step | median (s) | all runs (s) |")
    print("| --- | ---: | --- |")
    steps = ["data", *(k for k in last["timings"] if k != "data")]
    for step in steps:
        values = [r["timings"].get(step, float("nan")) for r in results]
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {step} | {statistics.median(values):.2f} | {shown} |")
    seconds = [r["seconds"] for r in results]
    print(
        f"| **whole run** | **{statistics.median(seconds):.2f}** | "
        f"{', '.join(f'{v:.2f}' for v in seconds)} |"
    )
    print(f"\npeak memory {max(r['peak_mb'] for r in results):.0f} MB; budget 30 s")


if __name__ == "__main__":
    main()
