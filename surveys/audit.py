"""The audit log: one append-only row per sensitive act (who, when, what, from where)."""

from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from surveys.models import AuditEvent, Participant, Study
from surveys.ratelimit import client_ip


def audit_log(
    *,
    action: str,
    user=None,
    request: HttpRequest | None = None,
    study: Study | None = None,
    participant: Participant | None = None,
    obj: Model | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Write one event. ``details`` holds codes, counts and field names, never an identifier."""
    if user is None and request is not None:
        user = request.user
    if user is not None and not user.is_authenticated:
        user = None
    if study is None and participant is not None:
        study = participant.study
    event = AuditEvent(
        at=timezone.now(),
        user=user,
        username=user.get_username() if user is not None else "",
        action=action,
        study=study,
        participant=participant,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details or {},
        ip=(client_ip(request) or None) if request is not None else None,
    )
    event.save()
    return event
