import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from recovery.synthetic import generate_cohort
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import Assignment, Instrument, Participant, Response
from surveys.submission import (
    SubmissionConflict,
    days_since_last_survey,
    response_draft_save,
    response_submit,
)
from surveys.validation import SINCE_LAST_SURVEY, answers_clean

ENROLLED = date(2026, 1, 15)
IN_WINDOW = datetime(2026, 2, 16, 15, tzinfo=UTC)  # month 1 is due 14 Feb (New York)


@pytest.fixture(scope="module")
def followup_answers():
    """Realistic follow-up answers: one with meetings attended, one without."""
    cohort = generate_cohort(participants=60, seed=2, as_of=date(2026, 11, 24))
    answers = [a for (_, wave), a in cohort.answers.items() if wave == "m3"]
    attended = next(a for a in answers if a["attended_any"] == 1 and "mat_disclosed" in a)
    not_attended = next(a for a in answers if a["attended_any"] == 0)
    return attended, not_attended


@pytest.fixture
def month1(site_a, enrol):
    participant = enrol(site=site_a, enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC))
    return participant.assignments.select_related("wave").get(wave__slug="m1")


@pytest.fixture
def followup(study):
    return Instrument.objects.get(study=study, slug="followup")


def submit(assignment, instrument, answers, client_id=None, now=IN_WINDOW):
    try:
        return response_submit(
            assignment=assignment,
            instrument=instrument,
            answers=answers,
            client_id=client_id or uuid.uuid4(),
            now=now,
        )
    finally:
        assert_no_transaction_left_open()


def assert_no_transaction_left_open():
    """Whatever a save's outcome, it leaves no transaction open on the connection (outside
    the test's own)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        raw = connection.connection
        assert raw is None or raw.info.transaction_status == TRANSACTION_STATUS_IDLE


@pytest.mark.usefixtures("both_transactions")
def test_a_valid_submission_is_stored_and_completes_the_assignment(
    month1, followup, followup_answers
):
    attended, _ = followup_answers
    result = submit(month1, followup, attended)
    assert not result.replayed
    assert result.response.answers == attended
    assert result.response.instrument_version.number == 1
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.COMPLETED
    assert month1.completed_at == IN_WINDOW


@pytest.mark.usefixtures("both_transactions")
def test_a_replay_returns_the_original_and_stores_nothing_new(month1, followup, followup_answers):
    attended, _ = followup_answers
    client_id = uuid.uuid4()
    first = submit(month1, followup, attended, client_id)
    # The phone sends the same answers again (its first reply was lost); a number typed as
    # text is the same answer.
    resent = {k: str(v) if isinstance(v, int) else v for k, v in attended.items()}
    again = submit(month1, followup, resent, client_id, now=IN_WINDOW + timedelta(hours=2))
    assert again.replayed
    assert again.response.pk == first.response.pk
    assert again.response.answers == attended
    assert Response.objects.count() == 1


@pytest.mark.usefixtures("both_transactions")
def test_a_replay_with_changed_answers_keeps_the_first_and_marks_the_refusal(
    month1, followup, followup_answers
):
    attended, not_attended = followup_answers
    client_id = uuid.uuid4()
    first = submit(month1, followup, attended, client_id)
    assert not first.changes_refused and first.response.changes_refused_at is None
    changed = {**attended, "craving": (attended["craving"] + 1) % 11}
    later = IN_WINDOW + timedelta(hours=2)
    for answers in (changed, not_attended, {"craving": 99}):
        result = submit(month1, followup, answers, client_id, now=later)
        assert result.replayed and result.changes_refused
        assert result.response.pk == first.response.pk
    stored = Response.objects.get()
    assert stored.pk == first.response.pk and stored.answers == attended
    assert stored.submitted_at == IN_WINDOW
    # The refusal stays on the response: the done page says so however the phone gets there.
    assert stored.changes_refused_at == later


def test_a_today_date_resent_after_midnight_is_the_same_answer(study, month1):
    # A date question limited to 'today', answered with today's date at 23:50 in New York;
    # the reply is lost and the phone sends again at 00:10. The answer was valid when it was
    # sent, so it is the same answer, not a refused change.
    instrument = Instrument.objects.create(study=study, slug="date-check", name="Date check")
    instrument_items_set(
        instrument=instrument,
        items=[{"variable": "d", "kind": "date", "label": {"en": "D"}, "max_value": "today"}],
    )
    month1.wave.waveinstrument_set.create(instrument=instrument, position=2)
    sent = datetime(2026, 2, 17, 4, 50, tzinfo=UTC)  # 23:50 on 16 February in New York
    client_id = uuid.uuid4()
    submit(month1, instrument, {"d": "2026-02-16"}, client_id, now=sent)
    again = submit(
        month1, instrument, {"d": "2026-02-16"}, client_id, now=sent + timedelta(minutes=20)
    )
    assert again.replayed and not again.changes_refused
    assert Response.objects.get().changes_refused_at is None
    # Another date sent meanwhile is a change, and refused.
    moved = submit(month1, instrument, {"d": "2026-02-15"}, client_id, now=sent)
    assert moved.changes_refused


@pytest.mark.usefixtures("both_transactions")
def test_a_second_submission_with_another_id_is_a_conflict(month1, followup, followup_answers):
    attended, not_attended = followup_answers
    submit(month1, followup, attended)
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(month1, followup, not_attended)
    assert excinfo.value.code == "already_submitted"
    assert Response.objects.get().answers == attended


@pytest.mark.usefixtures("both_transactions")
def test_a_client_id_of_another_survey_is_refused(
    site_a, enrol, month1, followup, followup_answers
):
    attended, _ = followup_answers
    other = enrol(
        site=site_a, code="NYC-2", enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
    ).assignments.get(wave__slug="m1")
    client_id = uuid.uuid4()
    submit(month1, followup, attended, client_id)
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(other, followup, attended, client_id)
    assert excinfo.value.code == "client_id_used"


@pytest.fixture
def draft_and_a_taken_id(site_a, enrol, month1, followup, followup_answers):
    """Month 1's draft saved under its own client id, and a client id another participant's
    sent response has: (draft, own id, taken id)."""
    attended, _ = followup_answers
    other = enrol(
        site=site_a, code="NYC-2", enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
    ).assignments.get(wave__slug="m1")
    taken = uuid.uuid4()
    submit(other, followup, attended, taken)
    own = uuid.uuid4()
    draft = response_draft_save(
        assignment=month1,
        instrument=followup,
        answers={"craving": 2},
        client_id=own,
        now=IN_WINDOW,
    )
    return draft, own, taken


@pytest.mark.usefixtures("both_transactions")
def test_a_draft_sent_under_another_surveys_client_id_is_refused_and_kept(
    month1, followup, followup_answers, draft_and_a_taken_id
):
    """The draft (saved under one id) is sent under an id another survey's response has: 409,
    and the draft and the assignment are as they were; the same answers sent under the
    draft's own id then go through (the refused attempt left nothing behind)."""
    attended, _ = followup_answers
    _, own, taken = draft_and_a_taken_id
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(month1, followup, attended, taken)
    assert excinfo.value.code == "client_id_used"
    draft = Response.objects.get(assignment=month1)
    assert (draft.status, draft.client_id, draft.answers) == ("draft", own, {"craving": 2})
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.IN_PROGRESS
    sent = submit(month1, followup, attended, own)
    assert not sent.replayed and sent.response.pk == draft.pk
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.COMPLETED


