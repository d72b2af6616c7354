"""The dataset export API with background jobs: a large scope answers 202 with a job to poll,
whose file only its creator downloads, while it lasts."""

import io
from datetime import timedelta

import pandas as pd
import pytest
from django.utils import timezone

from surveys import tasks
from surveys.exports import ExportSpec, export_job_run, export_job_start
from surveys.models import AuditEvent, DatasetExportJob
from surveys.tokens import SCOPES, staff_token_create


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def people(site_a, site_b, enrol):
    enrolled = timezone.localdate() - timedelta(days=40)
    return [
        enrol(site=site, code=code, enrolled_on=enrolled)
        for site, code in ((site_a, "NYC-0001"), (site_b, "LDN-0001"))
    ]


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.export_job_run, "delay", lambda *args, **kw: calls.append((args, kw)))
    return calls


@pytest.fixture
def key(researcher):
    return staff_token_create(user=researcher, name="R", scopes=SCOPES)[1]


def body(reply) -> bytes:
    return b"".join(reply.streaming_content) if reply.streaming else reply.content


def test_a_large_export_answers_202_with_a_job_to_poll_and_download(
    client, study, people, researcher, key, sent, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2
    url = f"/api/v1/studies/{study.slug}/export/?shape=wide&format=parquet"
    with django_capture_on_commit_callbacks(execute=True):
        reply = client.get(url, **bearer(key))
    assert reply.status_code == 202
    job = DatasetExportJob.objects.get()
    data = reply.json()
    status_url = f"http://testserver/api/v1/export-jobs/{job.pk}/"
    assert (data["id"], data["status"], data["progress"]) == (job.pk, "queued", 0)
    assert data["url"] == reply["Location"] == status_url and data["download_url"] is None
    assert sent == [((job.pk,), {})]
    assert client.get(status_url, **bearer(key)).json()["status"] == "queued"
    early = client.get(f"/api/v1/export-jobs/{job.pk}/download/", **bearer(key))
    assert early.status_code == 409 and early.json()["code"] == "not_ready"

    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    status = client.get(status_url, **bearer(key))
    assert status.status_code == 200 and "no-store" in status["Cache-Control"]
    done = status.json()
    assert (done["status"], done["progress"], done["rows"]) == ("done", 100, 2)
    assert done["download_url"] == status_url + "download/"
    assert job.path and job.path not in status.text  # the file's name on the server
    reply = client.get(done["download_url"], **bearer(key))
    assert reply.status_code == 200 and reply["Content-Type"] == "application/vnd.apache.parquet"
    assert reply["Cache-Control"] == "no-store"
    assert reply["Content-Disposition"] == f'attachment; filename="{job.filename}"'
    frame = pd.read_parquet(io.BytesIO(body(reply)))
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 3  # the same export, streamed
    streamed = client.get(url, **bearer(key))
    assert streamed.status_code == 200
    pd.testing.assert_frame_equal(frame, pd.read_parquet(io.BytesIO(body(streamed))))
    event = AuditEvent.objects.get(action="export_download")
    assert event.user == researcher and event.details["job"] == job.pk


def test_a_job_refused_by_the_checks_is_a_400_and_nothing_is_queued(
    client, study, people, key, sent, settings
):
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2
    url = f"/api/v1/studies/{study.slug}/export/?identified=true&reason=because+I+need+it+now"
    refused = client.get(url, **bearer(key))
    assert refused.status_code == 400 and "principal investigators" in str(refused.json())
    bad = client.get(f"/api/v1/studies/{study.slug}/export/?format=html", **bearer(key))
    assert bad.status_code == 400 and "codebook only" in str(bad.json())
    assert not DatasetExportJob.objects.exists() and sent == []


def test_nobody_but_the_creator_sees_or_downloads_a_job(
    client, study, people, researcher, staff_user, sent
):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    pi = staff_user(study=study, role="pi", username="the-pi")
    _, pi_key = staff_token_create(user=pi, name="pi", scopes=SCOPES)
    for path in (f"/api/v1/export-jobs/{job.pk}/", f"/api/v1/export-jobs/{job.pk}/download/"):
        assert client.get(path, **bearer(pi_key)).status_code == 404
        assert client.get(path).status_code in (401, 403)  # no key
    assert not AuditEvent.objects.filter(action="export_download").exists()
    _, own = staff_token_create(user=researcher, name="r", scopes=SCOPES)
    assert client.get(f"/api/v1/export-jobs/{job.pk}/download/", **bearer(own)).status_code == 200


def test_an_expired_job_answers_410(client, study, people, researcher, key, sent):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    DatasetExportJob.objects.filter(pk=job.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    gone = client.get(f"/api/v1/export-jobs/{job.pk}/download/", **bearer(key))
    assert gone.status_code == 410 and "expired" in gone.json()["detail"]
    status = client.get(f"/api/v1/export-jobs/{job.pk}/", **bearer(key)).json()
    assert status["download_url"] is None


def test_the_download_serves_its_file_whatever_the_client_accepts_and_a_failure_is_gone(
    client, study, people, researcher, key, sent
):
    job = export_job_start(user=researcher, study=study, spec=ExportSpec())
    export_job_run(job_id=job.pk)
    url = f"/api/v1/export-jobs/{job.pk}/download/"
    reply = client.get(url, HTTP_ACCEPT="text/csv", **bearer(key))
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/csv")
    DatasetExportJob.objects.filter(pk=job.pk).update(
        status=DatasetExportJob.Status.FAILED, message="The export stopped. Start it again."
    )
    reply = client.get(url, **bearer(key))
    assert reply.status_code == 410
    assert reply.json() == {"code": "failed", "detail": "The export stopped. Start it again."}


def test_an_identified_jobs_file_needs_the_contacts_scope_too_like_starting_it(
    client, study, people, staff_user, sent
):
    pi = staff_user(study=study, role="pi", username="the-pi")
    spec = ExportSpec(identified=True, reason="Tracing participants lost to follow-up")
    job = export_job_start(user=pi, study=study, spec=spec)
    export_job_run(job_id=job.pk)
    url = f"/api/v1/export-jobs/{job.pk}/download/"
    _, export_only = staff_token_create(user=pi, name="export", scopes=["export"])
    refused = client.get(url, **bearer(export_only))
    assert refused.status_code == 403 and "'contacts' scope" in refused.json()["detail"]
    assert b"NYC-0001" not in refused.content
    assert not AuditEvent.objects.filter(action="export_download").exists()
    _, both = staff_token_create(user=pi, name="both", scopes=["export", "contacts"])
    reply = client.get(url, **bearer(both))
    assert reply.status_code == 200 and b"NYC-0001" in body(reply)
    assert AuditEvent.objects.filter(action="export_download").count() == 1
    # A de-identified job's file still needs the export scope alone.
    plain = export_job_start(user=pi, study=study, spec=ExportSpec())
    export_job_run(job_id=plain.pk)
    assert (
        client.get(f"/api/v1/export-jobs/{plain.pk}/download/", **bearer(export_only)).status_code
        == 200
    )


def test_a_head_on_the_export_starts_no_job_and_audits_no_export(
    client, study, people, key, sent, settings
):
    """Found by review: HEAD was served by the export's GET. It logged a dataset export
    though no file left and, for a scope to export in the background, started a real job, so
    the researcher's GET right after was refused: one of their exports was still being
    prepared."""
    url = f"/api/v1/studies/{study.slug}/export/?shape=wide"
    for background in (3, 2):  # streamed, then a job
        settings.EXPORT_BACKGROUND_PARTICIPANTS = background
        head = client.head(url, **bearer(key))
        assert head.status_code == 405 and "GET" in head["Allow"]
    assert not AuditEvent.objects.filter(action="dataset_export").exists()
    assert not DatasetExportJob.objects.exists() and sent == []
    assert client.get(url, **bearer(key)).status_code == 202


def test_every_export_format_is_sent_as_a_type_the_schema_documents(client, study, people, key):
    """Found by review: the export's documented 200 listed only text/csv and
    application/octet-stream, while it sends Parquet, SPSS, Stata, Excel and the codebook's
    HTML page each with its own type: a client generated from the schema refused those."""
    from surveys.exports import FORMATS

    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/studies/{study_slug}/export/"]["get"]
    documented = {media.split(";")[0] for media in operation["responses"]["200"]["content"]}
    for fmt in FORMATS:
        shape = "codebook" if fmt == "html" else "long"
        reply = client.get(
            f"/api/v1/studies/{study.slug}/export/?shape={shape}&format={fmt}", **bearer(key)
        )
        assert reply.status_code == 200 and body(reply)
        assert reply["Content-Type"].split(";")[0] in documented, fmt


def test_an_export_asked_again_while_one_runs_points_at_the_running_job(
    client, study, people, key, sent, settings
):
    """Found by review: the second request got a 400 with no word on where the running
    export was; a client polling for its export needs its job. A 409 gives it, and its URL in
    Location; nothing more is queued."""
    settings.EXPORT_BACKGROUND_PARTICIPANTS = 2
    url = f"/api/v1/studies/{study.slug}/export/?shape=long&format=csv"
    first = client.get(url, **bearer(key))
    assert first.status_code == 202
    again = client.get(url, **bearer(key))
    assert again.status_code == 409
    data = again.json()
    assert data["code"] == "export_running" and "still being prepared" in data["detail"]
    assert data["job"]["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert DatasetExportJob.objects.count() == 1
