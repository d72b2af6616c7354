"""Issue 9: identifiers re-encrypted under a new key; role changes audited; the audit log
downloadable by principal investigators (and that download audited too)."""

import csv
import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from surveys.consent import participant_identifiers_erase
from surveys.fields import contact_lookup
from surveys.models import (
    AuditEvent,
    ContactAttempt,
    ParticipantContact,
    ParticipantStatusChange,
    SafetyAlert,
    Site,
    StaffRole,
    Study,
)
from surveys.safety import safety_alert_follow_up
from surveys.selectors import participant_timeline
from surveys.services import (
    contact_attempt_log,
    participant_status_change,
    staff_role_assign,
    staff_role_remove,
)

CONTACT = {
    "first_name": "Rosa",
    "last_name": "Marquez",
    "email": "rosa.m@example.org",
    "phone": "+12125550143",
    "locator_notes": "Sister in Queens, call after 6",
}
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored(participant) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT first_name, last_name, email, phone, locator_notes "
            "FROM surveys_participantcontact WHERE participant_id = %s",
            [participant.pk],
        )
        return dict(
            zip(
                ("first_name", "last_name", "email", "phone", "locator_notes"),
                cursor.fetchone(),
                strict=True,
            )
        )


# Staff's free text about a participant, which may name people: (table, column, text).
FREE_TEXT = (
    ("surveys_contactattempt", "note", "Spoke to her brother Luis on Atlantic Ave"),
    ("surveys_participantstatuschange", "reason", "Moved in with her aunt Dolores"),
    ("surveys_safetyalert", "follow_up_note", "Called Rosa's sponsor Marta; safe tonight"),
)


def staff_free_text(participant) -> dict:
    """The three staff free-text columns as stored for the participant: {column: [values]}."""
    found = {}
    with connection.cursor() as cursor:
        for table, column, _ in FREE_TEXT:
            cursor.execute(
                f"SELECT {column} FROM {table} WHERE participant_id = %s",  # noqa: S608
                [participant.pk],
            )
            found[column] = [row[0] for row in cursor.fetchall()]
    return found


def write_free_text(participant, user=None) -> None:
    """A contact note, a status reason and an alert follow-up, through the services staff use."""
    contact_attempt_log(
        participant=participant, method="call", outcome="reached", by=user, note=FREE_TEXT[0][2]
    )
    participant_status_change(
        participant=participant, status="lost", reason=FREE_TEXT[1][2], changed_by=user
    )
    alert = SafetyAlert.objects.create(
        study=participant.study,
        participant=participant,
        assignment=participant.assignments.first(),
        variable="overdose",
        question="Did you overdose?",
        answer="yes",
        created_at=timezone.now(),
    )
    safety_alert_follow_up(alert=alert, user=user, note=FREE_TEXT[2][2])


def test_staff_free_text_is_encrypted_at_rest_and_read_back_in_clear(site_a, enrol, coordinator_a):
    rosa = enrol(site=site_a, contact=CONTACT)
    write_free_text(rosa, coordinator_a)
    raw = staff_free_text(rosa)
    for _, column, clear in FREE_TEXT:
        (token,) = raw[column]
        assert token.startswith("gAAAA")  # a Fernet token
        # no word of it (short ones may turn up in base64 by chance)
        assert not [word for word in clear.split() if len(word) > 4 and word in token]
    assert ContactAttempt.objects.get(participant=rosa).note == FREE_TEXT[0][2]
    assert ParticipantStatusChange.objects.get(participant=rosa).reason == FREE_TEXT[1][2]
    assert SafetyAlert.objects.get(participant=rosa).follow_up_note == FREE_TEXT[2][2]
    timeline = participant_timeline(participant=rosa, show_staff_notes=True)
    details = " ".join(event.detail for event in timeline)
    assert FREE_TEXT[0][2] in details and FREE_TEXT[1][2] in details


def test_erasing_identifiers_blanks_the_encrypted_staff_free_text(site_a, enrol, coordinator_a):
    rosa = enrol(site=site_a, contact=CONTACT)
    write_free_text(rosa, coordinator_a)
    contact_attempt_log(participant=rosa, method="text", outcome="no_answer", by=coordinator_a)
    participant_status_change(
        participant=rosa, status="withdrawn", reason="Asked to stop", changed_by=coordinator_a
    )
    counts = participant_identifiers_erase(participant=rosa, by=coordinator_a)
    # only the values that were there count (the attempt without a note is not one)
    assert (counts["contact_notes"], counts["status_reasons"], counts["alert_notes"]) == (1, 2, 1)
    assert staff_free_text(rosa) == {"note": ["", ""], "reason": ["", ""], "follow_up_note": [""]}
    assert set(ContactAttempt.objects.values_list("note", flat=True)) == {""}


