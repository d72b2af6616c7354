"""Hypothesis fuzz of every form a participant's phone can post (issue 9: "a fuzz of every
input finds no 5xx"): the survey's no-JavaScript form, the meeting diary, the PIN screens, the
language switch, "send me a new link", e-consent and unsubscribe — with made-up fields and
values of any text (NUL bytes, very long, other scripts), signed in as a participant. Each
answer must be a page or a redirect, never a server error, and nothing half-saved: a survey
that was not accepted has no submitted response. (The API is fuzzed by schemathesis.)"""

import os

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveys.consent import ConsentInput
from surveys.links import participant_link_create
from surveys.models import Consent, Response
from tests.surveys.test_participant_survey import month1, participant  # noqa: F401

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", "0", "-1", "1e309", "NaN", "\x00", "a\x00b", "9" * 40, "today", "'; --"]),
)
FIELDS = {
    "survey": ["client_id", "attended_any", "craving", "fellowships", "overdose", "mat_status"],
    "diary": ["group", "format", "occurred_on", "client_id"],
    "pin": ["action", "pin", "repeat", "current"],
    "language": ["language", "next"],
    "new-link": ["contact", "language"],
    "consent": ["version", "typed_name", "agree", "text", "action"],
    "unsubscribe": ["confirm", "channel"],
}
FORMS = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda form: st.tuples(
        st.just(form),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS[form]), st.text(min_size=1, max_size=12)),
            st.one_of(TEXT, st.lists(TEXT, max_size=3)),
            max_size=6,
        ),
    )
)


def _clean(data: dict) -> dict:
    # The test client cannot encode None; every other value goes as typed.
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def phones(participant, month1, site_a, enrol, settings):  # noqa: F811
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 0
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 0
    signed = Client()
    _, token = participant_link_create(participant=participant)
    assert signed.get(f"/p/{token}").status_code == 302
    pending = enrol(
        site=site_a, code="NYC-0777", consent=ConsentInput(method=Consent.Method.ELECTRONIC)
    )
    consenting = Client()
    _, other = participant_link_create(participant=pending)
    consenting.get(f"/p/{other}")
    return {"signed": signed, "consenting": consenting, "month1": month1, "token": token}


@settings(
    max_examples=int(os.environ.get("FORM_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(form=FORMS)
def test_no_form_a_phone_can_post_gets_a_server_error(phones, form):
    name, data = form
    data = _clean(data)
    assignment = phones["month1"]
    path, client = {
        "survey": (f"/p/s/{assignment.pk}/followup/", phones["signed"]),
        "diary": ("/p/diary", phones["signed"]),
        "pin": ("/p/pin", phones["signed"]),
        "language": ("/p/language", phones["signed"]),
        "new-link": ("/p/new-link", Client()),
        "consent": ("/p/consent", phones["consenting"]),
        "unsubscribe": (f"/p/unsubscribe/{phones['token']}", Client()),
    }[name]
    submitted_before = Response.objects.filter(status=Response.Status.SUBMITTED).count()
    reply = client.post(path, data)
    assert reply.status_code < 500, (name, data, reply.status_code)
    if reply.status_code >= 400:  # refused: nothing was submitted by it
        assert Response.objects.filter(status=Response.Status.SUBMITTED).count() == submitted_before
