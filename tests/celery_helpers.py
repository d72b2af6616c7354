"""Shared by the tests that run a real ``celery worker`` process against a real broker (Redis
when REDIS_URL is set, else kombu's filesystem transport in the test's own folder), on the
test database."""

import os
import subprocess
import sys
from pathlib import Path

from celery import Celery
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "")


def database_url() -> str:
    """The test database, as the worker's DATABASE_URL."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def broker(kind: str, var_dir: Path) -> tuple[dict, Celery]:
    """Environment for the worker and a client app that talks to the same broker."""
    if kind == "redis":
        env = {"REDIS_URL": REDIS_URL}
        client = Celery("client", broker=REDIS_URL, backend=REDIS_URL)
    else:
        env = {"REDIS_URL": ""}
        folder = var_dir / "broker"
        for sub in (folder / "queue", folder / "control", var_dir / "celery-results"):
            sub.mkdir(parents=True, exist_ok=True)
        client = Celery(
            "client", broker="filesystem://", backend=f"file://{var_dir / 'celery-results'}"
        )
        client.conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
        }
    client.conf.accept_content = ["json"]
    client.conf.task_serializer = "json"
    client.conf.result_serializer = "json"
    return env, client


def worker_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The worker's environment: local settings, the test database, ``var_dir`` as VAR_DIR."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(var_dir),
        "DJANGO_READ_DOT_ENV_FILE": "false",
        **overrides,
    }


# Django's file-based mail backend ends every message with this line. It names its file by the
# second and the backend object's id, and appends: two sends in one second by backends that got
# the same id write one file with two messages, so messages are counted, not files.
MESSAGE_END = "\n" + "-" * 79 + "\n"


def outbox_messages(folder: Path) -> list[str]:
    """Every e-mail the worker wrote to ``folder`` (the file-based backend), one string each."""
    if not folder.exists():
        return []
    texts = (p.read_text() for p in sorted(folder.glob("*.log")))
    return sorted(m for text in texts for m in text.split(MESSAGE_END) if m.strip())


def worker_start(*, queues: str, env: dict[str, str]) -> subprocess.Popen:
    """A solo-pool worker consuming ``queues`` (comma-separated; the first names the node).
    Stop it with ``terminate()`` and read its log with ``communicate()``."""
    name = queues.split(",")[0]
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "recovery", "worker", "--pool=solo",
         "--loglevel=INFO", "-Q", queues, "--without-mingle", "--without-gossip",
         "--without-heartbeat", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
