"""Every model is registered in the admin and its pages open."""

import pytest
from django.contrib import admin
from django.urls import reverse

from recovery.models import AnalysisRun
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    DatasetExportJob,
    DiaryEntry,
    InstrumentVersion,
    Item,
    Message,
    Participant,
    Response,
    SafetyAlert,
    StaffTwoFactor,
)


@pytest.fixture
def superuser_client(client, django_user_model, db):
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw-long-123!")
    client.force_login(user)
    return client


def test_every_engine_model_is_registered():
    from django.apps import apps

    for model in apps.get_app_config("surveys").get_models():
        if model.__name__ in (
            "ParticipantContact",
            "ParticipantLink",
            "ParticipantStatusChange",
            "WaveInstrument",
            "ContactAttempt",
        ):
            continue  # shown inline on the participant and the wave
        if model.__name__ in ("DatasetLinePlan", "DatasetLine"):
            continue  # the export line cache: bytes rebuilt from responses, nothing to edit
        if model.__name__ in ("SubgroupVariable", "SubgroupAnswer"):
            continue  # the split's copy of answers, kept by triggers: nothing to edit
        assert admin.site.is_registered(model), model.__name__


def test_every_admin_list_and_add_page_opens_with_demo_data(superuser_client):
    from django.core.management import call_command

    call_command("seed_demo", "--participants", "20", "--seed", "4")
    for model in admin.site._registry:
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert superuser_client.get(changelist).status_code == 200, changelist
        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        # Assignments come from enrolment, responses from submission, instrument content
        # from a dictionary import, safety alerts from answers, diary entries from the
        # participant's phone, export jobs from the Export data page, analysis runs from the
        # Analyses page and two-factor sign-ins from their set-up page: never by hand.
        by_hand = (
            Assignment, Response, Item, InstrumentVersion, SafetyAlert, DiaryEntry, Message,
            Consent, AuditEvent, DatasetExportJob, AnalysisRun, StaffTwoFactor,
        )  # fmt: skip
        expected = 403 if model in by_hand else 200
        assert superuser_client.get(add).status_code == expected, add
    for model in (Participant, Assignment, Response):
        obj = model.objects.first()
        change = reverse(f"admin:surveys_{model._meta.model_name}_change", args=[obj.pk])
        assert superuser_client.get(change).status_code == 200, change


