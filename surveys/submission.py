"""Saving drafts and submitting responses: validated as a whole, stored atomically, idempotent.

A submit carries a client-generated UUID. Replaying it (a phone that lost the reply, an offline
queue sending again) returns the response already stored; it never makes a second one. The
assignment row is locked for the duration, so two simultaneous submits of one assignment give
exactly one response.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from surveys import prepared
from surveys.audit import answers_change_event, private_variables
from surveys.inline_transaction import Inline, atomic_inline
from surveys.instruments import (
    CURRENT_VERSION_COLUMNS_SQL,
    InstrumentNotReady,
    version_items_stamped,
    version_with_items,
)
from surveys.models import Assignment, AuditEvent, Instrument, Participant, Response
from surveys.safety import safety_alerts_raise, triggered
from surveys.validation import answers_clean, uses_since_last_survey


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
    # A replay whose answers differ from those stored: nothing changed but the response's
    # changes_refused_at; the API answers 409 sent_before_changes (sent_before_changes()).
    changes_refused: bool = False


def sent_before_changes() -> SubmissionConflict:
    return SubmissionConflict(
        "sent_before_changes",
        _(
            "This survey had already been sent before your last changes. The answers sent "
            "first are kept; the changes made after them were not saved."
        ),
    )


# A draft's position when the participant was on the review screen (survey.js): no variable
# can be named so (surveys/validators.py), and the survey resumes at the review.
REVIEW_POSITION = "#review"

OPEN_STATUSES = (
    Assignment.Status.SCHEDULED,  # the periodic refresh may not have opened it yet
    Assignment.Status.OPEN,
    Assignment.Status.IN_PROGRESS,
)


# --- Data access ----------------------------------------------------------------------------
# Submitting is the busiest write of the app, so its statements are written out: the ORM's
# per-query cost was measured to dominate a submission (benchmarks/README.md). Reads go through
# ``Model.objects.raw`` (which converts values the way each field stores them on SQLite or
# PostgreSQL) and writes prepare values with each field's ``get_db_prep_save``.


def _prep(model, field: str, value):
    return model._meta.get_field(field).get_db_prep_save(value, connection)


_ASSIGNMENT_COLUMNS = (
    "id",
    "participant_id",
    "wave_id",
    "occurrence",
    "opens_at",
    "due_at",
    "closes_at",
    "status",
    "status_changed_at",
    "completed_at",
)


def _aware(value: datetime | None) -> datetime | None:
    """A datetime read with a plain cursor: aware already on PostgreSQL; naive UTC on SQLite."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class EntryGate(Protocol):
    """Whether a request may enter answers for an assignment, checked in the statement that
    locks it (one statement fewer on the busiest write; benchmarks/README.md).

    ``columns``: SQL starting with ", ", over the assignment ``a``, its participant ``p`` and
    ``ins``, the instrument of the participant's study named by the slug asked for (NULL if
    there is none), with ``params``; ``where``: conditions (SQL starting with " AND ") without
    which the assignment is not even locked (no row), with ``where_params``; ``name`` names
    the prepared statement. ``check`` gets the
    columns' values (None: no such assignment), whether the slug names an instrument of the
    study and whether that is one of the assignment's wave, and raises, which ends the
    transaction with nothing written, if the request may not go on."""

    name: str
    columns: str
    params: tuple
    where: str
    where_params: tuple

    def check(
        self, values: tuple | None, *, instrument_found: bool, instrument_in_wave: bool
    ) -> None: ...


