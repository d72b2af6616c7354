"""Answers that signal danger: the participant sees crisis resources at once (in the page) and
the study team gets an alert (in the admin, and e-mailed to the study's alert address).

Which answers count is data: an item's ``options["alert"]`` holds a logic expression (e.g.
``[overdose] = '1'``, or ``[craving] >= 10`` for the top of a 0–10 scale). The built-in battery
sets it for an overdose since the last survey and the highest craving rating.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from surveys import logic
from surveys.models import Assignment, Item, Participant, SafetyAlert, Study
from surveys.tasks import safety_alert_email

DEFAULT_CRISIS_TEXT = (
    "If you or someone with you may have overdosed, call your local emergency number now.\n"
    "You can also call or text someone from the study team, or a helpline listed by your "
    "study."
)


def crisis_text(*, study: Study, language: str) -> str:
    texts = study.crisis_resources or {}
    return texts.get(language) or texts.get("en") or DEFAULT_CRISIS_TEXT


def alert_items(items: list[Item]) -> list[Item]:
    return [item for item in items if item.options.get("alert")]


def triggered(items: list[Item], answers: dict) -> list[Item]:
    """The items whose alert expression holds for these answers (and that are shown)."""
    return [
        item
        for item in alert_items(items)
        if logic.shows(item.branching, answers) and logic.shows(item.options["alert"], answers)
    ]


def safety_alerts_raise(
    *, assignment: Assignment, items: list[Item], answers: dict, now: datetime | None = None
) -> list[SafetyAlert]:
    """Record an alert for each dangerous answer not alerted yet in this survey, and e-mail the
    study team once the answers are committed. Returns the new alerts."""
    hits = triggered(items, answers)
    if not hits:
        return []
    now = now or timezone.now()
    known = set(
        SafetyAlert.objects.filter(assignment_id=assignment.pk).values_list("variable", flat=True)
    )
    study_id = Participant.objects.values_list("study_id", flat=True).get(
        pk=assignment.participant_id
    )
    new = [
        SafetyAlert(
            study_id=study_id,
            participant_id=assignment.participant_id,
            assignment_id=assignment.pk,
            variable=item.variable,
            question=item.text("en"),
            answer=logic.to_text(answers.get(item.variable)),
            created_at=now,
        )
        for item in hits
        if item.variable not in known
    ]
    if not new:
        return []
    # ignore_conflicts: a simultaneous draft save of the same survey may have just made it.
    SafetyAlert.objects.bulk_create(new, ignore_conflicts=True)
    created = list(
        SafetyAlert.objects.filter(
            assignment_id=assignment.pk, variable__in=[a.variable for a in new], emailed_at=None
        ).values_list("pk", flat=True)
    )
    for pk in created:
        # robust: with the broker (Redis) down the answers are saved all the same and the page
        # answers; the alert is e-mailed by the sweep (safety_alerts_sweep) once it is back.
        transaction.on_commit(lambda pk=pk: safety_alert_email.delay(pk), robust=True)
    return new


def safety_alert_email_send(*, alert_id: int, skip_locked: bool = False) -> bool:
    """E-mail one alert to its study's alert address, once. No names or contact details: the
    team opens the admin (signed in) to see who it is.

    The alert's row is locked while the mail goes out and marked in the same transaction: the
    task and the sweep can both try it, and only one sends (``skip_locked``: the sweep passes
    over an alert the task is sending). A failed send leaves it unmarked, for a retry."""
    with transaction.atomic():
        alert = (
            SafetyAlert.objects.select_for_update(skip_locked=skip_locked, of=("self",))
            .select_related("study", "participant", "assignment__wave")
            .filter(pk=alert_id)
            .first()
        )
        if alert is None or alert.emailed_at is not None or not alert.study.alert_email:
            return False
        link = f"{settings.SITE_URL}/admin/surveys/safetyalert/{alert.pk}/change/"
        send_mail(
            subject=f"[{alert.study.name}] Safety alert: participant {alert.participant.code}",
            message=(
                f"Participant {alert.participant.code} answered in the survey "
                f"“{alert.assignment.wave.name}”:\n\n"
                f"  {alert.question}\n  Answer: {alert.answer}\n\n"
                "They were shown the study's crisis resources at once. Please follow up as "
                f"your protocol says, and record it here:\n{link}\n"
            ),
            from_email=None,
            recipient_list=[alert.study.alert_email],
        )
        SafetyAlert.objects.filter(pk=alert_id).update(emailed_at=timezone.now())
    return True


SWEEP_AFTER = timedelta(minutes=2)


def safety_alerts_sweep(*, now: datetime | None = None) -> int:
    """E-mail every alert still unsent a while after it was made (its task never ran: the
    broker was down, or the worker died mid-send). Returns how many were sent."""
    now = now or timezone.now()
    waiting = SafetyAlert.objects.filter(
        emailed_at=None, created_at__lte=now - SWEEP_AFTER
    ).exclude(study__alert_email="")
    return sum(
        safety_alert_email_send(alert_id=pk, skip_locked=True)
        for pk in waiting.order_by("created_at").values_list("pk", flat=True)
    )


def safety_alert_follow_up(*, alert: SafetyAlert, user, note: str) -> SafetyAlert:
    """A staff member records the follow-up; the first one acknowledges the alert."""
    alert.follow_up_note = note
    fields = ["follow_up_note"]
    if alert.acknowledged_at is None:
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = user
        fields += ["acknowledged_at", "acknowledged_by"]
    alert.save(update_fields=fields)
    return alert
