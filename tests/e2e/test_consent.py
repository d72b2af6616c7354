"""E-consent on a phone: the consent text before any survey, errors tied to their fields, a
typed name and a tick, then the participant's own copy; axe-clean and reflowing at 200 %
zoom in English, Spanish and Persian. The screenshot in docs/ comes from here."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from surveys.consent import ConsentInput
from surveys.models import Consent
from tests.e2e.helpers import open_link
from tests.e2e.test_accessibility import WIDE_ELEMENTS, assert_accessible
from tests.e2e.test_survey import DOCS

TYPED = {"en": "Rosa Quintero", "es": "Ana María López", "fa": "مریم احمدی"}
SIGN_LABEL = {"en": "Type your name to sign", "es": "Escriba su nombre", "fa": "برای امضا"}
AGREE = {"en": "I agree", "es": "Acepto", "fa": "موافقم"}


@pytest.fixture
def pending(transactional_db, site_a, enrol):
    def _make(language: str):
        return enrol(
            site=site_a,
            enrolled_on=timezone.localdate() - timedelta(days=1),
            timezone="America/New_York",
            language=language,
            consent=ConsentInput(method=Consent.Method.ELECTRONIC),
        )

    return _make


@pytest.mark.parametrize("language", ["en", "es", "fa"])
def test_a_participant_consents_on_their_phone_then_reaches_the_surveys(
    phone, live_server, pending, language
):
    participant = pending(language)
    page = phone()
    open_link(page, live_server, participant)
    page.wait_for_url("**/p/consent")
    assert_accessible(page, f"consent ({language})")
    if language == "en":
        page.screenshot(path=str(DOCS / "participant-consent.png"), full_page=True)
    # Sent without the tick or a name: both errors, tied to their fields, nothing saved.
    page.get_by_role("button", name=AGREE[language], exact=True).click()
    expect(page.locator(".error-summary")).to_be_visible()
    expect(page.locator("#typed_name")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, f"consent with errors ({language})")
    assert not Consent.objects.exists()
    page.get_by_label(SIGN_LABEL[language]).fill(TYPED[language])
    page.locator("input[name=agree]").check()
    page.get_by_role("button", name=AGREE[language], exact=True).click()
    page.wait_for_url("**/p/consent/copy?new=1")
    expect(page.locator("main")).to_contain_text(TYPED[language])
    assert_accessible(page, f"consent copy ({language})")
    consent = Consent.objects.get()
    assert consent.typed_name == TYPED[language] and consent.language == language
    page.locator("a.button").click()
    page.wait_for_url("**/p/")
    expect(page.locator(".card").first).to_be_visible()


@pytest.mark.parametrize("language", ["en", "fa"])
def test_the_consent_pages_reflow_at_200_percent_zoom(browser, live_server, pending, language):
    participant = pending(language)
    context = browser.new_context(
        viewport={"width": 195, "height": 422}, device_scale_factor=4, is_mobile=True
    )
    page = context.new_page()
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    try:
        open_link(page, live_server, participant)
        page.wait_for_url("**/p/consent")
        assert page.evaluate(overflow) <= 0, "consent: " + page.evaluate(WIDE_ELEMENTS)
        page.locator("#typed_name").fill(TYPED[language])
        page.locator("input[name=agree]").check()
        page.locator("button[value=agree]").click()
        page.wait_for_url("**/p/consent/copy?new=1")
        assert page.evaluate(overflow) <= 0, "copy: " + page.evaluate(WIDE_ELEMENTS)
    finally:
        context.close()
