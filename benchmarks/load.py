"""Load: participants opening their links, saving drafts and submitting, while coordinators
watch the retention dashboard and the call list — against gunicorn (production settings) +
PostgreSQL + Redis on this machine, driven by locust (as a library) from a second process.

Each simulated participant does what a phone does: opens its personal link (302, a new
session), the home page, the survey page, saves two drafts of the answers so far, submits the
whole survey (201), then the next participant's link comes. Each simulated coordinator opens
the retention dashboard of the study and the call list, with a signed-in session, a few seconds
apart. Reported per request type: the count, the sustained rate, p50/p95/p99 and failures (any
status but the expected one, or no answer).

``--restart-postgres-at S``: the fault drill — PostgreSQL is restarted S seconds into the run
(``pg_ctlcluster … restart``). Afterwards the database is checked for half-saved work: every
submitted response has its assignment completed and vice versa, no draft carries a submission
time, and no assignment holds two responses of one instrument.

    pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/load.py [--participants 3000] [--users 40] [--duration 60]
                                         [--restart-postgres-at 30]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pgdb  # benchmarks/pgdb.py: these scripts run as benchmarks/<name>.py

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "recovery_bench_load"
PORT = 8766
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "benchmarks.bench.settings",
    "DATABASE_URL": pgdb.database_url(DB_NAME),
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "FIELD_ENCRYPTION_KEYS": "YmVuY2htYXJrLW9ubHkta2V5LW5vdC1mb3ItZGF0YSE=",
    "CONTACT_LOOKUP_KEY": "benchmark-only-lookup-key",
    "EMAIL_URL": "consolemail://",
    "CONN_MAX_AGE": "60",
    # every simulated phone comes from 127.0.0.1: a limit never reached, the counter still runs
    "PARTICIPANT_REQUESTS_PER_MINUTE": "1000000000",
    "PYTHONPATH": str(ROOT),
    # pages link their CSS and JS through the manifest of collected static files
    "DJANGO_STATIC_ROOT": str(Path(tempfile.gettempdir()) / "recovery-bench-load-static"),
}
PREPARE = """
import json
import time
from datetime import date, timedelta
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from recovery.services import study_create_from_template
from recovery.synthetic import SITES, generate_cohort
from surveys.links import participant_link_create
from surveys.models import Assignment, Participant, StaffRole
from surveys.services import assignments_build, staff_role_assign

study = study_create_from_template(slug="load", name="Load", sites=SITES)
sites = list(study.sites.all())
waves = list(study.waves.all())
today = timezone.localdate()
people = [Participant(study=study, site=sites[i %% len(sites)], code=f"L-{i:06d}",
                      enrolled_on=today - timedelta(days=30), timezone="America/New_York")
          for i in range(%(participants)d)]
Participant.objects.bulk_create(people, batch_size=5000)
rows = []
for p in people:
    rows.extend(assignments_build(participant=p, waves=waves))
Assignment.objects.bulk_create(rows, batch_size=5000)
month1 = dict(Assignment.objects.filter(wave__slug="m1").values_list("participant_id", "pk"))
links = [[participant_link_create(participant=p)[1], month1[p.pk]] for p in people]
sessions = []
for n in range(%(coordinators)d):
    user = get_user_model().objects.create_user(f"load-coordinator-{n}", password="x" * 20)
    staff_role_assign(user=user, study=study, role=StaffRole.Role.COORDINATOR, sites=sites)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "surveys.signin.LockoutModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session["staff_signed_in_at"] = session["staff_seen_at"] = int(time.time())
    session.create()
    sessions.append(session.session_key)
cohort = generate_cohort(participants=50, seed=3, as_of=date(2026, 11, 24))
answers = next(a for (_, w), a in cohort.answers.items()
               if w == "m3" and a["attended_any"] == 1 and "mat_disclosed" in a)
print(json.dumps({"links": links, "sessions": sessions, "answers": answers,
                  "study": study.pk}))
