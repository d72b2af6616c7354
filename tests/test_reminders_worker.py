"""Reminders end to end through a real Celery worker and Redis: enrol → window opens →
invitation sent → reminder sent → survey completed → no more messages. And the fault drill of
issue 9: a worker killed (SIGKILL, for real) while the provider has the message and has not
answered yet."""

import os
import signal
import subprocess
import sys
import threading
import time as clock
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.db.models import F
from django.utils import timezone

from surveys.dispatch import INTERRUPTED
from surveys.models import Assignment, Message
from surveys.services import assignment_statuses_refresh
from surveys.submission import response_submit
from tests.api.test_responses_api import ANSWERS
from tests.celery_helpers import ROOT, outbox_messages, worker_env, worker_start
from tests.slow_sms import sent

REDIS_URL = os.environ.get("REDIS_URL", "")
# A Redis database of its own: this worker sees no other test's tasks.
REMINDER_DB = 7
KILLED_WORKER_DB = 8


def _wait_settled(message_ids, timeout=60):
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        if not Message.objects.filter(pk__in=message_ids, status="sending").exists():
            return
        clock.sleep(0.2)
    raise AssertionError("messages still sending")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_quiet_hours")
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
        (invitation_mail,) = outbox_messages(outbox)
        assert "dana@example.org" in invitation_mail

        # An hour later, the reminder.
        Message.objects.filter(pk=reminder.pk).update(scheduled_at=timezone.now())
        assert run("surveys.tasks.reminders_dispatch")["claimed"] == 1
        _wait_settled([reminder.pk])
        reminder.refresh_from_db()
        assert reminder.status == Message.Status.SENT
        assert len(outbox_messages(outbox)) == 2

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
    assert len(outbox_messages(outbox)) == 2, output
    assert set(Message.objects.filter(assignment=month1).values_list("status", "reason")) == {
        ("sent", ""),
        ("cancelled", "completed"),
    }
    assert "dana@example.org" not in output  # the worker's log names no one


# --- A worker killed during a send ------------------------------------------------------------


class WorkerLog:
    """A worker's output, read as it comes (a test waits for a line while the worker runs)."""

    def __init__(self, worker: subprocess.Popen):
        self.worker, self.lines = worker, []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.worker.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = clock.monotonic() + timeout
        while clock.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.worker.poll() is not None:
                break
            clock.sleep(0.2)
        raise AssertionError(f"the worker never logged {text!r}:\n{self.text}")

    def stop(self) -> str:
        if self.worker.poll() is None:
            self.worker.terminate()
        self.worker.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _prefork_worker_start(*, queues: str, env: dict[str, str]) -> subprocess.Popen:
    """Like worker_start, with one pool process: the process that sends is a child, and the
    worker (the parent) outlives it when it is killed."""
    name = queues.split(",")[0]
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "recovery", "worker", "--pool=prefork",
         "--concurrency=1", "--loglevel=INFO", "-Q", queues, "--without-mingle",
         "--without-gossip", "--without-heartbeat", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _in_flight(folder: Path, timeout: float = 60) -> int:
    """The id of the process inside the slow provider's send, once one is."""
    marker = folder / "in-flight"
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        if marker.exists():
            return int(marker.read_text())
        clock.sleep(0.1)
    raise AssertionError("no send began")


@pytest.fixture
def killable(tmp_path, site_a, enrol, no_quiet_hours):
    """A participant reached by SMS whose month-1 invitation is due; a Redis database of the
    drill's own; the slow provider's folder; the worker's environment (the provider answers the
    first send after two minutes: long enough to kill the sender inside it)."""
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    import redis

    broker = REDIS_URL.rsplit("/", 1)[0] + f"/{KILLED_WORKER_DB}"
    store = redis.Redis.from_url(broker)
    store.flushdb()
    now = timezone.now()
    participant = enrol(
        site=site_a,
        code="NYC-0043",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
        contact={"phone": "+1 555 010 4480"},
        now=now - timedelta(days=30),
    )
    assignment_statuses_refresh()  # the month-1 window is open
    Message.objects.filter(assignment__participant=participant).update(
        scheduled_at=now + timedelta(days=300)
    )
    invitation = Message.objects.filter(
        assignment__participant=participant, assignment__wave__slug="m1"
    ).earliest("sequence")
    assert invitation.channel == Message.Channel.SMS
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=now - timedelta(minutes=1))
    provider = tmp_path / "provider"
    provider.mkdir()
    env = worker_env(
        tmp_path,
        REDIS_URL=broker,
        SMS_BACKEND="tests.slow_sms.SlowSmsBackend",
        SLOW_SMS_DIR=str(provider),
        SLOW_SMS_SECONDS="120",
    )
    client = Celery("client", broker=broker, backend=broker)
    client.conf.accept_content = ["json"]
    yield invitation, provider, env, client, store
    store.flushdb()