def test_the_migration_encrypts_existing_staff_free_text_and_going_back_decrypts_it(
    site_a, enrol, coordinator_a
):
    import importlib

    from django.db.migrations.loader import MigrationLoader

    migration = importlib.import_module("surveys.migrations.0028_staff_free_text_encrypted")
    before = MigrationLoader(connection).project_state(("surveys", "0027_dataset_line_plan_recipe"))
    rosa = enrol(site=site_a, contact=CONTACT)
    write_free_text(rosa, coordinator_a)
    migration.decrypt(before.apps, None)  # the columns as they were before: plain text
    assert staff_free_text(rosa) == {column: [clear] for _, column, clear in FREE_TEXT}

    migration.encrypt(before.apps, None)
    migration.encrypt(before.apps, None)  # run again (cut short and restarted): no double layer
    raw = staff_free_text(rosa)
    assert all(raw[column][0].startswith("gAAAA") for _, column, _ in FREE_TEXT)
    assert ContactAttempt.objects.get(participant=rosa).note == FREE_TEXT[0][2]
    assert ParticipantStatusChange.objects.get(participant=rosa).reason == FREE_TEXT[1][2]
    assert SafetyAlert.objects.get(participant=rosa).follow_up_note == FREE_TEXT[2][2]


def test_rotating_the_key_re_encrypts_every_identifier_and_the_old_key_can_go(
    site_a, enrol, settings
):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    rosa = enrol(site=site_a, contact=CONTACT)
    other = enrol(site=site_a, contact={"email": "kim@example.org"})
    write_free_text(rosa)
    before = stored(rosa)
    free_before = staff_free_text(rosa)

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # step 1: the new key first, the old after it
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("encryption_keys_rotate", "--check", stdout=out)
    assert "surveys.ParticipantContact: 6 value(s) under another key" in out.getvalue()
    for model in ("ContactAttempt", "ParticipantStatusChange", "SafetyAlert"):
        assert f"surveys.{model}: 1 value(s) under another key" in out.getvalue()
    assert "still need the other keys" in out.getvalue()

    call_command("encryption_keys_rotate", stdout=io.StringIO())  # step 2
    after = stored(rosa)
    for name, token in after.items():
        assert token != before[name]
        assert Fernet(NEW).decrypt(token.encode()).decode() == CONTACT[name]
    free_after = staff_free_text(rosa)
    for _, column, clear in FREE_TEXT:
        (token,) = free_after[column]
        assert token != free_before[column][0]
        assert Fernet(NEW).decrypt(token.encode()).decode() == clear
    out = io.StringIO()
    call_command("encryption_keys_rotate", "--check", stdout=out)  # step 3
    assert "other keys can be dropped" in out.getvalue()

    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # step 4: the old key is gone
    contact = ParticipantContact.objects.get(participant=rosa)
    assert {name: getattr(contact, name) for name in CONTACT} == CONTACT
    assert ParticipantContact.objects.get(participant=other).email == "kim@example.org"
    # "send me a new link" still finds them: the lookups are keyed hashes, not ciphertext
    assert contact.email_lookup == contact_lookup("email", CONTACT["email"])
    assert ContactAttempt.objects.get(participant=rosa).note == FREE_TEXT[0][2]
    assert ParticipantStatusChange.objects.get(participant=rosa).reason == FREE_TEXT[1][2]
    assert SafetyAlert.objects.get(participant=rosa).follow_up_note == FREE_TEXT[2][2]
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEYS_ROTATE)
    assert event.details["rows"]["surveys.ParticipantContact"] == 2
    assert event.details["rows"]["surveys.ContactAttempt"] == 1
    assert event.details["rows"]["surveys.SafetyAlert"] == 1


