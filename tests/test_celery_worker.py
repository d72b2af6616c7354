"""A task's round trip through a real broker and a real ``celery worker`` process."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from surveys.models import Assignment
from tests.celery_helpers import REDIS_URL, broker, worker_env, worker_start


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["redis", "filesystem"])
def test_a_task_runs_in_a_real_worker_and_changes_the_database(kind, tmp_path, site_a, enrol):
    if kind == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    today = timezone.localdate()
    participant = enrol(
        site=site_a, enrolled_on=today - timedelta(days=30), now=timezone.now() - timedelta(days=30)
    )
    month1 = participant.assignments.get(wave__slug="m1")
    assert month1.status == Assignment.Status.SCHEDULED

    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker_env, client = broker(kind, tmp_path)
    worker = worker_start(queues=queue, env=worker_env(tmp_path, **broker_env))
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
