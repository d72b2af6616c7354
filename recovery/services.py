"""Writes specific to recovery research: studies from the built-in template, synthetic cohorts."""

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from recovery.battery import (
    INSTRUMENT_NAMES_ES,
    INSTRUMENT_NAMES_FA,
    INSTRUMENTS,
    WAVE_NAMES_ES,
    WAVE_NAMES_FA,
    WAVES,
)
from recovery.battery.consent import CONSENT_TEMPLATE_DATE, CONSENT_TEXTS, CONSENT_VERSION
from recovery.synthetic import SyntheticCohort
from surveys.models import (
    Assignment,
    Consent,
    ConsentVersion,
    Instrument,
    InstrumentVersion,
    Item,
    Message,
    Participant,
    ParticipantContact,
    ParticipantStatusChange,
    ReminderRule,
    Response,
    Site,
    Study,
    Wave,
    WaveInstrument,
)
from surveys.reminders import reminders_plan
from surveys.services import assignments_build, participant_codes_next
from surveys.submission import days_covered
from surveys.validation import SINCE_LAST_SURVEY

BATCH_SIZE = 2000


@transaction.atomic
def study_create_from_template(
    *,
    slug: str,
    name: str,
    sites: list[tuple[str, str, str]],
    default_timezone: str = "America/New_York",
    description: str = "",
) -> Study:
    """A study with the built-in battery (version 1 of each instrument) and the standard waves:
    baseline, 1, 3, 6 and 12 months, then a weekly check-in that starts switched off."""
    study = Study(slug=slug, name=name, description=description, default_timezone=default_timezone)
    study.full_clean()
    study.save()
    for code, site_name, tz in sites:
        site = Site(study=study, code=code, name=site_name, timezone=tz)
        site.full_clean(exclude=["study"])
        site.save()
    instruments = {}
    for instrument_slug, (instrument_name, specs) in INSTRUMENTS.items():
        instrument = Instrument.objects.create(
            study=study,
            slug=instrument_slug,
            name=instrument_name,
            names={
                "es": INSTRUMENT_NAMES_ES[instrument_slug],
                "fa": INSTRUMENT_NAMES_FA[instrument_slug],
            },
        )
        version = InstrumentVersion.objects.create(
            instrument=instrument, number=1, note="Built-in battery"
        )
        Item.objects.bulk_create(
            Item(version=version, **spec.as_item_fields(position))
            for position, spec in enumerate(specs, start=1)
        )
        instruments[instrument_slug] = instrument
    for position, spec in enumerate(WAVES, start=1):
        wave = Wave.objects.create(
            study=study,
            slug=spec.slug,
            name=spec.name,
            names={"es": WAVE_NAMES_ES[spec.slug], "fa": WAVE_NAMES_FA[spec.slug]},
            position=position,
            offset_days=spec.offset_days,
            window_before_days=spec.window_before_days,
            window_after_days=spec.window_after_days,
            recurrence_days=spec.recurrence_days,
            is_active=spec.active,
        )
        WaveInstrument.objects.create(wave=wave, instrument=instruments[spec.instrument])
        if spec.recurrence_days:  # a weekly check-in: the invitation alone
            ReminderRule.objects.create(
                study=study, wave=wave, kind=ReminderRule.Kind.INVITATION, position=0
            )
    # The study's default for the other waves: the invitation as the window opens, two
    # reminders three days apart, and a last call two days before it closes, at 18:00.
    ReminderRule.objects.bulk_create(
        [
            ReminderRule(study=study, kind=ReminderRule.Kind.INVITATION, position=0),
            ReminderRule(
                study=study, kind=ReminderRule.Kind.EVERY, every_hours=72, times=2, position=1
            ),
            ReminderRule(
                study=study,
                kind=ReminderRule.Kind.LAST_CALL,
                days_before_close=2,
                at_time=time(18, 0),
                position=2,
            ),
        ]
    )
    # The template's text, dated as the template was written; a study adds the version its
    # ethics board approved, which becomes current.
    ConsentVersion.objects.create(
        study=study,
        version=CONSENT_VERSION,
        approved_on=CONSENT_TEMPLATE_DATE,
        texts=CONSENT_TEXTS,
    )
    return study


