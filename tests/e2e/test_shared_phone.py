"""One phone, two people: Dana uses it without a PIN and does not sign out; then she adds a PIN,
or Sam opens his own link on it. Nothing of hers shows offline, and her answers kept while
typing go (her own stay while she is the one signed in)."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from surveys.access import participant_pin_set
from tests.e2e.helpers import (
    KEPT_PAGES,
    answer_screen,
    controlled_by_service_worker,
    new_york_today,
    open_link,
)

DRAFTS = "Object.keys(localStorage).filter(k => k.startsWith('survey:'))"


@pytest.fixture
def dana(site_a, enrol, transactional_db):
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=new_york_today() - timedelta(days=30),
        timezone="America/New_York",
    )


@pytest.fixture
def sam(site_a, enrol, transactional_db):
    return enrol(
        site=site_a,
        code="NYC-0043",
        enrolled_on=new_york_today() - timedelta(days=30),
        timezone="America/New_York",
    )


def offline_text(page, url) -> str:
    """What the phone shows at ``url`` with no connection ("" for the browser's own error)."""
    page.context.set_offline(True)
    try:
        page.goto(url)
    except PlaywrightError as exc:
        assert "ERR_" in str(exc)
        return ""
    finally:
        page.context.set_offline(False)
    return page.locator("main").inner_text()


def dana_on_the_phone(page, live_server, dana) -> str:
    """Dana answers the first screen of her follow-up on a phone whose service worker keeps
    pages: her home page and her survey (with her answer) are kept, and so is her draft."""
    open_link(page, live_server, dana)
    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_be_visible()
    controlled_by_service_worker(page)
    answer_screen(page, {"attended_any": "1"})
    with page.expect_response(lambda r: r.url.endswith("/draft/") and r.status == 200):
        page.locator("#next").click()
    survey_url = page.url
    assert page.evaluate(DRAFTS)
    page.goto(f"{page.url.split('/p/')[0]}/p/")
    kept = page.evaluate(KEPT_PAGES)
    assert "/p/" in kept and urlsplit(survey_url).path in kept
    return survey_url


def test_adding_a_pin_forgets_the_pages_kept_before(phone, live_server, dana):
    page = phone()
    survey_url = dana_on_the_phone(page, live_server, dana)
    page.get_by_role("link", name="Shared phone? Add a PIN").click()
    page.get_by_label("PIN (4 to 6 digits)").fill("4821")
    page.get_by_label("The same PIN again").fill("4821")
    page.get_by_role("button", name="Save the PIN").click()
    expect(page.get_by_role("status")).to_contain_text("Your PIN is saved")
    assert page.evaluate(KEPT_PAGES) == []
    page.context.clear_cookies()  # the browser closed: the PIN session ended
    home = offline_text(page, f"{live_server.url}/p/")
    assert "Your surveys" not in home and "Continue" not in home
    offline_text(page, survey_url)
    assert page.locator("#survey").count() == 0


@pytest.mark.parametrize("sams_pin", [False, True], ids=["Sam without a PIN", "Sam with a PIN"])
def test_the_next_persons_link_forgets_the_last_persons_pages_and_drafts(
    phone, live_server, dana, sam, sams_pin
):
    if sams_pin:
        participant_pin_set(participant=sam, pin="1357", repeat="1357")
    page = phone()
    survey_url = dana_on_the_phone(page, live_server, dana)
    open_link(page, live_server, sam)  # Dana did not sign out
    if sams_pin:
        page.get_by_label("PIN (4 to 6 digits)").fill("1357")
        page.get_by_role("button", name="Open my surveys").click()
    expect(page.get_by_role("heading", name="Your surveys")).to_be_visible()
    expect(page.get_by_role("link", name="Start").first).to_be_visible()  # Sam's own page
    assert page.evaluate(KEPT_PAGES) == ([] if sams_pin else ["/p/"])
    assert page.evaluate(DRAFTS) == []
    home = offline_text(page, f"{live_server.url}/p/")
    assert "Continue" not in home  # Dana's home page: her survey begun
    offline_text(page, survey_url)
    assert page.locator("#survey").count() == 0


def test_her_own_pages_and_draft_stay_while_dana_is_signed_in(phone, live_server, dana):
    """What goes is the last person's: Dana opening her own link again (a new session) keeps
    her survey offline and her draft, as before."""
    page = phone()
    survey_url = dana_on_the_phone(page, live_server, dana)
    open_link(page, live_server, dana)
    expect(page.get_by_role("link", name="Continue").first).to_be_visible()
    assert urlsplit(survey_url).path in page.evaluate(KEPT_PAGES)
    assert page.evaluate(DRAFTS)
    offline_text(page, survey_url)
    expect(page.locator("#progress-text")).to_have_text(re.compile("Question 2 of"))


@pytest.mark.parametrize("page_script", ["runs", "never runs"])
def test_after_signing_out_no_draft_stays_for_the_next_person(
    phone, live_server, dana, sam, page_script
):
    page = phone()
    if page_script == "never runs":
        # The signed-out page's own script never runs: its drafts.js (kept by the service
        # worker) or, failing that, the next person's first page removes the drafts (the
        # latter alone: test_the_next_persons_link_forgets_the_last_persons_pages_and_drafts).
        page.route("**/signed_out*.js", lambda route: route.abort())
    dana_on_the_phone(page, live_server, dana)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    if page_script == "runs":
        page.wait_for_function(f"{DRAFTS}.length === 0")
    open_link(page, live_server, sam)
    expect(page.get_by_role("heading", name="Your surveys")).to_be_visible()
    assert page.evaluate(DRAFTS) == []


def test_the_back_button_after_signing_out_shows_nothing(phone, live_server, dana):
    page = phone()
    open_link(page, live_server, dana)
    expect(page.get_by_role("heading", name="Your surveys")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    page.go_back()
    page.wait_for_load_state()
    shown = page.locator("body").inner_text()
    assert "Your surveys" not in shown and "Log a meeting" not in shown
