from celery import shared_task

from surveys import services


@shared_task(name="surveys.tasks.assignment_statuses_refresh")
def assignment_statuses_refresh() -> dict[str, int]:
    return services.assignment_statuses_refresh()


@shared_task(name="surveys.tasks.recurring_assignments_extend")
def recurring_assignments_extend() -> int:
    return services.recurring_assignments_extend()
