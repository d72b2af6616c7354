"""Fault drills (issue 9): Redis down while participants submit. The broker and the cache are
pointed at an address where nothing listens — real connections, really refused — while a
participant submits a survey with an answer that raises a safety alert."""

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from surveys.models import Response, SafetyAlert
from surveys.safety import safety_alert_email_send, safety_alerts_sweep
from tests.api.test_responses_api import ANSWERS
from tests.surveys.test_participant_survey import api, month1, participant, signed_in  # noqa: F401

DEAD_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens, connections are refused


@pytest.fixture
def redis_down(settings):
    """The Celery app publishes to, and the cache talks to, a Redis that is not there. (The
    app the tasks publish through: the project's, or the current one if a test made another.)"""
    from recovery.celery import app as project_app
    from surveys.tasks import safety_alert_email

    apps = {project_app, safety_alert_email.app}
    saved = {app: (app.conf.broker_url, app.conf.task_publish_retry) for app in apps}

    def reset_pools(app):
        app.pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    for app in apps:
        reset_pools(app)
        app.conf.broker_url, app.conf.task_publish_retry = DEAD_REDIS, False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEAD_REDIS,
        }
    }
    yield
    for app in apps:
        reset_pools(app)
        app.conf.broker_url, app.conf.task_publish_retry = saved[app]


@pytest.mark.django_db(
    transaction=True
)  # commits for real: the on-commit publish runs in the request
def test_redis_down_a_crisis_submission_is_saved_and_the_alert_mailed_once_it_is_back(
    signed_in,  # noqa: F811
    month1,  # noqa: F811
    redis_down,
    caplog,
):
    body = {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "overdose": 1}}
    reply = signed_in.post(api(month1, "submit"), body, content_type="application/json")
    assert reply.status_code == 201  # the participant's phone gets its answer
    assert Response.objects.get().status == Response.Status.SUBMITTED
    alert = SafetyAlert.objects.get()
    assert alert.emailed_at is None  # the task could not be queued…
    assert "safety_alert_email" in caplog.text  # …and that was logged
    replay = signed_in.post(api(month1, "submit"), body, content_type="application/json")
    assert replay.status_code == 200 and Response.objects.count() == 1  # the phone's retry
    # Redis is back: the sweep (beat, every 5 minutes) mails what waited, once.
    later = timezone.now() + timedelta(minutes=3)
    assert safety_alerts_sweep(now=later) == 1
    assert safety_alerts_sweep(now=later) == 0
    assert not safety_alert_email_send(alert_id=alert.pk)  # the task, if it ever runs
    (message,) = mail.outbox
    assert message.to == ["team@example.org"] and "NYC-0042" in message.body


def test_the_sweep_leaves_a_fresh_alert_to_its_own_task(signed_in, month1):  # noqa: F811
    body = {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "overdose": 1}}
    signed_in.post(api(month1, "submit"), body, content_type="application/json")
    assert SafetyAlert.objects.filter(emailed_at=None).count() == 1
    assert safety_alerts_sweep() == 0  # made just now: its task is on the way
    assert not mail.outbox
