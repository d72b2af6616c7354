"""Staff pages at a laptop's width (1400×900): the participant page's contact details, as a
coordinator reads them. Screenshots go to the temporary directory, to look at."""

import tempfile
from datetime import date
from pathlib import Path

import pytest

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