def _locked_assignment(
    assignment_id: int,
    *,
    name: str,
    extra_columns: str = "",
    extra_params: tuple = (),
    joins: str = "",
    join_params: tuple = (),
    where: str = "",
    where_params: tuple = (),
    with_answers: bool = False,
) -> tuple[Assignment | None, tuple, list[tuple]]:
    """The assignment, locked (its row only) for the rest of the transaction, with its
    participant's status and time zone; the values of ``extra_columns`` (SQL starting with
    ", ") over ``joins`` (``ins``: the instrument asked for, NULL if none); and the rows of
    every response the assignment has: (id, client id, instrument id, status, version id,
    and, if ``with_answers``, the answers stored for ``ins``, else NULL). (None, (), []) if
    there is no such assignment (or ``where``, more conditions, does not hold: then nothing
    is locked).

    On PostgreSQL one round trip of two statements, the lock and then the read: under READ
    COMMITTED a statement's rows come from when it started, so a ``FOR UPDATE`` that had to
    wait would return rows joined from before the wait, and miss a response committed by
    the submit it waited for. Each statement of a query string starts afresh, after the one
    before: the read sees everything committed before the lock was had. The read locks the
    row too (at no cost: it is held already), so that should ``where`` come true between the
    two, what is read is still locked. A plain cursor: the raw queryset's per-row machinery
    cost more than the statement itself on this, the busiest write (benchmarks/README.md)."""
    columns = ", ".join(f"a.{column}" for column in _ASSIGNMENT_COLUMNS)
    answers = "CASE WHEN r.instrument_id = ins.id THEN r.answers END" if with_answers else "NULL"
    source = "FROM surveys_assignment a JOIN surveys_participant p ON p.id = a.participant_id"
    postgresql = connection.vendor == "postgresql"
    read_sql = (
        f"SELECT {columns}, p.status, p.timezone{extra_columns}, r.id, r.client_id, "
        f"r.instrument_id, r.status, r.instrument_version_id, {answers} "
        f"{source}{joins} LEFT JOIN surveys_response r ON r.assignment_id = a.id "
        f"WHERE a.id = %s{where} ORDER BY r.id{' FOR UPDATE OF a' if postgresql else ''}"
    )
    read_params = [*extra_params, *join_params, assignment_id, *where_params]
    with connection.cursor() as cursor:
        if postgresql:
            from django.db.backends.postgresql.psycopg_any import is_psycopg3

            lock_params = [assignment_id, *where_params]
            lock = prepared.statement(
                cursor,
                f"{name}_lock",
                f"SELECT 1 {source} WHERE a.id = %s{where} FOR UPDATE OF a",
                len(lock_params),
            )
            read = prepared.statement(
                cursor,
                f"{name}_read{'_answers' if with_answers else ''}",
                read_sql,
                len(read_params),
            )
            if is_psycopg3:  # its cursor stays on a query string's first result
                cursor.execute(lock, lock_params)
                cursor.execute(read, read_params)
            else:  # psycopg2 hands back the last statement's rows
                cursor.execute(f"{lock}; {read}", [*lock_params, *read_params])
        else:  # SQLite: the transaction's first write locks the database
            cursor.execute(read_sql, read_params)
        rows = cursor.fetchall()
    if not rows:
        return None, (), []
    n = len(_ASSIGNMENT_COLUMNS)
    row = rows[0]
    values = list(row[:n])
    for i, column in enumerate(_ASSIGNMENT_COLUMNS):
        if column.endswith("_at"):
            values[i] = _aware(values[i])
    assignment = Assignment.from_db(connection.alias, _ASSIGNMENT_COLUMNS, values)
    assignment.participant = Participant(
        pk=assignment.participant_id, status=row[n], timezone=row[n + 1]
    )
    responses = [r[-6:] for r in rows if r[-6] is not None]
    return assignment, row[n + 2 : -6], responses


@dataclass
class _SubmitContext:
    assignment: Assignment
    # The instrument answered: the caller's, or the one its slug names in the study (gated
    # requests); None only when the slug names none.
    instrument: Instrument | None
    wave_instrument_count: int
    instrument_in_wave: bool
    # The assignment's responses: (id, client_id, instrument_id, status, version_id).
    responses: list[tuple[int, uuid.UUID, int, str, int]]
    # The instrument's current version: (id, number, item count, highest item id).
    current_version: tuple[int | None, int | None, int, int | None]
    # The instrument's stored answers (draft or sent) before this change, read under the lock:
    # only when the change is audited (staff entering answers), else None.
    answers_before: dict | None = None
    # An id for the response, drawn from its sequence when one is to be inserted (asked for
    # with ``new_id``, on PostgreSQL; else None).
    new_id: int | None = None


