"""The Analyses page, its runs and ``manage.py run_analyses``, on a seeded synthetic study."""

import io
import json
import warnings
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from recovery.analyses import (
    AnalysisSpec,
    analysis_check,
    analysis_data,
    analysis_run_start,
    frame_hash,
)
from recovery.analysis.frames import exposure_outcome_frame
from recovery.models import AnalysisRun
from recovery.services import demo_study_seed
from recovery.synthetic import generate_cohort
from recovery.tasks import analysis_run as analysis_run_task
from surveys.datasets import pseudonymous_id
from surveys.models import AuditEvent, Participant, ParticipantContact, Response, StaffRole
from surveys.services import staff_role_assign
from tests.factories import UserFactory

AS_OF = date(2026, 11, 24)
EFFECT = -0.15
SEED = 3
COVARIATES = ["age", "baseline_days_used", "readiness", "justice_involved", "prior_mhg"]


@pytest.fixture
def cohort_study(db):
    study, _ = demo_study_seed(
        slug="cohort", participants=400, seed=SEED, effect=EFFECT, as_of=AS_OF
    )
    return study


def _staff(study, role, sites=(), username=None):
    user = UserFactory(username=username or f"{role}-{study.slug}")
    staff_role_assign(user=user, study=study, role=role, sites=list(sites))
    return user


@pytest.fixture
def analyst(cohort_study):
    return _staff(cohort_study, StaffRole.Role.RESEARCHER)


def _form(study, **changes) -> dict:
    data = {
        "analyses": [
            "descriptives",
            "dose_response",
            "lagged_gee",
            "mixed_model",
            "matching",
            "online",
        ],
        "exposure": "high_involvement",
        "outcome": "any_use",
        "covariates": COVARIATES,
        "exposure_waves": ["m1", "m3"],
        "outcome_wave": "m12",
        "family": "auto",
        "ps_model": "logistic",
        "caliper": "0.2",
        "ratio": "1",
        "seed": "0",
    }
    data.update(changes)
    return data


def _run(client, study, **changes):
    reply = client.post(
        reverse("admin:recovery_analysisrun_study", args=[study.pk]), _form(study, **changes)
    )
    return reply


def _identifiers(study) -> list[str]:
    values = []
    for contact in ParticipantContact.objects.filter(participant__study=study):
        for field in ("first_name", "email", "phone"):
            value = getattr(contact, field, "")
            if value:
                values.append(value)
    values += list(Participant.objects.filter(study=study).values_list("code", flat=True))
    return values


def test_a_researcher_runs_every_analysis_and_downloads_the_report(client, cohort_study, analyst):
    client.force_login(analyst)
    page = client.get(reverse("admin:recovery_analysisrun_study", args=[cohort_study.pk]))
    assert page.status_code == 200 and "naive" in page.text
    reply = _run(client, cohort_study)
    assert reply.status_code == 302, reply.content[:2000]
    run = AnalysisRun.objects.get()
    assert reply["Location"] == reverse("admin:recovery_analysisrun_results", args=[run.pk])
    assert run.status == "done" and run.created_by == analyst
    assert run.participants == 400 and run.rows == 400 * 5
    assert len(run.data_hash) == 64 and "statsmodels" in run.code_version
    assert run.parameters["exposure"] == "high_involvement"
    assert run.scope_sites == ["CHI", "LAX", "NYC"]
    errors = {s["key"]: s["error"] for s in run.results["sections"] if s["error"]}
    assert errors == {}
    page = client.get(reply["Location"])
    assert page.status_code == 200
    for title in ("Propensity-score matching", "Lagged GEE", "Mixed model", "Dose–response"):
        assert title in page.text
    assert page.text.count("<svg") >= 5

    report = client.get(reverse("admin:recovery_analysisrun_report", args=[run.pk]))
    assert report.status_code == 200
    assert report["Content-Disposition"].endswith('.html"')
    html = report.content.decode()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert "src=" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert run.data_hash in html and "Matched estimate (ATT)" in html
    for value in _identifiers(cohort_study):
        assert value not in html

    numbers = client.get(reverse("admin:recovery_analysisrun_csv", args=[run.pk]))
    table = pd.read_csv(io.BytesIO(numbers.content))
    att = table[(table.section == "matching") & (table.table == "summary")]
    att = att.set_index("column")["value"]
    summary = next(s for s in run.results["sections"] if s["key"] == "matching")["summary"]
    assert float(att["att"]) == pytest.approx(summary["att"])
    payload = json.loads(
        client.get(reverse("admin:recovery_analysisrun_json", args=[run.pk])).content
    )
    assert payload["run"]["Data (SHA-256 of the analysis frame)"] == run.data_hash
    event = AuditEvent.objects.get(action="analysis_run")
    assert event.user == analyst and event.details["participants"] == 400
    assert event.details["data_hash"] == run.data_hash


