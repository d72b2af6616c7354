"""Background dataset exports: a large scope is queued as a job, a Celery task writes the same
dataset to a private file with its progress, only the job's creator downloads it (audited),
until it expires; a failure leaves a readable message and no file."""

import io
import os
import re
import stat
import time as clock
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from surveys import exports, tasks
from surveys.datasets.formats import FORMATS as FILE_FORMATS
from surveys.exports import (
    Export,
    ExportSpec,
    dataset_export,
    export_job_run,
    export_job_start,
    export_jobs_expire,
    export_should_run_in_background,
)
from surveys.models import AuditEvent, DatasetExportJob
from tests.celery_helpers import broker, worker_env, worker_start

CONTACTS = {
    "NYC-0001": {"first_name": "Zebulon", "email": "zeb@example.org", "phone": "+12125550111"},
    "LDN-0001": {"first_name": "Philippa", "email": "pip@example.org", "phone": "+442079460999"},
}
Status = DatasetExportJob.Status
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>")


@pytest.fixture
def people(site_a, site_b, enrol):
    enrolled = timezone.localdate() - timezone.timedelta(days=40)
    return [
        enrol(site=site, code=code, enrolled_on=enrolled, contact=CONTACTS[code])
        for site, code in ((site_a, "NYC-0001"), (site_b, "LDN-0001"))
    ]


@pytest.fixture
def background(settings):
    """Two participants are "a large export" here."""
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2
    return settings


@pytest.fixture
def sent(monkeypatch):
    """The arguments of every export task queued, instead of a broker."""
    calls = []
    monkeypatch.setattr(tasks.export_job_run, "delay", lambda *args, **kw: calls.append((args, kw)))
    return calls


@pytest.fixture
def pi(staff_user, study):
    return staff_user(study=study, role="pi", username="the-pi")


def post_export(client, study, **form):
    return client.post(reverse("admin:surveys_study_export", args=[study.pk]), form)


def job_page(job) -> str:
    return reverse("admin:surveys_study_export_job", args=[job.pk])


def download_url(job) -> str:
    return reverse("admin:surveys_study_export_download", args=[job.pk])


def body(reply) -> bytes:
    return b"".join(reply.streaming_content) if reply.streaming else reply.content


def stored(job) -> Path:
    from django.conf import settings

    return Path(settings.EXPORT_ROOT) / job.path


def queued_job(client, study, django_capture_on_commit_callbacks, **form) -> DatasetExportJob:
    with django_capture_on_commit_callbacks(execute=True):
        reply = post_export(client, study, **form)
    job = DatasetExportJob.objects.get()
    assert reply.status_code == 302 and reply["Location"] == job_page(job)
    return job


# --- The whole path, in the admin ---------------------------------------------------------------