# The instrument the slug names in the participant's study, its wave membership and current
# version, read with the locked assignment.
_INSTRUMENT_COLUMNS = (
    ", ins.id, ins.name, ins.study_id, "
    "(SELECT COUNT(*) FROM surveys_waveinstrument wi WHERE wi.wave_id = a.wave_id) "
    "AS wave_instrument_count, "
    "(SELECT COUNT(*) FROM surveys_waveinstrument wi WHERE wi.wave_id = a.wave_id "
    f"AND wi.instrument_id = ins.id) AS in_wave, {CURRENT_VERSION_COLUMNS_SQL}"
)
# The id of the response to insert, drawn when the instrument has none in this assignment:
# for a store that commits in the same query string and so returns no rows (inline_transaction).
_NEW_ID_COLUMN = (
    ", (SELECT nextval(pg_get_serial_sequence('surveys_response', 'id')) WHERE NOT EXISTS "
    "(SELECT 1 FROM surveys_response x WHERE x.assignment_id = a.id "
    "AND x.instrument_id = ins.id)) AS new_id"
)
_INSTRUMENT_JOIN = (
    " LEFT JOIN surveys_instrument ins ON ins.study_id = p.study_id AND ins.slug = %s"
)


def _submit_context(
    assignment_id: int,
    instrument: Instrument,
    *,
    with_answers: bool = False,
    gate: EntryGate | None = None,
    new_id: bool = False,
) -> _SubmitContext:
    """The assignment locked (its row only) with its participant's status and time zone, how
    many instruments its wave has and whether ``instrument`` (by its slug, in the
    participant's study) is one of them, ``gate``'s check, and every response the assignment
    has (with the instrument's answers, if ``with_answers``: what an audited change was made
    to), read after the lock was had (``_locked_assignment``). ``instrument`` may be known by
    its slug only (no pk) when ``gate`` is given. Raises Assignment.DoesNotExist if there is
    no such assignment (ungated).
    """
    new_id_wanted = new_id and connection.vendor == "postgresql"
    name = f"surveys_submit_{gate.name}" if gate else "surveys_submit"
    assignment, extra, rows = _locked_assignment(
        assignment_id,
        name=f"{name}_new_id" if new_id_wanted else name,
        extra_columns=(
            _INSTRUMENT_COLUMNS
            + (gate.columns if gate else "")
            + (_NEW_ID_COLUMN if new_id_wanted else "")
        ),
        extra_params=gate.params if gate else (),
        joins=_INSTRUMENT_JOIN,
        join_params=(instrument.slug,),
        where=gate.where if gate else "",
        where_params=gate.where_params if gate else (),
        with_answers=with_answers,
    )
    ins_id, ins_name, ins_study, wave_instrument_count, in_wave, *rest = extra or (None,) * 9
    new_id = rest.pop() if new_id_wanted and extra else None
    current, gated = tuple(rest[:4]), tuple(rest[4:])
    # The caller's instrument must be the one its slug names in this study (else it is
    # another study's, not in this wave).
    in_wave = bool(in_wave) and (instrument.pk is None or instrument.pk == ins_id)
    if gate is not None:
        gate.check(
            gated if assignment is not None else None,
            instrument_found=ins_id is not None,
            instrument_in_wave=in_wave,
        )
    if assignment is None:
        raise Assignment.DoesNotExist
    if instrument.pk is None and ins_id is not None:
        instrument = Instrument(pk=ins_id, name=ins_name, study_id=ins_study, slug=instrument.slug)
    elif instrument.pk is None:
        instrument = None
    responses = [
        (rid, uuid.UUID(str(cid)), iid, status, vid) for rid, cid, iid, status, vid, _ in rows
    ]
    before = None
    if with_answers:
        # The answers come only for the instrument asked for (the widest column; the phone's
        # path, the busiest, never reads them).
        stored = next((row[5] for row in rows if instrument and row[2] == instrument.pk), None)
        field = Response._meta.get_field("answers")
        before = dict(field.from_db_value(stored, None, connection) or {}) if stored else {}
    return _SubmitContext(
        assignment,
        instrument,
        int(wave_instrument_count),
        in_wave,
        responses,
        current,
        before,
        new_id,
    )


