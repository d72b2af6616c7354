"""A task's round trip through a real broker and a real ``celery worker`` process."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from surveys.models import Assignment

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "")


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _broker(kind: str, var_dir: Path) -> tuple[dict, Celery]:
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


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_a_task_runs_in_a_real_worker_and_changes_the_database(broker, tmp_path, site_a, enrol):
    if broker == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    today = timezone.localdate()
    participant = enrol(
        site=site_a, enrolled_on=today - timedelta(days=30), now=timezone.now() - timedelta(days=30)
    )
    month1 = participant.assignments.get(wave__slug="m1")
    assert month1.status == Assignment.Status.SCHEDULED

    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker_env, client = _broker(broker, tmp_path)
    env = {
        **os.environ,
        **broker_env,
        "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
        "DATABASE_URL": _database_url(),
        "VAR_DIR": str(tmp_path),
        "DJANGO_READ_DOT_ENV_FILE": "false",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "recovery",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-n",
            f"{queue}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        result = client.send_task("surveys.tasks.assignment_statuses_refresh", queue=queue)
        counts = result.get(timeout=90)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert counts == {"opened": 1, "missed": 1}, output
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.OPEN
    assert "surveys.tasks.assignment_statuses_refresh" in output
    assert f"Task surveys.tasks.assignment_statuses_refresh[{result.id}] succeeded" in output


def test_celery_is_configured_for_json_only_with_time_limits_and_a_beat_schedule(db):
    from recovery.celery import app

    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "surveys.tasks.assignment_statuses_refresh" in tasks
    app.loader.import_default_modules()
    assert tasks <= set(app.tasks)