def test_the_same_data_gives_the_same_hash_and_a_change_another(cohort_study):
    people = Participant.objects.filter(study=cohort_study)
    spec = AnalysisSpec(covariates=("age",))
    _, digest = analysis_data(study=cohort_study, people=people, spec=spec)
    again, digest_again = analysis_data(study=cohort_study, people=people, spec=spec)
    assert digest == digest_again == frame_hash(again)
    _, digest_fewer = analysis_data(
        study=cohort_study, people=people.exclude(pk=people.first().pk), spec=spec
    )
    assert digest_fewer != digest


def test_the_analysis_frame_carries_the_cohort_as_it_was_drawn(cohort_study):
    """The data path (responses → dataset builder → analysis frame) gives the matching the same
    exposure, outcome and covariates the generator drew: what the validation relies on."""
    people = Participant.objects.filter(study=cohort_study)
    spec = AnalysisSpec(covariates=tuple(COVARIATES))
    frame, _ = analysis_data(study=cohort_study, people=people, spec=spec)
    data = exposure_outcome_frame(
        frame,
        exposure="high_involvement",
        outcome="any_use",
        exposure_waves=("m1", "m3"),
        outcome_wave="m12",
        covariates=[f"{c}_bl" for c in COVARIATES],
    )
    cohort = generate_cohort(participants=400, seed=SEED, effect=EFFECT, as_of=AS_OF)
    index = {p.code: p.index for p in cohort.participants}
    checked = 0
    for participant in people:
        pid = pseudonymous_id(study_id=cohort_study.pk, participant_id=participant.pk)
        i = index[participant.code]
        row = data.loc[pid]
        # Answers of a wave not yet due by AS_OF are not stored: NaN, never another value.
        if not np.isnan(row["high_involvement"]):
            assert (i, "m1") in cohort.answers or (i, "m3") in cohort.answers
            assert row["high_involvement"] == cohort.truth["treated"][i]
        if not np.isnan(row["any_use"]):
            assert (i, "m12") in cohort.answers
            assert row["any_use"] == cohort.truth["y12"][i]
            checked += 1
        assert row["readiness_bl"] == cohort.answers[(i, "baseline")]["readiness"]
    assert checked > 100


def test_a_coordinator_analyses_only_their_site_and_a_run_is_its_creators(client, cohort_study):
    nyc = cohort_study.sites.get(code="NYC")
    chi = cohort_study.sites.get(code="CHI")
    coord_nyc = _staff(cohort_study, StaffRole.Role.COORDINATOR, [nyc], "coord-nyc")
    coord_chi = _staff(cohort_study, StaffRole.Role.COORDINATOR, [chi], "coord-chi")
    researcher = _staff(cohort_study, StaffRole.Role.RESEARCHER)
    client.force_login(coord_nyc)
    assert _run(client, cohort_study, analyses=["descriptives"]).status_code == 302
    run = AnalysisRun.objects.get()
    assert run.scope_sites == ["NYC"]
    assert run.participants == Participant.objects.filter(site=nyc).count()
    results = reverse("admin:recovery_analysisrun_results", args=[run.pk])
    assert client.get(results).status_code == 200
    for other in (coord_chi, researcher):
        client.force_login(other)
        for name in ("results", "report", "csv", "json"):
            url = reverse(f"admin:recovery_analysisrun_{name}", args=[run.pk])
            assert client.get(url).status_code == 404
    # A coordinator moved to another site no longer reads the run over the old one.
    staff_role_assign(
        user=coord_nyc, study=cohort_study, role=StaffRole.Role.COORDINATOR, sites=[chi]
    )
    client.force_login(coord_nyc)
    assert client.get(results).status_code == 404


