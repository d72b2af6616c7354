"""Issue 7 in a real browser, as a researcher would: ask for a big wide export with shifted
dates, watch the job's page until the worker is done, download the file and read it."""

import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from surveys.exports import export_job_run
from surveys.models import DatasetExportJob
from tests.e2e.test_coordinator import PASSWORD, laptop, sign_in  # noqa: F401 - fixture

SHOTS = Path(tempfile.gettempdir())  # screenshots to look at; not kept in the repository


@pytest.fixture
def researcher(transactional_db, study, site_a, site_b, staff_user, enrol):
    for site in (site_a, site_b, site_a):
        enrol(site=site, enrolled_on=timezone.localdate())
    user = staff_user(study=study, role="researcher", username="analyst")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_researcher_downloads_a_background_export(
    laptop,  # noqa: F811
    live_server,
    study,
    researcher,
    settings,
):
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2  # three people: a background job
    page = laptop()
    sign_in(page, live_server, researcher)
    page.goto(f"{live_server.url}/admin/surveys/study/{study.pk}/export/")
    page.check("input[name=shape][value=wide]")
    page.check("input[name=dates][value=shifted]")
    page.screenshot(path=SHOTS / "export-form.png", full_page=True)
    page.click(".submit-row input[type=submit]")

    expect(page.locator("progress")).to_be_visible()
    job = DatasetExportJob.objects.get()
    assert job.status == DatasetExportJob.Status.QUEUED
    assert page.url.endswith(f"/exports/{job.pk}/")
    export_job_run(job_id=job.pk)  # what the worker does with the job's id

    download_link = page.get_by_role("link", name="Download")
    expect(download_link).to_be_visible(timeout=10_000)  # the page reloads itself
    page.screenshot(path=SHOTS / "export-job.png", full_page=True)
    job.refresh_from_db()
    assert job.path and job.path not in page.content()  # the stored file's name stays private
    with page.expect_download() as caught:
        download_link.click()
    frame = pd.read_csv(io.BytesIO(Path(caught.value.path()).read_bytes()))
    assert len(frame) == 3 and frame["pid"].str.startswith("P").all()
    assert "enrolled_on" in frame.columns and "status_m1" in frame.columns