def _status_update(status: str = "%s") -> str:
    """The assignment's status change; ``status``: the SQL of the new status (a parameter)."""
    return (
        f"UPDATE surveys_assignment SET status = {status}, status_changed_at = %s, "
        "completed_at = %s WHERE id = %s"
    )


_STATUS_UPDATE = _status_update()


def _status_values(assignment: Assignment) -> list:
    return [
        assignment.status,
        _prep(Assignment, "status_changed_at", assignment.status_changed_at),
        _prep(Assignment, "completed_at", assignment.completed_at),
        assignment.pk,
    ]


def _assignment_status_save(assignment: Assignment) -> None:
    with connection.cursor() as cursor:
        prepared.execute(
            cursor, "surveys_assignment_status", _STATUS_UPDATE, _status_values(assignment)
        )


def _audit_insert_sql(event: AuditEvent) -> tuple[str, list]:
    """A CTE inserting ``event`` for the response the CTE ``stored`` returns (its id as the
    event's ``object_id``), and its parameters, each cast to its column's type."""
    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    columns, selected, values = [], [], []
    for field in fields:
        columns.append(field.column)
        # Text cast without its length, which would cut a value short: the column's own
        # length is checked on insert, as the ORM's insert would be.
        cast = "varchar" if isinstance(field, CharField) else field.db_type(connection)
        if field.name == "object_id":
            selected.append(f"CAST(id AS {cast})")
        else:
            selected.append(f"CAST(%s AS {cast})")
            values.append(field.get_db_prep_save(getattr(event, field.attname), connection))
    sql = (
        f"audited AS (INSERT INTO {AuditEvent._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM stored)"
    )
    return sql, values


def _response_store(
    response: Response,
    now: datetime,
    *,
    insert: bool,
    assignment: Assignment | None = None,
    event: AuditEvent | None = None,
    inline: Inline | None = None,
) -> None:
    """Insert a submitted response, or turn its draft into it (keeping when it was started);
    then save ``assignment``'s status, if given, and write the audit ``event``, if given, for
    the response. Raises IntegrityError if the client id is another response's (or the
    response to update is no longer a draft): nothing of this call is written, and the
    caller's transaction must be given up. ``inline``: the caller's ``atomic_inline``
    transaction, committed by this statement (with ``assignment``, on PostgreSQL; to insert,
    ``response.pk`` must be set, as the statement returns nothing)."""
    response.updated_at = now
    columns = {
        "assignment_id": "assignment",
        "instrument_id": "instrument",
        "instrument_version_id": "instrument_version",
        "client_id": "client_id",
        "answers": "answers",
        "status": "status",
        "started_at": "started_at",
        "updated_at": "updated_at",
        "submitted_at": "submitted_at",
        "resume_at": "resume_at",
    }
    if inline is not None and insert and response.pk is None:
        raise ValueError("a response inserted by the statement that commits needs its id")
    if not insert:
        for kept in ("assignment_id", "instrument_id", "started_at"):
            columns.pop(kept)
    elif response.pk is not None:  # an id drawn beforehand (``_NEW_ID_COLUMN``)
        columns = {"id": "id", **columns}
    # The statement's shape, in its prepared name: what it writes and how it ends.
    shape = "insert_with_id" if "id" in columns else "insert" if insert else "update"
    values = [
        _prep(
            Response,
            field,
            getattr(
                response, column if column.endswith("_id") and column != "client_id" else field
            ),
        )
        for column, field in columns.items()
    ]
    if insert:
        # ON CONFLICT instead of a savepoint around the insert: two round trips fewer on the
        # busiest write. Only the client id can conflict here, because the assignment is
        # locked (one response per assignment and instrument).
        sql = (
            f"INSERT INTO surveys_response ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            "ON CONFLICT (client_id) DO NOTHING RETURNING id"
        )
        params = values
    else:
        # The draft may have been saved under another client id, which may be another
        # response's: then nothing is updated (or, should that one be inserted at this very
        # instant, the unique index refuses). Either way the caller's transaction is given up,
        # so no savepoint is needed. Only a draft is updated: a sent response is never written
        # over, whatever the caller read (it read under the lock, so this is a second guard).
        assignments = ", ".join(f"{column} = %s" for column in columns)
        sql = (
            f"UPDATE surveys_response SET {assignments} WHERE id = %s AND status = %s "
            "AND NOT EXISTS "
            "(SELECT 1 FROM surveys_response o WHERE o.client_id = %s AND o.id <> %s) "
            "RETURNING id"
        )
        client_id = _prep(Response, "client_id", response.client_id)
        params = [*values, response.pk, Response.Status.DRAFT, client_id, response.pk]
    with connection.cursor() as cursor:
        if assignment is not None and connection.vendor == "postgresql":
            # One round trip for every write: the status changes, and the audit event is
            # written, only if the response was stored.
            audited, audit_values = _audit_insert_sql(event) if event else ("", [])
            if inline is None:
                changed = f"{_STATUS_UPDATE} AND EXISTS (SELECT 1 FROM stored)"
            else:
                # Committed in the same query string, the statement's rows are not seen: a
                # response not stored must fail it, so that COMMIT does not run. The status
                # is the stored response's, and none (NOT NULL refuses it) without one.
                changed = _status_update("(SELECT CAST(%s AS varchar) FROM stored)")
            name = f"surveys_response_{shape}{'_audited' if event else ''}_and_status"
            name += "_inline" if inline else ""
            values = [*params, *_status_values(assignment), *audit_values]
            statement = prepared.statement(
                cursor,
                name,
                f"WITH stored AS ({sql}), changed AS ({changed})"
                f"{', ' + audited if event else ''} SELECT id FROM stored",
                len(values),
            )
            if inline is not None:
                cursor.execute(inline.commit_after(statement), values)
                return
            cursor.execute(statement, values)
            assignment = event = None
        else:
            prepared.execute(cursor, f"surveys_response_{shape}", sql, params)
        row = cursor.fetchone()
    if row is None:
        raise IntegrityError("client_id is another response's, or the draft was sent")
    response.pk = row[0]
    if assignment is not None:
        _assignment_status_save(assignment)
    if event is not None:
        event.object_id = str(response.pk)
        event.save()