def test_nobody_outside_the_study_runs_or_reads_its_analyses(client, cohort_study, analyst):
    outsider = UserFactory(username="outsider", is_staff=True)
    client.force_login(analyst)
    _run(client, cohort_study, analyses=["descriptives"])
    run = AnalysisRun.objects.get()
    client.force_login(outsider)
    assert (
        client.get(reverse("admin:recovery_analysisrun_study", args=[cohort_study.pk])).status_code
        == 404
    )
    assert (
        client.get(reverse("admin:recovery_analysisrun_results", args=[run.pk])).status_code == 404
    )


def test_bad_choices_get_clear_errors_and_no_run(client, cohort_study, analyst):
    client.force_login(analyst)
    reply = _run(client, cohort_study, exposure="no_such_thing", outcome_wave="m1")
    assert reply.status_code == 200
    assert "Select a valid choice" in reply.text
    assert not AnalysisRun.objects.exists()
    reply = _run(client, cohort_study, exposure_waves=["m6"], outcome_wave="m3")
    assert reply.status_code == 200
    assert "must come after the exposure" in reply.text
    assert not AnalysisRun.objects.exists()


def test_an_analysis_the_data_cannot_support_says_why_and_the_others_still_run(
    client, cohort_study, analyst
):
    """Everyone went to a meeting in the first month: the matching has no one to compare them
    with and says so; the descriptives still run."""
    month1 = list(
        Response.objects.filter(
            assignment__participant__study=cohort_study, assignment__wave__slug="m1"
        )
    )
    for response in month1:
        response.answers["attended_any"] = 1
    Response.objects.bulk_update(month1, ["answers"])
    client.force_login(analyst)
    reply = _run(
        client,
        cohort_study,
        analyses=["descriptives", "matching"],
        exposure="attended_any",
        exposure_waves=["m1"],
    )
    run = AnalysisRun.objects.get()
    sections = {s["key"]: s for s in run.results["sections"]}
    assert sections["descriptives"]["error"] == ""
    assert sections["matching"]["error_code"] == "no_exposure_variation"
    assert "attended_any = 1" in sections["matching"]["error"]
    page = client.get(reply["Location"])
    assert "Not run: No variation in the exposure" in page.text
    assert "Traceback" not in page.text


def test_a_big_run_goes_to_the_worker_and_runs_once(
    settings, cohort_study, analyst, django_capture_on_commit_callbacks
):
    settings.ANALYSIS_BACKGROUND_PARTICIPANTS = 100
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = analysis_run_start(
            user=analyst, study=cohort_study, spec=AnalysisSpec(analyses=("descriptives",))
        )
    assert run.status == "queued" and len(callbacks) == 1
    analysis_run_task.run(run.pk)  # what the worker runs with the id alone
    run.refresh_from_db()
    assert run.status == "done" and run.progress == 100 and run.results["sections"]
    analysis_run_task.run(run.pk)  # a second delivery is a no-op
    assert AuditEvent.objects.filter(action="analysis_run").count() == 1


def test_manage_py_run_analyses_writes_the_report_and_the_numbers(cohort_study, tmp_path):
    call_command(
        "run_analyses",
        "--study",
        cohort_study.slug,
        "--out",
        str(tmp_path),
        "--analysis",
        "matching",
        "--analysis",
        "descriptives",
    )
    run = AnalysisRun.objects.get()
    assert run.created_by is None and run.status == "done"
    html = (tmp_path / "report.html").read_text()
    assert "Naive" in html and "<svg" in html
    numbers = pd.read_csv(tmp_path / "results.csv")
    assert set(numbers["section"]) == {"descriptives", "matching"}
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["sections"][1]["summary"]["att"] == pytest.approx(
        run.results["sections"][1]["summary"]["att"]
    )
    with pytest.raises(CommandError, match="No study"):
        call_command("run_analyses", "--study", "nope", "--out", str(tmp_path))


