"""The staff API: tokens (hashed, expiring, revocable), enrolment with consent, and the call
list, each scoped like the admin pages."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from surveys.models import (
    AuditEvent,
    Consent,
    Message,
    Participant,
    ParticipantContact,
    StaffApiToken,
)
from surveys.tokens import SCOPES, staff_token_create, staff_token_revoke
from tests.surveys.test_contact_log import overdue


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def coordinator_key(coordinator_a):
    return staff_token_create(user=coordinator_a, name="laptop", scopes=SCOPES)[1]


# --- Tokens -----------------------------------------------------------------------------------


def test_a_token_is_made_in_the_admin_shown_once_and_stored_hashed(client, coordinator_a):
    client.force_login(coordinator_a)
    reply = client.post(
        "/admin/surveys/staffapitoken/add/",
        {"name": "R on my laptop", "days": "30", "scope_choices": ["read", "export"]},
    )
    assert reply.status_code == 200 and "no-store" in reply["Cache-Control"]
    text = reply.text
    assert "Copy it now: it is not shown again." in text
    key = text.split('id="api-key" type="text" readonly value="')[1].split('"')[0]
    assert key not in reply.cookies.output()  # never in the messages cookie
    token = StaffApiToken.objects.get()
    assert token.user == coordinator_a and token.name == "R on my laptop"
    assert key not in token.key_hash and key.startswith(token.prefix)
    assert (token.expires_at - token.created_at).days == 30
    assert token.scope_set == {"read", "export"}
    client.logout()
    assert client.get("/api/v1/studies/", **bearer(key)).status_code == 200
    # The list of tokens never shows the key again.
    client.force_login(coordinator_a)
    assert key not in client.get("/admin/surveys/staffapitoken/").text


def test_a_revoked_expired_or_unknown_key_is_refused(client, coordinator_a, coordinator_key):
    assert client.get("/api/v1/studies/", **bearer(coordinator_key)).status_code == 200
    assert client.get("/api/v1/studies/", **bearer("not-a-key")).status_code == 401
    token = StaffApiToken.objects.get()
    staff_token_revoke(token=token)
    assert client.get("/api/v1/studies/", **bearer(coordinator_key)).status_code == 401
    _, old = staff_token_create(
        user=coordinator_a, name="old", now=timezone.now() - timedelta(days=100), days=30
    )
    refused = client.get("/api/v1/studies/", **bearer(old))
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


def test_a_key_stops_working_when_its_owner_is_deactivated(client, coordinator_a, coordinator_key):
    coordinator_a.is_active = False
    coordinator_a.save()
    assert client.get("/api/v1/studies/", **bearer(coordinator_key)).status_code == 401


def test_each_user_sees_only_their_own_tokens(client, coordinator_a, researcher):
    staff_token_create(user=coordinator_a, name="coordinator's", scopes=SCOPES)
    staff_token_create(user=researcher, name="researcher's", scopes=SCOPES)
    client.force_login(researcher)
    page = client.get("/admin/surveys/staffapitoken/").text
    assert "researcher&#x27;s" in page and "coordinator&#x27;s" not in page


def test_a_token_does_only_what_its_scopes_allow(client, study, coordinator_a):
    _, reader = staff_token_create(user=coordinator_a, name="dashboard", scopes=["read"])
    assert client.get("/api/v1/studies/", **bearer(reader)).status_code == 200
    assert (
        client.get(f"/api/v1/studies/{study.slug}/retention/", **bearer(reader)).status_code == 200
    )
    refused = {
        "contacts": client.get("/api/v1/call-list/", **bearer(reader)),
        "export": client.get(f"/api/v1/studies/{study.slug}/export/", **bearer(reader)),
        "write": client.post(
            f"/api/v1/studies/{study.slug}/participants/",
            ENROL,
            content_type="application/json",
            **bearer(reader),
        ),
    }
    for scope, reply in refused.items():
        assert reply.status_code == 403
        assert f"lacks the '{scope}' scope" in reply.json()["detail"]
    assert not Participant.objects.exists()  # the refused enrolment saved nothing
    _, caller = staff_token_create(user=coordinator_a, name="phone bank", scopes=["contacts"])
    assert client.get("/api/v1/call-list/", **bearer(caller)).status_code == 200
    assert client.get("/api/v1/studies/", **bearer(caller)).status_code == 403
    # the browser's session is not limited by any token's scopes
    client.force_login(coordinator_a)
    assert client.get("/api/v1/call-list/").status_code == 200


def test_a_token_without_a_known_scope_is_not_made(coordinator_a):
    for scopes, message in (([], "at least one"), (["read", "admin"], "not admin")):
        with pytest.raises(ValidationError) as excinfo:
            staff_token_create(user=coordinator_a, name="x", scopes=scopes)
        assert message in excinfo.value.message_dict["scopes"][0]
    assert not StaffApiToken.objects.exists()


def test_every_api_endpoint_needs_a_known_scope():
    from django.urls import get_resolver

    from api.auth import StaffTokenAuthentication, TokenScope, view_api_scope

    seen = 0
    for pattern in get_resolver("api.urls").url_patterns:
        view = pattern.callback.cls
        instance = view()
        public = pattern.name in ("schema", "docs")  # the API's shape, no data: AllowAny
        tokens = any(isinstance(a, StaffTokenAuthentication) for a in instance.get_authenticators())
        if tokens and not public:
            # a view that sets its own permission classes must keep the scope check
            assert any(isinstance(p, TokenScope) for p in instance.get_permissions()), pattern.name
        for method in instance.allowed_methods:
            if method in ("OPTIONS", "HEAD"):
                continue
            assert view_api_scope(view, method) in SCOPES, (pattern.name, method)
            seen += 1
    assert seen >= 12


def test_an_identified_export_by_token_needs_the_contacts_scope_too(client, study, staff_user):
    from surveys.models import StaffRole

    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    _, exporter = staff_token_create(user=pi, name="R", scopes=["export"])
    url = f"/api/v1/studies/{study.slug}/export/?identified=true&reason=Tracing+for+follow-up"
    refused = client.get(url, **bearer(exporter))
    assert refused.status_code == 403 and "'contacts' scope" in refused.json()["detail"]
    assert (
        client.get(f"/api/v1/studies/{study.slug}/export/", **bearer(exporter)).status_code == 200
    )
    _, both = staff_token_create(user=pi, name="R2", scopes=["export", "contacts"])
    assert client.get(url, **bearer(both)).status_code == 200


# --- Enrolment --------------------------------------------------------------------------------


ENROL = {
    "site": "NYC",
    "language": "es",
    "contact": {"first_name": "Luz", "phone": "+1 212 555 0142", "email": "luz@example.org"},
    "consent": {"method": "verbal", "date": "2026-03-02"},
}


def test_a_coordinator_enrols_at_their_site_with_consent(client, study, coordinator_key):
    reply = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        ENROL,
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert reply.status_code == 201, reply.json()
    body = reply.json()
    assert body["study_id"] == "NYC-0001" and body["assignments"] == 5
    assert body["consent_pending"] is False
    participant = Participant.objects.get(code="NYC-0001")
    assert participant.language == "es" and participant.timezone == "America/New_York"
    assert participant.preferred_channel == "email"
    assert participant.contact.phone == "+1 212 555 0142"
    consent = participant.consents.get()
    assert (consent.method, str(consent.consented_on)) == ("verbal", "2026-03-02")
    assert consent.obtained_by.username == "coordinator-user"
    assert Message.objects.filter(assignment__participant=participant).exists()
    # The reply never echoes identifiers.
    assert "Luz" not in reply.text and "555" not in reply.text


def test_e_consent_by_the_api_leaves_the_participant_to_consent_on_the_phone(
    client, study, coordinator_key
):
    body = {**ENROL, "consent": {"method": "electronic"}}
    reply = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        body,
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert reply.status_code == 201 and reply.json()["consent_pending"] is True
    assert not Consent.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"contact": {"email": "not-an-address"}}, "email", "Enter a valid email address."),
        ({"contact": {"phone": "555-CALL-NOW"}}, "phone",
         "Letters are not allowed in a phone number: write it in digits (spaces and - ( ) . are "
         "fine), e.g. +1 555 010 4477."),
        ({"consent": {"method": "written"}}, "consent_date", "Give the date of consent."),
        ({"consent": {"method": "sworn"}}, "consent.method", '"sworn" is not a valid choice.'),
        ({"site": "XXX"}, "site", "The study has no site XXX."),
        ({"consent": {"method": "verbal", "date": "2026-03-02", "version": "9"}},
         "consent.version", "No consent version 9."),
        ({"contact": {"ssn": "1"}}, "contact", "Unknown fields: ssn."),
    ],
)  # fmt: skip
def test_bad_enrolments_get_field_errors_and_save_nothing(
    client, study, coordinator_key, change, field, message
):
    reply = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        {**ENROL, **change},
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert reply.status_code == 400
    assert message in reply.json()["errors"][field]
    assert not Participant.objects.exists() and not ParticipantContact.objects.exists()
    assert study.sites.get(code="NYC").last_number == 0


def test_an_enrolment_day_in_the_future_or_before_consent_is_a_400_on_enrolled_on(
    client, study, coordinator_key
):
    in_two_days = timezone.localdate() + timedelta(days=2)  # past midnight in every zone
    refused = {
        in_two_days.isoformat(): f"{in_two_days.isoformat()} is in the future: write the day "
        "the participant was enrolled, ",
        "2026-03-01": "2026-03-01 is before the consent date (2026-03-02): nobody is enrolled "
        "before they consent.",
    }
    for enrolled_on, message in refused.items():
        reply = client.post(
            f"/api/v1/studies/{study.slug}/participants/",
            {**ENROL, "enrolled_on": enrolled_on},
            content_type="application/json",
            **bearer(coordinator_key),
        )
        assert reply.status_code == 400, reply.json()
        errors = reply.json()["errors"]
        assert list(errors) == ["enrolled_on"]
        assert errors["enrolled_on"][0].startswith(message)
    assert not Participant.objects.exists() and not ParticipantContact.objects.exists()
    assert not Consent.objects.exists()
    assert study.sites.get(code="NYC").last_number == 0


def test_the_api_enrols_on_the_day_of_consent(client, study, coordinator_key):
    reply = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        {**ENROL, "enrolled_on": "2026-03-02"},
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert reply.status_code == 201, reply.json()
    assert reply.json()["enrolled_on"] == "2026-03-02"
    assert Participant.objects.get().enrolled_on.isoformat() == "2026-03-02"


def test_an_enrolment_sent_again_with_its_client_id_enrols_the_person_once(
    client, study, coordinator_key
):
    """Found by review: an enrolment without an e-mail address or phone number (names only,
    a locator note) sent again after a lost reply enrolled the person twice, each record sent
    every survey. With the request's ``client_id`` the second answer is the first's
    participant (200); the id used for another site's enrolment is a 409; another id, or none,
    enrols another person."""
    url = f"/api/v1/studies/{study.slug}/participants/"
    body = {
        "client_id": str(uuid.uuid4()),
        "site": "NYC",
        "contact": {"first_name": "Luz", "last_name": "Perez"},
        "consent": {"method": "verbal", "date": "2026-03-02"},
    }

    def send(data):
        return client.post(url, data, content_type="application/json", **bearer(coordinator_key))

    first, again = send(body), send(body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Participant.objects.count() == 1
    assert send({**body, "site": "LDN"}).status_code == 403  # not their site, first
    other = send({**body, "client_id": str(uuid.uuid4())})
    assert other.status_code == 201 and other.json()["study_id"] != first.json()["study_id"]
    assert Participant.objects.count() == 2


def test_an_enrolment_client_id_used_at_another_site_is_a_conflict(client, study, staff_user):
    pi = staff_user(study=study, role="pi", username="pi")
    key = staff_token_create(user=pi, name="pi", scopes=SCOPES)[1]
    url = f"/api/v1/studies/{study.slug}/participants/"
    body = {
        "client_id": str(uuid.uuid4()),
        "site": "NYC",
        "consent": {"method": "verbal", "date": "2026-03-02"},
    }
    assert client.post(url, body, content_type="application/json", **bearer(key)).status_code == 201
    reply = client.post(
        url, {**body, "site": "LDN"}, content_type="application/json", **bearer(key)
    )
    assert reply.status_code == 409 and reply.json()["code"] == "client_id_used"
    assert Participant.objects.count() == 1


def test_api_errors_are_named_by_the_fields_and_parameters_sent(
    client, study, coordinator_key, researcher
):
    """Found by review: a study ID already taken came back under Django's "__all__" (the
    documented shape says non_field, or the field), and the export's errors under its own
    option names ("sites", "waves"), not the parameters sent (site, wave)."""
    url = f"/api/v1/studies/{study.slug}/participants/"
    body = {"site": "NYC", "study_id": "NYC-0500", "consent": ENROL["consent"]}
    first = client.post(url, body, content_type="application/json", **bearer(coordinator_key))
    assert first.status_code == 201
    again = client.post(url, body, content_type="application/json", **bearer(coordinator_key))
    assert again.status_code == 400
    assert again.json()["errors"] == {
        "study_id": ["A participant of this study has this study ID."]
    }
    key = staff_token_create(user=researcher, name="r", scopes=SCOPES)[1]
    reply = client.get(
        f"/api/v1/studies/{study.slug}/export/",
        {"site": "XX", "wave": "m99", "status": "gone"},
        **bearer(key),
    )
    assert reply.status_code == 400
    assert set(reply.json()["errors"]) == {"site", "wave", "status"}


def test_nobody_enrols_outside_their_sites(client, study, coordinator_key, researcher):
    other_site = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        {**ENROL, "site": "LDN"},
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert other_site.status_code == 403
    _, key = staff_token_create(user=researcher, name="r", scopes=SCOPES)
    as_researcher = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        ENROL,
        content_type="application/json",
        **bearer(key),
    )
    assert as_researcher.status_code == 403
    assert not Participant.objects.exists()


def test_another_studys_slug_is_not_found(client, coordinator_key, db):
    from recovery.services import study_create_from_template

    other = study_create_from_template(slug="other", name="Other", sites=[("X", "X", "UTC")])
    reply = client.post(
        f"/api/v1/studies/{other.slug}/participants/",
        ENROL,
        content_type="application/json",
        **bearer(coordinator_key),
    )
    assert reply.status_code == 404


# --- Call list --------------------------------------------------------------------------------


@pytest.fixture
def overdue_pair(site_a, site_b, enrol):
    mine = enrol(
        site=site_a, code="NYC-0042", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4477"},
    )  # fmt: skip
    theirs = enrol(
        site=site_b, code="LDN-0007", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+44 20 7946 0018"},
    )  # fmt: skip
    overdue(mine, days_left=2)
    overdue(theirs, days_left=5)
    return mine, theirs


def test_the_call_list_api_is_scoped_and_shows_phones_only_to_coordinators(
    client, overdue_pair, coordinator_key, researcher, staff_user, study
):
    rows = client.get("/api/v1/call-list/", **bearer(coordinator_key)).json()
    assert [(r["study_id"], r["wave"], r["phone"], r["overdue"]) for r in rows] == [
        ("NYC-0042", "m1", "+1 555 010 4477", True)
    ]
    _, key = staff_token_create(user=researcher, name="r", scopes=SCOPES)
    rows = client.get("/api/v1/call-list/", **bearer(key)).json()
    assert [(r["study_id"], r["phone"]) for r in rows] == [("NYC-0042", None), ("LDN-0007", None)]
    pi = staff_user(study=study, role="pi", username="pi")
    _, key = staff_token_create(user=pi, name="p", scopes=SCOPES)
    rows = client.get("/api/v1/call-list/", **bearer(key)).json()
    assert [r["phone"] for r in rows] == ["+1 555 010 4477", "+44 20 7946 0018"]


def test_the_call_list_api_costs_the_same_queries_for_few_or_many(
    client, site_a, enrol, coordinator_key
):
    def add(n):
        for _ in range(n):
            participant = enrol(
                site=site_a, enrolled_on=timezone.localdate() - timedelta(days=30),
                contact={"phone": "+1 555 010 4477"},
            )  # fmt: skip
            overdue(participant)

    add(2)
    client.get("/api/v1/call-list/", **bearer(coordinator_key))  # marks the key as used
    with CaptureQueriesContext(connection) as few:
        assert len(client.get("/api/v1/call-list/", **bearer(coordinator_key)).json()) == 2
    add(12)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/v1/call-list/", **bearer(coordinator_key)).json()) == 14
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


def test_a_head_on_the_call_list_api_logs_no_phones_shown(client, overdue_pair, coordinator_key):
    """Found by review: HEAD was served by the call list's GET, which logged the phone
    numbers as shown to the coordinator though a HEAD's answer has no body."""
    head = client.head("/api/v1/call-list/", **bearer(coordinator_key))
    assert head.status_code == 200 and not head.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_VIEW).exists()
    client.get("/api/v1/call-list/", **bearer(coordinator_key))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_VIEW).count() == 1


