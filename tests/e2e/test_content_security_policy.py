"""The Content-Security-Policy in a real browser: the pages that used to run inline script
(the participant's signed-out page, the API's interactive docs) still do their work with the
policy on, and the browser refuses nothing (every browser test checks that, see conftest)."""

from playwright.sync_api import expect

from tests.e2e.helpers import open_link


def test_signing_out_clears_the_phones_copies_under_the_policy(phone, live_server, due_participant):
    page = phone()
    open_link(page, live_server, due_participant)
    page.evaluate("localStorage.setItem('survey:draft', 'an answer typed earlier')")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    page.wait_for_load_state("load")  # the page's scripts have run
    # The script (a file now, no longer inline) ran: the typed answers are gone.
    assert page.evaluate("localStorage.getItem('survey:draft')") is None


def test_the_api_docs_render_under_the_policy(phone, live_server, db):
    page = phone()
    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_be_visible(timeout=15_000)
    expect(page.locator(".opblock").first).to_be_visible()
