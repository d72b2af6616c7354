"""Issue 8 in a real browser, as a researcher new to the app would: from the admin home to the
study's Analyses page, run every analysis with the suggested choices, read the results and
download the report."""

import tempfile
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from recovery.models import AnalysisRun
from recovery.services import demo_study_seed
from surveys.models import StaffRole
from tests.e2e.test_coordinator import PASSWORD, laptop, sign_in  # noqa: F401 - fixture

SHOTS = Path(tempfile.gettempdir())  # screenshots to look at; not kept in the repository


@pytest.fixture
def cohort(transactional_db):
    study, _ = demo_study_seed(
        slug="demo", participants=400, seed=5, effect=-0.15, as_of=date(2026, 11, 24)
    )
    return study


@pytest.fixture
def analyst(cohort, staff_user):
    user = staff_user(study=cohort, role=StaffRole.Role.RESEARCHER, username="analyst")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_researcher_runs_every_analysis_and_downloads_the_report(
    laptop,  # noqa: F811
    live_server,
    cohort,
    analyst,
):
    page = laptop()
    sign_in(page, live_server, analyst)
    page.get_by_role("link", name=f"Analyses: {cohort.name}").click()
    expect(page.get_by_role("heading", name=f"Analyses: {cohort.name}")).to_be_visible()
    # The suggested question is filled in: every analysis, high involvement in the first
    # three months, any use at twelve months, the template's baseline covariates.
    for value in ("descriptives", "lagged_gee", "mixed_model", "matching", "online"):
        expect(page.locator(f"input[name=analyses][value={value}]")).to_be_checked()
    expect(page.locator("input[name=exposure_waves][value=m3]")).to_be_checked()
    expect(page.locator("select[name=outcome_wave]")).to_have_value("m12")
    page.screenshot(path=SHOTS / "analyses-form.png", full_page=True)
    page.get_by_role("button", name="Run").click()

    expect(page.get_by_role("link", name="Download the report (HTML)")).to_be_visible(
        timeout=60_000
    )
    run = AnalysisRun.objects.get()
    assert run.status == "done"
    for title in (
        "Attendance, involvement, medication and retention by wave",
        "Lagged GEE: exposure at one wave, outcome at the next",
        "Mixed model of craving over time",
        "Propensity-score matching: exposure in the early waves, outcome later",
        "Online versus in-person attendance",
    ):
        expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.locator("text=Not run:")).to_have_count(0)
    expect(page.locator("figure svg").first).to_be_visible()
    page.screenshot(path=SHOTS / "analyses-results.png", full_page=True)

    with page.expect_download() as caught:
        page.get_by_role("link", name="Download the report (HTML)").click()
    html = Path(caught.value.path()).read_text(encoding="utf-8")
    assert "Matched estimate (ATT)" in html and run.data_hash in html
    assert html.count("<svg") >= 10 and "<script" not in html

    # The report opens on its own, with no server behind it.
    report = SHOTS / "analyses-report.html"
    report.write_text(html, encoding="utf-8")
    page.goto(report.as_uri())
    expect(
        page.get_by_role(
            "heading", name="Propensity-score matching: exposure in the early waves, outcome later"
        )
    ).to_be_visible()

    # The run is listed for comparison, and can be run again with its parameters.
    page.goto(f"{live_server.url}/admin/recovery/analysisrun/study/{cohort.pk}/")
    expect(page.locator("#recent-runs")).to_contain_text(run.data_hash[:10])
    page.get_by_role("link", name="run again").click()
    expect(page.locator("input[name=seed]")).to_have_value("0")