def _sent_over(draft: Response, client_id, answers, assignment) -> tuple[Response, object]:
    """What a submit would store over ``draft``, with the assignment completed and a staff
    change's audit event (not yet written)."""
    from surveys.audit import audit_event_build

    response = Response(
        pk=draft.pk,
        assignment=assignment,
        instrument=draft.instrument,
        instrument_version_id=draft.instrument_version_id,
        client_id=client_id,
        answers=answers,
        status=Response.Status.SUBMITTED,
        started_at=draft.started_at,
        submitted_at=IN_WINDOW,
    )
    assignment.status = Assignment.Status.COMPLETED
    assignment.status_changed_at = assignment.completed_at = IN_WINDOW
    event = audit_event_build(
        action="response_change",
        participant=assignment.participant,
        obj=response,
        details={"changed": {}},
    )
    return response, event


def test_a_refused_write_over_a_draft_writes_nothing_and_the_transaction_goes_on(
    month1, followup_answers, draft_and_a_taken_id
):
    """The store itself, not only the rollback after it: a draft sent under another
    response's client id changes neither the draft, nor the assignment, nor the audit log,
    and the transaction can still be used (no error from the database). On PostgreSQL this
    is one statement that stores, completes and audits, or does none of it."""
    from django.db import IntegrityError, transaction

    from surveys.models import AuditEvent
    from surveys.submission import _response_store

    attended, _ = followup_answers
    draft, own, taken = draft_and_a_taken_id
    response, event = _sent_over(draft, taken, attended, month1)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            _response_store(response, IN_WINDOW, insert=False, assignment=month1, event=event)
        # Still inside the transaction of the refused write:
        kept = Response.objects.get(pk=draft.pk)
        assert (kept.status, kept.client_id, kept.answers) == ("draft", own, {"craving": 2})
        status = Assignment.objects.values_list("status", flat=True).get(pk=month1.pk)
        assert status == Assignment.Status.IN_PROGRESS
        assert not AuditEvent.objects.filter(action="response_change").exists()


def test_a_sent_response_is_never_written_over_as_if_it_were_a_draft(
    month1, followup, followup_answers
):
    """Should a submit ever act on a stale read (the response it takes for a draft has been
    sent meanwhile), the store refuses rather than write over the sent answers."""
    from django.db import IntegrityError, transaction

    from surveys.submission import _response_store

    attended, not_attended = followup_answers
    first = uuid.uuid4()
    sent = submit(month1, followup, attended, first).response
    response, event = _sent_over(sent, uuid.uuid4(), not_attended, month1)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            _response_store(response, IN_WINDOW, insert=False, assignment=month1, event=event)
        kept = Response.objects.get(pk=sent.pk)
        assert (kept.client_id, kept.answers) == (first, sent.answers)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stored_as", ["over_a_draft", "a_new_response"])