def test_a_large_export_is_queued_run_and_downloaded_with_the_streamed_rows(
    client, study, people, researcher, background, sent, django_capture_on_commit_callbacks
):
    client.force_login(researcher)
    job = queued_job(client, study, django_capture_on_commit_callbacks, shape="wide", format="csv")
    assert sent == [((job.pk,), {})]  # the job's id and nothing else goes through the broker
    assert (job.status, job.progress, job.created_by, job.study) == (
        Status.QUEUED, 0, researcher, study,
    )  # fmt: skip
    assert job.spec["shape"] == "wide" and job.spec["enrolled_from"] is None
    assert not AuditEvent.objects.filter(action="dataset_export").exists()  # audited when run

    page = client.get(job_page(job))
    assert '<meta http-equiv="refresh" content="2">' in page.text
    assert not INLINE_SCRIPT.search(page.text) and "Download</a>" not in page.text

    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.progress, job.message) == (Status.DONE, 100, "")
    assert job.rows == 2 and job.size == stored(job).stat().st_size
    assert job.expires_at == job.finished_at + timedelta(hours=24)
    assert job.filename.startswith(f"{study.slug}_wide_") and job.filename.endswith(".csv")
    # Private: a random name, readable by its owner only, in a folder of the owner only.
    assert stat.S_IMODE(stored(job).stat().st_mode) == 0o600
    assert stat.S_IMODE(stored(job).parent.stat().st_mode) == 0o700
    assert job.path.split(".")[0] not in job.filename and len(job.path) > 40
    events = AuditEvent.objects.filter(action="dataset_export")
    assert events.count() == 1 and events.get().user == researcher  # once, as the creator

    page = client.get(job_page(job))
    assert "refresh" not in page.text and download_url(job) in page.text
    listing = client.get(reverse("admin:surveys_study_export", args=[study.pk]))
    assert job_page(job) in listing.text and download_url(job) in listing.text
    for text in (page.text, listing.text, download_url(job)):
        assert job.path not in text  # the file's name on the server never shows

    reply = client.get(download_url(job))
    assert reply.status_code == 200 and "no-store" in reply["Cache-Control"]
    assert reply["Content-Disposition"] == f'attachment; filename="{job.filename}"'
    assert reply["Content-Type"].startswith("text/csv")
    downloaded = pd.read_csv(io.BytesIO(body(reply)))
    download = AuditEvent.objects.get(action="export_download")
    assert download.user == researcher and download.study == study
    assert download.details == {
        "job": job.pk, "shape": "wide", "format": "csv", "rows": 2, "identified": False,
    }  # fmt: skip

    # The same spec below the threshold streams, with the same rows.
    background.EXPORT_BACKGROUND_PARTICIPANTS = 3
    streamed = post_export(client, study, shape="wide", format="csv")
    assert streamed.streaming and DatasetExportJob.objects.count() == 1
    pd.testing.assert_frame_equal(downloaded, pd.read_csv(io.BytesIO(body(streamed))))
    assert len(downloaded) == 2 and set(downloaded["site"]) == {"NYC", "LDN"}
    text = body(reply).decode().lower()
    for code, contact in CONTACTS.items():
        assert code.lower() not in text
        assert all(value.lower() not in text for value in contact.values())


@pytest.mark.parametrize("fmt", ["parquet", "sav"])
def test_a_file_format_job_reads_back_like_the_streamed_file(
    client, study, people, researcher, background, sent, django_capture_on_commit_callbacks, fmt
):
    client.force_login(researcher)
    job = queued_job(client, study, django_capture_on_commit_callbacks, shape="long", format=fmt)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.DONE and job.progress == 100
    reply = client.get(download_url(job))
    assert reply["Content-Type"] == FILE_FORMATS[fmt][0]
    background.EXPORT_BACKGROUND_PARTICIPANTS = 3
    streamed = body(post_export(client, study, shape="long", format=fmt))
    if fmt == "parquet":
        got, want = pd.read_parquet(io.BytesIO(body(reply))), pd.read_parquet(io.BytesIO(streamed))
    else:
        import pyreadstat

        paths = []
        for index, data in enumerate((body(reply), streamed)):
            path = stored(job).parent / f"check-{index}.sav"
            path.write_bytes(data)
            paths.append(path)
        got, want = (pyreadstat.read_sav(str(path))[0] for path in paths)
    assert len(got) == len(want) == 10
    pd.testing.assert_frame_equal(got, want)


def test_below_the_threshold_the_form_still_streams_and_queues_nothing(
    client, study, people, researcher, sent
):
    assert not export_should_run_in_background(2)  # the default threshold is 2,000
    client.force_login(researcher)
    reply = post_export(client, study, shape="long", format="csv")
    assert reply.status_code == 200 and reply.streaming
    assert len(pd.read_csv(io.BytesIO(body(reply)))) == 10
    assert not DatasetExportJob.objects.exists() and sent == []


def test_the_threshold_counts_the_users_scope_after_filters(
    client, study, people, coordinator_a, background, sent
):
    # A coordinator of one site sees one of the two participants: below the threshold.
    client.force_login(coordinator_a)
    reply = post_export(client, study, shape="long", format="csv")
    assert reply.streaming and not DatasetExportJob.objects.exists()


# --- Progress -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_progress_rises_from_built_to_the_last_chunk(study, people, fmt):
    seen = []
    export = dataset_export(
        user=None, study=study, spec=ExportSpec(format=fmt), progress=seen.append
    )
    # A file format's dataset is built before any chunk is asked for; a CSV is built batch by
    # batch as its chunks are read.
    assert seen == ([] if fmt == "csv" else [exports.BUILT])
    for _ in export.chunks:
        pass
    assert seen[0] == exports.BUILT
    assert seen == sorted(seen) and seen[-1] == exports.LAST and max(seen) < 100


