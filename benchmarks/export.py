"""Benchmark: the wide CSV export of 10,000 participants × 5 waves against PostgreSQL ``COPY``
of the same responses, and the export's peak memory (DESIGN.md budget: ≤ 3 × COPY; memory flat).

A fresh PostgreSQL database of its own (``recovery_bench_export``), ``migrate``, then
``seed_demo --participants N --seed 1`` as a user would run it. Each measurement runs in a new
process (``django.setup()``):

- **COPY**: ``COPY (SELECT r.id, r.assignment_id, r.instrument_id, r.answers::text … FROM
  surveys_response r JOIN surveys_assignment a … WHERE study) TO STDOUT WITH CSV`` through
  psycopg2's ``copy_expert`` into a null sink: the database's own fastest way to hand out the
  same responses, raw JSON and all.
- **export**: ``surveys.exports.dataset_export(user=None, shape="wide", format="csv")``, every
  chunk consumed (written to a null sink), as ``manage.py export_dataset`` does; the audit
  event included. Seven ways:
  - ``repeat``: the export again, nothing changed since the last one (every participant's
    kept lines are read back, ``surveys.datasets.linecache``);
  - ``changed``: one participant in 20 has an answer changed since the last export (their
    lines are written again);
  - ``cold``: nothing kept (the first export of a plan: every line is built, and kept);
  - ``off``: ``EXPORT_LINE_CACHE=false``, every line built and nothing kept (the builder alone).
  - ``warmed``: 5 % changed, then the beat's ``export_lines_warm`` (timed apart: background
    work) before the export;
  - ``trickle``: the same, then 50 more participants changed after the warm-up (an export
    at any moment between two warm-ups, five minutes apart; a 10,000-person study with
    five waves a year submits about one survey in ten minutes).
  - ``ready``: nothing kept, then the beat's warm-up (which keeps every study's whole-study
    wide and long CSV ready, ``EXPORT_LINES_READY``) before the first export.
  ``ready``, ``warmed`` and ``trickle`` are compared, after the clock, with the builder alone's
  bytes.
  The child's peak resident memory (``ru_maxrss``) is reported, and the same for half of the
  participants, to show how memory grows with N.

    .venv/bin/python benchmarks/export.py [--participants 10000] [--runs 3] [--keep]
"""

import argparse
import hashlib
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
DB_NAME = "recovery_bench_export"
DB_URL = pgdb.database_url(DB_NAME)
STUDY = "bench"
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
    "DJANGO_READ_DOT_ENV_FILE": "false",
    "DATABASE_URL": DB_URL,
    "PYTHONPATH": str(ROOT),
}
COPY_SQL = """
COPY (
    SELECT r.id, r.assignment_id, r.instrument_id, r.instrument_version_id, r.status,
           r.submitted_at, r.answers::text
    FROM surveys_response r
    JOIN surveys_assignment a ON a.id = r.assignment_id
    JOIN surveys_participant p ON p.id = a.participant_id
    JOIN surveys_study s ON s.id = p.study_id
    WHERE s.slug = '{study}'
) TO STDOUT WITH CSV HEADER
"""


class Sink:
    def __init__(self):
        self.bytes = 0
        self.digest = hashlib.sha256()

    def write(self, data):
        self.bytes += len(data)
        self.digest.update(data)
        return len(data)


CHANGED_SHARE = 0.05
TRICKLE = 50  # participants changed since the beat last kept the lines current


def _change(study: str, *, share: float | None = None, count: int | None = None) -> None:
    """Change one submitted answer of a random ``share`` (or ``count``) of the participants."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE surveys_response r
            SET answers = r.answers || jsonb_build_object('craving', (random() * 10)::int),
                updated_at = now()
            WHERE r.id IN (
                SELECT id FROM (  -- each participant's first answered craving
                    SELECT DISTINCT ON (a.participant_id) r2.id
                    FROM surveys_response r2
                    JOIN surveys_assignment a ON a.id = r2.assignment_id
                    JOIN surveys_participant p ON p.id = a.participant_id
                    JOIN surveys_study s ON s.id = p.study_id
                    WHERE s.slug = %s AND r2.status = 'submitted' AND r2.answers ? 'craving'
                    ORDER BY a.participant_id, r2.id
                ) one_each
                WHERE random() < %s  -- a share of the participants, not of their responses
                ORDER BY random() LIMIT %s
            )
            """,
            [study, 1.0 if share is None else share, count],  # LIMIT NULL: no limit
        )


def prepare(mode: str, study: str) -> dict:
    """Before the clock starts: nothing kept (``cold``); one participant in 20 with an answer
    changed since the last export (``changed``); the same, then the beat's warm-up
    (``warmed``: its time is returned, work done in the background); or that, then
    ``TRICKLE`` participants changed since the warm-up (``trickle``)."""
    from surveys.exports import export_lines_warm
    from surveys.models import DatasetLine, DatasetLinePlan

    if mode in ("cold", "ready"):
        DatasetLine.objects.all().delete()
        DatasetLinePlan.objects.all().delete()
    elif mode in ("changed", "warmed", "trickle"):
        _change(study, share=CHANGED_SHARE)
    if mode in ("warmed", "trickle", "ready"):
        started = time.perf_counter()
        warmed = export_lines_warm()
        seconds = time.perf_counter() - started
        if mode == "trickle":
            _change(study, count=TRICKLE)
        return {"warm_seconds": seconds, "warmed": warmed["participants"]}
    return {}


