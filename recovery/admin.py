"""The Analyses page of a study: choose the analyses, exposure, outcome, covariates and waves;
read the tables and charts; download a self-contained HTML report and the numbers as CSV or
JSON. Every run is kept (``AnalysisRun``) with what it takes to reproduce it, and the page lists
the study's recent runs side by side for comparison.

A scope of ``ANALYSIS_BACKGROUND_PARTICIPANTS`` people or more runs as a Celery task; its page
shows the progress and reloads itself (no JavaScript) until it ends."""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import slugify

from recovery.analyses import (
    AnalysisSpec,
    analysis_results_audit,
    analysis_run_start,
    analysis_runs_for_user,
    default_spec,
    study_variables,
)
from recovery.analysis import report
from recovery.analysis.suite import ANALYSES, FAMILIES, PS_MODELS
from recovery.models import AnalysisRun
from surveys import selectors

RECENT_RUNS = 10

FAMILY_LABELS = {
    "auto": "Automatic: binomial for a 0/1 outcome, negative binomial otherwise",
    "binomial": "Binomial (odds ratio)",
    "poisson": "Poisson (rate ratio)",
    "negative_binomial": "Negative binomial (rate ratio)",
}
PS_LABELS = {
    "logistic": "Logistic regression",
    "random_forest": "Random forest (cross-fitted)",
    "gradient_boosting": "Gradient boosting (cross-fitted)",
}