def test_a_refused_store_that_commits_the_transaction_commits_nothing(
    stored_as, month1, followup, followup_answers, draft_and_a_taken_id
):
    """The store that carries the transaction's COMMIT (``atomic_inline``) returns no rows:
    a response it does not store (its client id is another's) fails the statement, so COMMIT
    never runs. The response, the assignment and the audit log are as they were, and no
    transaction is left open."""
    if connection.vendor != "postgresql":
        pytest.skip("the inline transaction is PostgreSQL's (CI sets DATABASE_URL)")
    from django.db import IntegrityError

    from surveys.inline_transaction import atomic_inline
    from surveys.models import AuditEvent
    from surveys.submission import _response_store

    attended, _ = followup_answers
    draft, own, taken = draft_and_a_taken_id
    assignment = month1
    if stored_as == "a_new_response":  # another wave's, no response yet: an id drawn for it
        assignment = month1.participant.assignments.get(wave__slug="m3")
        draft = Response(
            assignment=assignment,
            instrument=followup,
            instrument_version=draft.instrument_version,
            started_at=IN_WINDOW,
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('surveys_response', 'id'))")
            draft.pk = cursor.fetchone()[0]
    before = Assignment.objects.values_list("status", flat=True).get(pk=assignment.pk)
    response, event = _sent_over(draft, taken, attended, assignment)
    with pytest.raises(IntegrityError), atomic_inline() as inline:
        _response_store(
            response,
            IN_WINDOW,
            insert=stored_as == "a_new_response",
            assignment=assignment,
            event=event,
            inline=inline,
        )
    assert connection.connection.info.transaction_status == TRANSACTION_STATUS_IDLE
    if stored_as == "over_a_draft":
        kept = Response.objects.get(assignment=month1)
        assert (kept.status, kept.client_id, kept.answers) == ("draft", own, {"craving": 2})
    else:
        assert not Response.objects.filter(assignment=assignment).exists()
    after = Assignment.objects.values_list("status", flat=True).get(pk=assignment.pk)
    assert after == before
    assert not AuditEvent.objects.filter(action="response_change").exists()


@pytest.mark.django_db(transaction=True)
def test_an_alerting_submit_commits_answers_and_alert_then_mails_the_team(
    month1, followup, followup_answers, mailoutbox
):
    """A dangerous answer: the alert is written after the response, in the same transaction
    (the store does not commit it), and the team's e-mail goes once that is committed."""
    from surveys.models import SafetyAlert, Study
    from surveys.tasks import safety_alert_email

    Study.objects.filter(pk=month1.participant.study_id).update(alert_email="team@example.org")
    attended, _ = followup_answers
    app = safety_alert_email.app
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the task runs in the on-commit hook, here
    try:
        result = submit(month1, followup, {**attended, "craving": 10})
    finally:
        app.conf.task_always_eager = eager
    assert Response.objects.get().pk == result.response.pk
    alert = SafetyAlert.objects.get()
    assert alert.variable == "craving" and alert.emailed_at is not None
    (message,) = mailoutbox
    assert message.to == ["team@example.org"]


@pytest.mark.django_db(transaction=True)
def test_stores_with_and_without_an_id_drawn_run_on_one_connection(
    site_a, enrol, month1, followup, followup_answers
):
    """A submit inside a caller's transaction (no id drawn) and one in its own (an id drawn)
    store with statements of different shapes: each is prepared under its own name."""
    from django.db import transaction

    attended, _ = followup_answers
    alerting = {**attended, "craving": 10}  # the store leaves the commit to the block's end
    other = enrol(
        site=site_a, code="NYC-2", enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
    ).assignments.get(wave__slug="m1")
    with transaction.atomic():
        submit(month1, followup, alerting)
    submit(other, followup, alerting)
    submit(
        month1.participant.assignments.get(wave__slug="m3"),
        followup,
        attended,
        now=datetime(2026, 4, 16, 15, tzinfo=UTC),
    )
    assert Response.objects.filter(status="submitted").count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_foreign_key_failing_at_the_commit_is_an_error_not_a_taken_client_id(
    month1, followup, followup_answers, monkeypatch
):
    """The store commits the transaction, where the deferred foreign keys are checked: one
    failing (the version deleted meanwhile) is the server's error, not the phone's "this id
    belongs to another response"; nothing is stored."""
    import copy

    from django.db import IntegrityError

    import surveys.submission as submission

    if connection.vendor != "postgresql":
        pytest.skip("the inline transaction is PostgreSQL's (CI sets DATABASE_URL)")
    real = submission._version_and_items

    def deleted_meanwhile(instrument, existing, context):
        version, items = real(instrument, existing, context)
        gone = copy.copy(version)
        gone.pk = version.pk + 1_000_000
        return gone, items

    monkeypatch.setattr(submission, "_version_and_items", deleted_meanwhile)
    with pytest.raises(IntegrityError) as excinfo:
        submit(month1, followup, followup_answers[0])
    assert "instrument_version" in str(excinfo.value)
    assert not Response.objects.exists()