def child(mode: str, study: str) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from surveys.exports import ExportSpec, dataset_export
    from surveys.models import Study

    before = prepare(mode, study)
    sink = Sink()
    started = time.perf_counter()
    if mode == "copy":
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(COPY_SQL.format(study=study), sink)
        rows = None
    else:
        export = dataset_export(
            user=None, study=Study.objects.get(slug=study), spec=ExportSpec(shape="wide")
        )
        for chunk in export.chunks:
            sink.write(chunk.encode())
        rows = export.rows
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        **before,
        "seconds": seconds,
        "bytes": sink.bytes,
        "sha256": sink.digest.hexdigest(),
        "rows": rows,
        "peak_mb": peak_mb,
    }
    if mode in (
        "warmed",
        "trickle",
        "ready",
    ):  # after the clock: the builder alone's bytes to compare
        settings.EXPORT_LINE_CACHE = False
        alone = Sink()
        export = dataset_export(
            user=None, study=Study.objects.get(slug=study), spec=ExportSpec(shape="wide")
        )
        for chunk in export.chunks:
            alone.write(chunk.encode())
        out["same_as_builder"] = alone.digest.hexdigest() == sink.digest.hexdigest()
    return out


def run_child(mode: str, study: str) -> dict:
    env = {**ENV, "EXPORT_LINE_CACHE": "false" if mode == "off" else "true"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps([mode, study])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def manage(*args: str) -> str:
    return pgdb.manage(*args, env=ENV)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    pgdb.database_create(DB_NAME)
    try:
        manage("migrate", "-v0")
        half = "bench-half"  # one batch of the builder (BATCH_PARTICIPANTS) at 10,000
        for slug, n in ((STUDY, args.participants), (half, args.participants // 2)):
            started = time.perf_counter()
            manage("seed_demo", "--participants", str(n), "--seed", "1", "--study", slug)
            print(f"seeded {slug}: {n} participants in {time.perf_counter() - started:.0f} s")
        pgdb.connect(DB_NAME).cursor().execute("VACUUM ANALYZE")
        modes = ("copy", "cold", "repeat", "changed", "off", "warmed", "trickle", "ready")
        results = {mode: [] for mode in modes}
        for _ in range(args.runs):  # in turn, so that drift affects all alike
            for mode in modes:
                results[mode].append(run_child(mode, STUDY))
        small_alone = run_child("off", half)
        run_child("cold", half)
        small = run_child("repeat", half)
        median = {m: statistics.median(r["seconds"] for r in results[m]) for m in modes}
        print(
            f"\n{args.participants:,} participants × 5 waves, median of {args.runs} "
            f"(python {platform.python_version()}, {os.cpu_count()} CPUs)\n"
        )
        print("| what | median | × COPY | all runs (s) | output | peak memory |")
        print("| --- | ---: | ---: | --- | ---: | ---: |")
        labels = {
            "copy": "PostgreSQL COPY of the responses",
            "repeat": "wide CSV, repeated export (nothing changed)",
            "changed": f"wide CSV, {CHANGED_SHARE:.0%} of participants changed",
            "cold": "wide CSV, first export (nothing kept yet)",
            "off": "wide CSV, line cache off (builder alone)",
            "warmed": f"wide CSV, {CHANGED_SHARE:.0%} changed, then the beat's warm-up",
            "trickle": f"wide CSV, {TRICKLE} participants changed since the warm-up",
            "ready": "wide CSV, first export, the beat having made it ready",
        }
        for mode in ("copy", "repeat", "ready", "warmed", "trickle", "changed", "cold", "off"):
            runs = ", ".join(f"{r['seconds']:.2f}" for r in results[mode])
            out = results[mode][-1]
            print(
                f"| {labels[mode]} | {median[mode]:.2f} s | {median[mode] / median['copy']:.1f} "
                f"| {runs} | {out['bytes'] / 1e6:.1f} MB | {out['peak_mb']:.0f} MB |"
            )
        print(
            f"| wide CSV, repeated, {args.participants // 2:,} participants | "
            f"{small['seconds']:.2f} s | | | {small['bytes'] / 1e6:.1f} MB | "
            f"{small['peak_mb']:.0f} MB |"
        )
        print(
            f"| wide CSV, builder alone, {args.participants // 2:,} participants | "
            f"{small_alone['seconds']:.2f} s | | | {small_alone['bytes'] / 1e6:.1f} MB | "
            f"{small_alone['peak_mb']:.0f} MB |"
        )
        rows = {r["rows"] for m in modes if m != "copy" for r in results[m]}
        # the same file whichever way it was made: within a round, the first export and its
        # repeat (nothing changed between), and the export after the change and the builder's
        same = all(
            results["cold"][n]["sha256"] == results["repeat"][n]["sha256"]
            and results["changed"][n]["sha256"] == results["off"][n]["sha256"]
            for n in range(args.runs)
        )
        beat = ("ready", "warmed", "trickle")
        same = same and all(r["same_as_builder"] for m in beat for r in results[m])
        for mode in beat:
            warm = ", ".join(f"{r['warm_seconds']:.2f}" for r in results[mode])
            built = sorted({r["warmed"] for r in results[mode]})
            print(
                f"\nthe beat's warm-up before {mode!r} (background): {warm} s, building "
                f"{built[0]}–{built[-1]} participants' lines (all plans and studies)"
            )
        print(f"rows {rows}; the same bytes as the builder alone: {same}")
    finally:
        if not args.keep:
            pgdb.database_drop(DB_NAME)


if __name__ == "__main__":
    main()
