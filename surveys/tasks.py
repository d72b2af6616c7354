from celery import shared_task

from surveys import services

# A round of the dispatcher's attempts is 5; the task retries the first four (after a round,
# the dispatcher queues the row again for a later round).
MAX_SEND_RETRIES = 4


def message_send_retry_wait(retries: int) -> int:
    """Seconds before the retry after ``retries`` earlier ones: 1, 2, 4, 8 minutes."""
    return 60 * 2**retries


@shared_task(name="surveys.tasks.assignment_statuses_refresh")
def assignment_statuses_refresh() -> dict[str, int]:
    return services.assignment_statuses_refresh()


@shared_task(name="surveys.tasks.recurring_assignments_extend")
def recurring_assignments_extend() -> int:
    return services.recurring_assignments_extend()


@shared_task(
    name="surveys.tasks.safety_alert_email",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def safety_alert_email(alert_id: int) -> bool:
    from surveys.safety import safety_alert_email_send  # safety enqueues this task: no cycle

    return safety_alert_email_send(alert_id=alert_id)


@shared_task(name="surveys.tasks.safety_alerts_sweep")
def safety_alerts_sweep() -> int:
    """The beat entry: e-mail the safety alerts whose own task never ran."""
    from surveys.safety import safety_alerts_sweep as sweep  # safety imports this module

    return sweep()


@shared_task(name="surveys.tasks.new_link_send", ignore_result=True)
def new_link_send(kind: str, lookup: str) -> None:
    """Only the keyed digest travels through the broker, never the typed address or number.
    No result is kept and none is returned (the worker's log would otherwise show whether a
    request matched someone). Not retried: a retry after a partial send would send some
    people two links; the participant can ask again."""
    from surveys.access import new_link_send as send  # access enqueues this task: no cycle

    send(kind=kind, lookup=lookup)


@shared_task(name="surveys.tasks.reminders_dispatch")
def reminders_dispatch() -> dict[str, int]:
    """The beat entry: one dispatch cycle, the same as ``manage.py dispatch_reminders``."""
    from dataclasses import asdict

    from surveys.dispatch import reminders_dispatch as dispatch

    result = asdict(dispatch())
    del result["claimed_ids"]
    return result


@shared_task(
    name="surveys.tasks.message_send",
    bind=True,
    acks_late=True,  # a worker killed mid-task: redelivered, and message_send knows what to do
    reject_on_worker_lost=True,
    max_retries=MAX_SEND_RETRIES,
    ignore_result=True,
)
def message_send(self, message_id: int) -> None:
    from surveys.dispatch import RetryLater
    from surveys.dispatch import message_send as send

    try:
        send(message_id=message_id)
    except RetryLater:
        # message_send ends the round after its fifth attempt (queued again, or failed).
        countdown = message_send_retry_wait(self.request.retries)
        raise self.retry(countdown=countdown, exc=None) from None


@shared_task(name="surveys.tasks.export_job_run", ignore_result=True)
def export_job_run(job_id: int) -> None:
    """Only the job's id travels through the broker. Not retried: the service fails the job
    with its reason, and a second delivery of the same id is a no-op (the job is no longer
    queued)."""
    from surveys.exports import export_job_run as run  # exports enqueues this task: no cycle

    run(job_id=job_id)


@shared_task(name="surveys.tasks.export_jobs_expire")
def export_jobs_expire() -> dict[str, int]:
    """The beat entry: delete the files of background exports past their download window,
    and the kept CSV lines of plans no export has used for a while."""
    from surveys.datasets.linecache import plans_expire
    from surveys.exports import export_jobs_expire as expire

    return {**expire(), "line_plans": plans_expire()}


@shared_task(
    name="surveys.tasks.export_lines_warm",
    soft_time_limit=9 * 60,
    time_limit=10 * 60,
)
def export_lines_warm() -> dict[str, int]:
    """The beat entry: keep the kept CSV lines of recent exports current (the next export of
    the same options then reads them back instead of building them)."""
    from surveys.exports import export_lines_warm as warm

    return warm()
