"""Issue 6's "done when", in a real browser as a new coordinator would: enrol a person with
consent in the admin, see them on the retention dashboard, find them on the call list after a
missed window, log a call and withdraw them; then a researcher opens the same dashboard and
the call list and sees no identifier anywhere."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from surveys.models import ContactAttempt, Message, Participant, ParticipantStatusChange
from tests.e2e.conftest import csp_watch

PASSWORD = "a-long-test-password-9"
NAME, EMAIL, PHONE = "Inés Calderón", "ines.calderon@example.org", "+1 212 555 0187"


@pytest.fixture
def laptop(browser, csp_refusals):
    contexts = []

    def _make():
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        contexts.append(context)
        page = context.new_page()
        csp_watch(page, csp_refusals)
        return page

    yield _make
    for context in contexts:
        context.close()


def sign_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


@pytest.fixture
def staff(transactional_db, study, site_a, staff_user):
    coordinator = staff_user(study=study, role="coordinator", sites=[site_a], username="coord")
    researcher = staff_user(study=study, role="researcher", username="analyst")
    for user in (coordinator, researcher):
        user.set_password(PASSWORD)
        user.save()
    return coordinator, researcher


def test_a_coordinator_enrols_chases_and_withdraws_and_a_researcher_sees_no_identifier(
    laptop, live_server, study, site_a, staff
):
    coordinator, researcher = staff
    page = laptop()
    sign_in(page, live_server, coordinator)

    # Enrol with paper consent.
    page.goto(f"{live_server.url}/admin/surveys/participant/add/")
    page.select_option("#id_study", str(study.pk))
    page.select_option("#id_site", str(site_a.pk))
    enrolled = timezone.localdate() - timedelta(days=40)
    page.fill("#id_enrolled_on", enrolled.isoformat())
    page.fill("#id_timezone", "America/New_York")
    page.select_option("#id_consent_method", "written")
    page.fill("#id_consent_date", enrolled.isoformat())
    page.fill("#id_contact-0-first_name", NAME.split()[0])
    page.fill("#id_contact-0-last_name", NAME.split()[1])
    page.fill("#id_contact-0-email", EMAIL)
    page.fill("#id_contact-0-phone", PHONE)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    participant = Participant.objects.get()
    assert participant.code == "NYC-0001"
    assert participant.consents.get().obtained_by == coordinator

    # The dashboard counts them.
    page.goto(f"{live_server.url}/admin/surveys/study/{study.pk}/retention/")
    expect(page.locator("h1")).to_contain_text("Retention")
    expect(page.locator("svg").first).to_be_visible()
    assert page.locator("table").count() >= 1

    # The one-month window has passed its due date: the call list shows them with the phone.
    now = timezone.now()
    participant.assignments.filter(wave__slug="m1").update(
        status="open", due_at=now - timedelta(days=3), closes_at=now + timedelta(days=2)
    )
    page.goto(f"{live_server.url}/admin/surveys/assignment/call-list/")
    row = page.locator("tr", has_text="NYC-0001")
    expect(row).to_contain_text("(overdue)")
    expect(row).to_contain_text(PHONE)

    # Log a call from the row.
    row.get_by_role("link", name="Log an attempt").click()
    page.wait_for_url(re.compile(r".*/participant/\d+/change/.*"))
    page.select_option("#id_contact_attempts-0-method", "call")
    page.select_option("#id_contact_attempts-0-outcome", "no_answer")
    page.fill("#id_contact_attempts-0-note", "Rang at 5 pm; will try tomorrow.")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    attempt = ContactAttempt.objects.get()
    assert (attempt.outcome, attempt.by) == ("no_answer", coordinator)

    # Withdraw them: a reason is asked, every message stops.
    page.select_option("#id_status", "withdrawn")
    page.fill("#id_status_reason", "Asked to stop taking part")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert ParticipantStatusChange.objects.get().changed_by == coordinator
    assert not Message.objects.filter(assignment__participant=participant, status="queued").exists()
    page.click("text=Timeline")
    expect(page.locator("main, #content").first).to_contain_text("Status: Active → Withdrawn")

    # A researcher: the same dashboard and the call list, with no identifier anywhere.
    other = laptop()
    sign_in(other, live_server, researcher)
    for path in (
        f"/admin/surveys/study/{study.pk}/retention/",
        "/admin/surveys/assignment/call-list/",
        "/admin/surveys/participant/",
        f"/admin/surveys/participant/{participant.pk}/change/",
        f"/admin/surveys/participant/{participant.pk}/timeline/",
    ):
        other.goto(f"{live_server.url}{path}")
        html = other.content()
        for value in (NAME.split()[0], NAME.split()[1], EMAIL, PHONE, "2125550187", "Rang at"):
            assert value not in html, f"{value} on {path}"
    other.goto(f"{live_server.url}/admin/surveys/study/{study.pk}/retention/")
    expect(other.locator("h1")).to_contain_text("Retention")
