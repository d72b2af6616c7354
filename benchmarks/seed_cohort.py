"""Benchmark: seeding a synthetic cohort (issue budget: 10,000 participants in under a minute).

Runs `manage.py seed_demo --participants N` as a user would, on a fresh SQLite file and, when
PostgreSQL is reachable, on a fresh PostgreSQL database; reports the median wall time of
`--repeat` runs (each a full rebuild with --replace) and the rows written.

    .venv/bin/python benchmarks/seed_cohort.py [--participants 10000] [--repeat 3]
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "recovery_bench_seed"


def _run(args: list[str], env: dict) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _bench(label: str, env: dict, participants: int, repeat: int) -> dict:
    _run(["migrate", "-v0"], env)
    times, summary = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        summary = _run(
            [
                "seed_demo",
                "--participants",
                str(participants),
                "--seed",
                "1",
                "--study",
                "bench",
                "--replace",
            ],
            env,
        )
        times.append(time.perf_counter() - started)
    counts = re.search(r"(\d+) participants, (\d+) assignments, (\d+) responses", summary)
    return {
        "label": label,
        "median": statistics.median(times),
        "runs": times,
        "rows": counts.groups() if counts else ("?", "?", "?"),
    }


def _postgres_available() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    base_env.update(
        {"DJANGO_SETTINGS_MODULE": "recovery.settings.local", "DJANGO_READ_DOT_ENV_FILE": "false"}
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**base_env, "VAR_DIR": tmp}
        results.append(_bench("SQLite (embedded default)", env, args.participants, args.repeat))
        if _postgres_available():
            subprocess.run(
                ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", PG_BENCH_DB],
                check=True,
            )
            subprocess.run(
                ["createdb", "-h", "127.0.0.1", "-U", "postgres", PG_BENCH_DB], check=True
            )
            try:
                pg_env = {**env, "DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_BENCH_DB}
                results.append(_bench("PostgreSQL", pg_env, args.participants, args.repeat))
            finally:
                subprocess.run(
                    ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", PG_BENCH_DB],
                    check=True,
                )

    print(
        f"\nseed_demo --participants {args.participants}: median of {args.repeat} runs "
        f"(python {platform.python_version()}, {os.cpu_count()} CPUs)\n"
    )
    print("| database | median wall time | all runs | participants | assignments | responses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        runs = ", ".join(f"{t:.1f}" for t in r["runs"])
        print(f"| {r['label']} | {r['median']:.1f} s | {runs} | {' | '.join(r['rows'])} |")


if __name__ == "__main__":
    main()