def test_the_store_that_commits_needs_the_new_responses_id(month1, followup, followup_answers):
    from surveys.inline_transaction import Inline
    from surveys.submission import _response_store

    response = Response(
        assignment=month1,
        instrument=followup,
        instrument_version=followup.current_version,
        client_id=uuid.uuid4(),
        answers=followup_answers[0],
        status=Response.Status.SUBMITTED,
        started_at=IN_WINDOW,
        submitted_at=IN_WINDOW,
    )
    with pytest.raises(ValueError, match="needs its id"):
        _response_store(response, IN_WINDOW, insert=True, assignment=month1, inline=Inline())
    assert not Response.objects.exists()


@pytest.mark.parametrize(
    "when, code",
    [
        (datetime(2026, 2, 1, tzinfo=UTC), "not_open_yet"),
        (datetime(2026, 3, 20, tzinfo=UTC), "window_closed"),
    ],
)
@pytest.mark.usefixtures("both_transactions")
def test_outside_the_window_is_a_conflict_that_names_the_date(
    month1, followup, followup_answers, when, code
):
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(month1, followup, followup_answers[0], now=when)
    assert excinfo.value.code == code
    # the day in the participant's time zone (New York): the first day it can be answered,
    # or the last one (not the midnight after it, which closes the window)
    if code == "not_open_yet":
        day = month1.opens_at.astimezone(ZoneInfo("America/New_York")).date()
        assert excinfo.value.message.endswith(f"you can answer it from {day:%-d %B %Y}.")
    else:
        day = month1.last_day()
        closes = month1.closes_at.astimezone(ZoneInfo("America/New_York"))
        assert (closes.time(), day) == (time(0), closes.date() - timedelta(days=1))
        assert excinfo.value.message.endswith(f"the last day to answer it was {day:%-d %B %Y}.")
    assert not Response.objects.exists()


def test_a_withdrawn_participant_cannot_submit(month1, followup, followup_answers):
    Participant.objects.filter(pk=month1.participant_id).update(status=Participant.Status.WITHDRAWN)
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(month1, followup, followup_answers[0])
    assert excinfo.value.code == "not_active"


@pytest.mark.usefixtures("both_transactions")
def test_bad_answers_give_one_error_per_question_and_store_nothing(
    month1, followup, followup_answers
):
    attended, _ = followup_answers
    bad = {
        **attended,
        "craving": 11,
        "steps_completed": "three",
        "mat_status": "9",
        "fellowships": ["1", "99"],
        "home_group": "maybe",
        "favourite_colour": "blue",
    }
    bad.pop("qol_overall")
    with pytest.raises(ValidationError) as excinfo:
        submit(month1, followup, bad)
    errors = excinfo.value.message_dict
    assert errors == {
        "craving": ["Enter a number from 0 to 10."],
        "steps_completed": ["Enter a whole number."],
        "mat_status": ["Choose one of the options."],
        "fellowships": ["Choose only from the options."],
        "home_group": ["Answer yes or no."],
        "favourite_colour": ["There is no such question in this survey."],
        "qol_overall": ["This question needs an answer."],
    }
    assert not Response.objects.exists()
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.SCHEDULED


@pytest.mark.usefixtures("both_transactions")
def test_answers_to_hidden_questions_are_dropped_and_shown_ones_required(
    month1, followup, followup_answers
):
    _, not_attended = followup_answers
    with_hidden = {**not_attended, "cohesion": 80, "fellowships": ["1"], "mtg_na_inperson": 3}
    result = submit(month1, followup, with_hidden)
    assert "cohesion" not in result.response.answers
    assert "mtg_na_inperson" not in result.response.answers
    assert result.response.answers == not_attended


def test_a_shown_required_question_left_out_is_an_error(month1, followup, followup_answers):
    attended, _ = followup_answers
    missing = {k: v for k, v in attended.items() if k != "cohesion"}
    with pytest.raises(ValidationError) as excinfo:
        submit(month1, followup, missing)
    assert excinfo.value.message_dict == {"cohesion": ["This question needs an answer."]}


