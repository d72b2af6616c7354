"""Getting back in on a phone: an expired link leads to a new one; a PIN on a shared phone."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from recovery.celery import app as celery_app
from surveys.links import participant_link_create
from surveys.models import ParticipantLink
from tests.e2e.helpers import open_link
from tests.e2e.test_accessibility import assert_accessible
from tests.e2e.test_survey import DOCS


@pytest.fixture
def tasks_run_at_once():
    """The request's task runs in the web process, through Celery's own eager mode (the
    broker round trip has its own test with a real worker)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def reachable_participant(site_a, enrol, transactional_db):
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
        contact={"email": "dana.r@example.org", "phone": "+1 555 010 4477"},
    )


def test_an_expired_link_leads_to_a_new_one(
    phone, live_server, reachable_participant, tasks_run_at_once
):
    link, token = participant_link_create(participant=reachable_participant)
    ParticipantLink.objects.filter(pk=link.pk).update(expires_at=timezone.now())
    page = phone()
    page.goto(f"{live_server.url}/p/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("This link has expired")
    page.screenshot(path=str(DOCS / "participant-expired.png"))
    field = page.get_by_label("Your e-mail address or mobile number")
    field.fill("dana.r@")
    page.get_by_role("button", name="Send me a new link").click()
    expect(page.locator("#contact-error")).to_contain_text("not complete")
    assert_accessible(page, "new link, with an error")
    page.get_by_label("Your e-mail address or mobile number").fill("Dana.R@example.org ")
    page.get_by_role("button", name="Send me a new link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your messages")
    assert_accessible(page, "new link sent")

    [message] = mail.outbox
    [path] = re.findall(r"/p/[A-Za-z0-9_-]{40,}", message.body)
    page.goto(f"{live_server.url}{path}")
    expect(page.get_by_role("heading", name="Your surveys")).to_be_visible()
    expect(page.get_by_role("link", name="Start").first).to_be_visible()


def test_a_pin_keeps_a_shared_phone_private(phone, live_server, reachable_participant):
    page = phone()
    open_link(page, live_server, reachable_participant)
    page.get_by_role("link", name="Shared phone? Add a PIN").click()
    assert_accessible(page, "PIN page")
    page.get_by_label("PIN (4 to 6 digits)").fill("4821")
    page.get_by_label("The same PIN again").fill("4821")
    page.get_by_role("button", name="Save the PIN").click()
    expect(page.get_by_role("status")).to_contain_text("Your PIN is saved")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    assert_accessible(page, "signed out")

    # Someone else opens the link on the same phone: the PIN screen, and nothing behind it.
    open_link(page, live_server, reachable_participant)
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your PIN")
    page.screenshot(path=str(DOCS / "participant-pin.png"))
    assert_accessible(page, "unlock")
    assert page.goto(f"{live_server.url}/p/").status == 404
    open_link(page, live_server, reachable_participant)
    page.get_by_label("PIN (4 to 6 digits)").fill("1234")
    page.get_by_role("button", name="Open my surveys").click()
    expect(page.locator("#pin-error")).to_contain_text("not right")
    page.get_by_label("PIN (4 to 6 digits)").fill("4821")
    page.get_by_role("button", name="Open my surveys").click()
    expect(page.get_by_role("heading", name="Your surveys")).to_be_visible()
