"""System checks of settings that only go wrong in production (``manage.py check --deploy``
and every ``manage.py`` command run them)."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def visibility_timeout_check(app_configs=None, **kwargs) -> list[Error]:
    """On Redis, a task its worker has not acknowledged is handed out again after the
    broker's visibility timeout: shorter than a task may run (the hard time limit), or than
    the longest wait before a reminder's retry, and a task would run twice at once, or a
    retry be handed out before its time."""
    from surveys.tasks import MAX_SEND_RETRIES, message_send_retry_wait

    timeout = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}).get(
        "visibility_timeout"
    )
    if timeout is None:  # not Redis (the filesystem broker of `make demo`)
        return []
    longest_retry = message_send_retry_wait(MAX_SEND_RETRIES - 1)
    needed = max(settings.CELERY_TASK_TIME_LIMIT, longest_retry)
    if timeout > needed:
        return []
    return [
        Error(
            f"CELERY_VISIBILITY_TIMEOUT is {timeout} seconds: Redis would hand a task out "
            f"again while it may still run or wait for its retry ({needed} seconds).",
            hint=f"Set CELERY_VISIBILITY_TIMEOUT above {needed} (the default is 3600).",
            id="recovery.E001",
        )
    ]
