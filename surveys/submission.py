"""Saving drafts and submitting responses: validated as a whole, stored atomically, idempotent.

A submit carries a client-generated UUID. Replaying it (a phone that lost the reply, an offline
queue sending again) returns the response already stored; it never makes a second one. The
assignment row is locked for the duration, so two simultaneous submits of one assignment give
exactly one response.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from surveys.instruments import InstrumentNotReady, version_with_items
from surveys.models import Assignment, Instrument, Participant, Response, WaveInstrument
from surveys.validation import answers_clean


class SubmissionConflict(Exception):
    """The request is well formed but cannot be accepted now (answered with 409)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SubmitResult:
    response: Response
    replayed: bool


OPEN_STATUSES = (
    Assignment.Status.SCHEDULED,  # the periodic refresh may not have opened it yet
    Assignment.Status.OPEN,
    Assignment.Status.IN_PROGRESS,
)


def _locked_assignment(assignment_id: int) -> Assignment:
    # of=("self",): lock the assignment row only. Without it PostgreSQL also locks the joined
    # participant and wave rows, and every submit of a wave waits for the one before.
    return (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("participant", "wave")
        .get(pk=assignment_id)
    )


def _check_accepting(assignment: Assignment, now: datetime) -> None:
    if assignment.participant.status != Participant.Status.ACTIVE:
        raise SubmissionConflict("not_active", "This participant is no longer taking surveys.")
    if assignment.status == Assignment.Status.CANCELLED:
        raise SubmissionConflict("cancelled", "This survey was cancelled.")
    if now < assignment.opens_at:
        raise SubmissionConflict(
            "not_open_yet", f"This survey opens on {_local_day(assignment, assignment.opens_at)}."
        )
    if now >= assignment.closes_at or assignment.status == Assignment.Status.MISSED:
        raise SubmissionConflict(
            "window_closed",
            f"This survey closed on {_local_day(assignment, assignment.closes_at)}.",
        )


def _local_day(assignment: Assignment, moment: datetime) -> str:
    opens, due, closes = assignment.local_window()
    local = {assignment.opens_at: opens, assignment.due_at: due, assignment.closes_at: closes}
    return f"{local.get(moment, moment):%Y-%m-%d %H:%M} ({assignment.participant.timezone})"


def _wave_instrument_ids(assignment: Assignment) -> set[int]:
    return set(
        WaveInstrument.objects.filter(wave_id=assignment.wave_id).values_list(
            "instrument_id", flat=True
        )
    )


def _responses_involved(assignment: Assignment, client_id: uuid.UUID) -> list[Response]:
    """In one query: every response of this assignment and any response with this id."""
    return list(Response.objects.filter(Q(assignment_id=assignment.pk) | Q(client_id=client_id)))


@transaction.atomic
def response_draft_save(
    *,
    assignment: Assignment,
    instrument: Instrument,
    answers: dict,
    client_id: uuid.UUID,
    now: datetime | None = None,
) -> Response:
    """Save the answers so far, replacing the draft's answers. Every answer given must be valid
    (one wrong answer rejects the whole draft, per question); nothing is required yet."""
    now = now or timezone.now()
    assignment = _locked_assignment(assignment.pk)
    if instrument.pk not in _wave_instrument_ids(assignment):
        raise SubmissionConflict("wrong_instrument", "This survey is not part of that wave.")
    _check_accepting(assignment, now)
    involved = _responses_involved(assignment, client_id)
    response = next(
        (
            r
            for r in involved
            if r.assignment_id == assignment.pk and r.instrument_id == instrument.pk
        ),
        None,
    )
    if response is not None and response.status == Response.Status.SUBMITTED:
        raise SubmissionConflict("already_submitted", "This survey has already been sent.")
    if any(r.client_id == client_id and r is not response for r in involved):
        raise SubmissionConflict("client_id_used", "This id belongs to another response.")
    try:
        version, items = version_with_items(
            instrument=instrument, version_id=response.instrument_version_id if response else None
        )
    except InstrumentNotReady as exc:
        raise SubmissionConflict("instrument_not_ready", str(exc)) from exc
    cleaned = answers_clean(items=items, answers=answers, final=False)
    if response is None:
        response = Response.objects.create(
            assignment=assignment,
            instrument=instrument,
            instrument_version=version,
            client_id=client_id,
            answers=cleaned,
            started_at=now,
        )
    else:
        response.answers = cleaned
        response.instrument_version = version
        response.save(update_fields=["answers", "updated_at"])
    if assignment.status in (Assignment.Status.SCHEDULED, Assignment.Status.OPEN):
        assignment.status = Assignment.Status.IN_PROGRESS
        assignment.status_changed_at = now
        assignment.save(update_fields=["status", "status_changed_at"])
    return response


@transaction.atomic
def response_submit(
    *,
    assignment: Assignment,
    instrument: Instrument,
    answers: dict,
    client_id: uuid.UUID,
    now: datetime | None = None,
) -> SubmitResult:
    """Validate and store the final answers; a replay of ``client_id`` returns the original."""
    now = now or timezone.now()
    assignment = _locked_assignment(assignment.pk)
    # Read under the lock: a concurrent submit with the same id has finished by now.
    involved = _responses_involved(assignment, client_id)
    previous = next((r for r in involved if r.client_id == client_id), None)
    if previous is not None and previous.status == Response.Status.SUBMITTED:
        if previous.assignment_id != assignment.pk or previous.instrument_id != instrument.pk:
            raise SubmissionConflict("client_id_used", "This id belongs to another response.")
        return SubmitResult(previous, replayed=True)
    wave_instruments = _wave_instrument_ids(assignment)
    if instrument.pk not in wave_instruments:
        raise SubmissionConflict("wrong_instrument", "This survey is not part of that wave.")
    mine = [r for r in involved if r.assignment_id == assignment.pk]
    response = next((r for r in mine if r.instrument_id == instrument.pk), None)
    if response is not None and response.status == Response.Status.SUBMITTED:
        raise SubmissionConflict("already_submitted", "This survey has already been sent.")
    _check_accepting(assignment, now)
    if previous is not None and previous is not response:
        raise SubmissionConflict("client_id_used", "This id belongs to another response.")
    try:
        version, items = version_with_items(
            instrument=instrument, version_id=response.instrument_version_id if response else None
        )
    except InstrumentNotReady as exc:
        raise SubmissionConflict("instrument_not_ready", str(exc)) from exc
    cleaned = answers_clean(items=items, answers=answers, final=True)
    if response is None:
        response = Response(assignment=assignment, instrument=instrument, started_at=now)
    response.instrument_version = version
    response.client_id = client_id
    response.answers = cleaned
    response.status = Response.Status.SUBMITTED
    response.submitted_at = now
    try:
        with transaction.atomic():
            response.save()
    except IntegrityError as exc:
        # The same client id submitted at this instant for another assignment (its row lock
        # is not ours): the unique index decides, and the loser gets a clear 409.
        raise SubmissionConflict("client_id_used", "This id belongs to another response.") from exc
    done = {r.instrument_id for r in mine if r.status == Response.Status.SUBMITTED}
    complete = wave_instruments <= done | {instrument.pk}
    assignment.status = Assignment.Status.COMPLETED if complete else Assignment.Status.IN_PROGRESS
    assignment.status_changed_at = now
    assignment.completed_at = now if complete else None
    assignment.save(update_fields=["status", "status_changed_at", "completed_at"])
    return SubmitResult(response, replayed=False)
