"""Benchmark: survey submission throughput and latency against a bare one-row insert.

Budget (DESIGN.md): submission throughput >= 50 % of a bare one-row-insert endpoint of the same
stack, p95 <= 150 ms at 32 concurrent clients, 0 errors.

Two submissions, each against its own baseline on the same stack:

- the participant's, from the phone (``/api/v1/participant/.../submit/``): participant session,
  CSRF, DRF JSON, the per-address rate limit of public paths; the baseline is a one-row
  insert behind the same authentication, under the same prefix;
- staff data entry (``/api/v1/assignments/.../submit/``): staff session with two-factor
  sign-in, CSRF, DRF JSON, and the audit event every staff change writes; the baseline is a
  one-row insert behind the same staff authentication and middleware.

Both run in the same gunicorn (production settings, PostgreSQL) and are driven by wrk at 32
connections. Every submission goes to a different open assignment with a realistic follow-up
answer set and a fresh client UUID, so each one is validated as a whole and stored (201), never
a replay; each participant's request carries that participant's own session.

    .venv/bin/python benchmarks/submission.py [--duration 20] [--connections 32] [--who both]
"""

import argparse
import json
import os
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "recovery_bench_submit"
PORT = 8765
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
    "DJANGO_SETTINGS_MODULE": "benchmarks.bench.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "FIELD_ENCRYPTION_KEYS": "YmVuY2htYXJrLW9ubHkta2V5LW5vdC1mb3ItZGF0YSE=",
    "CONTACT_LOOKUP_KEY": "benchmark-only-lookup-key",
    "EMAIL_URL": "consolemail://",
    "CONN_MAX_AGE": "60",
    # Every simulated phone comes from 127.0.0.1: a limit that is never reached, so the
    # per-address counter still runs (one Redis INCR a request) as it would in production.
    "PARTICIPANT_REQUESTS_PER_MINUTE": "1000000000",
    "PYTHONPATH": str(ROOT),
}

LUA = """
local ids = {%(ids)s}
local sessions = {%(sessions)s}
local bodies = {}
local counter = 0
local threads = {}
local tid_next = 0
local payload = [==[%(payload)s]==]

function setup(thread)
  thread:set("tid", tid_next)
  thread:set("nthreads", %(nthreads)d)
  tid_next = tid_next + 1
  table.insert(threads, thread)
end

local function uuid()
  local t = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
  return (string.gsub(t, "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%%x", v)
  end))
end

function init(args)
  math.randomseed(os.time() + tid * 7919)
end

function request()
  local i = counter * nthreads + tid + 1
  counter = counter + 1
  local k = ((i - 1) %% #ids) + 1
  local path
  local session = "%(session)s"
  if "%(mode)s" == "submit" then
    path = "/api/v1/assignments/" .. ids[k] .. "/responses/followup/submit/"
  elseif "%(mode)s" == "psubmit" then
    path = "/api/v1/participant/assignments/" .. ids[k] .. "/responses/followup/submit/"
    session = sessions[k]
  elseif "%(mode)s" == "pinsert" then
    path = "/api/v1/participant/bench-insert/"
    session = sessions[k]
  elseif "%(mode)s" == "minimal" then
    path = "/bench/minimal/" .. ids[k] .. "/"
  else
    path = "/bench/insert/"
  end
  local body = '{"client_id": "' .. uuid() .. '", "answers": ' .. payload .. '}'
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Cookie"] = "sessionid=" .. session .. "; csrftoken=%(csrf)s",
    ["X-CSRFToken"] = "%(csrf)s",
    ["Host"] = "127.0.0.1",
  }, body)
end

function done(summary, latency, requests)
  local out = io.open("%(result)s", "w")
  out:write(string.format('{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p95_us": %%d, ' ..
    '"p99_us": %%d, "errors_connect": %%d, "errors_read": %%d, "errors_status": %%d, ' ..
    '"errors_timeout": %%d}', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), summary.errors.connect,
    summary.errors.read, summary.errors.status, summary.errors.timeout))
  out:close()
end
"""