def _send_task(client, queue: str, task: str):
    return client.send_task(task, queue=queue).get(timeout=90)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_a_send_never_sends_twice_and_the_message_goes_to_review(
    killable,
):
    """The whole worker dies (solo pool: an OOM kill, a lost machine) while the provider has
    the SMS. The task was never acknowledged, so Redis keeps it; a new worker starts; a quarter
    of an hour later the dispatcher's sweep finds the send that began and never ended, and an
    hour later Redis hands the old task out again."""
    invitation, provider, env, client, store = killable
    queue = f"test-{uuid.uuid4().hex[:8]}"
    first = WorkerLog(worker_start(queues=f"{queue},celery", env=env))
    try:
        assert _send_task(client, queue, "surveys.tasks.reminders_dispatch")["claimed"] == 1
        sender = _in_flight(provider)
        assert sender == first.worker.pid  # solo pool: the worker itself is sending
        os.kill(sender, signal.SIGKILL)
        assert first.worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        first.stop()
    invitation.refresh_from_db()
    assert invitation.status == Message.Status.SENDING and invitation.send_started_at
    assert len(sent(provider)) == 1  # it went out; the app never heard
    assert store.hlen("unacked") == 1  # the task, unacknowledged, waits in Redis

    # A new worker; the sweep runs once the claim is older than 15 minutes.
    Message.objects.filter(pk=invitation.pk).update(
        claimed_at=F("claimed_at") - timedelta(minutes=16),
        send_started_at=F("send_started_at") - timedelta(minutes=16),
    )
    second = WorkerLog(worker_start(queues=f"{queue},celery", env=env))
    try:
        result = _send_task(client, queue, "surveys.tasks.reminders_dispatch")
        assert (result["to_review"], result["requeued"], result["claimed"]) == (1, 0, 0)
        result = _send_task(client, queue, "surveys.tasks.reminders_dispatch")
        assert (result["to_review"], result["requeued"], result["claimed"]) == (0, 0, 0)
    finally:
        log = second.stop()
    invitation.refresh_from_db()
    assert len(sent(provider)) == 1, log
    assert (invitation.status, invitation.reason) == (Message.Status.REVIEW, INTERRUPTED), log

    # An hour on (Redis's visibility timeout), the next worker to start gets the old task back.
    for tag, score in store.zrange("unacked_index", 0, -1, withscores=True):
        store.zadd("unacked_index", {tag: score - 2 * 3600})
    third = WorkerLog(worker_start(queues=f"{queue},celery", env=env))
    try:
        third.wait_for("surveys.tasks.message_send[")
        third.wait_for("succeeded")
    finally:
        log = third.stop()
    invitation.refresh_from_db()
    assert len(sent(provider)) == 1, log  # once, whatever ran again
    assert (invitation.status, invitation.reason) == (Message.Status.REVIEW, INTERRUPTED), log
    assert store.hlen("unacked") == 0 and store.llen("celery") == 0  # nothing left to redeliver
    assert "+1 555" not in log  # the worker's log names no one


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_pool_process_killed_during_a_send_is_redelivered_and_goes_to_review_not_resent(
    killable,
):
    """The pool process inside the send dies; the worker lives on, and (acks_late,
    reject_on_worker_lost) puts the task straight back: it runs again at once, finds that its
    send had begun, and leaves the message to a person."""
    invitation, provider, env, client, store = killable
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = WorkerLog(_prefork_worker_start(queues=f"{queue},celery", env=env))
    try:
        assert _send_task(client, queue, "surveys.tasks.reminders_dispatch")["claimed"] == 1
        sender = _in_flight(provider)
        assert sender != worker.worker.pid  # a pool process
        os.kill(sender, signal.SIGKILL)
        worker.wait_for("WorkerLostError")
        deadline = clock.monotonic() + 60
        while Message.objects.filter(pk=invitation.pk, status="sending").exists():
            assert clock.monotonic() < deadline, f"still sending:\n{worker.text}"
            clock.sleep(0.2)
        worker.wait_for("succeeded")  # the redelivered task, to its end
    finally:
        log = worker.stop()
    invitation.refresh_from_db()
    assert len(sent(provider)) == 1, log
    assert (invitation.status, invitation.reason) == (Message.Status.REVIEW, INTERRUPTED), log
    assert store.hlen("unacked") == 0 and store.llen("celery") == 0
    assert "+1 555" not in log