def test_a_job_records_its_progress_as_it_goes(study, people, researcher, sent, monkeypatch):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    recorded = []
    original = exports._JobProgress.__call__

    def spy(self, percent):
        original(self, percent)
        recorded.append(DatasetExportJob.objects.get(pk=job.pk).progress)

    monkeypatch.setattr(exports._JobProgress, "__call__", spy)
    export_job_run(job_id=job.pk)
    assert recorded[0] == exports.BUILT and recorded[-1] == exports.LAST
    assert recorded == sorted(recorded)
    job.refresh_from_db()
    assert job.progress == 100 and job.status == Status.DONE


def test_a_job_runs_once(study, people, researcher, sent):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    assert export_job_run(job_id=job.pk).status == Status.DONE
    assert export_job_run(job_id=job.pk) is None  # a second delivery of the task: no-op
    assert AuditEvent.objects.filter(action="dataset_export").count() == 1
    assert len(list(exports.export_root().iterdir())) == 1


# --- Who downloads --------------------------------------------------------------------------


def test_only_the_creator_opens_or_downloads_a_job_even_a_pi_gets_404(
    client, study, people, researcher, pi, sent, django_user_model
):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123!long")
    for other in (pi, root):
        client.force_login(other)
        assert client.get(job_page(job)).status_code == 404
        assert client.get(download_url(job)).status_code == 404
        listing = client.get(reverse("admin:surveys_study_export", args=[study.pk])).text
        assert job_page(job) not in listing
    assert not AuditEvent.objects.filter(action="export_download").exists()
    client.force_login(researcher)
    assert client.get(download_url(job)).status_code == 200  # the control


def test_the_creator_loses_the_file_with_their_role_in_the_study(
    client, study, people, researcher, sent
):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    researcher.study_roles.all().delete()
    client.force_login(researcher)
    assert client.get(download_url(job)).status_code == 404


def test_the_job_list_in_the_admin_shows_ones_own_jobs_read_only(
    client, study, people, researcher, pi, sent
):
    mine = export_job_start(user=researcher, study=study, spec=ExportSpec())
    theirs = export_job_start(user=pi, study=study, spec=ExportSpec(shape="wide"))
    client.force_login(researcher)
    listing = client.get(reverse("admin:surveys_datasetexportjob_changelist"))
    assert listing.status_code == 200
    mine_url = reverse("admin:surveys_datasetexportjob_change", args=[mine.pk])
    theirs_url = reverse("admin:surveys_datasetexportjob_change", args=[theirs.pk])
    assert mine_url in listing.text and theirs_url not in listing.text
    assert client.get(theirs_url).status_code == 302  # the admin's "no such object" redirect
    assert client.get(reverse("admin:surveys_datasetexportjob_add")).status_code == 403
    page = client.get(mine_url)
    assert page.status_code == 200 and 'name="_save"' not in page.text


# --- Expiry ---------------------------------------------------------------------------------


def test_an_expired_job_answers_410_and_the_sweep_deletes_its_file(
    client, study, people, researcher, sent
):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    path = stored(job)
    assert path.exists()
    DatasetExportJob.objects.filter(pk=job.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(researcher)
    gone = client.get(download_url(job))
    assert gone.status_code == 410 and "has expired" in gone.text
    assert "no-store" in gone["Cache-Control"]
    assert export_jobs_expire() == {"expired": 1, "stalled": 0, "orphans": 0}
    job.refresh_from_db()
    assert job.status == Status.EXPIRED and job.path == "" and not path.exists()
    assert client.get(download_url(job)).status_code == 410
    page = client.get(job_page(job))
    assert "expired" in page.text and "refresh" not in page.text
    assert not AuditEvent.objects.filter(action="export_download").exists()
    assert export_jobs_expire() == {"expired": 0, "stalled": 0, "orphans": 0}


def test_the_sweep_fails_stalled_jobs_and_removes_unknown_files(
    study, people, researcher, sent, settings, staff_user
):
    now = timezone.now()
    # three people's jobs (one person has one job at a time)
    second, third = (staff_user(study=study, role="researcher", username=n) for n in "bc")
    running = export_job_start(user=researcher, study=study, spec=ExportSpec())
    DatasetExportJob.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, started_at=now - timedelta(hours=2)
    )
    queued = export_job_start(user=second, study=study, spec=ExportSpec())
    DatasetExportJob.objects.filter(pk=queued.pk).update(created_at=now - timedelta(days=2))
    fresh = export_job_start(user=third, study=study, spec=ExportSpec())
    root = exports.export_root()
    orphan, recent = root / "orphan.csv", root / "recent.csv"
    orphan.write_text("x")
    recent.write_text("x")
    old = (now - timedelta(days=2)).timestamp()
    os.utime(orphan, (old, old))
    assert export_jobs_expire(now=now) == {"expired": 0, "stalled": 2, "orphans": 1}
    for job, words in ((running, "stopped before it finished"), (queued, "No worker")):
        job.refresh_from_db()
        assert job.status == Status.FAILED and words in job.message
    fresh.refresh_from_db()
    assert fresh.status == Status.QUEUED
    assert not orphan.exists() and recent.exists()  # a file written just now may be a job's