@pytest.mark.usefixtures("both_transactions")
def test_drafts_keep_valid_answers_and_report_invalid_ones(month1, followup):
    client_id = uuid.uuid4()
    draft = response_draft_save(
        assignment=month1,
        instrument=followup,
        answers={"attended_any": 1, "craving": "4"},
        client_id=client_id,
        now=IN_WINDOW,
    )
    assert draft.status == Response.Status.DRAFT
    assert draft.answers == {"attended_any": 1, "craving": 4}
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.IN_PROGRESS
    with pytest.raises(ValidationError) as excinfo:
        response_draft_save(
            assignment=month1,
            instrument=followup,
            answers={"attended_any": 1, "craving": 12},
            client_id=client_id,
            now=IN_WINDOW,
        )
    assert_no_transaction_left_open()
    assert list(excinfo.value.message_dict) == ["craving"]
    draft.refresh_from_db()
    assert draft.answers == {"attended_any": 1, "craving": 4}


@pytest.mark.usefixtures("both_transactions")
def test_a_submit_finishes_the_draft_on_the_version_it_started(
    month1, followup, followup_answers, site_a, enrol
):
    attended, _ = followup_answers
    draft = response_draft_save(
        assignment=month1,
        instrument=followup,
        answers={"attended_any": 1},
        client_id=uuid.uuid4(),
        now=IN_WINDOW,
    )
    # Someone else's submitted response freezes version 1; the instrument then changes.
    other = enrol(
        site=site_a, code="NYC-3", enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
    ).assignments.get(wave__slug="m1")
    submit(other, followup, attended)
    items = version_items_as_dicts(followup.current_version)
    items[0]["label"] = {"en": "Reworded: any meetings in the last 30 days?"}
    version2 = instrument_items_set(instrument=followup, items=items, note="reworded")
    assert version2.number == 2
    result = submit(month1, followup, attended)
    assert result.response.pk == draft.pk
    assert result.response.instrument_version.number == 1
    assert followup.versions.count() == 2


def test_changing_an_instrument_without_responses_edits_it_in_place(followup):
    items = version_items_as_dicts(followup.current_version)
    items[0]["label"] = {"en": "Changed before anyone answered"}
    version = instrument_items_set(instrument=followup, items=items)
    assert version.number == 1
    assert followup.versions.count() == 1
    assert followup.current_version.items.get(position=1).label["en"].startswith("Changed")


def test_calculated_fields_are_computed_on_the_server(study, month1):
    instrument = Instrument.objects.create(study=study, slug="calc-check", name="Calc check")
    instrument_items_set(
        instrument=instrument,
        items=[
            {"variable": "a", "kind": "integer", "label": {"en": "A"}, "required": True},
            {"variable": "b", "kind": "integer", "label": {"en": "B"}},
            {
                "variable": "total",
                "kind": "calc",
                "label": {"en": "Total"},
                "calculation": "sum([a], [b])",
            },
            {
                "variable": "ratio",
                "kind": "calc",
                "label": {"en": "Ratio"},
                "calculation": "round([a] / [b], 2)",
                "branching": "[b] > 0",
            },
        ],
    )
    month1.wave.waveinstrument_set.create(instrument=instrument, position=2)
    result = submit(month1, instrument, {"a": 2, "b": 3, "total": 999})
    assert result.response.answers == {"a": 2, "b": 3, "total": 5, "ratio": 0.67}
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.IN_PROGRESS  # the follow-up is still to do


def test_a_calculation_run_away_is_stored_blank(study, month1):
    # 10^20 is a formula gone wrong, not a measure (and near 1e308 Stata's files refuse it).
    instrument = Instrument.objects.create(study=study, slug="calc-size", name="Calc size")
    instrument_items_set(
        instrument=instrument,
        items=[
            {"variable": "a", "kind": "integer", "label": {"en": "A"}, "required": True},
            {"variable": "p", "kind": "calc", "label": {"en": "P"}, "calculation": "[a] ^ 20"},
        ],
    )
    month1.wave.waveinstrument_set.create(instrument=instrument, position=2)
    answers = submit(month1, instrument, {"a": 10, "p": 1}).response.answers
    assert answers["a"] == 10 and answers.get("p") is None
    Response.objects.all().delete()
    assert submit(month1, instrument, {"a": 5}).response.answers["p"] == 5**20


# --- Properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(data=st.data())
def test_any_input_is_either_cleaned_into_valid_answers_or_rejected_per_question(data, followup):
    items = list(followup.current_version.items.all())
    variables = [item.variable for item in items]
    answers = data.draw(
        st.dictionaries(st.sampled_from(variables) | st.text(max_size=8), json_values, max_size=12)
    )
    final = data.draw(st.booleans())
    try:
        cleaned = answers_clean(items=items, answers=answers, final=final)
    except ValidationError as exc:
        assert set(exc.message_dict) <= set(answers) | set(variables)
        return
    by_variable = {item.variable: item for item in items}
    for variable, value in cleaned.items():
        item = by_variable[variable]
        if item.kind in ("integer", "slider"):
            assert isinstance(value, int) and not isinstance(value, bool)
            assert float(item.min_value) <= value
            # The days since the last survey are a limit only when known (not here).
            if item.max_value != SINCE_LAST_SURVEY:
                assert value <= float(item.max_value)
        elif item.kind == "yesno":
            assert value in (0, 1)
        elif item.kind == "single":
            assert value in {c["code"] for c in item.choices}
        elif item.kind == "multiple":
            assert value and set(value) <= {c["code"] for c in item.choices}