def _fit_since_last_survey(
    pending: list[tuple[Assignment, dict, datetime]],
    limited: dict[int, tuple[int, set[str]]],
) -> list[tuple[Assignment, dict, datetime]]:
    """The responses with an answer limited to the days since the participant last sent the
    same instrument (the longest run of use; ``limited``: by wave, the wave's instrument and
    such variables) lowered to those days, as the survey would have asked: the cohort's answers
    are drawn before their sending days are."""
    last_day: dict[tuple[int, int], date] = {}
    fitted = []
    for assignment, answers, submitted in sorted(
        pending, key=lambda row: (row[0].participant.pk, row[2])
    ):
        participant = assignment.participant
        instrument_id, variables = limited[assignment.wave_id]
        today = timezone.localtime(submitted, ZoneInfo(participant.timezone)).date()
        start = last_day.get((participant.pk, instrument_id), participant.enrolled_on)
        days = days_covered(start, today)  # as submission.days_since_last_survey counts
        over = {
            variable: days
            for variable in variables
            if isinstance(answers.get(variable), int) and answers[variable] > days
        }
        fitted.append((assignment, {**answers, **over} if over else answers, submitted))
        last_day[(participant.pk, instrument_id)] = today
    return fitted


@transaction.atomic
def synthetic_cohort_seed(
    *, study: Study, cohort: SyntheticCohort, now: datetime | None = None
) -> dict[str, int]:
    """Write a synthetic cohort through the engine's own models, in bulk.

    Assignments come from the same ``assignments_build`` that real enrolment uses; a wave the
    participant answers (and whose window had opened by ``now``) gets a submitted response and a
    completed assignment, the others keep the status their window gives them.
    """
    now = now or timezone.now()
    sites = {site.code: site for site in study.sites.all()}
    waves = list(study.waves.order_by("position"))
    wave_instruments = {
        wi.wave_id: wi.instrument
        for wi in WaveInstrument.objects.filter(wave__study=study).select_related("instrument")
    }
    versions = {
        version.instrument_id: version
        for version in InstrumentVersion.objects.filter(instrument__study=study).order_by(
            "instrument_id", "number"
        )
    }

    # Study IDs from the engine's own numbering, so that the sites' next enrolments carry on
    # after them (for a new study they are the cohort's own codes).
    per_site = Counter(p.site_code for p in cohort.participants)
    codes = {
        code: iter(participant_codes_next(site=sites[code], count=count))
        for code, count in per_site.items()
    }
    participants = [
        Participant(
            study=study,
            site=sites[p.site_code],
            code=next(codes[p.site_code]),
            enrolled_on=p.enrolled_on,
            timezone=p.timezone,
            language=p.language,
        )
        for p in cohort.participants
    ]
    Participant.objects.bulk_create(participants, batch_size=BATCH_SIZE)
    contacts = [
        ParticipantContact(participant=obj, **p.contact)
        for obj, p in zip(participants, cohort.participants, strict=True)
    ]
    for contact in contacts:
        contact.lookups_refresh()
    ParticipantContact.objects.bulk_create(contacts, batch_size=BATCH_SIZE)
    # Each synthetic participant signed the study's current consent on paper at enrolment.
    version = study.consent_versions.order_by("-approved_on", "-id").first()
    if version is not None:
        Consent.objects.bulk_create(
            (
                Consent(
                    participant=obj,
                    version=version,
                    method=Consent.Method.WRITTEN,
                    consented_on=obj.enrolled_on,
                    recorded_at=now,
                )
                for obj in participants
            ),
            batch_size=BATCH_SIZE,
        )

    assignments: list[Assignment] = []
    sent_history: list[tuple[Assignment, list[datetime]]] = []
    pending_responses: list[tuple[Assignment, dict, datetime]] = []
    for obj, p in zip(participants, cohort.participants, strict=True):
        for assignment in assignments_build(participant=obj, waves=waves, now=now):
            key = (p.index, assignment.wave.slug)
            answers = cohort.answers.get(key)
            if answers is not None and assignment.opens_at <= now:
                share = cohort.answer_timing[key]
                submitted = assignment.opens_at + share * (
                    assignment.closes_at - assignment.opens_at
                )
                if submitted <= now:
                    assignment.status = Assignment.Status.COMPLETED
                    assignment.completed_at = submitted
                    assignment.status_changed_at = submitted
                    pending_responses.append((assignment, answers, submitted))
            history = _messages_already_sent(assignment, now)
            if history:
                assignment.messages_sent = len(history)
                assignment.first_message_at = history[0]
                sent_history.append((assignment, history))
            assignments.append(assignment)
    Assignment.objects.bulk_create(assignments, batch_size=BATCH_SIZE)
    # The invitations and reminders the template's rules sent to the surveys already over,
    # so that the dashboard's "time to completion" and "completed after which
    # reminder" have a history to show (on the participant's preferred channel).
    Message.objects.bulk_create(
        (
            Message(
                assignment=assignment,
                sequence=sequence,
                channel=assignment.participant.preferred_channel,
                scheduled_at=at,
                status=Message.Status.SENT,
                attempts=1,
                sent_at=at,
            )
            for assignment, history in sent_history
            for sequence, at in enumerate(history)
        ),
        batch_size=BATCH_SIZE,
    )

    limited = {
        wave_id: (
            instrument.pk,
            {
                item.variable
                for item in versions[instrument.pk].items.all()
                if item.max_value == SINCE_LAST_SURVEY
            },
        )
        for wave_id, instrument in wave_instruments.items()
    }
    pending_responses = _fit_since_last_survey(pending_responses, limited)
    responses = []
    for assignment, answers, submitted in pending_responses:
        instrument = wave_instruments[assignment.wave_id]
        responses.append(
            Response(
                assignment=assignment,
                instrument=instrument,
                instrument_version=versions[instrument.pk],
                answers=answers,
                status=Response.Status.SUBMITTED,
                started_at=submitted - timedelta(minutes=6),
                submitted_at=submitted,
            )
        )
    Response.objects.bulk_create(responses, batch_size=BATCH_SIZE)

    # Invitations and reminders of the surveys still ahead or open, as enrolment plans them
    # (the demo's worker then sends them as they fall due).
    plan_now = timezone.now()
    ahead = list(
        Assignment.objects.filter(
            participant__study=study,
            status__in=(Assignment.Status.SCHEDULED, Assignment.Status.OPEN),
            closes_at__gt=plan_now,
        ).values_list("pk", flat=True)
    )
    messages = 0
    for start in range(0, len(ahead), BATCH_SIZE):
        chunk = [Assignment(pk=pk) for pk in ahead[start : start + BATCH_SIZE]]
        messages += reminders_plan(assignments=chunk, now=plan_now)

    study.is_synthetic = True
    study.synthetic_params = {**cohort.params, "true_effect": cohort.true_effect}
    study.save(update_fields=["is_synthetic", "synthetic_params", "updated_at"])
    return {
        "participants": len(participants),
        "assignments": len(assignments),
        "responses": len(responses),
        "messages": messages,
    }