def _store_refused(exc: IntegrityError) -> bool:
    """Whether ``_response_store``'s IntegrityError is its refusal of the response (the client
    id is another's: its own error, the unique index's, or the NULL status of a store that
    commits), not another constraint's failure."""
    cause = exc.__cause__
    if cause is None or connection.vendor != "postgresql":
        return True
    # SQLSTATE (psycopg2's pgcode, psycopg 3's sqlstate): unique_violation, not_null_violation.
    return (getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)) in (
        "23505",
        "23502",
    )


def _check_accepting(assignment: Assignment, now: datetime) -> None:
    if assignment.participant.status != Participant.Status.ACTIVE:
        raise SubmissionConflict("not_active", _("This participant is no longer taking surveys."))
    if assignment.status == Assignment.Status.CANCELLED:
        raise SubmissionConflict("cancelled", _("This survey was cancelled."))
    if now < assignment.opens_at:
        raise SubmissionConflict(
            "not_open_yet",
            _("This survey is not open yet: you can answer it from %(day)s.")
            % {"day": date_format(assignment.first_day(), "j F Y")},
        )
    if now >= assignment.closes_at or assignment.status == Assignment.Status.MISSED:
        # The participant's last day, not the midnight after it that closes the window.
        raise SubmissionConflict(
            "window_closed",
            _("This survey has closed: the last day to answer it was %(day)s.")
            % {"day": date_format(assignment.last_day(), "j F Y")},
        )


def _version_and_items(instrument: Instrument, existing, context: _SubmitContext):
    """The version a response is answered on: its draft's, or else the instrument's current
    one (read with the locked assignment)."""
    try:
        if existing:  # a draft keeps the version it was started on
            return version_with_items(instrument=instrument, version_id=existing[4])
        cv_id, cv_number, cv_items, cv_top = context.current_version
        return version_items_stamped(
            instrument=instrument,
            version_id=cv_id,
            number=cv_number,
            item_count=cv_items,
            top_item_id=cv_top,
        )
    except InstrumentNotReady as exc:
        raise SubmissionConflict("instrument_not_ready", str(exc)) from exc