def manage(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def prepare(participants: int) -> dict:
    """Fresh database, a study, participants whose month-1 window is open, a coordinator with
    a session, and a participant session (as their link starts one) for each participant."""
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB_NAME], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB_NAME], check=True)
    manage("migrate", "-v0")
    script = f"""
import json, secrets
from datetime import timedelta, date
from django.contrib.auth import get_user_model
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from surveys.participant_views import EPOCH_KEY, LANGUAGE_KEY, SESSION_KEY
from django.db import connection
from django.utils import timezone
from recovery.services import study_create_from_template
from recovery.synthetic import generate_cohort, SITES
from surveys.models import Assignment, Participant, StaffRole
from surveys.services import assignments_build, staff_role_assign

study = study_create_from_template(slug="bench", name="Bench", sites=SITES)
site = study.sites.first()
waves = list(study.waves.all())
today = timezone.localdate()
people = [Participant(study=study, site=site, code=f"B-{{i:06d}}",
                      enrolled_on=today - timedelta(days=30), timezone="America/New_York")
          for i in range({participants})]
Participant.objects.bulk_create(people, batch_size=5000)
rows = []
for p in people:
    rows.extend(assignments_build(participant=p, waves=waves))
Assignment.objects.bulk_create(rows, batch_size=5000)
user = get_user_model().objects.create_user("bench-coordinator", password="x" * 20)
staff_role_assign(user=user, study=study, role=StaffRole.Role.COORDINATOR, sites=[site])
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
# The backend the settings sign staff in with (a session naming another is anonymous).
session["_auth_user_backend"] = settings.AUTHENTICATION_BACKENDS[0]
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
month1 = list(Assignment.objects.filter(wave__slug="m1").values_list("pk", "participant_id"))
ids = [pk for pk, _ in month1]
expires = timezone.now() + timedelta(days=1)
encoder = SessionStore()
sessions = [
    Session(session_key=secrets.token_hex(16), expire_date=expires,
            session_data=encoder.encode({{SESSION_KEY: pid, LANGUAGE_KEY: "en", EPOCH_KEY: 0}}))
    for _, pid in month1
]
Session.objects.bulk_create(sessions, batch_size=5000)
with connection.cursor() as c:
    c.execute("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
cohort = generate_cohort(participants=50, seed=3, as_of=date(2026, 11, 24))
payload = next(a for (_, w), a in cohort.answers.items()
               if w == "m3" and a["attended_any"] == 1 and "mat_disclosed" in a)
print(json.dumps({{"session": session.session_key, "ids": ids, "payload": payload,
                  "sessions": [s.session_key for s in sessions]}}))
"""
    out = manage("shell", "--no-imports", "-c", script)
    return json.loads(out.strip().splitlines()[-1])


