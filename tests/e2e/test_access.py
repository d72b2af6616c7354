"""Getting back in on a phone: an expired link leads to a new one; a PIN on a shared phone."""

import re
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from recovery.celery import app as celery_app
from surveys.links import participant_link_create
from surveys.models import ParticipantLink
from tests.e2e.helpers import (
    KEPT_PAGES,
    answer_screen,
    controlled_by_service_worker,
    new_york_today,
    open_link,
)
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
        enrolled_on=new_york_today() - timedelta(days=30),
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
    # axe on the page being left would find no document: the PIN page first
    expect(page.get_by_label("The same PIN again")).to_be_visible()
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


@pytest.mark.parametrize("page_script", ["runs", "never runs"])
def test_after_signing_out_the_phone_shows_nothing_of_the_last_person_offline(
    phone, live_server, reachable_participant, page_script
):
    page = phone()
    if page_script == "never runs":
        # The phone leaves the signed-out page before its script runs (or never gets it): the
        # service worker forgets the pages by itself.
        page.route("**/signed_out*.js", lambda route: route.abort())
    open_link(page, live_server, reachable_participant)
    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_be_visible()
    controlled_by_service_worker(page)  # the survey page is now kept for offline use
    survey_url = page.url
    page.context.set_offline(True)
    page.reload()  # the participant's own offline copy works
    expect(page.locator("#progress-text")).to_be_visible()
    page.context.set_offline(False)
    page.goto(f"{live_server.url}/p/")
    assert urlsplit(survey_url).path in page.evaluate(KEPT_PAGES)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    # Already gone when the signed-out page shows: the phone may go offline at once.
    assert page.evaluate(KEPT_PAGES) == []
    page.context.set_offline(True)
    try:
        page.goto(survey_url)
    except PlaywrightError as exc:  # no copy and no network: the browser's own error page
        assert "ERR_" in str(exc)
    else:
        assert page.locator("#progress-text").count() == 0


def test_answers_sent_after_a_pin_session_ended_wait_for_the_link_and_go_once(
    phone, live_server, reachable_participant
):
    from surveys.access import participant_pin_set
    from surveys.models import Response

    participant_pin_set(participant=reachable_participant, pin="4821", repeat="4821")
    page = phone()
    open_link(page, live_server, reachable_participant)
    page.get_by_label("PIN (4 to 6 digits)").fill("4821")
    page.get_by_role("button", name="Open my surveys").click()
    page.get_by_role("link", name="Start").first.click()
    held = []  # draft saves whose replies come late, after the send has been answered
    page.route("**/draft/", lambda route: held.append((route, route.fetch())))
    for _ in range(120):
        if page.locator("#review").is_visible():
            break
        answer_screen(page, {"attended_any": "0", "overdose": "0"})
        page.locator("#next").click()
    # The browser was closed and reopened on a shared phone: the session is gone.
    page.context.clear_cookies()
    page.locator("#send").click()
    expect(page.locator("#status")).to_contain_text("open the link in your message again")
    assert held
    for route, reply in held:  # the draft was stored; its reply reaches the phone now
        route.fulfill(response=reply)
    page.wait_for_timeout(300)
    # A late "Saved." does not hide what the participant has to do.
    expect(page.locator("#status")).to_contain_text("open the link in your message again")
    page.unroute("**/draft/")
    assert not Response.objects.filter(status=Response.Status.SUBMITTED).exists()
    # The participant opens their link again: the waiting answers go, once.
    open_link(page, live_server, reachable_participant)
    page.get_by_label("PIN (4 to 6 digits)").fill("4821")
    page.get_by_role("button", name="Open my surveys").click()
    page.get_by_role("link", name="Continue").first.click()
    page.wait_for_url("**/done", timeout=15000)
    assert Response.objects.filter(status=Response.Status.SUBMITTED).count() == 1


def test_a_survey_left_open_in_a_tab_after_it_closed_leads_home_with_why(
    phone, live_server, reachable_participant
):
    """The survey's tab, reloaded after its window closed (the phone was online and the
    service worker in place): the home page, saying the survey closed and on which day."""
    page = phone()
    open_link(page, live_server, reachable_participant)
    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_contain_text("Question 1")
    month1 = reachable_participant.assignments.get(wave__slug="m1")
    # Closed a minute ago; the day it was due moved back with it if need be (a window's
    # opening, due day and closing stay in order, as the database requires).
    month1.closes_at = timezone.now() - timedelta(minutes=1)
    month1.due_at = min(month1.due_at, month1.closes_at - timedelta(minutes=1))
    month1.opens_at = min(month1.opens_at, month1.due_at)
    month1.save(update_fields=["opens_at", "due_at", "closes_at"])
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your surveys")
    expect(page.get_by_role("status").first).to_contain_text(
        f"“1 month” has closed: the last day to answer it was {month1.last_day():%-d %B %Y}."
    )
    assert_accessible(page, "home after a closed survey")
    page.screenshot(path=Path(tempfile.gettempdir()) / "participant-closed.png", full_page=True)