CLIENT_ID_USED = ("client_id_used", "This id belongs to another response.")


def _same_answers(replay: Response, answers: dict, instrument: Instrument, row, context) -> bool:
    """Whether a replay carries the answers the response was stored with (cleaned the same
    way, so ``"3"`` and ``3`` agree, and against the participant's date when they were first
    sent, so a "today" date resent after midnight is still the same answer): a phone that lost
    the first reply and sends again. A phone whose participant changed an answer in between
    must hear that the change was not saved, not be told it was."""
    if answers == replay.answers:
        return True
    _version, items = _version_and_items(instrument, row, context)
    try:
        cleaned = answers_clean(
            items=items,
            answers=answers,
            final=True,
            today=_participant_today(context.assignment, replay.submitted_at),
            since_last_survey=_since_last(
                context.assignment, instrument, items, replay.submitted_at
            ),
        )
    except ValidationError:
        return False
    return cleaned == replay.answers


def _participant_today(assignment: Assignment, now: datetime):
    """The participant's date at ``now``, on their own clock (an answer "on or before today"
    is checked against it, not the server's date). ``assignment`` is ``_submit_context``'s,
    whose participant carries the time zone (no query)."""
    return timezone.localtime(now, ZoneInfo(assignment.participant.timezone)).date()


_SINCE_LAST_SQL = (
    "SELECT (SELECT MAX(r.submitted_at) FROM surveys_response r "
    "JOIN surveys_assignment a ON a.id = r.assignment_id "
    "WHERE a.participant_id = %s AND r.instrument_id = %s AND r.status = 'submitted' "
    "AND r.submitted_at < %s AND r.assignment_id <> %s), p.enrolled_on "
    "FROM surveys_participant p WHERE p.id = %s"
)


def days_since_last_survey(assignment: Assignment, instrument_id: int, now: datetime) -> int:
    """How many days "since your last survey" can cover at ``now``, on the participant's
    clock: from the day they last sent this instrument (``instrument_id``, for another
    assignment, before ``now``; the enrolment day before any) to today, both days counted. The
    limit of an answer such as the longest run of days of use (``validation.SINCE_LAST_SURVEY``).

    The same instrument, not any survey: the last time the question was asked. A weekly
    check-in sent yesterday must not cap a follow-up's run of use at two days (the participant
    reads "your last survey" as the last follow-up, and a relapse of two weeks must be
    reportable). One statement, prepared: it runs on the submit path."""
    tz = ZoneInfo(assignment.participant.timezone)
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            "surveys_since_last_survey",
            _SINCE_LAST_SQL,
            [
                assignment.participant_id,
                instrument_id,
                _prep(Response, "submitted_at", now),
                assignment.pk,
                assignment.participant_id,
            ],
        )
        last, enrolled_on = cursor.fetchone()
    if last is not None:
        if isinstance(last, str):  # SQLite hands back text
            last = datetime.fromisoformat(last)
        if timezone.is_naive(last):
            last = last.replace(tzinfo=UTC)
        start = timezone.localtime(last, tz).date()
    else:
        start = enrolled_on if isinstance(enrolled_on, date) else date.fromisoformat(enrolled_on)
    return days_covered(start, timezone.localtime(now, tz).date())


def days_covered(start: date, today: date) -> int:
    """The days from ``start`` to ``today``, both counted (at least 1): how many days in a row
    "since your last survey" can hold."""
    return max((today - start).days, 0) + 1


def _since_last(assignment: Assignment, instrument: Instrument, items: list, now: datetime):
    """``days_since_last_survey`` as ``answers_clean`` asks for it: looked up only for a
    version whose items use it, and only when an answer is checked against it."""
    if not uses_since_last_survey(items):
        return None
    return lambda: days_since_last_survey(assignment, instrument.pk, now)