def run_wrk(mode: str, setup: dict, csrf: str, duration: int, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        lua = Path(tmp) / "bench.lua"
        lua.write_text(
            LUA
            % {
                "ids": ",".join(map(str, setup["ids"])),
                "sessions": ",".join(f'"{key}"' for key in setup["sessions"]),
                "payload": json.dumps(setup["payload"]),
                "nthreads": 2,
                "mode": mode,
                "session": setup["session"],
                "csrf": csrf,
                "result": result,
            }
        )
        subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "10s",
                "-s",
                str(lua),
                f"http://127.0.0.1:{PORT}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        data = json.loads(result.read_text())
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = sum(v for k, v in data.items() if k.startswith("errors_"))
    return data


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput, with its latencies; errors summed over all runs."""
    chosen = dict(sorted(runs, key=lambda r: r["rps"])[len(runs) // 2])
    chosen["errors"] = sum(r["errors"] for r in runs)
    return chosen


def wait_for_server() -> None:
    for _ in range(60):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not start")


PAIRS = {
    # who: (baseline mode, submission mode, label)
    "participant": ("pinsert", "psubmit", "participant (phone)"),
    "staff": ("insert", "submit", "staff data entry"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1)
    parser.add_argument("--participants", type=int, default=60000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--who", choices=("both", *PAIRS), default="both")
    args = parser.parse_args()
    pairs = list(PAIRS) if args.who == "both" else [args.who]

    setup = prepare(args.participants)
    if os.environ.get("BENCH_DEBUG"):
        print(json.dumps({"session": setup["session"], "id": setup["ids"][0]}))
    # Django's CSRF secrets are 32 letters and digits.
    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
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
    # rounds[who] = [(baseline run, submission run), ...]
    rounds: dict[str, list[tuple[dict, dict]]] = {who: [] for who in pairs}
    try:
        wait_for_server()
        for who in pairs:  # warm-up
            run_wrk(PAIRS[who][0], setup, csrf, 3, args.connections)
        # Alternate the endpoints so that drift in the machine's speed (a shared VM) affects
        # all alike; report medians and the ratio within each round.
        chunk = len(setup["ids"]) // (args.rounds * len(pairs))
        for k in range(args.rounds):
            for j, who in enumerate(pairs):
                # Each run submits to assignments no other run touched.
                start = (k * len(pairs) + j) * chunk
                fresh = {
                    **setup,
                    "ids": setup["ids"][start : start + chunk],
                    "sessions": setup["sessions"][start : start + chunk],
                }
                baseline_mode, submit_mode, _ = PAIRS[who]
                bare_round = run_wrk(baseline_mode, fresh, csrf, args.duration, args.connections)
                submit_round = run_wrk(submit_mode, fresh, csrf, args.duration, args.connections)
                if submit_round["requests"] > chunk:
                    raise SystemExit(
                        f"round {k + 1} made {submit_round['requests']} {who} submissions for "
                        f"{chunk} fresh assignments (later ones were refused as already sent): "
                        "raise --participants"
                    )
                rounds[who].append((bare_round, submit_round))
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = (
        manage(
            "shell",
            "--no-imports",
            "-c",
            (
                "from surveys.models import Response; from django.db.models import Count; "
                "print(Response.objects.count(), Response.objects.values('assignment')"
                ".annotate(n=Count('id')).filter(n__gt=1).count())"
            ),
        )
        .strip()
        .splitlines()[-1]
        .split()
    )
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB_NAME], check=True
    )

    print(
        f"\n{args.connections} connections, {args.rounds} alternating rounds of "
        f"{args.duration} s per endpoint (the median round shown), gunicorn {args.workers} "
        f"workers, {os.cpu_count()} CPUs (wrk on the same machine)\n"
    )
    print("| endpoint | requests/s | p50 | p95 | p99 | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    errors = 0
    summaries = []
    for who in pairs:
        bare = _median_run([b for b, _ in rounds[who]])
        submit = _median_run([s for _, s in rounds[who]])
        label = PAIRS[who][2]
        for name, r in ((f"{label}: bare one-row insert", bare), (f"{label}: submission", submit)):
            print(
                f"| {name} | {r['rps']:.0f} | {r['p50_us'] / 1000:.1f} ms | "
                f"{r['p95_us'] / 1000:.1f} ms | {r['p99_us'] / 1000:.1f} ms | {r['errors']} |"
            )
        errors += bare["errors"] + submit["errors"]
        ratios = [s["rps"] / b["rps"] for b, s in rounds[who]]
        summaries.append(
            f"{label}: ratio per round "
            + ", ".join(f"{r:.0%}" for r in ratios)
            + f"; median {statistics.median(ratios):.0%} (budget >= 50 %); submission p95 "
            f"{submit['p95_us'] / 1000:.0f} ms (budget <= 150 ms); "
            f"{sum(s['requests'] for _, s in rounds[who])} submissions"
        )
    print()
    for line in summaries:
        print(line)
    print(f"responses stored: {stored[0]}; assignments with two responses: {stored[1]}")
    if errors or int(stored[0]) == 0:
        # Failed requests are no measurement (a 401 is faster than a submission).
        raise SystemExit(f"INVALID RUN: {errors} failed requests, {stored[0]} responses stored")


if __name__ == "__main__":
    main()