# --- Concurrency (real database, real transactions) ---------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("after_draft", [False, True])
@pytest.mark.parametrize("same_client_id", [False, True])
def test_simultaneous_submits_of_one_assignment_store_exactly_one_response(
    same_client_id, after_draft, site_a, enrol, followup_answers
):
    """Eight phones (or retries) send one survey at once, fresh or after a saved draft (the
    survey page saves one at each step): one is stored, the others are told it was sent (or
    get it back, under the same client id)."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (CI sets DATABASE_URL)")
    attended, _ = followup_answers
    assignment = enrol(
        site=site_a, enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
    ).assignments.get(wave__slug="m1")
    instrument = Instrument.objects.get(slug="followup", study=assignment.participant.study)
    shared_id = uuid.uuid4()
    if after_draft:
        response_draft_save(
            assignment=assignment,
            instrument=instrument,
            answers={"craving": 2},
            client_id=shared_id if same_client_id else uuid.uuid4(),
            now=IN_WINDOW,
        )
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def worker():
        try:
            start.wait()
            result = submit(
                assignment, instrument, attended, shared_id if same_client_id else uuid.uuid4()
            )
            outcomes.append("replay" if result.replayed else "stored")
        except SubmissionConflict as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # anything else would be a 500
            outcomes.append(f"error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Response.objects.filter(assignment=assignment).count() == 1
    assert outcomes.count("stored") == 1
    expected_rest = "replay" if same_client_id else "already_submitted"
    assert sorted(outcomes) == sorted(["stored"] + [expected_rest] * 7)


def _item(**fields):
    from surveys.models import Item

    return Item(variable=fields.pop("variable", "q"), label={"en": "Q"}, **fields)


@pytest.mark.parametrize(
    "item_fields, value, message",
    [
        ({"kind": "slider", "min_value": "0", "max_value": "10"}, 3.5, "Enter a whole number."),
        ({"kind": "integer"}, 3.0, None),
        ({"kind": "integer"}, True, "Enter a number."),
        ({"kind": "integer"}, "1" * 400, "Enter a whole number."),
        ({"kind": "integer"}, 10**30, "Enter a smaller number."),
        ({"kind": "decimal"}, "1" * 30 + ".5", "Enter a smaller number."),
        ({"kind": "decimal"}, "\uff15", "Enter a number."),
        ({"kind": "decimal"}, " 2.5 ", None),
        ({"kind": "date"}, "20260101", "Enter a date as YYYY-MM-DD."),
        ({"kind": "date"}, "2026-W01-1", "Enter a date as YYYY-MM-DD."),
        ({"kind": "date", "max_value": "today"}, "2999-01-01", "Enter a date on or before"),
        ({"kind": "text", "options": {"validation": "time_mm_ss"}}, "75:00", "MM:SS"),
        ({"kind": "text", "options": {"validation": "zipcode"}}, "１２３４５", "ZIP code"),
        ({"kind": "text", "options": {"validation": "email"}}, "not-an-address", "e-mail"),
        # text PostgreSQL's JSON cannot hold (the save would fail whole): refused per question
        ({"kind": "text"}, "before\x00after", "Enter text."),
        ({"kind": "notes"}, "half a pair \ud800", "Enter text."),
        ({"kind": "notes"}, "accents é and emoji \U0001f600 are fine", None),
        (
            {"kind": "single", "choices": [{"code": "1", "label": {"en": "A"}}]},
            True,
            "Choose one of the options.",
        ),
    ],
)
def test_answers_are_checked_strictly_with_a_plain_message(item_fields, value, message):
    item = _item(**item_fields)
    if message is None:
        answers_clean(items=[item], answers={"q": value}, final=False)
        return
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(items=[item], answers={"q": value}, final=False)
    assert message in excinfo.value.message_dict["q"][0]


@pytest.mark.parametrize(
    "kind, typed, stored",
    [
        ("integer", "\u06f1\u06f2", 12),  # ۱۲ on a Persian keyboard
        ("integer", "\u0661\u0662", 12),  # ١٢ on an Arabic keyboard
        ("integer", " \u06f0 ", 0),
        ("slider", "\u06f7", 7),
        ("decimal", "\u06f3\u066b\u06f5", 3.5),  # ۳٫۵ with the Persian decimal separator
        ("decimal", "-\u0662.\u0665", -2.5),
    ],
)
def test_persian_and_arabic_digits_are_stored_as_the_number(kind, typed, stored):
    item = _item(kind=kind, min_value="-10", max_value="20")
    cleaned = answers_clean(items=[item], answers={"q": typed}, final=True)
    assert cleaned == {"q": stored}
    assert type(cleaned["q"]) is type(stored)


@pytest.mark.parametrize(
    "typed, stored",
    [("3,5", 3.5), ("-0,25", -0.25), ("\u06f3,\u06f5", 3.5), ("12,0", 12), ("3.5", 3.5)],
)
def test_a_decimal_comma_is_read_as_the_decimal_point(typed, stored):
    item = _item(kind="decimal", min_value="-10", max_value="20")
    assert answers_clean(items=[item], answers={"q": typed}, final=True) == {"q": stored}


def test_a_decimal_comma_counts_towards_the_decimal_places_allowed():
    item = _item(kind="decimal", options={"validation": "number_1dp_comma_decimal"})
    assert answers_clean(items=[item], answers={"q": "2,5"}, final=True) == {"q": 2.5}
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(items=[item], answers={"q": "2,55"}, final=True)
    assert excinfo.value.message_dict["q"] == ["Use at most 1 decimal place."]


@pytest.mark.parametrize("kind", ["integer", "slider"])
@pytest.mark.parametrize("typed", ["1,000", "3,0", "\u06f1\u066c\u06f0\u06f0\u06f0"])
def test_a_comma_in_a_whole_number_is_refused_saying_so(kind, typed):
    # 1,000 may be a thousand or (in Spanish) one: never guessed.
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(items=[_item(kind=kind)], answers={"q": typed}, final=False)
    assert excinfo.value.message_dict["q"] == [
        "Enter a whole number without a comma, for example 1500."
    ]


@pytest.mark.parametrize(
    "typed", ["1,000.5", "1.000,5", "1,000,000", "\u06f1\u066c\u06f0\u06f0\u06f0"]
)
def test_thousands_separators_in_a_decimal_are_refused_saying_so(typed):
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(items=[_item(kind="decimal")], answers={"q": typed}, final=False)
    assert "no thousands separator" in excinfo.value.message_dict["q"][0]


def test_a_persian_decimal_in_a_whole_number_item_asks_for_a_whole_number():
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(
            items=[_item(kind="integer")], answers={"q": "\u06f3\u066b\u06f5"}, final=False
        )
    assert excinfo.value.message_dict["q"] == ["Enter a whole number."]


def test_an_instrument_without_questions_is_a_conflict_not_a_crash(study, month1):
    empty = Instrument.objects.create(study=study, slug="empty", name="Empty")
    month1.wave.waveinstrument_set.create(instrument=empty, position=3)
    with pytest.raises(SubmissionConflict) as excinfo:
        submit(month1, empty, {})
    assert excinfo.value.code == "instrument_not_ready"


@pytest.mark.django_db(transaction=True)
def test_submissions_work_again_after_the_database_connection_is_replaced(
    site_a, enrol, followup_answers
):
    # On PostgreSQL the submission's statements are prepared once per connection; a new
    # connection (a restart, CONN_MAX_AGE) must prepare them afresh, not fail.
    attended, _ = followup_answers
    first, second = (
        enrol(
            site=site_a, code=code, enrolled_on=ENROLLED, now=datetime(2026, 1, 15, tzinfo=UTC)
        ).assignments.get(wave__slug="m1")
        for code in ("NYC-1", "NYC-2")
    )
    instrument = Instrument.objects.get(slug="followup", study=first.participant.study)
    assert not submit(first, instrument, attended).replayed
    connection.close()
    assert not submit(second, instrument, attended).replayed
    second.refresh_from_db()
    assert second.status == Assignment.Status.COMPLETED
    assert Response.objects.count() == 2


@pytest.mark.parametrize(
    ("zone", "now", "answer", "accepted"),
    [
        # 10:30 on 17 February in Sydney is 23:30 on the 16th in UTC: their today is the 17th
        ("Australia/Sydney", datetime(2026, 2, 16, 23, 30, tzinfo=UTC), "2026-02-17", True),
        # 20:00 on 16 February in New York is 01:00 on the 17th in UTC: the 17th is tomorrow
        ("America/New_York", datetime(2026, 2, 17, 1, 0, tzinfo=UTC), "2026-02-17", False),
        ("America/New_York", datetime(2026, 2, 17, 1, 0, tzinfo=UTC), "2026-02-16", True),
    ],
)
def test_a_date_on_or_before_today_is_the_participants_today(zone, now, answer, accepted):
    item = _item(kind="date", max_value="today")
    today = datetime.fromtimestamp(now.timestamp(), tz=__import__("zoneinfo").ZoneInfo(zone))
    if accepted:
        assert answers_clean(
            items=[item], answers={"q": answer}, final=False, today=today.date()
        ) == {"q": answer}
        return
    with pytest.raises(ValidationError) as excinfo:
        answers_clean(items=[item], answers={"q": answer}, final=False, today=today.date())
    assert "on or before 2026-02-16" in excinfo.value.message_dict["q"][0]


def test_a_draft_checks_a_today_limit_on_the_participants_own_date(study, month1):
    """Far east of the server (UTC), the participant's "today" is already tomorrow's date:
    their own date is accepted; the day after it is not."""
    from zoneinfo import ZoneInfo

    zone = next(
        z
        for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
        if IN_WINDOW.astimezone(ZoneInfo(z)).date() != IN_WINDOW.date()
    )
    Participant.objects.filter(pk=month1.participant_id).update(timezone=zone)
    their_today = IN_WINDOW.astimezone(ZoneInfo(zone)).date()
    instrument = Instrument.objects.create(study=study, slug="date-check", name="Date check")
    instrument_items_set(
        instrument=instrument,
        items=[
            {"variable": "d", "kind": "date", "label": {"en": "D"}, "max_value": "today"},
        ],
    )
    month1.wave.waveinstrument_set.create(instrument=instrument, position=2)

    def draft(day):
        return response_draft_save(
            assignment=month1,
            instrument=instrument,
            answers={"d": day.isoformat()},
            client_id=uuid.UUID(int=7),
            now=IN_WINDOW,
        )

    assert draft(their_today).answers == {"d": their_today.isoformat()}
    with pytest.raises(ValidationError) as excinfo:
        draft(their_today + timedelta(days=1))
    assert their_today.isoformat() in excinfo.value.message_dict["d"][0]


def _sent_earlier(participant, wave_slug: str, at: datetime) -> None:
    """A survey the participant sent at ``at`` (stored as the synthetic cohorts store them)."""
    assignment = participant.assignments.get(wave__slug=wave_slug)
    instrument = assignment.wave.instruments.first()
    Response.objects.create(
        assignment=assignment,
        instrument=instrument,
        instrument_version=instrument.current_version,
        client_id=uuid.uuid4(),
        answers={},
        status=Response.Status.SUBMITTED,
        started_at=at,
        submitted_at=at,
    )


def test_the_longest_run_of_use_fits_in_the_days_since_the_last_survey(
    month1, followup, followup_answers
):
    """'The longest stretch of days in a row you used since your last survey' cannot be
    longer than the days since the participant last sent this questionnaire: before any, the
    enrolment day (15 January to 16 February: 33 days, both counted); month 1 sent on
    16 February and month 3 on 20 April (New York): 64. Another questionnaire in between (a
    weekly check-in, a baseline) does not shorten it. Drafts are checked the same way."""
    used = {**followup_answers[0], "any_use_since_last": 1}
    with pytest.raises(ValidationError) as before_any:
        submit(month1, followup, {**used, "longest_use_run_days": 34})
    assert before_any.value.message_dict == {
        "longest_use_run_days": ["Enter a number from 0 to 33."]
    }
    assert not Response.objects.filter(assignment=month1).exists()
    submit(month1, followup, {**used, "longest_use_run_days": 33})

    month3 = month1.participant.assignments.select_related("wave").get(wave__slug="m3")
    april20 = datetime(2026, 4, 20, 15, tzinfo=UTC)
    assert month3.opens_at < april20 < month3.closes_at
    _sent_earlier(month1.participant, "baseline", datetime(2026, 4, 19, 15, tzinfo=UTC))
    assert days_since_last_survey(month3, followup.pk, april20) == 64  # 16 Feb to 20 Apr
    with pytest.raises(ValidationError) as too_long:
        submit(month3, followup, {**used, "longest_use_run_days": 65}, now=april20)
    assert too_long.value.message_dict == {"longest_use_run_days": ["Enter a number from 0 to 64."]}
    with pytest.raises(ValidationError):
        response_draft_save(
            assignment=month3,
            instrument=followup,
            answers={"longest_use_run_days": 65},
            client_id=uuid.uuid4(),
            now=april20,
        )
    assert not Response.objects.filter(assignment=month3).exists()
    sent = submit(month3, followup, {**used, "longest_use_run_days": 64}, now=april20)
    assert sent.response.answers["longest_use_run_days"] == 64
    # Month 3's own sending is not its "last survey" (checking a resend, say).
    assert days_since_last_survey(month3, followup.pk, april20 + timedelta(days=1)) == 65


def test_the_days_since_the_last_survey_are_looked_up_only_for_an_answer_they_limit(
    month1, followup, followup_answers
):
    """The submit path is the busiest request: a follow-up without use since the last survey
    (the run question hidden, unanswered) makes no lookup; one with an answer makes one."""

    def lookups(answers) -> int:
        assignment = month1.participant.assignments.get(pk=month1.pk)
        Response.objects.filter(assignment=assignment).delete()
        Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.OPEN)
        with CaptureQueriesContext(connection) as queries:
            submit(assignment, followup, answers)
        # as written (SQLite), or as PostgreSQL's prepared statement (PREPARE, then EXECUTE)
        return sum(
            "surveys_since_last_survey" in q["sql"] or "MAX(r.submitted_at)" in q["sql"]
            for q in queries.captured_queries
            if not q["sql"].startswith("PREPARE")
        )

    no_use = {**followup_answers[1], "any_use_since_last": 0}
    no_use.pop("longest_use_run_days", None)
    assert lookups(no_use) == 0
    assert lookups({**no_use, "any_use_since_last": 1, "longest_use_run_days": 3}) == 1
