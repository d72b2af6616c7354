"""Consent at enrolment (on paper, verbal, or e-consent on the participant's phone), kept as
written with a printable copy; withdrawal that stops all contact and may erase identifiers."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from surveys.consent import (
    ConsentInput,
    econsent_give,
    participant_identifiers_erase,
    text_digest,
)
from surveys.links import participant_link_create
from surveys.models import (
    AuditEvent,
    Consent,
    ConsentVersion,
    ContactAttempt,
    Item,
    Message,
    Participant,
    ParticipantContact,
    ParticipantLink,
    Response,
)
from surveys.services import participant_status_change

CONTACT = {"first_name": "Rosa", "last_name": "Quintero", "email": "rosa.q@example.org"}


def enrol_form(site, **extra):
    return {
        "study": site.study_id, "site": site.pk, "code": "", "status": "active",
        "enrolled_on": str(timezone.localdate()), "timezone": "America/New_York",
        "language": "en", "preferred_channel": "email",
        "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
        "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
        "contact-0-email": "new.person@example.org",
        **extra,
    }  # fmt: skip


@pytest.fixture
def econsent_participant(site_a, enrol):
    return enrol(
        site=site_a,
        code="NYC-0501",
        enrolled_on=timezone.localdate(),
        timezone="America/New_York",
        contact=dict(CONTACT),
        consent=ConsentInput(method=Consent.Method.ELECTRONIC),
    )


@pytest.fixture
def phone(client, econsent_participant):
    _, token = participant_link_create(participant=econsent_participant)
    client.get(f"/p/{token}")
    return client


# --- Enrolment in the admin -------------------------------------------------------------------


def test_enrolling_with_paper_consent_records_version_date_and_who_obtained_it(
    client, site_a, coordinator_a
):
    client.force_login(coordinator_a)
    page = client.get("/admin/surveys/participant/add/").text
    assert "E-consent on the participant" in page and "Date of consent" in page
    day = timezone.localdate() - timedelta(days=2)
    reply = client.post(
        "/admin/surveys/participant/add/",
        enrol_form(site_a, consent_method="written", consent_date=str(day)),
    )
    assert reply.status_code == 302, reply.text[:3000]
    participant = Participant.objects.get()
    consent = participant.consents.get()
    assert (consent.method, consent.consented_on, consent.obtained_by) == (
        "written",
        day,
        coordinator_a,
    )
    assert consent.version.version == "1.0" and consent.recorded_by == coordinator_a
    assert not participant.consent_pending
    # Enrolment also made the surveys and planned the invitation.
    assert participant.assignments.count() == 5
    assert Message.objects.filter(assignment__participant=participant, sequence=0).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "This field is required."),
        ({"consent_method": "written"}, "Give the date of consent."),
        (
            {
                "consent_method": "verbal",
                "consent_date": str(timezone.localdate() + timedelta(days=3)),
            },
            "The date of consent cannot be in the future.",
        ),
        (
            {"consent_method": "written", "consent_date": "2024-06-01"},
            "Version 1.0 was approved on 2025-01-01, after this date.",
        ),
    ],
)
def test_enrolment_without_a_valid_consent_saves_nothing(
    client, site_a, coordinator_a, extra, message
):
    client.force_login(coordinator_a)
    reply = client.post("/admin/surveys/participant/add/", enrol_form(site_a, **extra))
    assert reply.status_code == 200
    assert message in reply.text
    assert not Participant.objects.exists() and not Consent.objects.exists()
    site_a.refresh_from_db()
    assert site_a.last_number == 0  # the study ID was not used up


def test_a_study_without_a_consent_text_says_what_to_do(client, site_a, coordinator_a):
    ConsentVersion.objects.all().delete()
    client.force_login(coordinator_a)
    reply = client.post(
        "/admin/surveys/participant/add/", enrol_form(site_a, consent_method="electronic")
    )
    assert "The study has no consent text yet" in reply.text
    assert not Participant.objects.exists()


def test_the_newest_approved_version_is_the_current_one(site_a, enrol, coordinator_a):
    ConsentVersion.objects.create(
        study=site_a.study, version="2.0", approved_on=date(2026, 6, 1), texts={"en": "New text."}
    )
    participant = enrol(
        site=site_a,
        enrolled_on=date(2026, 7, 1),
        consent=ConsentInput(
            method="verbal", consented_on=date(2026, 7, 1), obtained_by=coordinator_a
        ),
    )
    assert participant.consents.get().version.version == "2.0"
    with pytest.raises(ValidationError) as refused:
        enrol(
            site=site_a,
            enrolled_on=date(2026, 7, 1),
            consent=ConsentInput(method="verbal", consented_on=date(2026, 7, 1)),
        )
    assert list(refused.value.message_dict) == ["consent_obtained_by"]


# --- E-consent on the phone -------------------------------------------------------------------


def test_e_consent_comes_before_any_survey(phone, econsent_participant):
    assert econsent_participant.consent_pending
    home = phone.get("/p/")
    assert home.status_code == 302 and home["Location"] == "/p/consent"
    page = phone.get("/p/consent")
    assert page.status_code == 200
    assert "This study follows people in recovery" in page.text
    assert "version 1.0" in page.text
    month1 = econsent_participant.assignments.get(wave__slug="baseline")
    assert phone.get(f"/p/s/{month1.pk}/baseline/").status_code == 404
    api = f"/api/v1/participant/assignments/{month1.pk}/responses/baseline/draft/"
    body = {"client_id": "6f1c1f9e-3f5e-4f4e-9a36-1d2b9b0c7e11", "answers": {}}
    refused = phone.put(api, body, content_type="application/json")
    assert refused.status_code in (403, 404)
    assert phone.get("/p/pin").status_code == 404


def test_e_consent_needs_the_tick_and_a_typed_name_and_saves_nothing_without(
    phone, econsent_participant
):
    version = ConsentVersion.objects.get()
    reply = phone.post("/p/consent", {"version": version.pk, "typed_name": " "})
    assert reply.status_code == 400
    assert "Type your name to sign." in reply.text
    assert "Tick the box to say you agree." in reply.text
    assert not Consent.objects.exists()
    econsent_participant.refresh_from_db()
    assert econsent_participant.consent_pending


def test_e_consent_is_kept_as_read_with_the_typed_name_encrypted(phone, econsent_participant):
    version = ConsentVersion.objects.get()
    reply = phone.post(
        "/p/consent",
        {
            "version": version.pk,
            "text": text_digest(version.texts["en"]),
            "typed_name": "  Rosa   Quintero ",
            "agree": "yes",
        },
    )
    assert reply.status_code == 302 and reply["Location"] == "/p/consent/copy?new=1"
    consent = Consent.objects.get()
    assert consent.method == "electronic" and consent.obtained_by is None
    assert consent.typed_name == "Rosa Quintero"
    assert consent.text == version.texts["en"] and consent.language == "en"
    assert consent.agreed_at is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT typed_name FROM surveys_consent")
        assert "Rosa" not in cursor.fetchone()[0]
    copy = phone.get(reply["Location"]).text
    assert "Thank you. Your consent is saved" in copy
    assert "Rosa Quintero" in copy and consent.text_sha256 in copy
    assert phone.get("/p/").status_code == 200  # the surveys now open
    # A later version changes nothing in what was agreed to.
    ConsentVersion.objects.create(
        study=version.study, version="2.0", approved_on=date(2026, 9, 1), texts={"en": "Other."}
    )
    assert "This study follows people in recovery" in phone.get("/p/consent/copy").text
    assert phone.get("/p/consent").status_code == 302  # already given: back home


def test_e_consent_is_read_and_kept_in_the_participants_language(site_a, enrol, client):
    participant = enrol(
        site=site_a, language="es", consent=ConsentInput(method=Consent.Method.ELECTRONIC)
    )
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    page = client.get("/p/consent").text
    assert "Este estudio acompaña" in page and "Escriba su nombre para firmar" in page
    version = ConsentVersion.objects.get()
    shown = text_digest(version.texts["es"])
    client.post(
        "/p/consent", {"version": version.pk, "text": shown, "typed_name": "Ana", "agree": "yes"}
    )
    assert Consent.objects.get().language == "es"
    assert Consent.objects.get().text.startswith("Este estudio acompaña")


def test_consent_to_a_text_that_changed_meanwhile_is_refused(phone, econsent_participant):
    old = ConsentVersion.objects.get()
    ConsentVersion.objects.create(
        study=old.study, version="2.0", approved_on=date(2026, 9, 1), texts={"en": "New text."}
    )
    reply = phone.post("/p/consent", {"version": old.pk, "typed_name": "Rosa", "agree": "yes"})
    assert reply.status_code == 400
    assert "The consent text has just been updated" in reply.text
    assert "New text." in reply.text and not Consent.objects.exists()


def test_declining_records_nothing_and_says_how_to_come_back(phone, econsent_participant):
    reply = phone.post("/p/consent", {"action": "decline"})
    assert "You have not joined the study" in reply.text
    assert not Consent.objects.exists()


def test_a_consent_record_cannot_be_changed_or_deleted(phone, econsent_participant):
    econsent_give(participant=econsent_participant, typed_name="Rosa Q", agreed=True, language="en")
    consent = Consent.objects.get()
    consent.typed_name = "Someone else"
    with pytest.raises(ValidationError):
        consent.save()
    with pytest.raises(ValidationError):
        consent.delete()
    assert Consent.objects.get().typed_name == "Rosa Q"


def test_a_consent_text_someone_agreed_to_cannot_be_edited(client, site_a, enrol, staff_user):
    pi = staff_user(study=site_a.study, role="pi")
    consent = ConsentInput(method="written", consented_on=date(2026, 3, 1), obtained_by=pi)
    enrol(site=site_a, enrolled_on=date(2026, 3, 1), consent=consent)
    version = ConsentVersion.objects.get()
    client.force_login(pi)
    url = reverse("admin:surveys_consentversion_change", args=[version.pk])
    client.post(url, {"study": site_a.study_id, "version": "1.0", "approved_on": "2025-01-01",
                      "texts": '{"en": "Edited."}'})  # fmt: skip
    version.refresh_from_db()
    assert version.texts["en"].startswith("This study follows people")


# --- Printable copies for staff ---------------------------------------------------------------


def test_the_coordinator_prints_a_copy_and_the_opening_is_audited(
    client, site_a, site_b, enrol, coordinator_a, researcher
):
    mine = enrol(site=site_a, consent=ConsentInput(method=Consent.Method.ELECTRONIC))
    econsent_give(participant=mine, typed_name="Rosa Quintero", agreed=True, language="en")
    theirs = enrol(site=site_b, consent=ConsentInput(method=Consent.Method.ELECTRONIC))
    econsent_give(participant=theirs, typed_name="Lee Other", agreed=True, language="en")
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_consent_print", args=[mine.consents.get().pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Rosa Quintero" in page.text and "This study follows people" in page.text
    event = AuditEvent.objects.get(action="consent_view")
    assert (event.user, event.participant) == (coordinator_a, mine)
    assert "Rosa" not in str(event.details)
    other = reverse("admin:surveys_consent_print", args=[theirs.consents.get().pk])
    assert client.get(other).status_code == 404
    client.force_login(researcher)
    assert client.get(url).status_code == 403
    assert AuditEvent.objects.filter(action="consent_view").count() == 1


# --- Withdrawal: all contact stops, identifiers erased if asked -------------------------------


@pytest.fixture
def followed(site_a, enrol, coordinator_a):
    participant = enrol(
        site=site_a,
        enrolled_on=timezone.localdate() - timedelta(days=35),
        contact={**CONTACT, "phone": "+12125550199", "locator_notes": "Sister Ana: 555-0101"},
        consent=ConsentInput(method=Consent.Method.ELECTRONIC),
    )
    econsent_give(participant=participant, typed_name="Rosa Quintero", agreed=True, language="en")
    participant_link_create(participant=participant)
    ContactAttempt.objects.create(
        participant=participant, method="call", outcome="left_message",
        note="Spoke to her brother Luis", attempted_at=timezone.now(), by=coordinator_a,
    )  # fmt: skip
    baseline = participant.assignments.get(wave__slug="baseline")
    version = baseline.wave.instruments.get().versions.get()
    Item.objects.create(
        version=version, position=999, variable="sponsor_name", kind="text",
        label={"en": "Your sponsor's first name"}, identifier=True,
    )  # fmt: skip
    Response.objects.create(
        assignment=baseline, instrument=version.instrument, instrument_version=version,
        answers={"sponsor_name": "Marta", "craving": 4, "age": 31},
        status="submitted", started_at=timezone.now(), submitted_at=timezone.now(),
    )  # fmt: skip
    return participant


def test_withdrawal_stops_every_message_at_once(followed, coordinator_a):
    assert Message.objects.filter(assignment__participant=followed, status="queued").exists()
    participant_status_change(
        participant=followed, status="withdrawn", reason="Asked to stop", changed_by=coordinator_a
    )
    assert not Message.objects.filter(assignment__participant=followed, status="queued").exists()
    assert Message.objects.filter(
        assignment__participant=followed, status="cancelled", reason="participant withdrawn"
    ).exists()
    # Data kept: nothing else erased.
    assert ParticipantContact.objects.filter(participant=followed).exists()
    assert Consent.objects.get().typed_name == "Rosa Quintero"


def test_withdrawal_with_erasure_removes_identifiers_everywhere_and_keeps_answers(
    client, followed, coordinator_a
):
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_participant_change", args=[followed.pk])
    page = client.get(url).text
    assert "On withdrawal, also erase identifiers" in page
    form = _change_form(
        followed, status_reason="Asked to stop and to erase her details", erase_identifiers="on"
    )
    reply = client.post(url, form)
    assert reply.status_code == 302, reply.text[:3000]
    followed.refresh_from_db()
    assert followed.status == "withdrawn" and followed.identifiers_erased_at is not None
    assert not ParticipantContact.objects.filter(participant=followed).exists()
    assert Consent.objects.get().typed_name == ""
    assert ContactAttempt.objects.get().note == ""
    assert not ParticipantLink.objects.filter(participant=followed, revoked_at=None).exists()
    assert Response.objects.get().answers == {"craving": 4, "age": 31}
    event = AuditEvent.objects.get(action="identifiers_erase")
    assert event.user == coordinator_a and event.participant == followed
    assert event.details["contact_details"] == 1 and event.details["identifier_answers"] == 1
    for value in ("Rosa", "Quintero", "rosa.q", "5550199", "Luis", "Marta"):
        assert value not in str(event.details)
    # Nothing identifying left in any table of the database, encrypted or not.
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM surveys_participantcontact")
        assert cursor.fetchone()[0] == 0
    # The page still opens, with the history; staff's free text went with the identifiers.
    after = client.get(url).text
    assert "Withdrawn" in after and "Asked to stop and to erase her details" not in after
    assert event.details["status_reasons"] == 1


def test_erasing_identifiers_is_only_for_a_withdrawal(followed):
    participant_status_change(participant=followed, status="lost", reason="x")
    with pytest.raises(ValidationError):
        participant_identifiers_erase(participant=followed)
    assert ParticipantContact.objects.filter(participant=followed).exists()


def _change_form(participant, **fields):
    form = {
        "site": participant.site_id, "code": participant.code, "status": "withdrawn",
        "timezone": participant.timezone, "language": "en", "preferred_channel": "email",
        "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "1",
        "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
        "contact-0-participant": participant.pk, "contact-0-email": CONTACT["email"],
        "contact-0-first_name": "Rosa", "contact-0-last_name": "Quintero",
        "contact-0-phone": "+12125550199", "contact-0-locator_notes": "Sister Ana: 555-0101",
    }  # fmt: skip
    for prefix in ("assignments", "status_changes", "links", "contact_attempts", "consents"):
        form |= {
            f"{prefix}-TOTAL_FORMS": "0",
            f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
    return form | fields


def test_nothing_typed_on_the_page_of_the_erasure_survives_it(client, followed, coordinator_a):
    """The call in which she asked is logged, and her address edited, on the same save that
    erases: the inline forms are saved first, then erased."""
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_participant_change", args=[followed.pk])
    form = _change_form(
        followed,
        status_reason="Asked by phone to stop and erase",
        erase_identifiers="on",
        **{
            "contact-0-locator_notes": "Moved to 12 Elm St",
            "contact_attempts-TOTAL_FORMS": "1",
            "contact_attempts-0-method": "call",
            "contact_attempts-0-outcome": "reached",
            "contact_attempts-0-note": "Rosa called from her mother's phone",
            "contact_attempts-0-attempted_at_0": "2026-11-20",
            "contact_attempts-0-attempted_at_1": "10:00:00",
        },
    )
    reply = client.post(url, form)
    assert reply.status_code == 302, reply.text[:3000]
    assert not ParticipantContact.objects.filter(participant=followed).exists()
    assert set(ContactAttempt.objects.values_list("note", flat=True)) == {""}
    assert ContactAttempt.objects.count() == 2  # the call is kept, without its note
    # The erased person's page takes no contact details or notes again.
    page = client.get(url).text
    assert 'name="contact-0-email"' not in page and "contact_attempts-TOTAL_FORMS" not in page


def test_identifiers_are_erased_for_someone_who_withdrew_earlier(client, followed, coordinator_a):
    participant_status_change(
        participant=followed, status="withdrawn", reason="Stopped", changed_by=coordinator_a
    )
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_participant_change", args=[followed.pk])
    reply = client.post(url, _change_form(followed, erase_identifiers="on"))
    assert reply.status_code == 302, reply.text[:3000]
    followed.refresh_from_db()
    assert followed.identifiers_erased_at is not None
    assert not ParticipantContact.objects.filter(participant=followed).exists()
    assert AuditEvent.objects.filter(action="identifiers_erase", participant=followed).count() == 1


def test_declining_withdraws_and_stops_every_message(phone, econsent_participant):
    assert Message.objects.filter(
        assignment__participant=econsent_participant, status="queued"
    ).exists()
    phone.post("/p/consent", {"action": "decline"})
    econsent_participant.refresh_from_db()
    assert econsent_participant.status == "withdrawn"
    change = econsent_participant.status_changes.get()
    assert change.reason == "Declined consent on their phone"
    assert not Message.objects.filter(
        assignment__participant=econsent_participant, status="queued"
    ).exists()


def test_a_text_edited_while_someone_reads_it_is_not_agreed_to(phone, econsent_participant):
    version = ConsentVersion.objects.get()
    page = phone.get("/p/consent").text
    digest = page.split('name="text" value="')[1].split('"')[0]
    # The admin refuses the edit while someone waits to consent; a change by other means:
    ConsentVersion.objects.filter(pk=version.pk).update(texts={"en": "Another text."})
    reply = phone.post(
        "/p/consent",
        {"version": version.pk, "text": digest, "typed_name": "Rosa", "agree": "yes"},
    )
    assert reply.status_code == 400 and "Another text." in reply.text
    assert not Consent.objects.exists()


def test_a_consent_text_being_read_cannot_be_edited_in_the_admin(
    client, econsent_participant, staff_user, site_a
):
    pi = staff_user(study=site_a.study, role="pi", username="the-pi")
    client.force_login(pi)
    version = ConsentVersion.objects.get()
    url = reverse("admin:surveys_consentversion_change", args=[version.pk])
    client.post(url, {"study": site_a.study_id, "version": "1.0", "approved_on": "2025-01-01",
                      "texts": '{"en": "Edited."}'})  # fmt: skip
    version.refresh_from_db()
    assert version.texts["en"].startswith("This study follows people")


def test_no_answers_are_entered_by_staff_before_consent(
    client, econsent_participant, coordinator_a
):
    client.force_login(coordinator_a)
    baseline = econsent_participant.assignments.get(wave__slug="baseline")
    reply = client.put(
        f"/api/v1/assignments/{baseline.pk}/responses/baseline/draft/",
        {"client_id": "6f1c1f9e-3f5e-4f4e-9a36-1d2b9b0c7e12", "answers": {}},
        content_type="application/json",
    )
    assert reply.status_code == 403 and "not given consent" in reply.json()["detail"]
    assert not Response.objects.exists()
