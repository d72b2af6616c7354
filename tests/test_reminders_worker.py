"""Reminders end to end through a real Celery worker and Redis: enrol → window opens →
invitation sent → reminder sent → survey completed → no more messages."""

import os
import time as clock
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from surveys.models import Assignment, Message
from surveys.submission import response_submit
from tests.api.test_responses_api import ANSWERS
from tests.celery_helpers import worker_env, worker_start

REDIS_URL = os.environ.get("REDIS_URL", "")
# A Redis database of its own: this worker sees no other test's tasks.
REMINDER_DB = 7


def _wait_settled(message_ids, timeout=60):
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        if not Message.objects.filter(pk__in=message_ids, status="sending").exists():
            return
        clock.sleep(0.2)
    raise AssertionError("messages still sending")


def _outbox(folder: Path) -> list[str]:
    return sorted(p.read_text() for p in folder.glob("*.log")) if folder.exists() else []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reminders_flow_through_a_real_worker_and_stop_at_completion(tmp_path, site_a, enrol):
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    import redis

    broker = REDIS_URL.rsplit("/", 1)[0] + f"/{REMINDER_DB}"
    redis.Redis.from_url(broker).flushdb()
    now = timezone.now()
    participant = enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
        contact={"email": "dana@example.org"},
        now=now - timedelta(days=30),  # enrolled a month ago: the whole plan is ahead of then
    )
    month1 = participant.assignments.get(wave__slug="m1")
    assert month1.status == Assignment.Status.SCHEDULED
    planned = list(Message.objects.filter(assignment=month1).order_by("sequence"))
    assert len(planned) >= 3
    invitation, reminder, *rest = planned
    # The clock: the invitation is due now, the reminder in an hour, the rest later.
    Message.objects.filter(assignment__participant=participant).update(
        scheduled_at=now + timedelta(days=300)
    )
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=now - timedelta(minutes=1))

    queue = f"test-{uuid.uuid4().hex[:8]}"
    client = Celery("client", broker=broker, backend=broker)
    client.conf.accept_content = ["json"]
    env = worker_env(tmp_path, REDIS_URL=broker)
    env.pop("EMAIL_URL", None)
    worker = worker_start(queues=f"{queue},celery", env=env)
    outbox = tmp_path / "outbox"

    def run(task):
        return client.send_task(task, queue=queue).get(timeout=90)

    try:
        # The window opens; the invitation goes.
        assert run("surveys.tasks.assignment_statuses_refresh")["opened"] >= 1
        assert run("surveys.tasks.reminders_dispatch")["claimed"] == 1
        _wait_settled([invitation.pk])
        invitation.refresh_from_db()
        assert invitation.status == Message.Status.SENT, invitation.reason
        assert len(_outbox(outbox)) == 1 and "dana@example.org" in _outbox(outbox)[0]

        # An hour later, the reminder.
        Message.objects.filter(pk=reminder.pk).update(scheduled_at=timezone.now())
        assert run("surveys.tasks.reminders_dispatch")["claimed"] == 1
        _wait_settled([reminder.pk])
        reminder.refresh_from_db()
        assert reminder.status == Message.Status.SENT
        assert len(_outbox(outbox)) == 2

        # The participant answers; every other message of the survey is cancelled, none goes.
        month1.refresh_from_db()
        response_submit(
            assignment=month1,
            instrument=month1.wave.instruments.get(),
            answers=ANSWERS,
            client_id=uuid.uuid4(),
        )
        Message.objects.filter(assignment=month1, status="queued").update(
            scheduled_at=timezone.now()
        )
        result = run("surveys.tasks.reminders_dispatch")
        assert result["claimed"] == 0 and result["cancelled"] == len(rest)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert len(_outbox(outbox)) == 2, output
    assert set(Message.objects.filter(assignment=month1).values_list("status", "reason")) == {
        ("sent", ""),
        ("cancelled", "completed"),
    }
    assert "dana@example.org" not in output  # the worker's log names no one
