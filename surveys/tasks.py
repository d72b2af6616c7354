from celery import shared_task

from surveys import services


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


@shared_task(name="surveys.tasks.new_link_send", ignore_result=True)
def new_link_send(kind: str, lookup: str) -> None:
    """Only the keyed digest travels through the broker, never the typed address or number.
    No result is kept and none is returned (the worker's log would otherwise show whether a
    request matched someone). Not retried: a retry after a partial send would send some
    people two links; the participant can ask again."""
    from surveys.access import new_link_send as send  # access enqueues this task: no cycle

    send(kind=kind, lookup=lookup)
