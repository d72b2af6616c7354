"""Involvement-versus-outcome analyses of a study: the admin's Analyses page, ``manage.py
run_analyses`` and background jobs all go through ``analysis_run_start`` and
``analysis_run_execute``.

The data path is the exports' one: the user's participant scope → the dataset builder's long
frame (``surveys.datasets.dataset_long``, de-identified: pseudonymous IDs, no identifiers, no
free text) → the analysis frame (``recovery.analysis.frames``) → the pure analysis package
(``recovery.analysis.suite``). A run keeps its parameters, a SHA-256 of the frame it read, row
and participant counts, the code version and times, and its results: aggregates only (tables,
estimates, charts), never a participant's row. Every run is audited.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from recovery.analysis import suite
from recovery.analysis.errors import AnalysisError
from recovery.analysis.frames import analysis_frame
from recovery.models import AnalysisRun
from surveys import selectors
from surveys.audit import audit_log
from surveys.datasets import MISSING_CODES, dataset_long
from surveys.models import AuditEvent, Participant, Study

logger = logging.getLogger(__name__)

Status = AnalysisRun.Status
NUMERIC_KINDS = {"integer", "decimal", "yesno", "slider", "single"}
# Meeting formats as charts and tables name them.
FORMAT_LABELS = {
    "inperson": "In person",
    "online": "Online (video, phone, chat)",
    "online24": "Online, 24-hour",
    "hybrid": "Hybrid",
}
# Baseline items offered as covariates by default, when the study has them.
DEFAULT_COVARIATES = ("age", "baseline_days_used", "readiness", "justice_involved", "prior_mhg")


@dataclass(frozen=True)
class AnalysisSpec:
    """What to run, on which data. Variable names are the dataset's columns (items and derived
    measures); covariates are baseline items (``age`` means the baseline answer, ``age_bl``)."""

    analyses: tuple[str, ...] = tuple(suite.ANALYSES)
    exposure: str = "high_involvement"
    outcome: str = "any_use"
    covariates: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()  # site codes; empty: every site the user may see
    waves: tuple[str, ...] = ()  # waves to use; empty: all
    # Matching: the exposure's waves (exposed if at any of them) and the outcome's wave.
    exposure_waves: tuple[str, ...] = ()
    outcome_wave: str = ""
    family: str = "auto"
    ps_model: str = "logistic"
    caliper: float | None = 0.2
    ratio: int = 1
    replace: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> AnalysisSpec:
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key in known:
                values[key] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


@dataclass
class StudyVariables:
    """The columns of a study's dataset that analyses may use, with their labels."""

    waves: list[tuple[str, str]]  # (slug, name), in order
    exposures: list[tuple[str, str]]
    outcomes: list[tuple[str, str]]
    covariates: list[tuple[str, str]]
    categorical: set[str] = field(default_factory=set)  # covariates that are categories


def study_variables(*, study: Study) -> StudyVariables:
    """Read off the dataset's plan (no participant data is read)."""
    empty = dataset_long(study=study, participants=Participant.objects.none())
    columns = empty.attrs["columns"]
    # Single waves only: a recurring check-in has many rows per participant, which the
    # models' one row per participant and wave cannot hold.
    waves = list(
        study.waves.filter(is_active=True, recurrence_days__isnull=True)
        .order_by("position", "pk")
        .values_list("slug", "name")
    )
    wave_instruments = empty.attrs["dataset"]["wave_instruments"]
    first = waves[0][0] if waves else ""
    baseline_instruments = set(wave_instruments.get(first, []))
    measured: list[tuple[str, str]] = []
    covariates: list[tuple[str, str]] = []
    categorical: set[str] = set()
    for name, info in columns.items():
        kind = info["item_kind"]
        numeric = info["dtype"] in ("Int64", "Float64", "float64")
        if info["role"] == "derived" and numeric:
            measured.append((name, info["label"]))
        elif info["role"] == "item" and kind in NUMERIC_KINDS:
            sources = set(info["sources"])
            if sources & baseline_instruments:
                covariates.append((name, info["label"]))
                if kind == "single" and len(info["values"]) > 2:
                    categorical.add(name)
            if sources - baseline_instruments and kind != "single":
                measured.append((name, info["label"]))
    return StudyVariables(
        waves=waves,
        exposures=measured,
        outcomes=measured,
        covariates=covariates,
        categorical=categorical,
    )


