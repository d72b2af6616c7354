"""Two-factor sign-in in a real browser, as a principal investigator whose study requires it
meets it: signed in with the password, sent to the set-up page, key typed into an app (here:
the code computed from it), turned on; next time the sign-in page asks for the code."""

import re

import pytest
from playwright.sync_api import expect

from surveys import totp
from tests.e2e.test_coordinator import PASSWORD, laptop  # noqa: F401


@pytest.fixture
def pi(transactional_db, study, staff_user):
    study.pi_two_factor_required = True
    study.save()
    user = staff_user(study=study, role="pi", username="lead")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_pi_turns_on_two_factor_sign_in_and_then_needs_the_code(
    laptop,  # noqa: F811
    live_server,
    pi,
    csp_refusals,
    tmp_path,
):
    page = laptop()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/two-factor/$"))
    expect(page.locator(".errornote")).to_contain_text("requires two-factor sign-in")
    secret = page.locator("#two-factor-key").inner_text().replace(" ", "")
    page.screenshot(path=str(tmp_path / "two-factor.png"), full_page=True)
    page.fill("#code", totp.code_at(secret, totp.step_now()))
    page.click("input[type=submit]")
    expect(page.locator("#content-main")).to_contain_text("Two-factor sign-in is on")
    page.goto(f"{live_server.url}/admin/")
    page.locator("#logout-form button, #logout-form input[type=submit]").first.click()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_contain_text("code of your authenticator app")
    page.fill("#id_username", "lead")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_code", totp.code_at(secret, totp.step_now() + 1))  # the next step's code
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    assert not csp_refusals