# The template's rules: the invitation as the window opens, reminders 3 and 6 days later, a last
# call 2 days before it closes (recovery.services.study_create_from_template).
REMINDER_DAYS = (0, 3, 6)
LAST_CALL_DAYS = 2


def _messages_already_sent(assignment: Assignment, now: datetime) -> list[datetime]:
    """The times of the messages a survey that is over got before it was completed (or, if
    missed, before it closed), as the template's rules would have sent them."""
    if assignment.status not in (Assignment.Status.COMPLETED, Assignment.Status.MISSED):
        return []
    if assignment.wave.recurrence_days:
        times = [assignment.opens_at]
    else:
        times = [assignment.opens_at + timedelta(days=d) for d in REMINDER_DAYS]
        times.append(assignment.closes_at - timedelta(days=LAST_CALL_DAYS))
    until = min(assignment.completed_at or assignment.closes_at, now)
    return sorted(at for at in times if at < until)


@transaction.atomic
def synthetic_study_delete(*, study: Study) -> None:
    """Remove a synthetic study and everything in it (a demo rebuild, a test's teardown).
    Research data is protected from cascades on purpose, so it is removed explicitly; a real
    study is never removed this way."""
    if not study.is_synthetic:
        raise ValueError(f"{study.slug} is not a synthetic study")
    Response.objects.filter(assignment__participant__study=study).delete()
    Consent.objects.filter(participant__study=study).delete()
    ParticipantStatusChange.objects.filter(participant__study=study).delete()
    Assignment.objects.filter(participant__study=study).delete()
    Participant.objects.filter(study=study).delete()
    study.delete()


def demo_study_seed(
    *,
    slug: str,
    participants: int,
    seed: int,
    effect: float,
    as_of: date | None = None,
    name: str | None = None,
) -> tuple[Study, dict]:
    """Create a study from the template and seed it with a synthetic cohort."""
    from recovery.synthetic import SITES, generate_cohort

    as_of = as_of or timezone.localdate()
    cohort = generate_cohort(participants=participants, seed=seed, effect=effect, as_of=as_of)
    # Statuses are those at the start of ``as_of`` (UTC), never the wall clock, so the same
    # seed and date always store the same rows; the periodic refresh moves them on from there.
    as_of_start = datetime.combine(as_of, time(0), tzinfo=UTC)
    with transaction.atomic():
        study = study_create_from_template(
            slug=slug,
            name=name or "Mutual-help involvement and recovery (demo)",
            sites=SITES,
            description="Synthetic demo cohort with a planted effect of high involvement.",
        )
        counts = synthetic_cohort_seed(study=study, cohort=cohort, now=as_of_start)
    return study, counts