@atomic_inline()  # its BEGIN goes with the lock (one round trip fewer on every screen)
def response_draft_save(
    *,
    assignment: Assignment,
    instrument: Instrument,
    answers: dict,
    client_id: uuid.UUID,
    position: str = "",
    now: datetime | None = None,
    staff_request: HttpRequest | None = None,
    gate: EntryGate | None = None,
) -> Response:
    """Save the answers so far, replacing the draft's answers. Every answer given must be valid
    (one wrong answer rejects the whole draft, per question); nothing is required yet.
    ``position`` (a question's variable, or ``REVIEW_POSITION``) is where the participant is,
    to resume there. ``staff_request``: staff entering the answers, whose change is audited in
    the same transaction (see ``answers_change_event``). ``gate``: the request's permission,
    checked with the lock (``EntryGate``), when ``instrument`` is known by its slug only."""
    now = now or timezone.now()
    context = _submit_context(
        assignment.pk, instrument, with_answers=staff_request is not None, gate=gate
    )
    assignment, instrument = context.assignment, context.instrument
    if not context.instrument_in_wave:
        raise SubmissionConflict("wrong_instrument", _("This survey is not part of that wave."))
    _check_accepting(assignment, now)
    existing = next((r for r in context.responses if r[2] == instrument.pk), None)
    if existing is not None and existing[3] == Response.Status.SUBMITTED:
        raise SubmissionConflict("already_submitted", _("This survey has already been sent."))
    if any(r[1] == client_id and r is not existing for r in context.responses):
        raise SubmissionConflict(*CLIENT_ID_USED)
    version, items = _version_and_items(instrument, existing, context)
    cleaned = answers_clean(
        items=items,
        answers=answers,
        final=False,
        today=_participant_today(assignment, now),
        since_last_survey=_since_last(assignment, instrument, items, now),
    )
    safety_alerts_raise(assignment=assignment, items=items, answers=cleaned, now=now)
    if position not in ("", REVIEW_POSITION) and position not in {i.variable for i in items}:
        position = ""  # a stale position (another version) resumes at the start
    if existing is None:
        try:
            with transaction.atomic():
                response = Response.objects.create(
                    assignment=assignment,
                    instrument=instrument,
                    instrument_version=version,
                    client_id=client_id,
                    answers=cleaned,
                    started_at=now,
                    resume_at=position,
                )
        except IntegrityError as exc:  # the id is another assignment's response's
            raise SubmissionConflict(*CLIENT_ID_USED) from exc
    else:
        Response.objects.filter(pk=existing[0]).update(
            answers=cleaned, updated_at=now, resume_at=position
        )
        response = Response.objects.select_related("instrument", "instrument_version").get(
            pk=existing[0]
        )
    if assignment.status in (Assignment.Status.SCHEDULED, Assignment.Status.OPEN):
        assignment.status = Assignment.Status.IN_PROGRESS
        assignment.status_changed_at = now
        _assignment_status_save(assignment)
    event = _staff_change_event(staff_request, context, response, submitted=False)
    if event is not None:
        event.save()
    return response


def _staff_change_event(
    staff_request: HttpRequest | None, context: _SubmitContext, response, *, submitted
) -> AuditEvent | None:
    """The audit event, not yet written, of answers staff entered (none for the participant's
    own: the response is the record), from the answers read under the lock; private variables
    from the instrument's every version, cached under the current version's stamp read with
    the lock."""
    if staff_request is None:
        return None
    return answers_change_event(
        request=staff_request,
        response=response,
        before=context.answers_before or {},
        submitted=submitted,
        private=private_variables(
            instrument_id=response.instrument_id, stamp=context.current_version
        ),
        participant_id=context.assignment.participant_id,
        study_id=response.instrument.study_id,
    )


def response_submit(
    *,
    assignment: Assignment,
    instrument: Instrument,
    answers: dict,
    client_id: uuid.UUID,
    now: datetime | None = None,
    staff_request: HttpRequest | None = None,
    gate: EntryGate | None = None,
) -> SubmitResult:
    """Validate and store the final answers; a replay of ``client_id`` returns the original.

    A client id already used by another assignment's response is refused by the unique index
    (409). Everything is read in one locked statement, so a concurrent submit of the same
    assignment has finished before this one looks. ``staff_request``: staff entering the
    answers, whose change is audited in the same transaction (a replay changes nothing and
    is not). ``gate``: the request's permission, checked with the lock (``EntryGate``), when
    ``instrument`` is known by its slug only.

    One transaction; on PostgreSQL its ``BEGIN`` goes with the lock and its ``COMMIT`` with
    the store (``atomic_inline``): three round trips in all with the session's, where a
    plain ``atomic`` took five (benchmarks/README.md).
    """
    with atomic_inline() as inline:
        return _submit(
            inline=inline,
            assignment=assignment,
            instrument=instrument,
            answers=answers,
            client_id=client_id,
            now=now or timezone.now(),
            staff_request=staff_request,
            gate=gate,
        )