# --- Retention summary ------------------------------------------------------------------------


def test_the_retention_summary_api_counts_only_the_users_sites(
    client, study, overdue_pair, coordinator_key, researcher
):
    from surveys.models import Assignment

    mine, theirs = overdue_pair
    Assignment.objects.filter(participant=theirs, wave__slug="baseline").update(
        status="completed", completed_at=timezone.now()
    )
    Assignment.objects.filter(participant=mine, wave__slug="baseline").update(status="missed")
    url = f"/api/v1/studies/{study.slug}/retention/"
    body = client.get(url, **bearer(coordinator_key)).json()
    baseline = next(w for w in body["waves"] if w["name"] == "Baseline")
    assert (baseline["completed"], baseline["missed"], baseline["rate"]) == (0, 1, 0.0)
    assert client.get(url + "?site=LDN", **bearer(coordinator_key)).status_code == 400
    _, key = staff_token_create(user=researcher, name="r", scopes=SCOPES)
    body = client.get(url + "?subgroup=gender", **bearer(key)).json()
    baseline = next(w for w in body["waves"] if w["name"] == "Baseline")
    assert (baseline["completed"], baseline["missed"], baseline["rate"]) == (1, 1, 0.5)
    assert body["subgroup"]["name"] == "gender"
    refused = client.get(url + "?subgroup=shoe_size", **bearer(key))
    assert refused.status_code == 400 and "gender" in refused.json()["errors"]["subgroup"][0]