def test_values_under_a_key_no_longer_listed_are_counted_not_lost(site_a, enrol, settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    rosa = enrol(site=site_a, contact=CONTACT)
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    call_command("encryption_keys_rotate", stdout=io.StringIO())
    call_command("encryption_keys_rotate", stdout=io.StringIO())  # twice: still readable
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert (
        ParticipantContact.objects.get(participant=rosa).locator_notes == CONTACT["locator_notes"]
    )


def test_giving_changing_and_removing_a_role_is_audited_with_before_and_after(
    study, site_a, django_user_model
):
    pi = django_user_model.objects.create_user("pi", password="pw-long-123!")
    kim = django_user_model.objects.create_user("kim", password="pw-long-123!")
    site_b = Site.objects.create(study=study, code="LAX", name="Los Angeles")
    role = staff_role_assign(user=kim, study=study, role="coordinator", sites=[site_a], by=pi)
    staff_role_assign(user=kim, study=study, role="coordinator", sites=[site_a, site_b], by=pi)
    staff_role_assign(user=kim, study=study, role="coordinator", sites=[site_b, site_a], by=pi)
    staff_role_remove(staff_role=StaffRole.objects.get(pk=role.pk), by=pi)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ROLE_CHANGE).order_by("id")
    assert [(e.username, e.details["before"], e.details["after"]) for e in events] == [
        ("pi", None, {"role": "coordinator", "sites": [site_a.code]}),
        (
            "pi",
            {"role": "coordinator", "sites": [site_a.code]},
            {"role": "coordinator", "sites": sorted([site_a.code, "LAX"])},
        ),  # the same role again is no change, and not logged
        ("pi", {"role": "coordinator", "sites": sorted([site_a.code, "LAX"])}, None),
    ]
    assert {e.details["staff"] for e in events} == {"kim"}
    assert {e.study_id for e in events} == {study.pk}


@pytest.fixture
def pi_client(client, staff_user, study):
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    client.force_login(pi)
    return client


def test_a_role_given_in_the_admin_is_audited_with_the_pi_and_address(
    pi_client, study, site_a, django_user_model
):
    kim = django_user_model.objects.create_user("kim", password="pw-long-123!")
    response = pi_client.post(
        reverse("admin:surveys_staffrole_add"),
        {"user": kim.pk, "study": study.pk, "role": "coordinator", "sites": [site_a.pk]},
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action=AuditEvent.Action.ROLE_CHANGE).latest("id")
    assert (event.username, event.ip, event.details["staff"]) == ("pi", "203.0.113.9", "kim")
    role = StaffRole.objects.get(user=kim)
    pi_client.post(reverse("admin:surveys_staffrole_delete", args=[role.pk]), {"post": "yes"})
    event = AuditEvent.objects.filter(action=AuditEvent.Action.ROLE_CHANGE).latest("id")
    assert event.details["after"] is None and event.username == "pi"


def test_a_pi_downloads_their_studies_audit_events_and_the_download_is_audited(
    pi_client, study, site_a, enrol
):
    other = Study.objects.create(slug="elsewhere", name="Elsewhere")
    AuditEvent.objects.create(at=timezone.now(), action="dataset_export", study=other)
    rosa = enrol(site=site_a, code="NYC-0001")
    AuditEvent.objects.create(
        at=timezone.now(),
        action="response_view",
        study=study,
        participant=rosa,
        username="=HYPERLINK(1)",
        details={"fields": ["craving"]},
    )
    changelist = reverse("admin:surveys_auditevent_changelist")
    mine = AuditEvent.objects.filter(study=study)
    response = pi_client.post(
        changelist,
        {"action": "events_download", "_selected_action": [e.pk for e in AuditEvent.objects.all()]},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == mine.count()  # the other study's event is not theirs to see
    viewed = next(r for r in rows if r["action"] == "response_view")
    assert viewed["participant"] == "NYC-0001"
    assert viewed["username"] == "'=HYPERLINK(1)"  # no formula runs in a spreadsheet
    assert json.loads(viewed["details"]) == {"fields": ["craving"]}
    download = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_EXPORT)
    assert download.username == "pi" and download.details["rows"] == len(rows)


# --- Identifier views, contact changes and status changes --------------------------------------


def contact_views(**filters):
    return AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_VIEW, **filters)


def test_opening_a_participant_with_contact_details_is_audited_and_without_is_not(
    client, study, site_a, enrol, coordinator_a, researcher
):
    rosa = enrol(site=site_a, code="NYC-0001", contact=CONTACT)
    page = reverse("admin:surveys_participant_change", args=[rosa.pk])
    client.force_login(coordinator_a)
    reply = client.get(page, REMOTE_ADDR="198.51.100.3")
    assert reply.status_code == 200 and CONTACT["phone"] in reply.text
    event = contact_views().get()
    assert (event.username, event.participant, event.ip) == (
        coordinator_a.username,
        rosa,
        "198.51.100.3",
    )
    assert CONTACT["phone"] not in json.dumps(event.details)
    # A HEAD gets the headers only: nothing was shown (found by review: audited as seen).
    assert client.head(page).status_code == 200
    assert contact_views().count() == 1
    client.force_login(researcher)  # researchers see no contact details: nothing to audit
    reply = client.get(page)
    assert reply.status_code == 200 and CONTACT["phone"] not in reply.text
    assert contact_views().count() == 1


