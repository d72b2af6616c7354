"""Drill: back up the database and restore it, and prove the copy is the study.

1. A fresh PostgreSQL database (``recovery_drill_source``): ``migrate``, then ``seed_demo``
   (participants with contact details, consents, responses, messages, audit events).
2. Backup: ``pg_dump --format=custom`` (what README "Backup and restore" says to run).
3. Restore into a new database (``recovery_drill_restored``) with ``pg_restore``.
4. Compare every table of the two databases: row count and an MD5 of all rows in order.
5. Open the restored copy with the app: every participant's contact details decrypt with the
   same ``FIELD_ENCRYPTION_KEYS``; with another key, none does (the keys are backed up apart
   from the data, and without them the copy's identifiers are unreadable).

    .venv/bin/python benchmarks/backup_drill.py [--participants 2000]
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pgdb  # benchmarks/pgdb.py: these scripts run as benchmarks/<name>.py
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
SOURCE, RESTORED = "recovery_drill_source", "recovery_drill_restored"
KEY = "YmFja3VwLWRyaWxsLWtleS1ub3QtZm9yLWRhdGEtMDE="
OTHER_KEY = "YW5vdGhlci1kZXBsb3ltZW50LWtleS0wMDAwMDAwMDI="


def env(db: str, key: str = KEY) -> dict:
    return {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
        "DJANGO_READ_DOT_ENV_FILE": "false",
        "DATABASE_URL": pgdb.database_url(db),
        "FIELD_ENCRYPTION_KEYS": key,
        "PYTHONPATH": str(ROOT),
    }


def fingerprints(db: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and the MD5 of its rows, in a fixed order."""
    conn = pgdb.connect(db)
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [row[0] for row in cursor.fetchall()]
        found = {}
        for table in tables:
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                "FROM {} t"
            ).format(sql.Identifier(table))
            cursor.execute(query)
            found[table] = cursor.fetchone()
    conn.close()
    return found


READABLE = """
from cryptography.fernet import InvalidToken
from surveys.models import ParticipantContact
ok = bad = 0
for pk in ParticipantContact.objects.values_list("pk", flat=True):
    try:
        ParticipantContact.objects.get(pk=pk).email
        ok += 1
    except InvalidToken:
        bad += 1
print(ok, bad)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=2000)
    args = parser.parse_args()
    pgdb.database_create(SOURCE)
    pgdb.manage("migrate", "-v0", env=env(SOURCE))
    pgdb.manage(
        "seed_demo", "--participants", str(args.participants), "--seed", "5", env=env(SOURCE)
    )
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "recovery.dump"
        started = time.monotonic()
        subprocess.run(
            ["pg_dump", *pgdb.HOST, "--format=custom", "--file", str(dump), SOURCE], check=True
        )
        backup_s = time.monotonic() - started
        pgdb.database_create(RESTORED)
        started = time.monotonic()
        subprocess.run(
            ["pg_restore", *pgdb.HOST, "--no-owner", "--exit-on-error", "-d", RESTORED, str(dump)],
            check=True,
        )
        restore_s = time.monotonic() - started
        size = dump.stat().st_size
    source, restored = fingerprints(SOURCE), fingerprints(RESTORED)
    differ = sorted(t for t in source if source[t] != restored.get(t))
    readable = pgdb.manage("shell", "--no-imports", "-c", READABLE, env=env(RESTORED)).split()
    other = pgdb.manage(
        "shell", "--no-imports", "-c", READABLE, env=env(RESTORED, OTHER_KEY)
    ).split()
    result = {
        "participants": args.participants,
        "tables": len(source),
        "rows": sum(count for count, _ in source.values()),
        "dump_bytes": size,
        "backup_s": round(backup_s, 2),
        "restore_s": round(restore_s, 2),
        "tables_that_differ": differ,
        "contacts_readable_with_the_keys": int(readable[0]),
        "contacts_unreadable_with_the_keys": int(readable[1]),
        "contacts_readable_with_another_key": int(other[0]),
    }
    print(json.dumps(result, indent=2))
    pgdb.database_drop(SOURCE)
    pgdb.database_drop(RESTORED)
    if differ or int(readable[1]) or int(other[0]):
        raise SystemExit("the restored copy is not the study")


if __name__ == "__main__":
    main()
