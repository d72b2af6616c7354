"""Odd input at the edges gets a clear error, never a server error, and nothing twice: a
year-1 enrolment day, the same enrolment sent again, JSON nested too deep, digits that are not
ASCII, a NUL in a data dictionary."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from surveys.dictionary import DictionaryError, dictionary_import
from surveys.models import Item, Participant, StaffRole
from surveys.participant_import import participants_import
from surveys.tokens import SCOPES, staff_token_create
from tests.api.test_responses_api import open_month1, url  # noqa: F401 (fixture)
from tests.api.test_staff_api import ENROL
from tests.surveys.test_dictionary import _header, _line, fresh_study  # noqa: F401 (fixture)
from tests.surveys.test_participant_import import consent_version  # noqa: F401 (autouse)


@pytest.fixture
def pi(staff_user, study):
    return staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")


def bearer(user) -> dict:
    key = staff_token_create(user=user, name="t", scopes=SCOPES)[1]
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


# 1. An enrolment day in year 1 (e-consent: no consent date bounds it) ----------------------


def test_import_an_enrolment_day_in_year_1_is_a_problem_of_its_line(study, pi):
    data = (
        b"site,email,consent_method,enrolled_on,timezone\r\n"
        b"NYC,rosa@example.org,electronic,0001-01-01,Asia/Tokyo\r\n"
    )
    result = participants_import(study=study, user=pi, file_bytes=data, commit=False)
    assert [(p.line, p.column) for p in result.errors] == [(2, "enrolled_on")]
    assert not Participant.objects.exists()


def test_api_an_enrolment_day_in_year_1_is_a_400_on_enrolled_on(study, coordinator_a):
    reply = Client(raise_request_exception=False).post(
        f"/api/v1/studies/{study.slug}/participants/",
        {
            **ENROL,
            "enrolled_on": "0001-01-01",
            "timezone": "Asia/Tokyo",
            "consent": {"method": "electronic"},
        },
        content_type="application/json",
        **bearer(coordinator_a),
    )
    assert reply.status_code == 400, (reply.status_code, reply.content[:100])
    assert "enrolled_on" in reply.json()["errors"]


# 2. The same enrolment sent twice through the API ------------------------------------------


def test_api_the_same_enrolment_sent_twice_is_stored_once(study, coordinator_a):
    client, path = Client(), f"/api/v1/studies/{study.slug}/participants/"
    auth = bearer(coordinator_a)
    assert client.post(path, ENROL, content_type="application/json", **auth).status_code == 201
    # The reply was lost (a timeout): the client sends the same enrolment again.
    again = client.post(path, ENROL, content_type="application/json", **auth)
    assert Participant.objects.count() == 1, [p.code for p in Participant.objects.all()]
    assert again.status_code == 400


# 3. Deeply nested JSON --------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_not_a_server_error(coordinator_a, open_month1):  # noqa: F811
    client = Client(raise_request_exception=False)
    client.force_login(coordinator_a)
    deep = "[" * 100_000 + "]" * 100_000
    body = f'{{"client_id": "{uuid.uuid4()}", "answers": {{"craving": {deep}}}}}'
    reply = client.post(url(open_month1, "submit"), body, content_type="application/json")
    assert reply.status_code == 400, (reply.status_code, reply.content[:100])


# 4. Digits that str.isdigit() accepts but int() refuses ------------------------------------


def test_dictionary_diary_days_in_superscript_is_a_problem_of_its_line(fresh_study):  # noqa: F811
    text = _header() + _line(
        variable="meetings", validation="integer", label="Meetings", annotation='@DIARY="days=²"'
    )
    with pytest.raises(DictionaryError) as caught:
        dictionary_import(study=fresh_study, text=text)
    assert {(line, col) for line, col, _ in caught.value.errors} == {(2, "Field Annotation")}
    assert any("days is a whole number" in message for *_, message in caught.value.errors)
    assert not Item.objects.filter(version__instrument__study=fresh_study).exists()


def test_analyses_page_from_parameter_in_superscript_is_not_a_server_error(study, pi):
    client = Client(raise_request_exception=False)
    client.force_login(pi)
    page = reverse("admin:recovery_analysisrun_study", args=[study.pk])
    assert client.get(page, {"from": "²"}).status_code == 200


def test_import_template_study_parameter_in_superscript_is_not_a_server_error(study, pi):
    client = Client(raise_request_exception=False)
    client.force_login(pi)
    reply = client.get(reverse("admin:surveys_participant_import_template"), {"study": "²"})
    assert reply.status_code == 200


# 5. A NUL character in a data dictionary (PostgreSQL's jsonb refuses \u0000) ---------------


def test_dictionary_nul_in_a_label_is_a_problem_of_its_line(fresh_study):  # noqa: F811
    text = _header() + _line(variable="q1", label="How are you\x00 today?")
    with pytest.raises(DictionaryError) as caught:
        dictionary_import(study=fresh_study, text=text)
    assert [(line, col) for line, col, _ in caught.value.errors] == [(2, "Field Label")]


@pytest.mark.django_db(transaction=True)
def test_api_the_same_enrolment_sent_twice_at_once_is_stored_once(study, coordinator_a):
    """The retry arrives while the first request is still saving: one is enrolled, the other
    told the person is (the study's row is locked around the check and the enrolment)."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (CI sets DATABASE_URL)")
    path = f"/api/v1/studies/{study.slug}/participants/"
    auth = bearer(coordinator_a)
    answers, barrier = [], threading.Barrier(3)

    def send():
        connections["default"].ensure_connection()
        barrier.wait()
        reply = Client().post(path, ENROL, content_type="application/json", **auth)
        answers.append(reply.status_code)
        connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 400, 400]
    assert Participant.objects.count() == 1