def test_the_lagged_gee_and_the_mixed_model_equal_statsmodels_on_the_studys_own_frame(
    cohort_study,
):
    """What a run reports equals statsmodels' GEE and MixedLM fitted directly on the same
    analysis frame of the seeded study."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    from recovery.analysis import longitudinal

    people = Participant.objects.filter(study=cohort_study)
    spec = AnalysisSpec(covariates=("age", "readiness"))
    frame, _ = analysis_data(study=cohort_study, people=people, spec=spec)
    covariates = ("age_bl", "readiness_bl")

    lagged = longitudinal.lagged_gee(
        frame, exposure="involvement_index", outcome="any_use", covariates=covariates,
        family="binomial", waves=[1, 2, 3],
    )  # fmt: skip
    # The pairs built here, independently of the code: each participant's row at wave index
    # t (1, 2 or 3) beside their row at t + 1, complete cases only.
    now_rows = frame[["pid", "wave_index", "involvement_index", *covariates]]
    next_rows = frame[["pid", "wave_index", "any_use"]].assign(wave_index=frame["wave_index"] - 1)
    pairs = (
        now_rows.merge(next_rows, on=["pid", "wave_index"])
        .rename(columns={"involvement_index": "exposure", "any_use": "outcome_next"})
        .query("wave_index in [1, 2, 3]")
        .dropna()
        .sort_values(["pid", "wave_index"], ignore_index=True)
    )
    assert len(pairs) > 500 and set(pairs["wave_index"]) == {1, 2, 3}
    built = longitudinal.lagged_pairs(
        frame, "involvement_index", "any_use", covariates, waves=[1, 2, 3]
    )
    pd.testing.assert_frame_equal(
        built[pairs.columns].reset_index(drop=True), pairs, check_dtype=False
    )
    design = pd.DataFrame({"const": 1.0, "exposure": pairs["exposure"]})
    for name in covariates:
        design[name] = pairs[name]
    for t in (2, 3):  # the wave-pair indicators, the earliest pair as reference
        design[f"wave_pair_{t}_{t + 1}"] = (pairs["wave_index"] == t).astype(float)
    direct = sm.GEE(
        pairs["outcome_next"],
        design,
        groups=pairs["pid"],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    assert lagged.n_observations == len(pairs) and lagged.n_participants == pairs["pid"].nunique()
    assert lagged.coef == pytest.approx(direct.params["exposure"], rel=1e-6)
    assert lagged.se == pytest.approx(direct.bse["exposure"], rel=1e-6)
    assert lagged.ratio == pytest.approx(np.exp(direct.params["exposure"]), rel=1e-6)

    rows = frame.assign(high_early=frame["pid"].map(
        frame[frame["wave"].isin(["m1", "m3"])].groupby("pid")["high_involvement"].max()
    ))  # fmt: skip
    mixed = longitudinal.craving_trajectory(
        rows, outcome="craving_derived", exposure="high_early", time="months",
        covariates=covariates,
    )  # fmt: skip
    used = rows.dropna(subset=["craving_derived", "months", "high_early", *covariates])
    model = smf.mixedlm(
        "craving_derived ~ months * high_early + age_bl + readiness_bl",
        used,
        groups=used["pid"],
        re_formula="~months",
    )
    # The slope's variance is near 0 here (the cohort plants none): statsmodels' default
    # optimiser stops short of the REML optimum; Nelder-Mead or Powell gets nearest, which of
    # them depends on the data (the time of answering moved it). Ours is never below the best
    # of them, and within a few thousandths of it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = model.fit(reml=True)
        fits = [model.fit(reml=True, method=m, maxiter=5000) for m in ("nm", "powell")]
    fit = max((f for f in fits if f.converged), key=lambda f: f.llf)
    assert mixed.reml_log_likelihood >= fit.llf - 1e-4
    assert mixed.reml_log_likelihood == pytest.approx(fit.llf, abs=5e-3)
    assert mixed.reml_log_likelihood >= default.llf - 1e-6
    assert mixed.n_observations == len(used)
    assert mixed.time_coef == pytest.approx(fit.params["months"], rel=1e-3, abs=1e-4)
    assert mixed.exposure_coef == pytest.approx(fit.params["high_early"], rel=1e-3, abs=1e-4)
    assert mixed.interaction_coef == pytest.approx(
        fit.params["months:high_early"], rel=1e-3, abs=1e-4
    )


# --- Runs whose worker is gone, makers who are gone, bad input at the command line ----------


def test_a_run_whose_worker_died_is_failed_by_the_sweep_and_no_longer_blocks(
    settings, cohort_study, analyst, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from recovery.analyses import analysis_runs_sweep

    settings.ANALYSIS_BACKGROUND_PARTICIPANTS = 100
    spec = AnalysisSpec(analyses=("descriptives",))
    with django_capture_on_commit_callbacks(execute=False):
        stuck = analysis_run_start(user=analyst, study=cohort_study, spec=spec)
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 120)
    AnalysisRun.objects.filter(pk=stuck.pk).update(status="running", started_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False):
        fresh = analysis_run_start(user=analyst, study=cohort_study, spec=spec)  # not blocked
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "stopped before they finished" in stuck.message
    assert fresh.status == "queued"
    AnalysisRun.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert analysis_runs_sweep() == {"stopped": 0, "never_started": 1}
    fresh.refresh_from_db()
    assert fresh.status == "failed" and "No background worker" in fresh.message


def test_a_run_the_queue_refused_fails_at_once(
    settings, monkeypatch, cohort_study, analyst, django_capture_on_commit_callbacks
):
    from recovery import tasks

    def refused(*args, **kwargs):
        raise ConnectionError("broker down")

    settings.ANALYSIS_BACKGROUND_PARTICIPANTS = 100
    monkeypatch.setattr(tasks.analysis_run, "delay", refused)
    with django_capture_on_commit_callbacks(execute=True):
        run = analysis_run_start(
            user=analyst, study=cohort_study, spec=AnalysisSpec(analyses=("descriptives",))
        )
    run.refresh_from_db()
    assert run.status == "failed" and "could not be handed" in run.message


def test_a_queued_run_of_someone_switched_off_does_not_run(
    settings, cohort_study, analyst, django_capture_on_commit_callbacks
):
    settings.ANALYSIS_BACKGROUND_PARTICIPANTS = 100
    with django_capture_on_commit_callbacks(execute=False):
        run = analysis_run_start(
            user=analyst, study=cohort_study, spec=AnalysisSpec(analyses=("descriptives",))
        )
    analyst.is_active = False
    analyst.save(update_fields=["is_active"])
    analysis_run_task.run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "can no longer run them" in run.message
    assert run.results == {}
    event = AuditEvent.objects.get(action="analysis_run")
    assert event.details["status"] == "failed"


def test_a_wave_typed_wrong_at_the_command_line_is_a_plain_error(cohort_study, tmp_path):
    with pytest.raises(CommandError, match="No such wave"):
        call_command(
            "run_analyses", "--study", cohort_study.slug, "--out", str(tmp_path),
            "--exposure-wave", "m2",
        )  # fmt: skip
    assert not AnalysisRun.objects.exists()


def test_the_numbers_csv_quotes_every_cell_a_spreadsheet_would_run():
    from recovery.analysis.report import results_csv

    results = {
        "sections": [
            {
                "key": "descriptives",
                "summary": {"waves": ["=cmd|' /C calc'!A0"]},
                "tables": {
                    "by_wave": {"columns": ["=HYPERLINK(1): mean"], "rows": [[-0.5], ["@x"]]}
                },
                "error": "",
            }
        ]
    }
    table = pd.read_csv(io.StringIO(results_csv(results)), dtype=str)
    assert table.loc[0, "value"].startswith("'=cmd")
    assert table.loc[1, "column"].startswith("'=HYPERLINK")
    assert table.loc[1, "value"] == "-0.5"  # a number stays a number
    assert table.loc[2, "value"] == "'@x"


def test_each_download_of_a_runs_results_is_audited_once_and_a_head_is_not(
    client, study, researcher
):
    from django.utils import timezone

    run = AnalysisRun.objects.create(
        study=study,
        created_by=researcher,
        created_at=timezone.now(),
        parameters={"analyses": ["descriptives"]},
        status=AnalysisRun.Status.DONE,
        progress=100,
        scope_sites=["LDN", "NYC"],
        results={"sections": []},
    )
    client.force_login(researcher)
    downloads = AuditEvent.objects.filter(action="analysis_download")
    for name, shown in (
        ("report", "html"),
        ("csv", "csv"),
        ("json", "json"),
        ("results", "page"),
    ):
        url = reverse(f"admin:recovery_analysisrun_{name}", args=[run.pk])
        assert client.head(url).status_code == 200
        assert not downloads.exists(), f"a HEAD of the {shown} was audited"
        assert client.get(url).status_code == 200
        event = downloads.get()
        assert (event.user, event.study, event.object_id) == (researcher, study, str(run.pk))
        assert event.details == {"run": run.pk, "format": shown}
        downloads = downloads.exclude(pk=event.pk)
    # A run still going refreshes its page every 2 s: nothing shown yet, nothing audited.
    AnalysisRun.objects.filter(pk=run.pk).update(status=AnalysisRun.Status.RUNNING)
    client.get(reverse("admin:recovery_analysisrun_results", args=[run.pk]))
    assert not downloads.exists()


def test_a_selection_that_skips_waves_never_pairs_across_the_gap(cohort_study):
    """Waves baseline, m3 and m12 chosen: they keep their places in the study (0, 2, 4), so the
    lagged pairs hold no "m3 → m12" step (nine months taken for one wave's lag)."""
    from recovery.analysis.longitudinal import lagged_pairs

    people = Participant.objects.filter(study=cohort_study)
    spec = AnalysisSpec(waves=("baseline", "m3", "m12"))
    frame, _ = analysis_data(study=cohort_study, people=people, spec=spec)
    places = frame.groupby("wave")["wave_index"].first().to_dict()
    assert places == {"baseline": 0, "m3": 2, "m12": 4}
    assert lagged_pairs(frame, "high_involvement", "any_use").empty
    # all waves: m3 pairs with m6, which is the next wave
    every, _ = analysis_data(study=cohort_study, people=people, spec=AnalysisSpec())
    pairs = lagged_pairs(every, "high_involvement", "any_use")
    assert set(pairs["wave_index"]) <= {1, 2, 3} and len(pairs) > 100


def test_a_weekly_check_in_switched_on_stays_out_of_the_models(db):
    """The template's weekly check-in, switched on, has many rows per participant: the
    analyses' waves, the default request and the frame are the single waves only, and the
    lagged GEE runs (it refused the whole frame for its duplicate rows)."""
    from recovery.analyses import default_spec, study_variables
    from recovery.analysis import suite
    from surveys.models import Assignment, Wave
    from surveys.services import recurring_assignments_extend

    study, _ = demo_study_seed(slug="wk", participants=120, seed=1, effect=-0.1, as_of=AS_OF)
    Wave.objects.filter(study=study, slug="weekly").update(is_active=True)
    recurring_assignments_extend(now=timezone.make_aware(datetime(2026, 11, 20, 12)))
    weekly = Assignment.objects.filter(participant__study=study, wave__slug="weekly")
    assert weekly.filter(occurrence__gte=1).exists()  # two or more rows per participant

    variables = study_variables(study=study)
    assert "weekly" not in [slug for slug, _ in variables.waves]
    spec = default_spec(study=study, variables=variables)
    assert "weekly" not in (*spec.exposure_waves, spec.outcome_wave)
    analysis_check(study=study, spec=spec, variables=variables)  # the default request is valid

    frame, _ = analysis_data(study=study, people=Participant.objects.filter(study=study), spec=spec)
    assert "weekly" not in set(frame["wave"])
    assert not frame.duplicated(["pid", "wave_index"]).any()
    request = suite.SuiteRequest(
        analyses=("lagged_gee",), exposure="high_involvement", outcome="any_use"
    )
    (section,) = suite.run_suite(frame, request)
    assert (section.error, section.error_code) == ("", "") and section.tables
