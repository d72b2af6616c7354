"""The API against its own OpenAPI schema (issue 9): schemathesis generates requests for every
operation — valid ones and malformed ones — with a principal investigator's API token (every
scope) and with a participant's session, and checks each answer: never a 5xx, and the status
code, content type, headers and body are the ones the schema documents.

The app runs in this process (WSGI), on the test database, seeded with a study whose
participants, assignments and surveys the generated ids can hit. ``SCHEMATHESIS_EXAMPLES``
sets the examples per operation (default 25; the README's run used 200)."""

import os
from datetime import timedelta

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from surveys.links import participant_link_create
from surveys.models import StaffRole
from surveys.tokens import SCOPES, staff_token_create

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
PARTICIPANT_PATHS = "/api/v1/participant/"


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: the app must not close the test's database connection at
    the end of each request. (After ``seeded``: the test client connects them again.)"""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db, study, site_a, enrol, staff_user, settings):
    """A study with an open month-1 survey, a PI's token and a participant's session cookie."""
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 0  # one address sends every request here
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    _, key = staff_token_create(user=pi, name="fuzz", scopes=SCOPES)
    participant = enrol(
        site=site_a, code="NYC-0042", enrolled_on=timezone.localdate() - timedelta(days=30)
    )
    _, token = participant_link_create(participant=participant)
    from django.test import Client

    phone = Client()
    assert phone.get(f"/p/{token}").status_code == 302
    assert phone.get("/p/").status_code == 200  # the home page sets the CSRF cookie
    csrf = phone.cookies["csrftoken"].value
    return {
        "staff": {"headers": {"Authorization": f"Bearer {key}"}},
        "participant": {
            "cookies": {"sessionid": phone.cookies["sessionid"].value, "csrftoken": csrf},
            "headers": {"X-CSRFToken": csrf},
        },
        "study": study,
    }


def operations():
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    return [result.ok() for result in schema.get_all_operations()]


def describe(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {str(exc).strip()[:800]}"]
    for inner in getattr(exc, "exceptions", ()):
        parts.append(describe(inner))
    return "\n  ".join(parts)


def fuzz(operation, mode: GenerationMode, credentials: dict) -> list[str]:
    """Run ``EXAMPLES`` generated requests of one mode against one operation; the failures."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case):
        try:
            case.cookies = {**(case.cookies or {}), **credentials.get("cookies", {})}
            case.call_and_validate(headers=credentials["headers"])
        except BaseException as exc:  # schemathesis' failed checks (a BaseExceptionGroup)
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label} ({mode.value}): {describe(exc)}")
            raise

    try:
        run()
    except BaseException as exc:  # hypothesis re-raised the smallest failing example: recorded
        if isinstance(exc, KeyboardInterrupt):
            raise
    return failures


def test_every_operation_answers_as_documented_and_never_5xx(seeded, keep_test_connection):
    found = operations()
    assert len(found) >= 13  # every operation of api/urls.py, each method
    failures: list[str] = []
    for operation in found:
        who = "participant" if operation.path.startswith(PARTICIPANT_PATHS) else "staff"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz(operation, mode, seeded[who])
    assert not failures, "\n\n".join(dict.fromkeys(failures))
