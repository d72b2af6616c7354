"""Fault drills (issue 9): Redis down while participants submit, and while reminders are due.
The broker and the cache are pointed at an address where nothing listens — real connections,
really refused — while a participant submits a survey with an answer that raises a safety
alert, and while dispatch cycles run; then Redis comes back and a real worker sends what
waited (a worker killed during a send: tests/test_reminders_worker.py)."""

import io
import os
import time as clock
import uuid
from datetime import timedelta

import kombu.pools
import pytest
from celery import Celery
from django.core import mail
from django.db.models import F
from django.utils import timezone

from surveys.dispatch import STALE_AFTER, reminders_dispatch
from surveys.models import Message, Response, SafetyAlert
from surveys.safety import safety_alert_email_send, safety_alerts_sweep
from surveys.services import assignment_statuses_refresh
from tests.api.test_responses_api import ANSWERS
from tests.celery_helpers import outbox_messages, worker_env, worker_start
from tests.surveys.test_participant_survey import api, month1, participant, signed_in  # noqa: F401

REDIS_URL = os.environ.get("REDIS_URL", "")
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
        # Producer pools are kept by kombu per broker address: one closed by an earlier test's
        # teardown would be handed out again ("Acquire on closed pool").
        kombu.pools.reset()

    for app in apps:
        reset_pools(app)
        app.conf.broker_url, app.conf.task_publish_retry = DEAD_REDIS, False
    settings.CACHES = {
        "default": {
            "BACKEND": "recovery.cache.RedisCache",
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


REMINDERS_DOWN_DB = 9  # a Redis database of the drill's own (the other worker tests use 7, 8)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_quiet_hours")
def test_redis_down_reminders_wait_and_each_goes_once_when_it_is_back(
    tmp_path, site_a, enrol, redis_down, caplog
):
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    now = timezone.now()
    people = [
        enrol(
            site=site_a,
            code=f"NYC-01{n:02d}",
            enrolled_on=timezone.localdate() - timedelta(days=30),
            timezone="America/New_York",
            contact={"email": f"p{n}@example.org"},
            now=now - timedelta(days=30),
        )
        for n in range(5)
    ]
    assignment_statuses_refresh()
    Message.objects.update(scheduled_at=now + timedelta(days=300))
    due = [
        Message.objects.filter(assignment__participant=p, assignment__wave__slug="m1")
        .earliest("sequence")
        .pk
        for p in people
    ]
    Message.objects.filter(pk__in=due).update(scheduled_at=now - timedelta(minutes=1))

    # Redis is down. The cycle (beat's every minute, or `manage.py dispatch_reminders`) claims a
    # batch, cannot queue it, says so and stops there; the next does the same with the next.
    for _ in range(2):
        result = reminders_dispatch(batch_size=2)
        assert (result.claimed, result.not_queued) == (2, 2)
    assert "the broker is unreachable" in caplog.text
    rows = Message.objects.filter(pk__in=due)
    assert sorted(rows.values_list("status", flat=True)) == ["queued"] + ["sending"] * 4
    assert not rows.exclude(send_started_at=None).exists()  # no send began
    claimed_in_the_outage = set(rows.filter(status="sending").values_list("pk", flat=True))

    # Redis is back (a database of the drill's own), and a real worker runs the next cycles.
    import redis

    broker = REDIS_URL.rsplit("/", 1)[0] + f"/{REMINDERS_DOWN_DB}"
    redis.Redis.from_url(broker).flushdb()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    client = Celery("client", broker=broker, backend=broker)
    client.conf.accept_content = ["json"]
    env = worker_env(tmp_path, REDIS_URL=broker)
    env.pop("EMAIL_URL", None)  # e-mails as files in tmp_path/outbox
    worker = worker_start(queues=f"{queue},celery", env=env)
    outbox = tmp_path / "outbox"

    def cycle(*, stuck=()):
        """One cycle in the worker, and the sends it queued, to their end."""
        result = client.send_task("surveys.tasks.reminders_dispatch", queue=queue).get(timeout=90)
        deadline = clock.monotonic() + 60
        while rows.filter(status="sending").exclude(pk__in=stuck).exists():
            assert clock.monotonic() < deadline, "messages still sending"
            clock.sleep(0.2)
        return result

    try:
        # At once: the one never claimed goes; the four claims wait for the sweep.
        result = cycle(stuck=claimed_in_the_outage)
        assert (result["requeued"], result["claimed"], result["to_review"]) == (0, 1, 0)
        # Fifteen minutes on, the sweep requeues the four and they go.
        rows.filter(status="sending").update(claimed_at=F("claimed_at") - STALE_AFTER)
        result = cycle()
        assert (result["requeued"], result["claimed"], result["to_review"]) == (4, 4, 0)
        result = cycle()
        assert (result["requeued"], result["claimed"], result["to_review"]) == (0, 0, 0)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    sent = outbox_messages(outbox)
    assert len(sent) == 5, output
    for n in range(5):
        assert sum(f"p{n}@example.org" in text for text in sent) == 1, output
    assert set(rows.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_the_dispatch_command_says_what_it_could_not_queue_and_exits_1(
    site_a, enrol, redis_down, caplog
):
    """Whoever runs ``manage.py dispatch_reminders`` during an outage reads how many claimed
    messages wait for the broker, and a script sees the exit status."""
    from django.core.management import CommandError, call_command

    now = timezone.now()
    person = enrol(
        site=site_a,
        code="NYC-0200",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
        contact={"email": "p200@example.org"},
        now=now - timedelta(days=30),
    )
    assignment_statuses_refresh()
    Message.objects.update(scheduled_at=now + timedelta(days=300))
    first = Message.objects.filter(
        assignment__participant=person, assignment__wave__slug="m1"
    ).earliest("sequence")
    Message.objects.filter(pk=first.pk).update(scheduled_at=now - timedelta(minutes=1))
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 claimed message\(s\) could not be queued"):
        call_command("dispatch_reminders", stdout=out)
    assert "claimed 1 in 1 batch(es)" in out.getvalue()
    assert "not queued 1" in out.getvalue()
    first.refresh_from_db()
    assert first.status == "sending" and first.send_started_at is None
