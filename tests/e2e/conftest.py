"""Browser tests: Debian's Chromium driven by Playwright, at a 390×844 touch viewport."""

import shutil
from datetime import timedelta

import pytest

from tests.e2e.helpers import new_york_today, settle

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


def csp_watch(page, refused: list[str]) -> None:
    """Keep every message in which the browser says the Content-Security-Policy refused
    something (an inline script, a script or style from elsewhere, eval)."""

    def heard(message) -> None:
        if "Content Security Policy" in message.text:
            refused.append(f"{page.url}: {message.text}")

    page.on("console", heard)


@pytest.fixture
def csp_refusals():
    """What the Content-Security-Policy refused in the test's pages: nothing, or the test fails
    (every browser test checks the policy against what the pages really load)."""
    refused: list[str] = []
    yield refused
    assert not refused, "\n".join(refused)


@pytest.fixture
def phone(browser, csp_refusals):
    """A new phone: its own cookies and storage."""
    contexts = []

    def _make(**options):
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, **options
        )
        contexts.append(context)
        page = context.new_page()
        csp_watch(page, csp_refusals)
        return page

    yield _make
    for context in contexts:
        settle(context)
        context.close()


@pytest.fixture
def due_participant(transactional_db, site_a, enrol):
    """A participant whose month-1 follow-up is open now, and due today on their calendar."""
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=new_york_today() - timedelta(days=30),
        timezone="America/New_York",
    )
