"""A big analysis run through a real broker and a real ``celery worker`` process."""

import time
import uuid
from datetime import date

import pytest

from recovery.analyses import AnalysisSpec
from recovery.models import AnalysisRun
from recovery.services import demo_study_seed
from surveys.models import AuditEvent, StaffRole
from surveys.services import staff_role_assign
from tests.celery_helpers import REDIS_URL, broker, worker_env, worker_start
from tests.factories import UserFactory


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["redis", "filesystem"])
def test_a_queued_run_is_done_by_a_real_worker_with_its_id_alone(kind, tmp_path):
    if kind == "redis" and not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    study, _ = demo_study_seed(
        slug="worker", participants=120, seed=4, effect=-0.15, as_of=date(2026, 11, 24)
    )
    user = UserFactory(username="analyst")
    staff_role_assign(user=user, study=study, role=StaffRole.Role.RESEARCHER)
    spec = AnalysisSpec(analyses=("descriptives", "dose_response"))
    run = AnalysisRun.objects.create(
        study=study,
        created_by=user,
        created_at=study.created_at,
        parameters=spec.to_dict(),
    )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker_env, client = broker(kind, tmp_path)
    worker = worker_start(queues=queue, env=worker_env(tmp_path, **broker_env))
    try:
        client.send_task("recovery.tasks.analysis_run", args=[run.pk], queue=queue)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status in (AnalysisRun.Status.DONE, AnalysisRun.Status.FAILED):
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert run.status == AnalysisRun.Status.DONE, (run.message, output[-3000:])
    assert run.participants == 120 and run.progress == 100
    assert [s["key"] for s in run.results["sections"]] == ["descriptives", "dose_response"]
    assert AuditEvent.objects.filter(action="analysis_run", user=user).count() == 1
    assert "recovery.tasks.analysis_run" in output