@pytest.mark.parametrize(
    "query, name",
    [
        ("retention/?site=NYC%00", "site"),
        ("retention/?subgroup=gender%00", "subgroup"),
        ("export/?site=NYC%00&wave=m1", "site"),
        ("dictionary/?language=en%00", "language"),
    ],
)
def test_a_nul_character_in_a_query_parameter_is_a_400_on_it_before_any_query(
    client, study, coordinator_key, query, name
):
    """Found by review: ``?site=`` with a NUL character went into the database query, which
    PostgreSQL's driver refuses: a server error (500) instead of a 400 on the parameter."""
    sent = []

    def record(execute, sql, params, many, context):
        sent.extend(str(p) for p in (params or ()) if isinstance(p, str))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        reply = client.get(f"/api/v1/studies/{study.slug}/{query}", **bearer(coordinator_key))
    assert reply.status_code == 400
    assert reply.json() == {"errors": {name: ["Null characters are not allowed."]}}
    assert not [p for p in sent if "\x00" in p]


# --- Dataset export ---------------------------------------------------------------------------


def test_the_dataset_export_api_streams_the_same_scoped_audited_file(
    client, study, overdue_pair, coordinator_key, researcher
):
    import io

    import pandas as pd

    from surveys.models import AuditEvent

    url = f"/api/v1/studies/{study.slug}/export/"
    reply = client.get(url + "?shape=wide&site=NYC", **bearer(coordinator_key))
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(b"".join(reply.streaming_content)))
    assert list(frame["site"]) == ["NYC"] and "study_id" not in frame.columns
    # A coordinator asking for another site's rows gets none of them.
    other = client.get(url + "?shape=wide&site=LDN", **bearer(coordinator_key))
    assert pd.read_csv(io.BytesIO(b"".join(other.streaming_content))).empty
    _, key = staff_token_create(user=researcher, name="r", scopes=SCOPES)
    refused = client.get(url + "?identified=true&reason=because+I+want+it", **bearer(key))
    assert refused.status_code == 400 and "principal investigators" in str(refused.json())
    bad = client.get(url + "?format=docx", **bearer(key))
    assert bad.status_code == 400 and "format" in bad.json()["errors"]
    parquet = client.get(url + "?format=parquet", **bearer(key))
    assert parquet["Content-Type"] == "application/vnd.apache.parquet"
    assert pd.read_parquet(io.BytesIO(b"".join(parquet.streaming_content))).shape[0] == 10
    assert AuditEvent.objects.filter(action="dataset_export").count() == 3
    assert client.get("/api/v1/studies/nope/export/", **bearer(key)).status_code == 404


