"""What the benchmark scripts share: a PostgreSQL database of their own on 127.0.0.1 (trust
auth), and ``manage.py`` run against it in a child process."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = ["-h", "127.0.0.1", "-U", "postgres"]


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def database_create(name: str) -> None:
    """A new, empty database (an old one of the same name is dropped first)."""
    database_drop(name)
    subprocess.run(["createdb", *HOST, name], check=True)


def database_drop(name: str) -> None:
    subprocess.run(["dropdb", *HOST, "--if-exists", name], check=True)


def connect(name: str):
    """An autocommit psycopg2 connection to the database."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name)
    conn.autocommit = True
    return conn


def manage(*args: str, env: dict) -> str:
    """``manage.py`` with ``env`` (the benchmark database's settings); its output, or exit."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout
