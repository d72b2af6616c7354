"""Staff pages at a laptop's width (1400×900): the participant page's contact details and
contact log, the messages list and the retention dashboard's tables, as a coordinator reads
them. Screenshots go to the temporary directory, to look at."""

import tempfile
from datetime import date
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from recovery.services import demo_study_seed
from surveys.models import DatasetExportJob, Participant, StaffRole
from surveys.services import contact_attempt_log
from tests.e2e.conftest import csp_watch
from tests.e2e.test_coordinator import PASSWORD, sign_in

SHOTS = Path(tempfile.gettempdir())  # screenshots to look at; not kept in the repository
EMAIL = "marisol.vega-castellanos@example-clinic.org"  # 43 characters


@pytest.fixture
def wide_laptop(browser, csp_refusals):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    csp_watch(page, csp_refusals)
    yield page
    context.close()


@pytest.fixture
def cohort(transactional_db):
    study, _ = demo_study_seed(
        slug="demo", participants=120, seed=7, effect=-0.15, as_of=date(2026, 11, 24)
    )
    return study


@pytest.fixture
def pi(cohort, staff_user):
    user = staff_user(study=cohort, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_typical_email_address_shows_whole_on_the_participant_page(
    wide_laptop, live_server, cohort, pi
):
    page = wide_laptop
    sign_in(page, live_server, pi)
    participant = Participant.objects.filter(study=cohort).first()
    page.goto(f"{live_server.url}/admin/surveys/participant/{participant.pk}/change/")
    field = page.locator("#id_contact-0-email")
    field.fill(EMAIL)
    page.screenshot(path=SHOTS / "admin-participant-contact.png", full_page=True)
    # Nothing of the address is scrolled out of sight in the box.
    hidden = field.evaluate("box => box.scrollWidth - box.clientWidth")
    assert hidden <= 0, f"{hidden}px of the address cut off"


# How many lines an element's text takes on screen.
LINES = """el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].map(r => Math.round(r.bottom))).size;
}"""


def test_the_retention_tables_are_readable_at_a_laptops_width(wide_laptop, live_server, cohort, pi):
    page = wide_laptop
    sign_in(page, live_server, pi)
    page.goto(f"{live_server.url}/admin/surveys/study/{cohort.pk}/retention/")
    expect(page.locator("h1")).to_contain_text("Retention")
    page.screenshot(path=SHOTS / "admin-retention.png", full_page=True)
    boxes = page.locator(".retention-table")
    assert boxes.count() == 4
    for box in boxes.all():
        caption = box.locator("caption").inner_text()
        # The whole table is in sight: no column cut off at the edge.
        hidden = box.evaluate("b => b.scrollWidth - b.clientWidth")
        assert hidden <= 0, f"{caption}: {hidden}px out of sight"
        # Each number and wave on one line, each column heading on at most two.
        for cell in box.locator("tbody th, td").all():
            assert cell.evaluate(LINES) == 1, f"{caption}: “{cell.inner_text()}” wraps"
        for heading in box.locator("thead th").all():
            lines = heading.evaluate(LINES)
            assert lines <= 2, f"{caption}: “{heading.inner_text()}” on {lines} lines"


# Which of a table's column headings end past the right edge of the table's box (scrolled out
# of sight) or of the window: their text and how many pixels are hidden.
CUT_OFF = """table => {
    const box = table.parentElement.getBoundingClientRect();
    const edge = Math.min(box.right, window.innerWidth);
    return [...table.querySelectorAll("thead th")]
        .map(th => [th.innerText.trim(), Math.round(th.getBoundingClientRect().right - edge)])
        .filter(([, hidden]) => hidden > 0);
}"""


@pytest.mark.parametrize(
    ("model", "last_column"),
    [
        ("message", "Sent (UTC)"),
        ("assignment", "Completed (UTC)"),
        ("response", "Submitted (UTC)"),
        ("datasetexportjob", "Page"),
    ],
)
def test_every_column_of_a_record_list_shows_at_a_laptops_width(
    wide_laptop, live_server, cohort, pi, model, last_column
):
    """The lists whose times say "(UTC)": their headings grew, and every column stays in
    sight beside the two sidebars."""
    if model == "datasetexportjob":
        DatasetExportJob.objects.create(
            study=cohort, created_by=pi, created_at=timezone.now(), status="done",
            expires_at=timezone.now(), rows=1200,
        )  # fmt: skip
    page = wide_laptop
    sign_in(page, live_server, pi)
    page.goto(f"{live_server.url}/admin/surveys/{model}/")
    table = page.locator("#result_list")
    expect(table.locator("thead th").last).to_have_text(last_column, ignore_case=True)
    page.screenshot(path=SHOTS / f"admin-{model}-list.png")
    assert table.evaluate(CUT_OFF) == []
    hidden = page.locator("#changelist .results").evaluate("b => b.scrollWidth - b.clientWidth")
    assert hidden <= 0, f"{hidden}px of the list scrolled out of sight"
    # The last column's values are there to read, not squeezed to nothing.
    last = table.locator("tbody tr").first.locator("td").last
    assert last.evaluate("td => td.getBoundingClientRect().right") <= 1400
    assert last.inner_text().strip() not in ("", "-")


def test_the_contact_log_fits_the_participant_page_at_a_laptops_width(
    wide_laptop, live_server, cohort, pi
):
    page = wide_laptop
    sign_in(page, live_server, pi)
    participant = Participant.objects.filter(study=cohort).first()
    contact_attempt_log(
        participant=participant,
        method="call",
        outcome="no_answer",
        by=pi,
        note="Left a voicemail; her sister said to call back after six on weekdays, not Fridays.",
    )
    page.goto(f"{live_server.url}/admin/surveys/participant/{participant.pk}/change/")
    log = page.locator("#contact_attempts-group")
    expect(log).to_contain_text("Left a voicemail")
    log.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "admin-participant-contact-log.png", full_page=True)
    table = log.locator("table")
    assert table.evaluate(CUT_OFF) == []
    hidden = table.evaluate("t => t.parentElement.scrollWidth - t.parentElement.clientWidth")
    assert hidden <= 0, f"{hidden}px of the contact log scrolled out of sight"
    # The new attempt's note box is whole, and wide enough to write in.
    note = log.locator("td.field-note textarea").first
    right = note.evaluate("n => n.getBoundingClientRect().right")
    assert right <= log.evaluate("g => g.getBoundingClientRect().right")
    assert note.evaluate("n => n.getBoundingClientRect().width") >= 150
    page_hidden = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert page_hidden <= 0, f"the page is {page_hidden}px wider than the window"
