import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from api.views import SubmitOutputSerializer
from surveys.models import Response, StaffRole

ANSWERS = {
    "attended_any": 0,
    "home_group": 0,
    "has_sponsor": 0,
    "is_sponsor": 0,
    "service_work": 0,
    "steps_completed": 0,
    "speaks_at_meetings": 0,
    "member_contact_outside": 0,
    "reads_literature": 0,
    "mat_status": "0",
    "mat_changed": 0,
    "craving": 3,
    "days_opioids": 0,
    "days_cocaine": 0,
    "days_meth": 0,
    "days_cannabis": 0,
    "days_alcohol": 0,
    "days_other": 0,
    "any_use_since_last": 0,
    "overdose": 0,
    "qol_overall": 7,
    "qol_health": 6,
}


@pytest.fixture
def open_month1(site_a, enrol):
    """A participant whose month-1 window is open today."""
    today = timezone.localdate()
    participant = enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=today - timedelta(days=30),
        timezone="America/New_York",
    )
    return participant.assignments.get(wave__slug="m1")


def url(assignment, action, instrument="followup"):
    return f"/api/v1/assignments/{assignment.pk}/responses/{instrument}/{action}/"


def test_submit_answers_201_then_200_on_replay(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    body = {"client_id": str(uuid.uuid4()), "answers": ANSWERS}
    first = client.post(url(open_month1, "submit"), body, content_type="application/json")
    assert first.status_code == 201, first.json()
    assert first.json()["status"] == "submitted"
    assert first.json()["instrument_version"] == 1
    replay = client.post(url(open_month1, "submit"), body, content_type="application/json")
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert Response.objects.count() == 1
    # The reply is built without the serializer; it must say what the schema says.
    stored = Response.objects.select_related("instrument", "instrument_version").get()
    assert first.json() == SubmitOutputSerializer(stored).data
    assert first.json()["client_id"] == body["client_id"]
    assert first.json()["submitted_at"].endswith("Z")


def test_bad_input_answers_400_with_one_error_per_field(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    response = client.post(
        url(open_month1, "submit"),
        {
            "client_id": str(uuid.uuid4()),
            "answers": {**ANSWERS, "craving": "very", "qol_health": 11},
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "craving": ["Enter a whole number."],
            "qol_health": ["Enter a number from 0 to 10."],
        }
    }
    assert not Response.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"answers": ANSWERS}, "client_id"),
        ({"client_id": "not-a-uuid", "answers": ANSWERS}, "client_id"),
        ({"client_id": str(uuid.uuid4()), "answers": [1, 2]}, "answers"),
    ],
)
def test_malformed_requests_answer_400_naming_the_field(
    client, coordinator_a, open_month1, body, field
):
    client.force_login(coordinator_a)
    response = client.post(url(open_month1, "submit"), body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_broken_json_answers_400(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    response = client.post(url(open_month1, "submit"), "{not json", content_type="application/json")
    assert response.status_code == 400


def test_a_closed_window_answers_409_with_the_reason(client, coordinator_a, site_a, enrol):
    participant = enrol(
        site=site_a, code="NYC-0099", enrolled_on=timezone.localdate() - timedelta(days=200)
    )
    assignment = participant.assignments.get(wave__slug="m1")
    client.force_login(coordinator_a)
    response = client.post(
        url(assignment, "submit"),
        {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "window_closed"
    last_day = assignment.last_day()
    assert response.json()["detail"] == (
        f"This survey has closed: the last day to answer it was {last_day:%-d %B %Y}."
    )


def test_draft_then_submit(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    client_id = str(uuid.uuid4())
    draft = client.put(
        url(open_month1, "draft"),
        {"client_id": client_id, "answers": {"attended_any": 0, "craving": 2}},
        content_type="application/json",
    )
    assert draft.status_code == 200
    assert draft.json()["status"] == "draft"
    final = client.post(
        url(open_month1, "submit"),
        {"client_id": client_id, "answers": ANSWERS},
        content_type="application/json",
    )
    assert final.status_code == 201
    assert Response.objects.get().answers["craving"] == 3


def test_coordinator_of_another_site_gets_404(client, staff_user, study, site_b, open_month1):
    other = staff_user(
        study=study, role=StaffRole.Role.COORDINATOR, sites=[site_b], username="coord-b"
    )
    client.force_login(other)
    response = client.post(
        url(open_month1, "submit"),
        {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert not Response.objects.exists()


def test_researchers_cannot_enter_answers(client, researcher, open_month1):
    client.force_login(researcher)
    response = client.post(
        url(open_month1, "submit"),
        {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_unknown_instrument_is_404(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    response = client.post(
        url(open_month1, "submit", instrument="nope"),
        {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
        content_type="application/json",
    )
    assert response.status_code == 404


def test_an_instrument_of_another_wave_is_409(client, coordinator_a, open_month1):
    client.force_login(coordinator_a)
    response = client.post(
        url(open_month1, "submit", instrument="baseline"),
        {"client_id": str(uuid.uuid4()), "answers": {}},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "wrong_instrument"


def test_schema_documents_the_submission_errors(client, db):
    schema = client.get("/api/v1/schema/").text
    assert "/api/v1/assignments/{assignment_id}/responses/{instrument_slug}/submit/" in schema
    for code in ("'201'", "'400'", "'409'"):
        assert code in schema


def test_answers_staff_enter_are_audited_with_before_and_after(client, coordinator_a, open_month1):
    from surveys.audit import HIDDEN_ANSWER
    from surveys.instruments import instrument_items_set, version_items_as_dicts
    from surveys.models import AuditEvent

    # an identifying item's value is named, never copied into the log (the instrument's
    # items edited as the dictionary import does, before any response)
    followup = open_month1.wave.instruments.get(slug="followup")
    items = version_items_as_dicts(followup.versions.order_by("-number").first())
    for item in items:
        item["identifier"] = item["identifier"] or item["variable"] == "craving"
    instrument_items_set(instrument=followup, items=items)
    client.force_login(coordinator_a)
    client_id = str(uuid.uuid4())
    client.put(
        url(open_month1, "draft"),
        {"client_id": client_id, "answers": {"attended_any": 0, "qol_overall": 5, "craving": 2}},
        content_type="application/json",
        REMOTE_ADDR="192.0.2.44",
    )
    body = {"client_id": client_id, "answers": ANSWERS}
    assert (
        client.post(url(open_month1, "submit"), body, content_type="application/json").status_code
        == 201
    )
    client.post(url(open_month1, "submit"), body, content_type="application/json")  # a replay
    events = list(AuditEvent.objects.filter(action="response_change").order_by("id"))
    assert len(events) == 2  # the replay changed nothing
    draft, final = events
    assert (draft.username, draft.ip, draft.participant.code) == (
        coordinator_a.username,
        "192.0.2.44",
        "NYC-0042",
    )
    assert draft.details == {
        "submitted": False,
        "changed": {
            "attended_any": {"before": None, "after": 0},
            "craving": HIDDEN_ANSWER,
            "qol_overall": {"before": None, "after": 5},
        },
    }
    assert final.details["submitted"] is True
    assert final.details["changed"]["qol_overall"] == {"before": 5, "after": 7}
    assert final.details["changed"]["craving"] == HIDDEN_ANSWER
    assert "attended_any" not in final.details["changed"]  # 0 before and after


def test_a_submit_without_a_draft_is_audited_with_the_response_it_stored(
    client, coordinator_a, open_month1, site_a, enrol
):
    """Staff entering a whole survey at once (no draft first): one event names the response
    stored, who, from where and every answer; on PostgreSQL it is written by the statement
    that stores the response. A client id already used by another participant's response
    stores nothing, neither response nor event."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.models import AuditEvent

    client.force_login(coordinator_a)
    with CaptureQueriesContext(connection) as queries:
        sent = client.post(
            url(open_month1, "submit"),
            {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
            content_type="application/json",
            REMOTE_ADDR="192.0.2.45",
        )
    assert sent.status_code == 201, sent.json()
    stored = Response.objects.get(assignment=open_month1)
    (event,) = AuditEvent.objects.filter(action="response_change")
    assert (event.object_type, event.object_id) == ("surveys.response", str(stored.pk))
    assert (event.user, event.username, event.ip) == (
        coordinator_a,
        coordinator_a.username,
        "192.0.2.45",
    )
    assert (event.participant, event.study) == (
        open_month1.participant,
        open_month1.participant.study,
    )
    assert abs((event.at - stored.submitted_at).total_seconds()) < 5
    assert event.details["submitted"] is True
    assert event.details["changed"]["qol_overall"] == {"before": None, "after": 7}
    assert event.details["changed"]["craving"] == {"before": None, "after": 3}
    if connection.vendor == "postgresql":
        run = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("PREPARE")]
        writes = [sql for sql in run if "INSERT" in sql or ("EXECUTE" in sql and "insert" in sql)]
        assert len(writes) == 1 and "audited" in writes[0], writes

    other = enrol(site=site_a, code="NYC-0043", enrolled_on=open_month1.participant.enrolled_on)
    other_month1 = other.assignments.get(wave__slug="m1")
    reused = client.post(
        url(other_month1, "submit"),
        {"client_id": str(stored.client_id), "answers": ANSWERS},
        content_type="application/json",
    )
    assert reused.status_code == 409 and reused.json()["code"] == "client_id_used"
    assert not Response.objects.filter(assignment=other_month1).exists()
    assert AuditEvent.objects.filter(action="response_change").count() == 1


def _submit_statements(queries) -> list[str]:
    """The statements a submit ran, but PREPARE (once per connection), the test's savepoints,
    the items (read once per version and process) and Django's own log entries BEGIN and
    COMMIT (psycopg2 sends them only for a transaction it began itself: not the submit's,
    whose BEGIN and COMMIT go with its statements, ``surveys.inline_transaction``)."""
    return [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("PREPARE", "SAVEPOINT", "RELEASE SAVEPOINT"))
        and '"surveys_item"' not in q["sql"]
        and q["sql"] not in ("BEGIN", "COMMIT")
    ]


def test_who_may_enter_answers_is_checked_in_the_statement_that_locks_the_survey(
    client, coordinator_a, open_month1, site_a, enrol, both_transactions
):
    """Staff's rights and the participant's own session are read with the locked assignment:
    no statement of their own on the busiest write (benchmarks/README.md). On PostgreSQL a
    fresh staff submit is four round trips (session; user with two-factor state; BEGIN, the
    lock, then the read of rights and responses, sent together; response, status and audit
    event in one statement with COMMIT), the phone's three. (Inside the test's transaction
    the submit's is a savepoint, and the BEGIN and COMMIT are the test's.)"""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.surveys.test_participant_access import signed_in

    client.force_login(coordinator_a)
    with CaptureQueriesContext(connection) as staff:
        sent = client.post(
            url(open_month1, "submit"),
            {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
            content_type="application/json",
        )
    assert sent.status_code == 201
    staff_run = _submit_statements(staff)  # now: the log is a bounded queue
    other = enrol(site=site_a, code="NYC-0049", enrolled_on=open_month1.participant.enrolled_on)
    phone = Client()
    signed_in(phone, other)
    month1 = other.assignments.get(wave__slug="m1")
    with CaptureQueriesContext(connection) as own:
        sent = phone.post(
            f"/api/v1/participant/assignments/{month1.pk}/responses/followup/submit/",
            {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
            content_type="application/json",
        )
    assert sent.status_code == 201
    own_run = _submit_statements(own)
    if connection.vendor == "postgresql":
        assert len(staff_run) == 4, staff_run
        assert len(own_run) == 3, own_run
        assert "surveys_submit_staff_" in staff_run[2] and "_lock" in staff_run[2]
        assert "surveys_submit_staff_" in staff_run[2] and "_read_answers" in staff_run[2]
        assert "surveys_submit_participant_" in own_run[1] and "_lock" in own_run[1]
        assert "surveys_submit_participant_" in own_run[1] and "_read" in own_run[1]
        if both_transactions == "own":
            for run in (staff_run, own_run):
                assert run[-2].startswith("BEGIN; EXECUTE surveys_submit_"), run
                assert run[-1].endswith("; COMMIT"), run
            from psycopg2.extensions import TRANSACTION_STATUS_IDLE

            assert connection.connection.info.transaction_status == TRANSACTION_STATUS_IDLE
    else:  # the same reads; the writes one statement each
        for run, check in ((staff_run, "surveys_staffrole_sites"), (own_run, "access_epoch")):
            (read,) = [sql for sql in run if "FROM surveys_assignment a" in sql]
            assert check in read and "FOR UPDATE" not in read  # SQLite locks the database
            assert sum(check in sql for sql in run) == 1
        # The participant's conditions are the statement's: no one else's survey is locked.
        (own_read,) = [sql for sql in own_run if "FROM surveys_assignment a" in sql]
        assert own_read.index("access_epoch") > own_read.index("WHERE a.id")


@pytest.mark.parametrize("change", ["links_revoked", "withdrawn", "consent_withdrawn"])
def test_a_phone_whose_participant_may_no_longer_answer_is_refused_with_nothing_written(
    client, open_month1, change
):
    """The participant's session was opened, then the team revoked the links, or the
    participant withdrew (or consent is pending again): the phone's draft and submit are
    404, as for a survey that is not theirs, and nothing is stored or changed."""
    from surveys.links import participant_links_revoke
    from surveys.models import Assignment, Participant
    from tests.surveys.test_participant_access import signed_in

    participant = open_month1.participant
    signed_in(client, participant)
    if change == "links_revoked":
        participant_links_revoke(participant=participant)
    elif change == "withdrawn":
        Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    else:
        Participant.objects.filter(pk=participant.pk).update(consent_pending=True)
    base = f"/api/v1/participant/assignments/{open_month1.pk}/responses/followup"
    body = {"client_id": str(uuid.uuid4()), "answers": ANSWERS}
    draft = client.put(f"{base}/draft/", body, content_type="application/json")
    sent = client.post(f"{base}/submit/", body, content_type="application/json")
    assert (draft.status_code, sent.status_code) == (404, 404)
    assert not Response.objects.filter(assignment=open_month1).exists()
    status = Assignment.objects.values_list("status", flat=True).get(pk=open_month1.pk)
    assert status == open_month1.status


def test_a_participants_own_answers_are_not_audit_events(client, open_month1):
    from surveys.models import AuditEvent
    from tests.surveys.test_participant_access import signed_in

    signed_in(client, open_month1.participant)
    reply = client.put(
        f"/api/v1/participant/assignments/{open_month1.pk}/responses/followup/draft/",
        {"client_id": str(uuid.uuid4()), "answers": {"craving": 4}},
        content_type="application/json",
    )
    assert reply.status_code == 200
    assert not AuditEvent.objects.filter(action="response_change").exists()


def test_an_audited_submit_reads_the_answers_before_under_the_lock_and_nothing_else(
    client, coordinator_a, open_month1
):
    """Staff data entry is audited without reading the assignment, the participant or the
    items again: the answers before come with the locked read, and the event is written with
    the response (the budget's second path, benchmarks/README.md)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.models import AuditEvent

    client.force_login(coordinator_a)
    client_id = str(uuid.uuid4())
    client.put(
        url(open_month1, "draft"),
        {"client_id": client_id, "answers": {"craving": 2}},
        content_type="application/json",
    )
    with CaptureQueriesContext(connection) as queries:
        sent = client.post(
            url(open_month1, "submit"),
            {"client_id": client_id, "answers": ANSWERS},
            content_type="application/json",
        )
    assert sent.status_code == 201
    event = AuditEvent.objects.filter(action="response_change").latest("id")
    assert event.details["changed"]["craving"] == {"before": 2, "after": 3}
    assert event.participant_id == open_month1.participant_id
    assert event.study_id == open_month1.participant.study_id
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("PREPARE")]
    # what the audit read on its own before: the items, the participant, the answers
    for read in (
        'FROM "surveys_item"',
        'FROM "surveys_participant"',
        '"surveys_response"."answers',
    ):
        assert not any(read in sql for sql in statements), read
    # the event's insert: on PostgreSQL in the statement that stores the response
    writes_event = "_audited_" if connection.vendor == "postgresql" else "surveys_auditevent"
    assert sum(writes_event in sql for sql in statements) == 1
    # the assignment locked and read once (the lock statement counts the wave's instruments)
    locks = [
        sql
        for sql in statements
        if "surveys_submit_staff_lock" in sql
        or 'FROM "surveys_assignment"' in sql
        or ("FROM surveys_assignment a" in sql and "surveys_waveinstrument" in sql)
    ]
    assert len(locks) == 1, locks


def test_a_variable_made_identifying_in_a_later_version_stays_hidden_in_an_older_draft(
    client, coordinator_a, open_month1
):
    """A draft keeps the version it was started on; the team then marks one of its questions
    as identifying, which makes a new version (the old one has a response). Staff changing
    that draft's answer: the log names the question and never copies its value."""
    from surveys.audit import HIDDEN_ANSWER
    from surveys.instruments import instrument_items_set, version_items_as_dicts
    from surveys.models import AuditEvent

    client.force_login(coordinator_a)
    draft = {"client_id": str(uuid.uuid4()), "answers": {"craving": 2}}
    saved = client.put(url(open_month1, "draft"), draft, content_type="application/json")
    assert saved.status_code == 200, saved.content
    followup = open_month1.wave.instruments.get(slug="followup")
    first = followup.versions.order_by("-number").first()
    items = version_items_as_dicts(first)
    for item in items:
        item["identifier"] = item["identifier"] or item["variable"] == "craving"
    assert instrument_items_set(instrument=followup, items=items).number == first.number + 1
    draft["answers"] = {"craving": 4}
    saved = client.put(url(open_month1, "draft"), draft, content_type="application/json")
    assert saved.status_code == 200, saved.content
    assert Response.objects.get().instrument_version == first  # still on the older version
    event = AuditEvent.objects.filter(action="response_change").latest("id")
    assert event.details["changed"] == {"craving": HIDDEN_ANSWER}


@pytest.mark.parametrize("client_id", [1, True, 0, "00000000-0000-0000-0000-000000000000"])
def test_a_client_id_that_is_not_a_random_uuid_written_as_text_is_refused(
    client, site_a, enrol, client_id
):
    """Found by review: ``client_id`` took a JSON number or ``true`` (both read as
    ``UUID(int=1)``) and the nil UUID. A phone sending ``1`` stored its answers under a key
    that any other phone sending ``1`` then hit: that participant was told 409
    ``client_id_used``, about someone else's response, and their answers were not stored."""
    from tests.surveys.test_participant_access import signed_in

    enrolled = timezone.localdate() - timedelta(days=30)
    first, second = (
        enrol(site=site_a, enrolled_on=enrolled).assignments.get(wave__slug="m1") for _ in "ab"
    )
    for assignment in (first, second):
        client.cookies.clear()
        signed_in(client, assignment.participant)
        reply = client.post(
            f"/api/v1/participant/assignments/{assignment.pk}/responses/followup/submit/",
            {"client_id": client_id, "answers": ANSWERS},
            content_type="application/json",
        )
        assert reply.status_code == 400, reply.json()
        assert list(reply.json()["errors"]) == ["client_id"]
    assert not Response.objects.exists()
    # What the phone's code is written against still says: text, a UUID.
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    field = schema["components"]["schemas"]["AnswersInput"]["properties"]["client_id"]
    assert (field["type"], field["format"]) == ("string", "uuid")


@pytest.mark.parametrize("method, action", [("put", "draft"), ("post", "submit")])
def test_a_body_too_large_for_the_server_is_a_json_400_for_the_phone(
    client, open_month1, method, action
):
    """Found by review: a body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) is refused by Django
    before the API's view answers, and the phone's page (survey.js), which reads the API's
    JSON errors, got Django's HTML "Bad Request" page."""
    from tests.surveys.test_participant_access import signed_in

    signed_in(client, open_month1.participant)
    body = {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "notes": "x" * 3_000_000}}
    reply = getattr(client, method)(
        f"/api/v1/participant/assignments/{open_month1.pk}/responses/followup/{action}/",
        body,
        content_type="application/json",
    )
    assert reply.status_code == 400
    assert reply["Content-Type"] == "application/json"
    assert reply.json() == {"errors": {"non_field": ["The request is too large: at most 2.5 MB."]}}
    assert not Response.objects.exists()


def test_the_schema_documents_the_401_a_phone_gets_when_not_signed_in(client, open_month1):
    """Found by review: without a participant session the participant API answers 401 with
    ``WWW-Authenticate: ParticipantSession``, but its docs said 403 "Not signed in to a
    participant session" and listed no 401, so a client written from them missed the case."""
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    template = "/api/v1/participant/assignments/{assignment_id}/responses/{instrument_slug}/"
    for method, action in (("put", "draft"), ("post", "submit")):
        reply = getattr(client, method)(
            f"/api/v1/participant/assignments/{open_month1.pk}/responses/followup/{action}/",
            {"client_id": str(uuid.uuid4()), "answers": ANSWERS},
            content_type="application/json",
        )
        documented = schema["paths"][f"{template}{action}/"][method]["responses"]
        assert reply.status_code == 401
        assert "Not signed in" in documented["401"]["description"]
        assert "Not signed in" not in documented["403"]["description"]
        header = documented["401"]["headers"]["WWW-Authenticate"]["schema"]
        assert reply["WWW-Authenticate"] in header["enum"]