def _submit(
    *,
    inline: Inline | None,
    assignment: Assignment,
    instrument: Instrument,
    answers: dict,
    client_id: uuid.UUID,
    now: datetime,
    staff_request: HttpRequest | None,
    gate: EntryGate | None,
) -> SubmitResult:
    context = _submit_context(
        assignment.pk,
        instrument,
        with_answers=staff_request is not None,
        gate=gate,
        new_id=inline is not None,
    )
    assignment, instrument = context.assignment, context.instrument
    if instrument is None:  # the gate let through a slug that names no instrument
        raise SubmissionConflict("wrong_instrument", _("This survey is not part of that wave."))
    by_instrument = {r[2]: r for r in context.responses}
    same_id = next((r for r in context.responses if r[1] == client_id), None)
    if same_id is not None and same_id[3] == Response.Status.SUBMITTED:
        if same_id[2] != instrument.pk:
            raise SubmissionConflict(*CLIENT_ID_USED)
        replay = Response.objects.select_related("instrument", "instrument_version").get(
            pk=same_id[0]
        )
        if not _same_answers(replay, answers, instrument, same_id, context):
            # Kept on the response, so that whichever way the phone learns of it (the page,
            # its service worker, the survey opened again) the done page says so.
            Response.objects.filter(pk=replay.pk).update(changes_refused_at=now)
            replay.changes_refused_at = now
            return SubmitResult(replay, replayed=True, changes_refused=True)
        return SubmitResult(replay, replayed=True)
    if not context.instrument_in_wave:
        raise SubmissionConflict("wrong_instrument", _("This survey is not part of that wave."))
    existing = by_instrument.get(instrument.pk)
    if existing is not None and existing[3] == Response.Status.SUBMITTED:
        raise SubmissionConflict("already_submitted", _("This survey has already been sent."))
    _check_accepting(assignment, now)
    if same_id is not None and same_id is not existing:
        raise SubmissionConflict(*CLIENT_ID_USED)
    version, items = _version_and_items(instrument, existing, context)
    cleaned = answers_clean(
        items=items,
        answers=answers,
        final=True,
        today=_participant_today(assignment, now),
        since_last_survey=_since_last(assignment, instrument, items, now),
    )
    response = Response(
        pk=existing[0] if existing else context.new_id,
        assignment=assignment,
        instrument=instrument,
        instrument_version=version,
        client_id=client_id,
        answers=cleaned,
        status=Response.Status.SUBMITTED,
        started_at=now,
        submitted_at=now,
    )
    done = {r[2] for r in context.responses if r[3] == Response.Status.SUBMITTED}
    complete = len(done | {instrument.pk}) >= context.wave_instrument_count
    assignment.status = Assignment.Status.COMPLETED if complete else Assignment.Status.IN_PROGRESS
    assignment.status_changed_at = now
    assignment.completed_at = now if complete else None
    event = _staff_change_event(staff_request, context, response, submitted=True)
    # The store commits the transaction itself unless a safety alert is to be written after
    # it (rare; then the block's end commits).
    alerting = bool(triggered(items, cleaned))
    try:
        _response_store(
            response,
            now,
            insert=existing is None,
            assignment=assignment,
            event=event,
            inline=None if alerting else inline,
        )
    except IntegrityError as exc:
        if not _store_refused(exc):
            raise  # e.g. a deferred foreign key failing the COMMIT that went with the store
        # The id is another assignment's response's (possibly submitted at this very
        # instant, under another row lock): the unique index decides.
        raise SubmissionConflict(*CLIENT_ID_USED) from exc
    if alerting:
        safety_alerts_raise(assignment=assignment, items=items, answers=cleaned, now=now)
    return SubmitResult(response, replayed=False)