def default_spec(*, study: Study, variables: StudyVariables | None = None) -> AnalysisSpec:
    """The study's usual question: high involvement in the first 3 months → any use at the last
    wave, adjusted for the baseline covariates the template has."""
    variables = variables or study_variables(study=study)
    offered = {name for name, _ in variables.covariates}
    slugs = [slug for slug, _ in variables.waves]
    offsets = dict(study.waves.filter(is_active=True).values_list("slug", "offset_days"))
    early = [s for s in slugs[1:] if 0 < (offsets.get(s) or 0) <= 100]
    return AnalysisSpec(
        covariates=tuple(c for c in DEFAULT_COVARIATES if c in offered),
        exposure_waves=tuple(early or slugs[1:2]),
        outcome_wave=slugs[-1] if len(slugs) > 1 else "",
    )


def analysis_check(*, study: Study, spec: AnalysisSpec, variables: StudyVariables) -> None:
    """Refuse what cannot be run, field by field, before any data is read."""
    errors: dict[str, list[str]] = {}
    unknown = [a for a in spec.analyses if a not in suite.ANALYSES]
    if not spec.analyses or unknown:
        errors["analyses"] = ["Choose one or more of the analyses listed."]
    measured = {name for name, _ in variables.exposures}
    if spec.exposure not in measured:
        errors["exposure"] = [f"{spec.exposure!r} is not a follow-up measure of this study."]
    if spec.outcome not in measured:
        errors["outcome"] = [f"{spec.outcome!r} is not a follow-up measure of this study."]
    elif spec.outcome == spec.exposure:
        errors["outcome"] = ["The outcome must differ from the exposure."]
    offered = {name for name, _ in variables.covariates}
    stray = [c for c in spec.covariates if c not in offered]
    if stray:
        errors["covariates"] = [f"Not a baseline question of this study: {', '.join(stray)}."]
    slugs = [slug for slug, _ in variables.waves]
    for name in ("waves", "exposure_waves"):
        stray = [w for w in getattr(spec, name) if w not in slugs]
        if stray:
            errors[name] = [f"No such wave: {', '.join(stray)}."]
    if "matching" in spec.analyses:
        if not spec.exposure_waves:
            errors.setdefault("exposure_waves", []).append(
                "Matching needs the wave(s) at which the exposure is measured."
            )
        if spec.outcome_wave not in slugs:
            errors["outcome_wave"] = ["Matching needs the wave at which the outcome is measured."]
        else:
            known = [slugs.index(w) for w in spec.exposure_waves if w in slugs]
            if known and slugs.index(spec.outcome_wave) <= max(known):
                errors["outcome_wave"] = [
                    "The outcome's wave must come after the exposure's waves."
                ]
    if spec.family not in suite.FAMILIES:
        errors["family"] = [f"Choose one of {', '.join(suite.FAMILIES)}."]
    if spec.ps_model not in suite.PS_MODELS:
        errors["ps_model"] = [f"Choose one of {', '.join(suite.PS_MODELS)}."]
    if spec.caliper is not None and not 0 < spec.caliper <= 5:
        errors["caliper"] = [
            "The caliper is a number of standard deviations, above 0 and at most 5."
        ]
    if not 1 <= spec.ratio <= 10:
        errors["ratio"] = ["Match 1 to 10 controls to each exposed participant."]
    if errors:
        raise ValidationError(errors)


def analysis_participants(*, user, study: Study, spec: AnalysisSpec) -> QuerySet[Participant]:
    if user is None:  # manage.py: the whole study
        people = Participant.objects.filter(study=study)
    else:
        people = selectors.participants_for_user(user=user).filter(study=study)
    if spec.sites:
        people = people.filter(site__code__in=spec.sites)
    return people