def test_expiry_is_in_the_beat_schedule(settings):
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "surveys.tasks.export_jobs_expire" in entries
    assert tasks.export_jobs_expire.name == "surveys.tasks.export_jobs_expire"


# --- Failure --------------------------------------------------------------------------------


def test_a_failing_export_leaves_a_readable_message_and_no_file(
    client, study, people, researcher, sent, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("could not convert 'NYC-0001 Zebulon' to float")

    monkeypatch.setattr(exports, "dataset_export", broken)
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.finished_at and job.path == ""
    assert "failed because of an error in the application (RuntimeError)" in job.message
    for secret in ("NYC-0001", "Zebulon", "Traceback", 'File "'):
        assert secret not in job.message
    assert list(exports.export_root().iterdir()) == []
    client.force_login(researcher)
    page = client.get(job_page(job))
    assert "The export failed" in page.text and "refresh" not in page.text
    assert client.get(download_url(job)).status_code == 302  # back to the job's page


def test_a_failure_while_writing_removes_the_partial_file(
    study, people, researcher, sent, monkeypatch
):
    def chunks():
        yield "pid,site\r\n"
        yield "abc,NYC\r\n"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exports, "dataset_export", lambda **kwargs: Export("x.csv", 1, chunks()))
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.message.startswith("The export could not be written on the server (No space")
    assert list(exports.export_root().iterdir()) == []


def test_rights_lost_before_the_job_runs_fail_it_with_the_reason(study, people, researcher, sent):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    researcher.study_roles.all().delete()
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.message == "You have no role in this study."
    assert not AuditEvent.objects.filter(action="dataset_export").exists()


# --- Checks, as dataset_export's ---------------------------------------------------------------


