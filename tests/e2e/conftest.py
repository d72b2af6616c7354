"""Browser tests: Debian's Chromium driven by Playwright, at a 390×844 touch viewport."""

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API runs an event loop in this thread
    until it stops; the tests' own database calls stay synchronous and never overlap with it,
    so Django's async guard is lifted for the module only (another test's deploy check
    refuses the variable in its environment)."""
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser):
    """A new phone: its own cookies and storage."""
    contexts = []

    def _make():
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        contexts.append(context)
        return context.new_page()

    yield _make
    for context in contexts:
        context.close()


@pytest.fixture
def due_participant(transactional_db, site_a, enrol):
    """A participant whose month-1 follow-up is open now."""
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
    )