def _scope_sites(*, user, study: Study, spec: AnalysisSpec) -> list[str]:
    if user is None:
        sites = study.sites.all()
    else:
        sites = selectors.sites_for_user(user=user).filter(study=study)
    if spec.sites:
        sites = sites.filter(code__in=spec.sites)
    return sorted(sites.values_list("code", flat=True))


def analysis_data(
    *, study: Study, people: QuerySet[Participant], spec: AnalysisSpec
) -> tuple[pd.DataFrame, str]:
    """The analysis frame of these participants and its SHA-256 (columns, types and values, so
    the same data gives the same hash and any change to it another)."""
    long_df = dataset_long(
        study=study,
        participants=people,
        waves=spec.waves or None,
        covariates=spec.covariates,
    )
    # One row per participant and wave: single waves only (a recurring check-in has many
    # rows per participant), numbered in the study's order of them all, so that a selection
    # that skips a wave never pairs the waves either side of it as one lag.
    single = _single_waves(study)
    waves = [w for w in long_df.attrs["dataset"]["waves"] if w in single]
    frame = analysis_frame(long_df, waves=waves, missing_codes=MISSING_CODES, order=single)
    return frame, frame_hash(frame)


def _single_waves(study: Study) -> list[str]:
    """The study's single (not recurring) waves' slugs, in the study's order."""
    found = study.waves.filter(recurrence_days__isnull=True).order_by("position", "pk")
    return list(found.values_list("slug", flat=True))