def test_a_job_is_refused_for_what_a_streamed_export_refuses(
    client, study, people, researcher, background, sent, django_capture_on_commit_callbacks
):
    with pytest.raises(ValidationError, match="principal investigators"):
        export_job_start(
            user=researcher, study=study, spec=ExportSpec(identified=True, reason="x" * 20)
        )
    with pytest.raises(ValidationError, match="Not waves of this study"):
        export_job_start(user=researcher, study=study, spec=ExportSpec(waves=("m99",)))
    client.force_login(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        reply = post_export(
            client, study, shape="long", format="csv",
            enrolled_from="2026-05-01", enrolled_to="2026-01-01",
        )  # fmt: skip
    assert reply.status_code == 200 and "before its start" in reply.text
    assert not DatasetExportJob.objects.exists() and sent == []


def test_html_is_refused_for_anything_but_the_codebook(client, study, people, researcher):
    for shape in ("long", "wide", "diary"):
        with pytest.raises(ValidationError) as refused:
            ExportSpec(shape=shape, format="html").validate(study=study)
        assert "HTML is for the codebook only" in refused.value.message_dict["format"][0]
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_study_export", args=[study.pk]))
    assert 'value="html"' in page.text and "HTML (codebook only)" in page.text
    reply = post_export(client, study, shape="wide", format="html")
    assert reply.status_code == 200 and "HTML is for the codebook only" in reply.text
    if "html" not in FILE_FORMATS:
        pytest.skip("the HTML codebook writer is not there yet")
    ExportSpec(shape="codebook", format="html").validate(study=study)


def test_a_spec_goes_to_a_dict_and_back():
    spec = ExportSpec(
        shape="wide", format="sav", labels=True, sites=("NYC",), waves=("m1", "m3"),
        statuses=("active",), enrolled_from=timezone.localdate() - timedelta(days=9),
        enrolled_to=timezone.localdate(), covariates=("age",), identified=True, reason="why",
    )  # fmt: skip
    data = spec.to_dict()
    assert data["enrolled_from"] == spec.enrolled_from.isoformat() and data["sites"] == ["NYC"]
    assert ExportSpec.from_dict(data) == spec
    assert ExportSpec.from_dict({}) == ExportSpec()
    with pytest.raises(ValidationError, match="Unknown export options: colour"):
        ExportSpec.from_dict({**data, "colour": "red"})


# --- A real worker ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_job_to_done(
    client, tmp_path, settings, site_a, site_b, enrol, staff_user, monkeypatch
):
    study = site_a.study
    for index, site in enumerate((site_a, site_b, site_a)):
        enrol(site=site, code=f"{site.code}-{index:04d}")
    researcher = staff_user(study=study, role="researcher")
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2
    settings.EXPORT_ROOT = tmp_path / "exports"  # the worker's: VAR_DIR / "exports"
    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker_env, app = broker("filesystem", tmp_path)
    # export_job_start's own call, sent to this test's broker and queue.
    monkeypatch.setattr(
        tasks.export_job_run,
        "delay",
        lambda *args: app.send_task("surveys.tasks.export_job_run", args=args, queue=queue),
    )
    worker = worker_start(queues=queue, env=worker_env(tmp_path, **broker_env))
    try:
        client.force_login(researcher)
        reply = post_export(client, study, shape="wide", format="csv")
        job = DatasetExportJob.objects.get()
        assert reply.status_code == 302
        deadline = clock.monotonic() + 90
        while clock.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (Status.DONE, Status.FAILED):
                break
            clock.sleep(0.3)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert (job.status, job.progress) == (Status.DONE, 100), (job.message, output)
    assert "Task surveys.tasks.export_job_run[" in output and "succeeded" in output
    frame = pd.read_csv(io.BytesIO(body(client.get(download_url(job)))))
    assert len(frame) == 3


# --- Found by review -----------------------------------------------------------------------------


def _done_job(user, study, spec=None) -> DatasetExportJob:
    job = export_job_start(user=user, study=study, spec=spec or ExportSpec())
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.DONE
    return job


def test_a_file_is_refused_once_its_creator_may_no_longer_make_it(client, study, people, pi, sent):
    from surveys.models import StaffRole

    job = _done_job(pi, study, ExportSpec(identified=True, reason="Linking to clinic records."))
    client.force_login(pi)
    assert client.get(download_url(job)).status_code == 200
    StaffRole.objects.filter(user=pi, study=study).update(role="researcher")  # no longer a PI
    reply = client.get(download_url(job))
    assert reply.status_code == 410 and "no longer allows" in reply.text


def test_a_file_is_refused_once_its_creator_lost_a_site_it_holds(
    client, study, people, coordinator_a, site_a, site_b, sent
):
    from surveys.models import StaffRole

    job = _done_job(coordinator_a, study)
    assert job.scope_sites == [site_a.code]
    client.force_login(coordinator_a)
    assert client.get(download_url(job)).status_code == 200
    role = StaffRole.objects.get(user=coordinator_a, study=study)
    role.sites.set([site_b])  # moved to the other site: the file holds NYC rows
    reply = client.get(download_url(job))
    assert reply.status_code == 410 and "sites you no longer see" in reply.text


def test_a_head_request_is_not_audited_and_the_export_names_its_job(
    client, study, people, researcher, sent
):
    job = _done_job(researcher, study)
    (made,) = AuditEvent.objects.filter(action=AuditEvent.Action.DATASET_EXPORT)
    assert made.details["job"] == job.pk
    client.force_login(researcher)
    client.head(download_url(job))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_DOWNLOAD).exists()
    client.get(download_url(job))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_DOWNLOAD).count() == 1