# Enrolled without a date: today where the participant lives, not the server's UTC day.


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "now", "local_today"),
    [
        # 21:00 on 1 June in New York (EDT) is already 2 June in UTC.
        ("America/New_York", utc(2026, 6, 2, 1, 0), date(2026, 6, 1)),
        # 02:00 on 2 June on Kiritimati (UTC+14) is still 1 June in UTC.
        ("Pacific/Kiritimati", utc(2026, 6, 1, 12, 0), date(2026, 6, 2)),
    ],
)
def test_api_enrolment_without_a_date_uses_the_participants_local_day(
    client, study, coordinator_a, monkeypatch, zone, now, local_today
):
    monkeypatch.setattr(timezone, "now", lambda: now)
    _, key = staff_token_create(user=coordinator_a, name="laptop", scopes=SCOPES)
    reply = client.post(
        f"/api/v1/studies/{study.slug}/participants/",
        {
            "site": "NYC",
            "timezone": zone,
            "contact": {"email": "luz@example.org"},
            "consent": {"method": "verbal", "date": "2026-06-01"},
        },  # no enrolled_on: "today"
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert reply.status_code == 201, reply.json()
    participant = Participant.objects.get()
    month1 = participant.assignments.get(wave__slug="m1")
    assert (participant.enrolled_on, month1.due_day()) == (
        local_today,
        local_today + timedelta(days=30),
    )


def test_a_model_error_on_no_field_is_non_field_in_the_api():
    """Django names it "__all__"; the API's documented shape says non_field."""
    from api.exceptions import api_exception_handler

    reply = api_exception_handler(ValidationError({"__all__": ["Both or neither."]}), {})
    assert reply.status_code == 400
    assert reply.data == {"errors": {"non_field": ["Both or neither."]}}