def frame_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update("\x1f".join(f"{c}:{frame[c].dtype}" for c in frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def code_version() -> str:
    """The application's commit (from the checkout, or APP_COMMIT in an image) and the versions
    of the libraries that compute the numbers."""
    import sklearn
    import statsmodels

    commit = getattr(settings, "APP_COMMIT", "") or _git_commit() or "unknown"
    return (
        f"app {commit[:12]}; statsmodels {statsmodels.__version__}; scikit-learn "
        f"{sklearn.__version__}; pandas {pd.__version__}; numpy {np.__version__}"
    )


def _git_commit() -> str:
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
            return ""
        return head
    except OSError:
        return ""


def analysis_runs_for_user(*, user) -> QuerySet[AnalysisRun]:
    """The user's own runs, in studies where they still have a role and over sites they may all
    still see (a run's results describe the sites it read; a role lost or narrowed hides
    them). Like background exports, a run is its creator's: a colleague re-runs it from its
    parameters (the report names them) rather than reading another's results. A superuser
    sees every run, ``manage.py``'s included."""
    runs = AnalysisRun.objects.select_related("study", "created_by")
    if user.is_superuser:
        return runs
    runs = runs.filter(created_by=user, study__in=selectors.studies_for_user(user=user))
    visible: dict[int, set[str]] = {}
    for study_id, code in selectors.sites_for_user(user=user).values_list("study_id", "code"):
        visible.setdefault(study_id, set()).add(code)
    allowed = [
        pk
        for pk, study_id, sites in runs.values_list("pk", "study_id", "scope_sites")
        if set(sites or []) <= visible.get(study_id, set())
    ]
    return runs.filter(pk__in=allowed)


def analysis_should_run_in_background(people_count: int) -> bool:
    return people_count >= settings.ANALYSIS_BACKGROUND_PARTICIPANTS


def analysis_run_start(
    *,
    user,
    study: Study,
    spec: AnalysisSpec,
    request=None,
    background: bool | None = None,
) -> AnalysisRun:
    """Check the request, record the run and run it: at once for a small scope (outside the
    transaction that recorded it, so a failure is kept), as a Celery task (after commit, with
    the run's id alone) for a big one or when ``background``. ``user=None`` is
    ``manage.py``: the whole study."""
    with transaction.atomic():
        variables = study_variables(study=study)
        analysis_check(study=study, spec=spec, variables=variables)
        people = analysis_participants(user=user, study=study, spec=spec)
        count = people.count()
        if count == 0:
            raise ValidationError(
                {NON_FIELD_ERRORS: "There are no participants to analyse in your scope."}
            )
        if background is None:
            background = analysis_should_run_in_background(count)
        if background and user is not None:
            analysis_runs_sweep()  # a run whose worker died does not block its maker
            busy = AnalysisRun.objects.filter(
                created_by=user, study=study, status__in=(Status.QUEUED, Status.RUNNING)
            )
            if busy.exists():
                raise ValidationError(
                    {
                        NON_FIELD_ERRORS: "One of your analyses of this study is still "
                        "running: wait for it to finish (its page shows the progress)."
                    }
                )
        run = AnalysisRun.objects.create(
            study=study,
            created_by=user,
            from_command=user is None,
            created_at=timezone.now(),
            parameters=spec.to_dict(),
            scope_sites=_scope_sites(user=user, study=study, spec=spec),
        )
        if background:
            transaction.on_commit(lambda pk=run.pk: _enqueue(pk), robust=True)
    if background:
        return run
    return analysis_run_execute(run_id=run.pk, request=request) or run


def _enqueue(run_id: int) -> None:
    """Queue the task; if the broker cannot take it, the run fails at once with a reason
    instead of waiting for a worker that will never hear of it."""
    from recovery.tasks import analysis_run as task  # tasks call this module: no cycle

    try:
        task.delay(run_id)
    except Exception as exc:
        logger.error("Analysis run %s could not be queued: %s", run_id, type(exc).__name__)
        AnalysisRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
            status=Status.FAILED,
            message="The analyses could not be handed to the background worker (the queue "
            "did not answer). Try again in a few minutes.",
            finished_at=timezone.now(),
        )
        raise


# A queued run never picked up, or a running one past the worker's hard time limit, has no
# worker any more: the sweep fails it (beat runs it; a new background start runs it too).
QUEUED_STALE_MINUTES = 60


def analysis_runs_sweep(*, now=None) -> dict[str, int]:
    now = now or timezone.now()
    running_limit = settings.CELERY_TASK_TIME_LIMIT + 60
    stopped = AnalysisRun.objects.filter(
        status=Status.RUNNING, started_at__lt=now - timedelta(seconds=running_limit)
    ).update(
        status=Status.FAILED,
        message="The analyses stopped before they finished (the background worker was "
        "stopped or ran out of time). Try again, or choose fewer analyses or sites.",
        finished_at=now,
    )
    never = AnalysisRun.objects.filter(
        status=Status.QUEUED, created_at__lt=now - timedelta(minutes=QUEUED_STALE_MINUTES)
    ).update(
        status=Status.FAILED,
        message="No background worker picked the analyses up within an hour. Try again, or "
        "tell the administrator that the worker may be down.",
        finished_at=now,
    )
    return {"stopped": stopped, "never_started": never}


class _Progress:
    def __init__(self, run_id: int):
        self.run_id, self.last = run_id, 0

    def __call__(self, percent: int) -> None:
        percent = max(0, min(int(percent), 99))
        if percent > self.last:
            self.last = percent
            AnalysisRun.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
                progress=percent
            )


