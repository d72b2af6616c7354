"""A participant on a phone: a full survey with branching, a draft resumed on another phone,
another participant's URL, the screenshots in docs/."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from surveys.models import Response
from tests.e2e.helpers import answer_screen, answer_to_review, open_link

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_a_full_survey_with_branching_on_a_phone(phone, live_server, due_participant):
    page = phone()
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_contain_text("Question 1 of")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "participant-survey.png"))
    choices = {"attended_any": "1", "fellowships": ["1"], "mtg_na_inperson": 6, "overdose": "0"}
    seen = answer_to_review(page, choices)
    # Branching: NA's meeting questions were asked, Cocaine Anonymous's were not.
    assert "mtg_na_inperson" in seen and "mtg_ca_inperson" not in seen
    page.screenshot(path=str(DOCS / "participant-review.png"), full_page=False)
    page.locator("#send").click()
    page.wait_for_url("**/done")
    assert "Thank you" in page.locator("h1").inner_text()
    page.screenshot(path=str(DOCS / "participant-done.png"))
    response = Response.objects.get()
    assert response.status == Response.Status.SUBMITTED
    assert response.answers["mtg_na_inperson"] == 6
    assert "mtg_ca_inperson" not in response.answers


def test_a_draft_resumes_on_another_phone_at_the_same_place(phone, live_server, due_participant):
    first = phone()
    open_link(first, live_server, due_participant)
    first.get_by_role("link", name="Start").first.click()
    answer_screen(first, {"attended_any": "0"})
    first.locator("#next").click()
    answer_screen(first, {})
    with first.expect_response(lambda r: r.url.endswith("/draft/") and r.status == 200):
        first.locator("#next").click()
    where = first.locator("#progress-text").inner_text()
    first.context.close()

    second = phone()  # another device: no local copy, only the server's draft
    open_link(second, live_server, due_participant)
    second.get_by_role("link", name="Continue").first.click()
    expect(second.locator("#progress-text")).to_have_text(where)
    expect(second.locator("#q-attended_any input[value='0']")).to_be_checked()


def test_a_survey_left_at_the_review_reopens_at_the_review(phone, live_server, due_participant):
    first = phone()
    open_link(first, live_server, due_participant)
    first.get_by_role("link", name="Start").first.click()
    for _ in range(120):
        answer_screen(first, {"attended_any": "0", "overdose": "0", "craving": 6})
        with first.expect_response(lambda r: r.url.endswith("/draft/") and r.status == 200):
            first.locator("#next").click()
        if first.locator("#review").is_visible():
            break
    expect(first.locator("#progress-text")).to_have_text("Check your answers")

    # The same phone, the page opened again: the review, not Question 1.
    first.reload()
    expect(first.locator("#review")).to_be_visible()
    expect(first.locator("#progress-text")).to_have_text("Check your answers")
    expect(first.locator("#send")).to_be_visible()
    first.context.close()

    # Another phone (only the server's draft): the review too, with the answers kept.
    second = phone()
    open_link(second, live_server, due_participant)
    second.get_by_role("link", name="Continue").first.click()
    expect(second.locator("#review")).to_be_visible()
    expect(second.locator("#progress-text")).to_have_text("Check your answers")
    expect(second.locator("#review-list")).to_contain_text("6")
    second.locator("#send").click()
    second.wait_for_url("**/done")
    assert Response.objects.get().answers["craving"] == 6


def test_another_participants_survey_answers_404(
    phone, live_server, due_participant, enrol, site_a
):
    from datetime import timedelta

    from django.utils import timezone

    other = enrol(
        site=site_a, code="NYC-0043", enrolled_on=timezone.localdate() - timedelta(days=30)
    )
    theirs = other.assignments.get(wave__slug="m1")
    page = phone()
    open_link(page, live_server, due_participant)
    reply = page.goto(f"{live_server.url}/p/s/{theirs.pk}/followup/")
    assert reply.status == 404


@pytest.mark.parametrize("path", ["/p/"])
def test_home_page_screenshot(phone, live_server, due_participant, path):
    page = phone()
    open_link(page, live_server, due_participant)
    assert page.get_by_role("heading", name="Your surveys").is_visible()
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "participant-home.png"))


def test_a_survey_finished_offline_is_sent_on_reconnect_exactly_once(
    phone, live_server, due_participant
):
    page = phone()
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Start").first.click()
    # Hold every draft save in flight, so that their replies land after "Send" (as on a
    # slow connection): a late "Saved." must not hide that the answers wait on the phone.
    held = []
    page.route("**/draft/", lambda route: held.append(route))
    answer_to_review(page, {"attended_any": "0", "overdose": "0"})
    page.context.set_offline(True)
    page.locator("#send").click()
    expect(page.locator("#status")).to_contain_text("saved on this phone")
    assert held
    for route in held:
        route.fulfill(status=200, content_type="application/json", body="{}")
    page.unroute("**/draft/")
    page.wait_for_timeout(300)
    expect(page.locator("#status")).to_contain_text("saved on this phone")
    assert not Response.objects.filter(status=Response.Status.SUBMITTED).exists()
    page.context.set_offline(False)
    page.wait_for_url("**/done", timeout=15000)
    assert Response.objects.filter(status=Response.Status.SUBMITTED).count() == 1


def test_answers_changed_after_a_send_whose_reply_was_lost_are_not_claimed_saved(
    phone, live_server, due_participant
):
    # No service worker: only the page sends, so the order of events is the test's.
    page = phone(service_workers="block")
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Start").first.click()
    answer_to_review(page, {"attended_any": "0", "overdose": "0"})

    def reply_lost(route):  # the answers reach the server; its reply never reaches the phone
        route.fetch()
        route.abort("connectionreset")

    page.route("**/submit/", reply_lost)
    page.locator("#send").click()
    expect(page.locator("#status")).to_contain_text("saved on this phone")
    page.unroute("**/submit/")
    first = Response.objects.get()
    assert first.status == Response.Status.SUBMITTED
    # The participant goes back and changes the craving answer, then sends again.
    for _ in range(60):
        if page.locator("#q-craving").is_visible():
            break
        page.locator("#back").click()
    page.locator("#q-craving input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    for _ in range(60):
        if page.locator("#review").is_visible():
            break
        page.locator("#next").click()
    page.locator("#send").click()
    page.wait_for_url("**/done")
    expect(page.locator(".notice")).to_contain_text("we kept the answers you sent first")
    page.screenshot(path=str(DOCS / "participant-done-kept-first.png"))
    assert Response.objects.get().answers == first.answers


def test_a_question_shown_by_a_calculated_field_keeps_its_answer(
    phone, live_server, due_participant
):
    """Found by review: the phone worked calculated fields out last, so a question shown by
    one (a score of the two before it) was shown, answered and listed for review, then sent
    without its answer; the server, which had the score, asked for it again, and the
    participant could never send."""
    from surveys.instruments import instrument_items_set

    followup = due_participant.study.instruments.get(slug="followup")
    instrument_items_set(
        instrument=followup,
        items=[
            {"variable": "q1", "kind": "integer", "label": {"en": "First count"}},
            {"variable": "q2", "kind": "integer", "label": {"en": "Second count"}},
            {"variable": "score", "kind": "calc", "label": {"en": "Score"},
             "calculation": "[q1] + [q2]"},
            {"variable": "q3", "kind": "yesno", "label": {"en": "Shown when the score is 5+"},
             "branching": "[score] >= 5", "required": True},
            {"variable": "q4", "kind": "text", "label": {"en": "Anything else?"}},
        ],
    )  # fmt: skip
    page = phone()
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Start").first.click()
    choices = {"q1": 3, "q2": 4, "q3": "1", "q4": "hello"}
    assert "q3" in answer_to_review(page, choices, screens=10)
    page.locator("#send").click()
    page.wait_for_url("**/done")
    response = Response.objects.get(instrument=followup)
    assert response.answers == {"q1": 3, "q2": 4, "score": 7, "q3": 1, "q4": "hello"}


def test_a_survey_changed_while_open_says_to_reload(phone, live_server, due_participant):
    """Found by review: a version published after the page opened asked for a question the
    page did not have; the phone showed nothing and said "Sending…" for ever. It now says the
    survey changed and to reload (the answers stay on the phone)."""
    from surveys.instruments import instrument_items_set, version_items_as_dicts

    followup = due_participant.study.instruments.get(slug="followup")
    small = [
        {"variable": "q1", "kind": "integer", "label": {"en": "First count"}},
        {"variable": "q4", "kind": "text", "label": {"en": "Anything else?"}},
    ]
    instrument_items_set(instrument=followup, items=small)
    page = phone()
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Start").first.click()
    answer_to_review(page, {"q1": 2, "q4": "fine"}, screens=5)
    # As when the phone was offline until now: no draft of theirs reached the server.
    Response.objects.filter(instrument=followup, status="draft").delete()
    new = {"variable": "q9", "kind": "yesno", "label": {"en": "New"}, "required": True}
    items = version_items_as_dicts(followup.current_version)
    instrument_items_set(instrument=followup, items=[*items, {**new, "position": 3}])
    page.locator("#send").click()
    expect(page.locator("#status")).to_contain_text("This survey was changed since you opened it")
    assert not Response.objects.filter(instrument=followup, status="submitted").exists()