def test_changing_contact_details_is_audited_by_field_never_by_value(
    client, study, site_a, enrol, coordinator_a
):
    from tests.scope_helpers import body_of, form_data

    rosa = enrol(site=site_a, code="NYC-0001", contact=CONTACT)
    page = reverse("admin:surveys_participant_change", args=[rosa.pk])
    client.force_login(coordinator_a)
    data = form_data(body_of(client.get(page)), "participant_form")
    data["contact-0-phone"] = ["+12125550199"]
    data["contact-0-locator_notes"] = ["Moved to Brooklyn"]
    reply = client.post(page, data)
    assert reply.status_code == 302, reply.content[:2000]
    assert ParticipantContact.objects.get(participant=rosa).phone == "+12125550199"
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONTACT_CHANGE)
    assert event.details == {"fields": ["locator_notes", "phone"]}
    assert event.participant == rosa and event.username == coordinator_a.username
    assert "Brooklyn" not in json.dumps(event.details) and "0199" not in json.dumps(event.details)


def test_the_call_list_with_phones_is_audited_per_study_without_the_numbers(
    client, study, site_a, enrol, coordinator_a, researcher
):
    from surveys.tokens import staff_token_create
    from tests.surveys.test_contact_log import overdue

    overdue(enrol(site=site_a, code="NYC-0001", contact=CONTACT))
    client.force_login(coordinator_a)
    page = client.get("/admin/surveys/assignment/call-list/")
    assert CONTACT["phone"] in page.text
    event = contact_views().get()
    assert event.details == {"where": "call list page", "participants": ["NYC-0001"]}
    assert event.study == study
    _, key = staff_token_create(user=coordinator_a, name="calls", scopes=["contacts"])
    client.logout()
    client.get("/api/v1/call-list/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert contact_views().latest("id").details["where"] == "call list API"
    client.force_login(researcher)  # no phones shown to researchers: no event
    client.get("/admin/surveys/assignment/call-list/")
    assert contact_views().count() == 2


def test_a_status_change_is_audited_with_before_and_after(
    client, study, site_a, enrol, coordinator_a
):
    from surveys.services import participant_status_change

    rosa = enrol(site=site_a, code="NYC-0001")
    participant_status_change(
        participant=rosa,
        status="withdrawn",
        reason="Her partner found out",
        changed_by=coordinator_a,
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.STATUS_CHANGE)
    assert event.details == {"from": "active", "to": "withdrawn"}
    assert (event.participant, event.username, event.study) == (rosa, coordinator_a.username, study)
    assert "partner" not in json.dumps(event.details)


def test_a_value_no_listed_key_reads_is_reported_and_the_rest_still_rotate(site_a, enrol, settings):
    stray = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [stray]
    lost = enrol(site=site_a, contact={"email": "lost@example.org"})
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    rosa = enrol(site=site_a, contact=CONTACT)
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # the stray key is not listed
    err = io.StringIO()
    call_command("encryption_keys_rotate", stdout=io.StringIO(), stderr=err)
    lost_pk = ParticipantContact.objects.filter(participant=lost).values_list("pk", flat=True).get()
    assert "1 row(s) hold a value no key in FIELD_ENCRYPTION_KEYS reads" in err.getvalue()
    assert f"pk {lost_pk}" in err.getvalue()
    assert Fernet(NEW).decrypt(stored(rosa)["email"].encode()).decode() == CONTACT["email"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEYS_ROTATE)
    assert event.details["unreadable"] == {"surveys.ParticipantContact": 1}


def test_making_someone_superuser_or_changing_their_groups_on_djangos_pages_is_audited(
    client, django_user_model, db
):
    from django.contrib.auth.models import Group

    from tests.scope_helpers import body_of, form_data

    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-long-123!")
    kim = django_user_model.objects.create_user("kim", password="pw-long-123!")
    pis = Group.objects.get_or_create(name="Principal investigators")[0]
    client.force_login(root)
    page = f"/admin/auth/user/{kim.pk}/change/"
    data = form_data(body_of(client.get(page)), "user_form")
    data["is_superuser"], data["is_staff"], data["groups"] = ["on"], ["on"], [str(pis.pk)]
    reply = client.post(page, data, REMOTE_ADDR="198.51.100.77")
    assert reply.status_code == 302
    kim.refresh_from_db()
    assert kim.is_superuser
    event = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGE)
    assert (event.username, event.ip) == ("root", "198.51.100.77")
    assert event.details["staff"] == "kim"
    account = event.details["account"]
    assert account["is_superuser"] == {"before": False, "after": True}
    assert account["groups"] == {"before": [], "after": ["Principal investigators"]}
    # saving the page again without a change adds nothing
    client.post(page, form_data(body_of(client.get(page)), "user_form"))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ROLE_CHANGE).count() == 1
