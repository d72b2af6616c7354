"""When the database cannot be reached (down, restarting, the connection dropped), every
request fails cleanly: 503 with Retry-After — JSON on the API (which the survey page's
script queues and sends again), a short page in the browser's language elsewhere — never a
server error page. Each query is refused here as the driver refuses it when the server is
gone (the real restart is drilled by ``benchmarks/load.py --restart-postgres-at``)."""

import uuid
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse

from surveys.models import Response
from tests.api.test_responses_api import ANSWERS
from tests.surveys.test_participant_survey import api, month1, participant, signed_in  # noqa: F401


@contextmanager
def database_down():
    def refuse(execute, sql, params, many, context):
        raise OperationalError(
            "connection to server at 127.0.0.1, port 5432 failed: Connection refused"
        )

    with connection.execute_wrapper(refuse):
        yield


def test_a_participants_submit_is_503_with_retry_after_and_saves_nothing_then_goes_through(
    signed_in,  # noqa: F811
    month1,  # noqa: F811
):
    signed_in.raise_request_exception = False
    body = {"client_id": str(uuid.uuid4()), "answers": ANSWERS}
    with database_down():
        reply = signed_in.post(api(month1, "submit"), body, content_type="application/json")
    assert reply.status_code == 503 and reply["Retry-After"] == "30"
    assert "Send the request again in a minute" in reply.json()["detail"]
    assert not Response.objects.filter(assignment=month1).exists()
    # the phone sends it again once the database is back: stored once
    reply = signed_in.post(api(month1, "submit"), body, content_type="application/json")
    assert reply.status_code == 201
    assert Response.objects.filter(assignment=month1, status="submitted").count() == 1


def test_a_participant_page_is_a_short_page_in_the_browsers_language(signed_in):  # noqa: F811
    signed_in.raise_request_exception = False
    with database_down():
        reply = signed_in.get("/p/", HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")
        english = signed_in.get("/p/")
    assert reply.status_code == 503 and reply["Retry-After"] == "30"
    assert "Vuelva a intentarlo en un minuto" in reply.text
    assert "Server Error" not in reply.text and "Traceback" not in reply.text
    assert english.status_code == 503 and "Please try again in a minute" in english.text
    assert "Content-Security-Policy" in english.headers  # still the site's headers


def test_staff_pages_and_the_api_are_503_too(coordinator_a, study):
    client = Client(raise_request_exception=False)
    client.force_login(coordinator_a)
    with database_down():
        page = client.get(reverse("admin:surveys_participant_changelist"))
        served = client.get(f"/api/v1/studies/{study.slug}/retention/")
    assert page.status_code == 503 and "try again in a minute" in page.text.lower()
    assert served.status_code == 503 and served["Content-Type"] == "application/json"


def test_other_database_errors_stay_server_errors(coordinator_a, study):
    """Only an unreachable database is a 503: a bug (here an SQL error) is still a 500."""
    from django.db import ProgrammingError

    def broken(execute, sql, params, many, context):
        raise ProgrammingError('column "nothing" does not exist')

    client = Client(raise_request_exception=False)
    client.force_login(coordinator_a)
    with connection.execute_wrapper(broken):
        served = client.get(f"/api/v1/studies/{study.slug}/retention/")
    assert served.status_code == 500 and served.json() == {"detail": "Server error."}
    assert "Retry-After" not in served


@pytest.mark.parametrize("path", ["/api/v1/schema/"])
def test_the_schema_documents_the_503(client, db, path):
    assert "'503'" in client.get(path).text