def _failure_message(exc: BaseException) -> str:
    """What the user reads: never a traceback, never a value from the data."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, AnalysisError):
        return exc.message
    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            "The analyses took longer than the worker's time limit and were stopped. Choose "
            "fewer analyses or sites, or ask the administrator to raise "
            "CELERY_TASK_SOFT_TIME_LIMIT."
        )
    return (
        f"The analyses failed because of an error in the application ({type(exc).__name__}). "
        "It was logged without any data; try again, or tell the administrator if it happens "
        "again."
    )


def analysis_results_audit(*, run: AnalysisRun, request, file_format: str) -> AuditEvent | None:
    """Audit one opening or download of a run's results (``file_format``: page, html, csv or
    json): who, which run, which format. A GET's, not a HEAD's (headers only: nothing
    leaves)."""
    if request.method == "HEAD":
        return None
    return audit_log(
        action=AuditEvent.Action.ANALYSIS_DOWNLOAD,
        request=request,
        study=run.study,
        obj=run,
        details={"run": run.pk, "format": file_format},
    )


def analysis_run_execute(*, run_id: int, request=None) -> AnalysisRun | None:
    """Run a queued run as its creator (their scope read again), store its results and audit
    it. Any error fails the run with a readable message. A run that is not queued is left
    alone: None (a second delivery of the same task is a no-op)."""
    claimed = AnalysisRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, progress=0, started_at=timezone.now()
    )
    if not claimed:
        return None
    run = AnalysisRun.objects.select_related("study", "created_by").get(pk=run_id)
    progress = _Progress(run.pk)
    try:
        creator = run.created_by
        if not run.from_command and (
            creator is None or not creator.is_active or not creator.is_staff
        ):
            raise ValidationError(
                "The person who started these analyses can no longer run them (their "
                "account was removed or switched off)."
            )
        spec = AnalysisSpec.from_dict(run.parameters)
        variables = study_variables(study=run.study)
        analysis_check(study=run.study, spec=spec, variables=variables)
        people = analysis_participants(user=run.created_by, study=run.study, spec=spec)
        run.scope_sites = _scope_sites(user=run.created_by, study=run.study, spec=spec)
        if not people.exists():
            raise ValidationError(
                "There are no participants to analyse in your scope any more (your sites or "
                "role changed since the analyses were started)."
            )
        with transaction.atomic():  # a database error rolls back to here, not further
            frame, digest = analysis_data(study=run.study, people=people, spec=spec)
        progress(10)
        request_ = suite.SuiteRequest(
            analyses=spec.analyses,
            exposure=spec.exposure,
            outcome=spec.outcome,
            covariates=tuple(f"{c}_bl" for c in spec.covariates),
            categorical=tuple(f"{c}_bl" for c in spec.covariates if c in variables.categorical),
            exposure_waves=spec.exposure_waves,
            outcome_wave=spec.outcome_wave,
            family=spec.family,
            ps_model=spec.ps_model,
            caliper=spec.caliper,
            ratio=spec.ratio,
            replace=spec.replace,
            seed=spec.seed,
            labels=_labels(variables),
        )
        sections = suite.run_suite(
            frame, request_, progress=lambda share: progress(10 + int(85 * share))
        )
        results = suite.to_json(sections)
    except Exception as exc:  # every failure ends the run, with a message the user can read
        if not isinstance(exc, ValidationError | AnalysisError):
            logger.error(
                "Analysis run %s failed with %s at:\n%s",
                run.pk,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=Status.FAILED, message=_failure_message(exc), finished_at=timezone.now()
        )
        run.refresh_from_db()
        audit_log(
            action=AuditEvent.Action.ANALYSIS_RUN,
            user=run.created_by,
            request=request,
            study=run.study,
            obj=run,
            details={"analyses": run.parameters.get("analyses", []), "status": "failed"},
        )
        return run
    run.status, run.progress = Status.DONE, 100
    run.data_hash = digest
    run.participants = int(frame["pid"].nunique())
    run.rows = len(frame)
    run.code_version = code_version()
    run.results = results
    run.finished_at = timezone.now()
    run.save(
        update_fields=[
            "status",
            "progress",
            "data_hash",
            "participants",
            "rows",
            "code_version",
            "results",
            "finished_at",
            "scope_sites",
        ]
    )
    audit_log(
        action=AuditEvent.Action.ANALYSIS_RUN,
        user=run.created_by,
        request=request,
        study=run.study,
        obj=run,
        details={
            "analyses": list(spec.analyses),
            "status": "done",
            "sites": run.scope_sites,
            "participants": run.participants,
            "rows": run.rows,
            "data_hash": digest,
        },
    )
    return run


def _labels(variables: StudyVariables) -> dict[str, str]:
    from recovery.battery import FELLOWSHIPS

    labels = {stem: label for _, stem, label in FELLOWSHIPS}
    labels.update(FORMAT_LABELS)
    labels.update(dict(variables.exposures))
    labels.update({f"{name}_bl": f"{label} (baseline)" for name, label in variables.covariates})
    labels.update(dict(variables.waves))
    return labels