"""
CHECK = """
import json
from django.db.models import Count
from surveys.models import Assignment, Response
submitted = Response.objects.filter(status="submitted")
print(json.dumps({
    "submitted": submitted.count(),
    "drafts": Response.objects.filter(status="draft").count(),
    "submitted_without_completed_assignment": submitted.exclude(
        assignment__status="completed").count(),
    "completed_without_submitted_response": Assignment.objects.filter(status="completed")
        .exclude(responses__status="submitted").count(),
    "drafts_with_submission_time": Response.objects.filter(
        status="draft", submitted_at__isnull=False).count(),
    "two_responses_of_one_instrument": Response.objects.values("assignment", "instrument")
        .annotate(n=Count("id")).filter(n__gt=1).count(),
}))
"""


def manage(*args: str) -> str:
    return pgdb.manage(*args, env=ENV)


def prepare(participants: int, coordinators: int) -> dict:
    pgdb.database_create(DB_NAME)
    manage("migrate", "-v0")
    manage("collectstatic", "--noinput", "-v0")
    script = PREPARE % {"participants": participants, "coordinators": coordinators}
    return json.loads(manage("shell", "--no-imports", "-c", script).strip().splitlines()[-1])


def wait_for_server() -> None:
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not start")


def restart_postgres() -> float:
    """Restart the cluster (a real restart: every connection dropped); the seconds it took."""
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True)
    started = time.monotonic()
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version.stdout.split()[0],
            "main",
            "restart",
        ],
        check=True,
    )
    return time.monotonic() - started


def drive(setup: dict, *, users: int, duration: int, restart_at: float | None) -> dict:
    """Run locust in this process (its gevent patches only this process)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from locust import HttpUser, between, task
    from locust.env import Environment

    links = list(reversed(setup["links"]))
    answers = setup["answers"]
    partial = dict(list(answers.items())[: len(answers) // 2])
    sessions = setup["sessions"]
    study = setup["study"]

    class Participant(HttpUser):
        weight = 9
        wait_time = between(0.5, 1.5)  # a person reading and tapping

        @task
        def one_participant(self) -> None:
            if not links:
                self.stop()
                return
            token, assignment = links.pop()
            client = self.client
            client.cookies.clear()
            with client.get(
                f"/p/{token}", name="open link", allow_redirects=False, catch_response=True
            ) as reply:
                if reply.status_code != 302:
                    reply.failure(f"{reply.status_code}")
                    return
            client.get("/p/", name="home")
            client.get(f"/p/s/{assignment}/followup/", name="survey page")
            csrf = client.cookies.get("csrftoken", "")
            headers = {"X-CSRFToken": csrf, "Referer": f"http://127.0.0.1:{PORT}/p/"}
            api = f"/api/v1/participant/assignments/{assignment}/responses/followup"
            client_id = os.urandom(16).hex()
            client_id = "-".join(
                (
                    client_id[:8],
                    client_id[8:12],
                    "4" + client_id[13:16],
                    "8" + client_id[17:20],
                    client_id[20:32],
                )
            )
            for part in (partial, answers):
                client.put(
                    f"{api}/draft/",
                    json={"client_id": client_id, "answers": part},
                    headers=headers,
                    name="save draft",
                )
            with client.post(
                f"{api}/submit/",
                json={"client_id": client_id, "answers": answers},
                headers=headers,
                name="submit",
                catch_response=True,
            ) as reply:
                if reply.status_code != 201:
                    reply.failure(f"{reply.status_code}")

    class Coordinator(HttpUser):
        weight = 1
        wait_time = between(2, 4)

        def on_start(self) -> None:
            self.client.cookies.set("sessionid", sessions[hash(self) % len(sessions)])

        @task(3)
        def dashboard(self) -> None:
            self.client.get(f"/admin/surveys/study/{study}/retention/", name="dashboard")

        @task(1)
        def call_list(self) -> None:
            self.client.get("/admin/surveys/assignment/call-list/", name="call list")

    env = Environment(user_classes=[Participant, Coordinator], host=f"http://127.0.0.1:{PORT}")
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    started = time.monotonic()
    restart = None
    if restart_at is not None:
        gevent.sleep(restart_at)
        restart = {"at_s": round(time.monotonic() - started, 1)}
        # subprocess is gevent-patched: the users go on while the cluster restarts
        restart["took_s"] = round(restart_postgres(), 1)
        gevent.sleep(max(0, duration - (time.monotonic() - started)))
    else:
        gevent.sleep(duration)
    runner.quit()
    elapsed = time.monotonic() - started
    stats = {}
    for (name, method), entry in sorted(env.stats.entries.items()):
        stats[name] = {
            "method": method,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rate": entry.num_requests / elapsed,
            "p50_ms": entry.get_response_time_percentile(0.50),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "p99_ms": entry.get_response_time_percentile(0.99),
        }
    total = env.stats.total
    errors = {f"{e.method} {e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()}
    return {
        "elapsed_s": elapsed,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rate": total.num_requests / elapsed,
        "p95_ms": total.get_response_time_percentile(0.95),
        "by_name": stats,
        "errors": errors,
        "restart": restart,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=3000)
    parser.add_argument("--coordinators", type=int, default=4)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1)
    parser.add_argument("--restart-postgres-at", type=float, default=None)
    args = parser.parse_args()

    setup = prepare(args.participants, args.coordinators)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.bench.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=ENV,
    )
    try:
        wait_for_server()
        result = drive(
            setup, users=args.users, duration=args.duration, restart_at=args.restart_postgres_at
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    for _ in range(60):  # after a restart drill the server may still be coming back
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0:
            break
        time.sleep(1)
    result["database"] = json.loads(manage("shell", "--no-imports", "-c", CHECK).strip())
    result["setup"] = {
        "participants": args.participants,
        "users": args.users,
        "workers": args.workers,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