class AnalysisForm(forms.Form):
    analyses = forms.MultipleChoiceField(
        choices=list(ANALYSES.items()), widget=forms.CheckboxSelectMultiple
    )
    exposure = forms.ChoiceField(
        help_text="Involvement or attendance: the lagged models use it at one wave and the "
        "outcome at the next; matching uses it at the exposure waves."
    )
    outcome = forms.ChoiceField()
    covariates = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Baseline answers to adjust for (lagged GEE, mixed model, matching). A "
        "question with several answers enters as 0/1 indicators.",
    )
    sites = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all yours."
    )
    waves = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all."
    )
    exposure_waves = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Matching: exposure waves",
        help_text="Exposed when the exposure is 1 at any of them (a count or score: at least "
        "its median).",
    )
    outcome_wave = forms.ChoiceField(required=False, label="Matching: outcome wave")
    family = forms.ChoiceField(
        choices=[(f, FAMILY_LABELS[f]) for f in FAMILIES], label="Lagged GEE: outcome model"
    )
    ps_model = forms.ChoiceField(
        choices=[(m, PS_LABELS[m]) for m in PS_MODELS], label="Matching: propensity model"
    )
    caliper = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=5,
        label="Matching: caliper (SD of the logit of the score)",
        help_text="Empty: no caliper.",
    )
    ratio = forms.IntegerField(min_value=1, max_value=10, label="Matching: controls per exposed")
    replace = forms.BooleanField(required=False, label="Matching: with replacement")
    seed = forms.IntegerField(
        min_value=0, max_value=2**31 - 1, help_text="Fixes the matching order and tie-breaks."
    )

    FIELDSETS = (
        ("What to run", ("analyses", "exposure", "outcome", "covariates")),
        ("Which data", ("sites", "waves")),
        (
            "Propensity-score matching",
            ("exposure_waves", "outcome_wave", "ps_model", "caliper", "ratio", "replace", "seed"),
        ),
        ("Lagged GEE", ("family",)),
    )

    def fieldsets(self):
        """(title, bound fields) in the page's order."""
        return [(title, [self[name] for name in names]) for title, names in self.FIELDSETS]

    def __init__(self, *args, study, sites, variables, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["exposure"].choices = _choices(variables.exposures)
        self.fields["outcome"].choices = _choices(variables.outcomes)
        self.fields["covariates"].choices = _choices(variables.covariates)
        self.fields["sites"].choices = [(s.code, str(s)) for s in sites]
        self.fields["waves"].choices = variables.waves
        self.fields["exposure_waves"].choices = variables.waves
        self.fields["outcome_wave"].choices = [("", "—"), *variables.waves]


def _choices(pairs) -> list[tuple[str, str]]:
    return [(name, f"{label} ({name})" if label else name) for name, label in pairs]


def _initial(spec: AnalysisSpec) -> dict:
    data = spec.to_dict()
    data["analyses"] = list(spec.analyses)
    return data


def _spec(data: dict) -> AnalysisSpec:
    return AnalysisSpec(
        analyses=tuple(data["analyses"]),
        exposure=data["exposure"],
        outcome=data["outcome"],
        covariates=tuple(data["covariates"]),
        sites=tuple(data["sites"]),
        waves=tuple(data["waves"]),
        exposure_waves=tuple(data["exposure_waves"]),
        outcome_wave=data["outcome_wave"] or "",
        family=data["family"],
        ps_model=data["ps_model"],
        caliper=data["caliper"],
        ratio=data["ratio"],
        replace=data["replace"],
        seed=data["seed"],
    )


def _headline(run: AnalysisRun) -> dict:
    """The matched estimate of a run, for the list of recent runs."""
    for section in run.results.get("sections", []):
        if section["key"] == "matching" and not section.get("error"):
            summary = section["summary"]
            return {
                "att": summary.get("att"),
                "ci_low": summary.get("ci_low"),
                "ci_high": summary.get("ci_high"),
                "naive": summary.get("naive"),
            }
    return {}


def run_meta(run: AnalysisRun) -> dict:
    """What a report names so that the run can be reproduced."""
    return {
        "Study": run.study.name,
        "Run": run.pk,
        "Run by": run.created_by.get_username() if run.created_by else "manage.py",
        "Started": run.started_at.isoformat(timespec="seconds") if run.started_at else None,
        "Finished": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "Sites": run.scope_sites,
        "Participants": run.participants,
        "Participant × wave rows": run.rows,
        "Data (SHA-256 of the analysis frame)": run.data_hash,
        "Code": run.code_version,
        "Parameters": run.parameters,
    }


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    """Saved runs, read-only: made by the Analyses page, ``manage.py run_analyses`` and their
    tasks; kept as the record of what was run on which data."""

    list_display = ("created_at", "study", "analyses_run", "status", "participants", "page_link")
    list_select_related = ("study", "created_by")
    list_filter = ("status",)
    fields = (
        "study",
        "created_by",
        "analyses_run",
        "parameters",
        "status",
        "progress",
        "message",
        "scope_sites",
        "participants",
        "rows",
        "data_hash",
        "code_version",
        "created_at",
        "started_at",
        "finished_at",
        "page_link",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        runs = super().get_queryset(request)
        return runs.filter(pk__in=analysis_runs_for_user(user=request.user).values("pk"))

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="analyses")
    def analyses_run(self, obj: AnalysisRun) -> str:
        return ", ".join(obj.analyses)

    @admin.display(description="results")
    def page_link(self, obj: AnalysisRun) -> str:
        return format_html(
            '<a href="{}">open</a>', reverse("admin:recovery_analysisrun_results", args=[obj.pk])
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "study/<id:study_id>/",
                wrap(self.study_view),
                name="recovery_analysisrun_study",
            ),
            path(
                "<id:run_id>/results/",
                wrap(self.results_view),
                name="recovery_analysisrun_results",
            ),
            path(
                "<id:run_id>/report/",
                wrap(self.report_view),
                name="recovery_analysisrun_report",
            ),
            path(
                "<id:run_id>/results.csv",
                wrap(self.csv_view),
                name="recovery_analysisrun_csv",
            ),
            path(
                "<id:run_id>/results.json",
                wrap(self.json_view),
                name="recovery_analysisrun_json",
            ),
            *super().get_urls(),
        ]

    # --- pages -----------------------------------------------------------------------------

    def study_view(self, request, study_id: int):
        study = get_object_or_404(selectors.studies_for_user(user=request.user), pk=study_id)
        sites = selectors.sites_for_user(user=request.user).filter(study=study)
        variables = study_variables(study=study)
        runs = analysis_runs_for_user(user=request.user).filter(study=study)
        initial = default_spec(study=study, variables=variables)
        again = request.GET.get("from")
        if again and again.isdecimal():
            previous = runs.filter(pk=int(again)).first()
            if previous is not None:
                initial = AnalysisSpec.from_dict(previous.parameters)
        form = AnalysisForm(
            request.POST or None,
            initial=_initial(initial),
            study=study,
            sites=sites,
            variables=variables,
        )
        if request.method == "POST" and form.is_valid():
            try:
                run = analysis_run_start(
                    user=request.user, study=study, spec=_spec(form.cleaned_data), request=request
                )
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    form.add_error(name if name in form.fields else None, messages)
            else:
                return redirect("admin:recovery_analysisrun_results", run_id=run.pk)
        recent = [(run, _headline(run)) for run in runs[:RECENT_RUNS]]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Analyses: {study.name}",
            "study": study,
            "form": form,
            "recent": recent,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/recovery/analyses.html", context)

    def _run(self, request, run_id: int) -> AnalysisRun:
        return get_object_or_404(analysis_runs_for_user(user=request.user), pk=run_id)

    def results_view(self, request, run_id: int):
        run = self._run(request, run_id)
        sections = run.results.get("sections", []) if run.status == AnalysisRun.Status.DONE else []
        rendered = [
            {
                "key": s["key"],
                "title": s["title"],
                "html": mark_safe(report.section_html(s)),  # noqa: S308 - escaped by report
            }
            for s in sections
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Analysis {run.pk}: {run.study.name}",
            "study": run.study,
            "run": run,
            "meta": run_meta(run),
            "sections": rendered,
            "refresh": run.status in (AnalysisRun.Status.QUEUED, AnalysisRun.Status.RUNNING),
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, "admin/recovery/analysis_run.html", context)
        response["Cache-Control"] = "no-store"
        if run.status == AnalysisRun.Status.DONE:  # the results are on the page
            analysis_results_audit(run=run, request=request, file_format="page")
        return response

    def _download(self, request, run: AnalysisRun, content: str, content_type: str, extension: str):
        analysis_results_audit(run=run, request=request, file_format=extension)
        response = HttpResponse(content, content_type=content_type)
        name = f"{slugify(run.study.slug)}-analysis-{run.pk}.{extension}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response

    def _done(self, request, run_id: int) -> AnalysisRun | None:
        run = self._run(request, run_id)
        return run if run.status == AnalysisRun.Status.DONE else None

    def report_view(self, request, run_id: int):
        run = self._done(request, run_id)
        if run is None:
            return redirect("admin:recovery_analysisrun_results", run_id=run_id)
        html = report.report_html(
            run.results, title=f"Analyses of {run.study.name} (run {run.pk})", meta=run_meta(run)
        )
        return self._download(request, run, html, "text/html; charset=utf-8", "html")

    def csv_view(self, request, run_id: int):
        run = self._done(request, run_id)
        if run is None:
            return redirect("admin:recovery_analysisrun_results", run_id=run_id)
        return self._download(
            request, run, report.results_csv(run.results), "text/csv; charset=utf-8", "csv"
        )

    def json_view(self, request, run_id: int):
        run = self._done(request, run_id)
        if run is None:
            return redirect("admin:recovery_analysisrun_results", run_id=run_id)
        payload = {"run": json.loads(json.dumps(run_meta(run), default=str)), **run.results}
        analysis_results_audit(run=run, request=request, file_format="json")
        response = JsonResponse(payload, json_dumps_params={"indent": 1})
        name = f"{slugify(run.study.slug)}-analysis-{run.pk}.json"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response
