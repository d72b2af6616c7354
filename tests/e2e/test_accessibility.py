"""axe-core on every participant page, at phone size, in English, Spanish and Persian (RTL).

axe runs with its full rule set (WCAG 2.0/2.1 A and AA and best practices); zero violations.
"""

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from surveys.links import participant_link_create
from tests.e2e.helpers import answer_screen, open_link, settle

AXE = Axe()


def assert_accessible(page, where: str) -> None:
    results = AXE.run(page)
    violations = results.response["violations"]
    report = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:5])
        for v in violations
    )
    assert not violations, f"axe on {where}:\n{report}"


def walk_to_review(page, choices: dict, where: str, check_every_screen: bool) -> None:
    for step in range(120):
        if page.locator("#review").is_visible():
            return
        if check_every_screen:
            assert_accessible(page, f"{where}, screen {step + 1}")
        answer_screen(page, choices)
        page.locator("#next").click()
    raise AssertionError("never reached the review screen")


def test_every_english_page_has_no_axe_violations(phone, live_server, due_participant):
    page = phone()
    open_link(page, live_server, due_participant)
    assert_accessible(page, "home")
    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_contain_text("Question 1 of")
    # An error shown and tied to its question.
    page.locator("#next").click()
    expect(page.locator(".screen:not([hidden]) .error:not([hidden])").first).to_be_visible()
    assert_accessible(page, "survey with an error")
    walk_to_review(
        page,
        {"attended_any": "1", "fellowships": ["1"], "overdose": "1"},
        "survey",
        check_every_screen=True,
    )
    assert_accessible(page, "review")
    page.locator("#send").click()
    page.wait_for_url("**/done")
    expect(page.locator("h1")).to_contain_text("Thank you")
    assert_accessible(page, "done, with crisis resources")


def test_the_expired_link_page_has_no_axe_violations(phone, live_server, due_participant):
    link, token = participant_link_create(participant=due_participant)
    link.expires_at = timezone.now() - timedelta(minutes=1)
    link.save()
    page = phone()
    reply = page.goto(f"{live_server.url}/p/{token}")
    assert reply.status == 410
    assert_accessible(page, "expired link")


@pytest.mark.parametrize(("language", "direction"), [("es", "ltr"), ("fa", "rtl")])
def test_spanish_and_persian_pages_have_no_axe_violations(
    phone, live_server, due_participant, language, direction
):
    due_participant.language = language
    due_participant.save()
    page = phone()
    open_link(page, live_server, due_participant)
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("html").get_attribute("dir") == direction
    assert_accessible(page, f"home ({language})")
    page.locator(".card a").first.click()
    expect(page.locator("#progress-text")).to_be_visible()
    assert_accessible(page, f"survey ({language})")
    walk_to_review(page, {"attended_any": "0"}, language, check_every_screen=False)
    assert_accessible(page, f"review ({language})")


WIDE_ELEMENTS = """() => [...document.querySelectorAll('main *')]
  .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map(el => el.tagName + '#' + el.id + ' ' + (el.textContent || '').slice(0, 40))
  .join(' | ')"""


@pytest.mark.parametrize("language", ["en", "es", "fa"])
def test_pages_reflow_at_200_percent_zoom_without_sideways_scrolling(
    browser, live_server, due_participant, language
):
    """A 390 px phone zoomed to 200 % lays pages out in 195 CSS pixels: nothing may need
    scrolling sideways, and every control stays inside the screen."""
    context = browser.new_context(
        viewport={"width": 195, "height": 422}, device_scale_factor=4, is_mobile=True
    )
    page = context.new_page()
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    due_participant.language = language
    due_participant.save()
    try:
        open_link(page, live_server, due_participant)
        assert page.evaluate(overflow) <= 0, "home: " + page.evaluate(WIDE_ELEMENTS)
        page.locator(".card a").first.click()
        expect(page.locator("#progress-text")).to_be_visible()
        for step in range(120):
            if page.locator("#review").is_visible():
                break
            assert page.evaluate(overflow) <= 0, f"survey screen {step + 1}: " + page.evaluate(
                WIDE_ELEMENTS
            )
            answer_screen(page, {"attended_any": "1", "fellowships": ["1"]})
            page.locator("#next").click()
        assert page.evaluate(overflow) <= 0, "review"
    finally:
        settle(context)
        context.close()