def test_one_export_at_a_time_per_person_and_study(
    client, study, people, researcher, background, sent
):
    client.force_login(researcher)
    assert post_export(client, study, shape="long", format="csv").status_code == 302
    reply = post_export(client, study, shape="wide", format="csv")
    assert reply.status_code == 200 and "still being prepared" in reply.text
    assert DatasetExportJob.objects.count() == 1
    export_job_run(job_id=DatasetExportJob.objects.get().pk)
    assert post_export(client, study, shape="wide", format="csv").status_code == 302


def test_statistics_files_are_written_under_the_private_folder_and_swept(
    study, people, researcher, sent, monkeypatch
):
    from django.conf import settings

    seen = []
    original = exports.write_dataset

    def spy(frame, path, fmt, **kw):
        seen.append(Path(path))
        return original(frame, path, fmt, **kw)

    monkeypatch.setattr(exports, "write_dataset", spy)
    _done_job(researcher, study, ExportSpec(format="sav"))
    root = Path(settings.EXPORT_ROOT).resolve()
    assert seen and seen[0].resolve().parent.parent == root
    # a killed worker's working folder is removed by the sweep once it is old enough
    left = root / f"{exports.TEMP_PREFIX}killed"
    left.mkdir()
    (left / "dataset.sav").write_bytes(b"data")
    old = clock.time() - settings.CELERY_TASK_TIME_LIMIT - 120
    os.utime(left, (old, old))
    export_jobs_expire()
    assert not left.exists()


# --- Erasure at a participant's request ---------------------------------------------------------


@pytest.mark.parametrize("erase", ["answers", "identifiers"])
def test_an_erasure_deletes_waiting_files_that_hold_the_participant(
    client, study, people, researcher, sent, erase, django_capture_on_commit_callbacks
):
    """A finished export still waiting to be downloaded holds the participant's rows: erasing
    their answers (or identifiers) deletes its file, and its maker reads why. A file of
    another site's rows only is kept."""
    from surveys.consent import participant_answers_erase, participant_identifiers_erase
    from surveys.services import participant_status_change

    nyc, _ = people
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    only_ldn = export_job_start(user=researcher, study=study, spec=ExportSpec(sites=("LDN",)))
    export_job_run(job_id=only_ldn.pk)
    job.refresh_from_db()
    only_ldn.refresh_from_db()
    path, kept = stored(job), stored(only_ldn)
    assert path.exists() and kept.exists()
    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    eraser = participant_answers_erase if erase == "answers" else participant_identifiers_erase
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once committed
        eraser(participant=nyc)
    job.refresh_from_db()
    assert job.status == Status.EXPIRED and job.path == "" and not path.exists()
    assert kept.exists() and DatasetExportJob.objects.get(pk=only_ldn.pk).status == Status.DONE
    client.force_login(researcher)
    gone = client.get(download_url(job))
    assert gone.status_code == 410 and "asked for their data to be erased" in gone.text
    assert client.get(download_url(only_ldn)).status_code == 200
    assert not AuditEvent.objects.filter(action="export_download", details__job=job.pk).exists()


@pytest.mark.parametrize("erase", ["answers", "identifiers"])
def test_an_erasure_while_a_job_runs_leaves_it_no_file(
    client, study, people, researcher, sent, erase, monkeypatch, django_capture_on_commit_callbacks
):
    """The job has read the participant's rows when their data is erased (here: just as it
    starts writing its file): it ends without a file, and its maker reads why, on the job's
    page and at the download. A running job of another site's rows only keeps its file."""
    from surveys.consent import participant_answers_erase, participant_identifiers_erase
    from surveys.services import participant_status_change

    nyc, _ = people
    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    eraser = participant_answers_erase if erase == "answers" else participant_identifiers_erase
    write = exports._write_private
    written = []

    def erased_while_writing(path, chunks):
        if not written:  # once, while the first job writes
            eraser(participant=nyc)
        written.append(path)
        return write(path, chunks)

    monkeypatch.setattr(exports, "_write_private", erased_while_writing)
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    with django_capture_on_commit_callbacks(execute=True):
        export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.EXPIRED and job.path == "" and job.erased_meanwhile
    assert job.message == exports.ERASED_EXPORT_MESSAGE
    assert not written[0].exists()  # written in full, then deleted
    assert list(Path(exports.export_root()).iterdir()) == []

    # Another site's rows only: the erasure does not touch it.
    monkeypatch.setattr(exports, "_write_private", write)
    only_ldn = export_job_start(user=researcher, study=study, spec=ExportSpec(sites=("LDN",)))
    export_job_run(job_id=only_ldn.pk)
    only_ldn.refresh_from_db()
    assert only_ldn.status == Status.DONE and stored(only_ldn).exists()

    client.force_login(researcher)
    page = client.get(job_page(job)).text
    assert "asked for their data to be erased" in page and "Download" not in page
    gone = client.get(download_url(job))
    assert gone.status_code == 410 and "asked for their data to be erased" in gone.text
    assert client.get(download_url(only_ldn)).status_code == 200


