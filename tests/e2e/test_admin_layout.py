"""Staff pages at a laptop's width (1400×900): the participant page's contact details and the
retention dashboard's tables, as a coordinator reads them. Screenshots go to the temporary
directory, to look at."""

import tempfile
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from recovery.services import demo_study_seed
from surveys.models import Participant, StaffRole
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