def test_enrolling_in_the_admin_creates_assignments_and_encrypted_contact(
    superuser_client, study, site_a
):
    response = superuser_client.post(
        reverse("admin:surveys_participant_add"),
        {
            "study": study.pk,
            "site": site_a.pk,
            "code": "NYC-0100",
            "status": "active",
            "enrolled_on": "2026-11-01",
            "timezone": "America/New_York",
            "language": "es",
            "preferred_channel": "sms",
            "consent_method": "verbal",
            "consent_date": "2026-11-01",
            "contact-TOTAL_FORMS": "1",
            "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0",
            "contact-MAX_NUM_FORMS": "1",
            "contact-0-first_name": "Lupe",
            "contact-0-phone": "+12125550177",
            "contact-0-email": "",
            "contact-0-last_name": "",
            "contact-0-alternative_contacts": "",
            "contact-0-locator_notes": "",
            "assignments-TOTAL_FORMS": "0",
            "assignments-INITIAL_FORMS": "0",
            "assignments-MIN_NUM_FORMS": "0",
            "assignments-MAX_NUM_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    participant = Participant.objects.get(code="NYC-0100")
    assert participant.assignments.count() == 5
    assert participant.contact.first_name == "Lupe"
    assert participant.contact.phone == "+12125550177"


def _add_form(study, site, *, phone="", email="", code=""):
    return {
        "study": study.pk,
        "site": site.pk,
        "code": code,
        "enrolled_on": "2026-11-01",
        "timezone": "",
        "language": "en",
        "preferred_channel": "sms",
        "consent_method": "verbal",
        "consent_date": "2026-11-01",
        "contact-TOTAL_FORMS": "1",
        "contact-INITIAL_FORMS": "0",
        "contact-MIN_NUM_FORMS": "0",
        "contact-MAX_NUM_FORMS": "1",
        "contact-0-first_name": "Lupe",
        "contact-0-phone": phone,
        "contact-0-email": email,
        "contact-0-last_name": "",
        "contact-0-alternative_contacts": "",
        "contact-0-locator_notes": "",
    }


def test_the_add_form_refuses_a_contact_another_participant_already_has(
    client, coordinator_a, study, site_a, site_b, enrol
):
    """As the API's enrolment and an import's line do: a coordinator enrolling someone already
    enrolled would make two records of one person, each sent every survey. The other
    participant is named only where the coordinator may see them; nothing is saved."""
    enrol(site=site_a, code="NYC-0007", contact={"phone": "+12125550177"})
    enrol(site=site_b, code="LDN-0003", contact={"email": "kim@example.org"})
    client.force_login(coordinator_a)
    add = reverse("admin:surveys_participant_add")
    before = Participant.objects.count()

    page = client.post(add, _add_form(study, site_a, phone="+1 (212) 555-0177"))
    assert page.status_code == 200
    assert "A participant of this study already has this phone number (NYC-0007)." in page.text
    page = client.post(add, _add_form(study, site_a, email="Kim@Example.org"))
    assert page.status_code == 200
    assert "already has this e-mail address (at another site)." in page.text
    assert "LDN-0003" not in page.text
    assert Participant.objects.count() == before
    refused = AuditEvent.objects.get(details__by="admin")
    assert refused.participant.code == "LDN-0003"

    # Another person's contact is enrolled as before.
    page = client.post(add, _add_form(study, site_a, phone="+12125550178"))
    assert page.status_code == 302, page.text[:2000]
    assert Participant.objects.count() == before + 1


def test_participant_page_shows_windows_in_the_participants_own_dates(
    superuser_client, site_a, enrol
):
    # Midnight in Tehran is 20:30 UTC the day before: UTC dates would be one day early.
    from datetime import date

    participant = enrol(
        site=site_a, code="NYC-0200", enrolled_on=date(2026, 6, 1), timezone="Asia/Tehran"
    )
    page = superuser_client.get(reverse("admin:surveys_participant_change", args=[participant.pk]))
    assert "24 Jun 2026 to 29 Jul 2026, due 01 Jul 2026 (Asia/Tehran)" in page.text
    assert "NYC-0200 · 1 month" in page.text


def test_the_admin_home_leads_each_role_to_its_follow_up_pages(
    client, study, coordinator_a, researcher
):
    client.force_login(coordinator_a)
    home = client.get(reverse("admin:index")).text
    assert "Follow-up work" in home
    for url in (
        reverse("admin:surveys_assignment_call_list"),
        reverse("admin:surveys_study_retention", args=[study.pk]),
        reverse("admin:surveys_participant_add"),
        reverse("admin:surveys_participant_import"),
    ):
        assert f'href="{url}"' in home, url
    client.force_login(researcher)
    home = client.get(reverse("admin:index")).text
    assert reverse("admin:surveys_study_retention", args=[study.pk]) in home
    assert reverse("admin:surveys_participant_import") not in home
    assert reverse("admin:surveys_participant_add") not in home


def test_an_empty_to_field_is_a_bad_request_not_a_server_error(superuser_client, study):
    """Found by the staff fuzz: Django looked ``?_to_field=`` up as a field named "" on change
    and delete pages (a 500). A real one still works: the admin's pop-ups send it."""
    change = reverse("admin:surveys_study_change", args=[study.pk])
    delete = reverse("admin:surveys_study_delete", args=[study.pk])
    for url in (change, delete, reverse("admin:surveys_study_changelist")):
        assert superuser_client.get(f"{url}?_to_field=").status_code == 400, url
    assert superuser_client.post(change, {"_to_field": "", "name": "Renamed"}).status_code == 400
    study.refresh_from_db()
    assert study.name == "Trial study"
    assert superuser_client.get(f"{change}?_to_field=id").status_code == 200


@pytest.mark.parametrize(
    "query", ["status__exact=%00", "status__exact=active%00", "q=NYC%00", "%00=1"]
)
def test_a_nul_character_in_a_changelist_filter_is_a_bad_request(superuser_client, query):
    """Found by the staff fuzz on PostgreSQL, which refuses a NUL in text: a filter holding one
    failed in the database (a 500). The same filter without it still filters."""
    changelist = reverse("admin:surveys_participant_changelist")
    assert superuser_client.get(f"{changelist}?{query}").status_code == 400
    assert superuser_client.get(f"{changelist}?status__exact=active").status_code == 200


@pytest.mark.parametrize("selected", ["", "abc", "1.5", "1e309"])
def test_an_action_on_a_value_that_is_no_id_is_a_bad_request(
    superuser_client, study, site_a, enrol, selected
):
    """Found by the staff fuzz: Django filtered the rows of an action by the posted values as
    they were, and one that is no id failed in the query (a 500). Nothing is done to the rows
    posted with it; the action on ids alone still acts."""
    participant = enrol(site=site_a, code="NYC-0300")
    epoch = participant.access_epoch  # revoking the links moves it on
    changelist = reverse("admin:surveys_participant_changelist")
    revoke = {"action": "revoke_links", "index": "0"}
    reply = superuser_client.post(
        changelist, {**revoke, "_selected_action": [str(participant.pk), selected]}
    )
    assert reply.status_code == 400
    participant.refresh_from_db()
    assert participant.access_epoch == epoch
    reply = superuser_client.post(changelist, {**revoke, "_selected_action": [str(participant.pk)]})
    participant.refresh_from_db()
    assert reply.status_code == 302 and participant.access_epoch == epoch + 1


def _participant_with_history(enrol, site, code: str, rows: int) -> Participant:
    """A participant with contact details, consent, and ``rows`` links, contact attempts and
    status changes (back and forth between active and lost to follow-up)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from surveys.consent import ConsentInput
    from surveys.links import participant_link_create
    from surveys.models import ContactAttempt
    from surveys.services import participant_status_change

    participant = enrol(
        site=site,
        code=code,
        enrolled_on=timezone.localdate(),  # not before the consent below
        contact={"first_name": "Marisol", "email": "marisol.vega@example.org"},
        consent=ConsentInput(
            method="verbal",
            consented_on=timezone.localdate(),
            obtained_by=get_user_model().objects.get(username="root"),
        ),
    )
    for n in range(rows):
        participant_link_create(participant=participant)
        ContactAttempt.objects.create(
            participant=participant, method="call", outcome="no_answer", attempted_at=timezone.now()
        )
        participant_status_change(
            participant=participant, status="lost" if n % 2 == 0 else "active"
        )
    return participant


def test_the_participant_pages_inlines_are_titled_by_study_id_not_database_id(
    superuser_client, site_a, enrol
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.models import ParticipantContact

    # Enough others first that the database id (and the row ids) differ from the code's digits.
    for n in range(3):
        enrol(site=site_a, code=f"NYC-09{n:02}")
    participant = _participant_with_history(enrol, site_a, "NYC-0042", rows=3)
    url = reverse("admin:surveys_participant_change", args=[participant.pk])
    page = superuser_client.get(url).text

    assert "Contact details of NYC-0042" in page
    assert page.count("Link of NYC-0042 until") == 3
    assert page.count("Phone call to NYC-0042: No answer") == 3
    assert "Consent of NYC-0042 to version" in page
    assert "NYC-0042: active → lost" in page
    for title in ("Contact details of", "Link of", "to", "Consent of"):
        assert f"{title} {participant.pk}" not in page
    assert f"{participant.pk}: active" not in page
    # The title names the study ID only: contact details would end up in the change history.
    title = str(ParticipantContact.objects.get(participant=participant))
    assert title == "Contact details of NYC-0042"

    # One more row of each kind costs no query: the participant comes with the rows.
    fewer = _participant_with_history(enrol, site_a, "NYC-0043", rows=1)
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(reverse("admin:surveys_participant_change", args=[fewer.pk]))
    with CaptureQueriesContext(connection) as many:
        superuser_client.get(url)
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


def test_the_messages_list_says_its_times_are_utc(superuser_client, site_a, enrol):
    """The outbox's participants live in several time zones: a time without its zone would be
    read as the reader's own or the participant's."""
    from datetime import UTC, datetime

    from surveys.models import Message

    participant = enrol(
        site=site_a,
        code="NYC-0500",
        timezone="America/New_York",
        contact={"email": "p500@example.org"},
    )
    message = Message.objects.filter(assignment__participant=participant).first()
    at = datetime(2027, 1, 5, 14, 30, tzinfo=UTC)  # 9:30 in New York
    Message.objects.filter(pk=message.pk).update(scheduled_at=at, sent_at=at, status="sent")
    page = superuser_client.get(reverse("admin:surveys_message_changelist")).text
    assert "Scheduled (UTC)" in page
    assert "Sent (UTC)" in page
    assert page.count("Jan. 5, 2027, 2:30 p.m.") == 2  # scheduled and sent, on UTC's clock


AT = "Jan. 5, 2027, 2:30 p.m."  # _at_utc() on UTC's clock (9:30 a.m. in New York)


def _at_utc(days: int = 0):
    from datetime import UTC, datetime, timedelta

    return datetime(2027, 1, 5, 14, 30, tzinfo=UTC) + timedelta(days=days)


def test_the_assignment_and_response_pages_say_their_times_are_utc(superuser_client, site_a, enrol):
    participant = enrol(site=site_a, code="NYC-0501", timezone="America/New_York")
    baseline = participant.assignments.get(wave__slug="baseline")
    Assignment.objects.filter(pk=baseline.pk).update(
        opens_at=_at_utc(), due_at=_at_utc(1), closes_at=_at_utc(2), completed_at=_at_utc()
    )
    version = baseline.wave.instruments.get().versions.get()
    response = Response.objects.create(
        assignment=baseline, instrument=version.instrument, instrument_version=version,
        answers={}, status="submitted", started_at=_at_utc(), submitted_at=_at_utc(),
    )  # fmt: skip

    assignments = superuser_client.get(reverse("admin:surveys_assignment_changelist")).text
    for column in ("Opens (UTC)", "Due (UTC)", "Closes (UTC)", "Completed (UTC)"):
        assert column in assignments
    # on UTC's clock, not New York's
    assert assignments.count(AT) == 2  # opened and completed
    assert "Jan. 6, 2027, 2:30 p.m." in assignments
    assert "Jan. 7, 2027, 2:30 p.m." in assignments
    responses = superuser_client.get(reverse("admin:surveys_response_changelist")).text
    assert "Submitted (UTC)" in responses
    assert responses.count(AT) == 1
    page = superuser_client.get(reverse("admin:surveys_response_change", args=[response.pk])).text
    assert "Started (UTC):" in page
    assert "Submitted (UTC):" in page
    assert page.count(AT) == 2


def test_the_export_jobs_say_their_times_are_utc(superuser_client, study):
    from django.contrib.auth import get_user_model

    job = DatasetExportJob.objects.create(
        study=study,
        created_by=get_user_model().objects.get(username="root"),
        created_at=_at_utc(),
        started_at=_at_utc(),
        finished_at=_at_utc(),
        expires_at=_at_utc(),
        status="done",
    )
    jobs = superuser_client.get(reverse("admin:surveys_datasetexportjob_changelist")).text
    assert "Created (UTC)" in jobs
    assert "Expires (UTC)" in jobs
    assert jobs.count(AT) == 2
    page = superuser_client.get(
        reverse("admin:surveys_datasetexportjob_change", args=[job.pk])
    ).text
    for label in ("Created (UTC):", "Started (UTC):", "Finished (UTC):", "Expires (UTC):"):
        assert label in page
    assert page.count(AT) == 4


def test_the_participant_page_says_its_times_are_utc(superuser_client, site_a, enrol):
    participant = enrol(site=site_a, code="NYC-0502", timezone="America/New_York")
    Participant.objects.filter(pk=participant.pk).update(created_at=_at_utc(), updated_at=_at_utc())
    page = superuser_client.get(
        reverse("admin:surveys_participant_change", args=[participant.pk])
    ).text
    assert "Created (UTC):" in page
    assert "Updated (UTC):" in page
    assert page.count(AT) == 2


def test_a_message_page_and_the_date_filter_say_their_times_are_utc(
    superuser_client, site_a, enrol
):
    participant = enrol(
        site=site_a, code="NYC-0503", timezone="America/New_York",
        contact={"email": "p503@example.org"},
    )  # fmt: skip
    message = Message.objects.filter(assignment__participant=participant).first()
    Message.objects.filter(pk=message.pk).update(
        scheduled_at=_at_utc(), sent_at=_at_utc(), status="sent"
    )
    page = superuser_client.get(reverse("admin:surveys_message_change", args=[message.pk])).text
    assert "Scheduled (UTC):" in page
    assert "Sent (UTC):" in page
    assert page.count(AT) == 2
    listing = superuser_client.get(reverse("admin:surveys_message_changelist")).text
    assert "Filter by scheduled at (UTC)" in listing


def test_assignment_alert_link_and_contact_log_times_say_utc(superuser_client, site_a, enrol):
    """The remaining staff pages with times: an assignment's page, a safety alert's list and
    page, the participant's links and contact log, say the zone of the times they show; a
    message is titled by the survey it is for, not a database id."""
    from surveys.links import participant_link_create

    participant = enrol(
        site=site_a, code="NYC-0504", timezone="America/New_York",
        contact={"email": "p504@example.org"},
    )  # fmt: skip
    month1 = participant.assignments.get(wave__slug="m1")
    Assignment.objects.filter(pk=month1.pk).update(status_changed_at=_at_utc())
    page = superuser_client.get(reverse("admin:surveys_assignment_change", args=[month1.pk])).text
    for label in ("Opens (UTC):", "Due (UTC):", "Closes (UTC):", "Status changed (UTC):"):
        assert label in page
    assert AT in page
    link, _ = participant_link_create(participant=participant)
    link.__class__.objects.filter(pk=link.pk).update(created_at=_at_utc())
    alert = SafetyAlert.objects.create(
        study=participant.study, participant=participant, assignment=month1,
        variable="overdose", question="Overdose since last survey?", answer="1",
        created_at=_at_utc(),
    )  # fmt: skip
    alerts = superuser_client.get(reverse("admin:surveys_safetyalert_changelist")).text
    assert "Created (UTC)" in alerts and "Emailed (UTC)" in alerts and AT in alerts
    page = superuser_client.get(reverse("admin:surveys_safetyalert_change", args=[alert.pk])).text
    assert "Created (UTC):" in page and AT in page
    page = superuser_client.get(
        reverse("admin:surveys_participant_change", args=[participant.pk])
    ).text
    assert "Expires (UTC)" in page and "Last used (UTC)" in page
    assert "Attempted at (UTC)" in page
    message = Message.objects.filter(assignment__participant=participant).first()
    titled = f"for NYC-0504 · {message.assignment.wave.name}"
    assert str(message).endswith(titled)
    page = superuser_client.get(reverse("admin:surveys_message_change", args=[message.pk])).text
    assert f"for assignment {message.assignment_id}" not in page and titled in page


def test_a_diary_entry_and_csv_lines_are_named_by_study_id(superuser_client, site_a, enrol):
    """A diary entry's page is titled by the participant's study ID, not their database id,
    and never a contact detail; so are a participant's cached CSV lines (on no admin page: not
    registered, and a participant or study with answers cannot be deleted from the admin)."""
    from datetime import date

    from django.utils import timezone

    from surveys.models import DatasetLine, DatasetLinePlan

    participant = enrol(
        site=site_a, code="NYC-0600", enrolled_on=date(2026, 6, 1),
        contact={"first_name": "Marisol", "email": "marisol.vega@example.org"},
    )  # fmt: skip
    entry = DiaryEntry.objects.create(
        participant=participant, group="1", format="inperson", occurred_on=date(2026, 6, 2)
    )
    page = superuser_client.get(reverse("admin:surveys_diaryentry_change", args=[entry.pk])).text
    assert "<h2>NYC-0600: 1/inperson on 2026-06-02</h2>" in page
    assert f"{participant.pk}: 1/inperson" not in page
    assert "Marisol" not in page and "marisol.vega" not in page

    plan = DatasetLinePlan.objects.create(
        study=participant.study, key="plan", created_at=timezone.now(), used_at=timezone.now()
    )
    line = DatasetLine.objects.create(
        plan=plan, participant=participant, source_key="k", sort_key="1", lines="x"
    )
    assert str(DatasetLine.objects.get(pk=line.pk)) == "CSV lines of NYC-0600"


def test_a_one_site_coordinator_adds_at_their_site_on_its_date(
    client, study, coordinator_a, monkeypatch
):
    """At 02:00 UTC it is still yesterday in New York: the Add form of a coordinator whose only
    site is New York offers that site and New York's date, the day the form then accepts."""
    from datetime import UTC, datetime

    from django.utils import timezone

    client.force_login(coordinator_a)
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 12, 7, 2, 0, tzinfo=UTC))
    page = client.get(reverse("admin:surveys_participant_add")).text
    assert 'name="enrolled_on" value="2026-12-06"' in page
    site = study.sites.get(code="NYC")
    assert f'<option value="{site.pk}" selected>' in page