def test_an_erasure_marks_only_running_jobs_that_may_hold_the_participant(
    study, people, researcher, pi, staff_user, sent
):
    """Queued jobs read the data after the erasure and keep their file; a running job of
    the participant's site is marked; one of another site is not."""
    from surveys.consent import participant_answers_erase
    from surveys.services import participant_status_change

    nyc, _ = people
    everyone = export_job_start(user=researcher, study=study, spec=ExportSpec())
    ldn = export_job_start(user=pi, study=study, spec=ExportSpec(sites=("LDN",)))
    DatasetExportJob.objects.filter(pk__in=(everyone.pk, ldn.pk)).update(status=Status.RUNNING)
    another = staff_user(study=study, role="researcher", username="another-researcher")
    queued = export_job_start(user=another, study=study, spec=ExportSpec(shape="wide"))
    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    participant_answers_erase(participant=nyc)
    marked = dict(DatasetExportJob.objects.values_list("pk", "erased_meanwhile"))
    assert marked == {everyone.pk: True, ldn.pk: False, queued.pk: False}


needs_postgresql = pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="row locks between two connections: PostgreSQL",
)


def _committed_later(other, seconds: float = 1.0):
    import threading

    timer = threading.Timer(seconds, other.commit)
    timer.start()
    return timer


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_job_ending_while_an_erasure_commits_finds_the_mark(
    study, people, researcher, sent, monkeypatch
):
    """The job has written its file when another process's erasure marks it, and commits a
    moment later: the job, ending, waits for it, sees the mark and keeps no file."""
    from tests.surveys.test_export_line_cache import another_process

    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    other = another_process()
    write = exports._write_private
    timers = []

    def marked_once_written(path, chunks):
        size = write(path, chunks)
        with other.cursor() as cursor:
            cursor.execute(
                "UPDATE surveys_datasetexportjob SET erased_meanwhile = true WHERE id = %s",
                [job.pk],
            )
        timers.append(_committed_later(other))
        return size

    monkeypatch.setattr(exports, "_write_private", marked_once_written)
    try:
        export_job_run(job_id=job.pk)
    finally:
        for timer in timers:
            timer.join()
        other.close()
    assert timers  # the job did write
    job.refresh_from_db()
    assert job.status == Status.EXPIRED and job.path == ""
    assert job.message == exports.ERASED_EXPORT_MESSAGE
    assert list(Path(exports.export_root()).iterdir()) == []


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_erasure_while_a_job_commits_its_end_deletes_the_file(study, people, researcher, sent):
    """The job has written its file and is committing "done" in another process when the
    participant's answers are erased: the erasure waits for the job's row, sees it done and
    deletes the file."""
    from surveys.consent import participant_answers_erase
    from surveys.services import participant_status_change
    from tests.surveys.test_export_line_cache import another_process

    nyc, _ = people
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    path = stored(job)
    DatasetExportJob.objects.filter(pk=job.pk).update(status=Status.RUNNING)  # its last moment
    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    other = another_process()
    with other.cursor() as cursor:
        cursor.execute(
            "UPDATE surveys_datasetexportjob SET status = 'done' WHERE id = %s", [job.pk]
        )
    timer = _committed_later(other)
    try:
        participant_answers_erase(participant=nyc)
    finally:
        timer.join()
        other.close()
    job.refresh_from_db()
    assert job.status == Status.EXPIRED and job.path == "" and not path.exists()
    assert job.message == exports.ERASED_EXPORT_MESSAGE


