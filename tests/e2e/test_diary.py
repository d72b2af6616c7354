"""The meeting diary on a phone: log two meetings, see them listed, and find the survey's
meeting count filled in from the log; axe on the home page with the diary; the screenshot in
docs/."""

from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import expect

from surveys import diary
from surveys.models import DiaryEntry
from tests.e2e.helpers import answer_screen, open_link
from tests.e2e.test_accessibility import assert_accessible

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_logged_meetings_are_listed_and_fill_in_the_survey(phone, live_server, due_participant):
    page = phone()
    open_link(page, live_server, due_participant)
    today = diary.local_today(due_participant.timezone, timezone.now())

    form = page.locator("form.diary-form")
    expect(page.get_by_label("Date of the meeting")).to_have_value(today.isoformat())
    page.get_by_label("Group").select_option(label="Narcotics Anonymous")
    page.get_by_label("How did you take part?").select_option(label="In person")
    form.get_by_role("button", name="Log this meeting").click()
    expect(page.locator("#diary [role=status]")).to_contain_text(
        "Meeting logged: Narcotics Anonymous, In person"
    )

    page.get_by_label("Group").select_option(label="Narcotics Anonymous")
    page.get_by_label("How did you take part?").select_option(label="In person")
    page.get_by_label("Date of the meeting").fill((today - timedelta(days=3)).isoformat())
    form.get_by_role("button", name="Log this meeting").click()
    expect(page.locator(".diary-log li")).to_have_count(2)
    expect(page.locator("#diary-log-title + p")).to_have_text("2 meetings logged so far.")
    assert DiaryEntry.objects.filter(participant=due_participant).count() == 2

    assert_accessible(page, "home with the diary")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "participant-diary.png"), full_page=True)

    page.get_by_role("link", name="Start").first.click()
    expect(page.locator("#progress-text")).to_contain_text("Question 1 of")
    # "Any meetings?" starts at yes from the log; the participant confirms, and NA.
    expect(page.locator("#q-attended_any input[value='1']")).to_be_checked()
    answer_screen(page, {"attended_any": "1"})
    page.locator("#next").click()
    expect(page.locator("#q-fellowships input[value='1']")).to_be_checked()
    answer_screen(page, {"fellowships": ["1"]})
    page.locator("#next").click()

    count = page.locator("#in-mtg_na_inperson")
    expect(count).to_be_visible()
    expect(count).to_have_value("2")
    note = page.locator("#diary-mtg_na_inperson")
    expect(note).to_contain_text("Your log shows 2 meetings since")
    assert "diary-mtg_na_inperson" in count.get_attribute("aria-describedby")
    assert_accessible(page, "a question filled in from the log")

    # The participant changes it; their answer, saved as a draft, wins over the log on reload.
    count.fill("3")
    with page.expect_response(lambda r: r.url.endswith("/draft/") and r.status == 200):
        page.locator("#next").click()
    page.reload()
    expect(page.locator("#in-mtg_na_inperson")).to_have_value("3")