def _participant_form(participant, **changes) -> dict:
    """The participant page's form as the admin sends it, with ``changes``."""
    form = {
        "site": participant.site_id,
        "code": participant.code,
        "status": participant.status,
        "timezone": participant.timezone,
        "language": participant.language,
        "preferred_channel": participant.preferred_channel,
        "contact-TOTAL_FORMS": "1",
        "contact-INITIAL_FORMS": "0",
        "contact-MIN_NUM_FORMS": "0",
        "contact-MAX_NUM_FORMS": "1",
    }
    for inline in ("assignments", "status_changes", "links", "contact_attempts", "consents"):
        form |= {
            f"{inline}-TOTAL_FORMS": "0",
            f"{inline}-INITIAL_FORMS": str(getattr(participant, inline).count()),
            f"{inline}-MIN_NUM_FORMS": "0",
            f"{inline}-MAX_NUM_FORMS": "1000",
        }
    return {**form, **changes}


def test_an_erasure_deletes_files_of_the_site_a_participant_was_moved_from(
    client, study, people, researcher, pi, site_b, sent, django_capture_on_commit_callbacks
):
    """NYC's file holds NYC-0001's rows; then a PI moves them to London, and they withdraw and
    have their answers erased: NYC's file goes too."""
    from surveys.consent import participant_answers_erase
    from surveys.services import participant_status_change

    nyc, _ = people
    nyc_file = export_job_start(user=researcher, study=study, spec=ExportSpec(sites=("NYC",)))
    export_job_run(job_id=nyc_file.pk)
    nyc_file.refresh_from_db()
    path = stored(nyc_file)
    assert path.exists()

    client.force_login(pi)
    url = reverse("admin:surveys_participant_change", args=[nyc.pk])
    moved = client.post(url, _participant_form(nyc, site=site_b.pk))
    assert moved.status_code == 302, moved.text[:2000]
    nyc.refresh_from_db()
    assert (nyc.site_id, nyc.former_sites) == (site_b.pk, ["NYC"])

    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    with django_capture_on_commit_callbacks(execute=True):
        assert participant_answers_erase(participant=nyc)["export_files"] == 1
    nyc_file.refresh_from_db()
    assert nyc_file.status == Status.EXPIRED and not path.exists()


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_job_claimed_while_an_erasure_commits_reads_what_the_erasure_left(
    study, people, researcher, pi, sent, settings
):
    """The worker claims a queued job while an erasure is still uncommitted: the claim waits
    for it, and the file is the one an export started after the erasure makes. (Every line
    built afresh: kept lines have a check of their own, under the participant's row lock.)"""
    import threading

    from django.db import connection, transaction

    from surveys.consent import participant_answers_erase
    from surveys.services import assignment_statuses_refresh, participant_status_change
    from surveys.submission import response_submit
    from tests.api.test_responses_api import ANSWERS

    settings.EXPORT_LINE_CACHE = False
    nyc, _ = people
    assignment_statuses_refresh()
    month1 = nyc.assignments.get(wave__slug="m1")
    response_submit(
        assignment=month1,
        instrument=month1.wave.instruments.get(),
        answers=ANSWERS,
        client_id=uuid.uuid4(),
    )
    before = export_job_start(user=pi, study=study, spec=ExportSpec())
    export_job_run(job_id=before.pk)
    before.refresh_from_db()
    before_erasure = stored(before).read_bytes()  # (the erasure deletes this file)
    participant_status_change(participant=nyc, status="withdrawn", reason="asked to leave")
    racing = export_job_start(user=researcher, study=study, spec=ExportSpec())
    erased, release = threading.Event(), threading.Event()

    def erase_and_hold():
        try:
            with transaction.atomic():
                participant_answers_erase(participant=nyc)
                erased.set()
                release.wait(10)
        finally:
            connection.close()

    eraser = threading.Thread(target=erase_and_hold)
    eraser.start()
    assert erased.wait(10)
    threading.Timer(1.0, release.set).start()
    export_job_run(job_id=racing.pk)  # its claim waits for the erasure's commit
    eraser.join(10)
    racing.refresh_from_db()
    after = export_job_start(user=pi, study=study, spec=ExportSpec())
    export_job_run(job_id=after.pk)
    after.refresh_from_db()
    assert racing.status == after.status == Status.DONE
    assert stored(racing).read_bytes() == stored(after).read_bytes()
    assert before_erasure != stored(after).read_bytes()  # the answers went
