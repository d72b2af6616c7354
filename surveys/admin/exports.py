"""The dataset export page of a study (``StudyAdmin.get_urls``): choose the shape, codes or
labels and the filters; the file streams back, and the export is written to the audit log.

A large export (``export_should_run_in_background``) is queued instead: the page of its job
shows the progress, refreshing itself (no JavaScript), and a Download button once the file is
ready. Only the job's creator opens that page and downloads the file, until it expires."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from surveys import selectors
from surveys.admin.base import time_with_zone
from surveys.exports import (
    ExportFailed,
    ExportGone,
    ExportNotReady,
    ExportSpec,
    dataset_export,
    export_instruments,
    export_job_content_type,
    export_job_download,
    export_job_start,
    export_jobs_for_user,
    export_participants,
    export_should_run_in_background,
)
from surveys.models import DatasetExportJob, Participant

RECENT_JOBS = 10

SHAPE_CHOICES = [
    ("long", "Long: one row per participant and wave"),
    ("wide", "Wide: one row per participant, <variable>_<wave> columns"),
    ("diary", "Meeting diary: one row per meeting logged"),
    ("codebook", "Codebook of the long dataset"),
]


class ExportForm(forms.Form):
    shape = forms.ChoiceField(choices=SHAPE_CHOICES, widget=forms.RadioSelect, initial="long")
    format = forms.ChoiceField(
        choices=[
            ("csv", "CSV"),
            ("xlsx", "Excel (.xlsx, with a codebook sheet)"),
            ("sav", "SPSS (.sav, with variable and value labels)"),
            ("dta", "Stata (.dta, with variable and value labels)"),
            ("parquet", "Parquet (for Python, R arrow, DuckDB)"),
            ("html", "HTML (codebook only)"),
        ],
        initial="csv",
    )
    labels = forms.BooleanField(
        required=False,
        label="Write value labels instead of codes (e.g. “Yes” for 1)",
        help_text="CSV only: SPSS and Stata files carry both, and Excel's codebook sheet "
        "lists the labels.",
    )
    sites = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all yours."
    )
    waves = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all."
    )
    instruments = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all. Their items and derived measures; the waves without any "
        "of them have no rows.",
    )
    statuses = forms.MultipleChoiceField(
        required=False,
        choices=Participant.Status.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Participant status",
        help_text="None ticked: all.",
    )
    enrolled_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Enrolled from"
    )
    enrolled_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Enrolled up to"
    )

    dates = forms.ChoiceField(
        required=False,
        choices=[
            ("days", "Days since enrolment only"),
            ("shifted", "Also calendar dates, shifted per participant (0–364 days back)"),
        ],
        initial="days",
        widget=forms.RadioSelect,
        label="Dates",
        help_text="A shifted date keeps the intervals of one participant's dates, not the "
        "real days.",
    )

    identified = forms.BooleanField(
        required=False,
        label="Identified export (principal investigators)",
        help_text="Adds study IDs, answers marked as identifiers and free text; never contact "
        "details. Audited with your reason.",
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why identified data is needed",
    )

    def __init__(self, *args, study, sites, leads: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not leads:
            del self.fields["identified"], self.fields["reason"]
        self.fields["sites"].choices = [(s.code, str(s)) for s in sites]
        self.fields["waves"].choices = [
            (w.slug, w.name) for w in study.waves.order_by("position", "pk")
        ]
        self.fields["instruments"].choices = [(i.slug, i.name) for i in export_instruments(study)]


def _spec(data: dict) -> ExportSpec:
    return ExportSpec(
        shape=data["shape"],
        format=data["format"],
        labels=data["labels"],
        sites=tuple(data["sites"]),
        waves=tuple(data["waves"]),
        instruments=tuple(data["instruments"]),
        statuses=tuple(data["statuses"]),
        enrolled_from=data["enrolled_from"],
        enrolled_to=data["enrolled_to"],
        dates=data["dates"] or "days",
        identified=data.get("identified", False),
        reason=data.get("reason", ""),
    )


def export_view(model_admin, request, study_id: int):
    study = get_object_or_404(selectors.studies_for_user(user=request.user), pk=study_id)
    sites = selectors.sites_for_user(user=request.user).filter(study=study)
    leads = selectors.studies_led_by(user=request.user).filter(pk=study.pk).exists()
    form = ExportForm(request.POST or None, study=study, sites=sites, leads=leads)
    if request.method == "POST" and form.is_valid():
        spec = _spec(form.cleaned_data)
        people = export_participants(user=request.user, study=study, spec=spec)
        try:
            if export_should_run_in_background(people.count()):
                job = export_job_start(user=request.user, study=study, spec=spec, request=request)
                return redirect("admin:surveys_study_export_job", job_id=job.pk)
            export = dataset_export(user=request.user, study=study, spec=spec, request=request)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, messages)
        else:
            response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
            response["Cache-Control"] = "no-store"
            return response
    jobs = export_jobs_for_user(user=request.user).filter(study=study)[:RECENT_JOBS]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Export data: {study.name}",
        "study": study,
        "form": form,
        "jobs": jobs,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/surveys/study/export.html", context)


def _job_context(model_admin, request, job: DatasetExportJob) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "title": f"Export {job.pk}: {job.study.name}",
        "study": job.study,
        "job": job,
        "spec": job.spec,
        "opts": model_admin.model._meta,
    }


def export_job_view(model_admin, request, job_id: int):
    """A background export's status; the page reloads itself every 2 s until it ends."""
    job = get_object_or_404(export_jobs_for_user(user=request.user), pk=job_id)
    context = _job_context(model_admin, request, job)
    context["refresh"] = job.status in (
        DatasetExportJob.Status.QUEUED,
        DatasetExportJob.Status.RUNNING,
    )
    response = TemplateResponse(request, "admin/surveys/study/export_job.html", context)
    response["Cache-Control"] = "no-store"
    return response


def export_download_view(model_admin, request, job_id: int):
    """The job's file, for its creator alone (404 for anyone else), while it lasts (410)."""
    job = get_object_or_404(export_jobs_for_user(user=request.user), pk=job_id)
    try:
        handle = export_job_download(user=request.user, job=job, request=request)
    except (ExportNotReady, ExportFailed):  # the job's page says why
        return redirect("admin:surveys_study_export_job", job_id=job.pk)
    except ExportGone as exc:
        context = _job_context(model_admin, request, job) | {"gone": str(exc)}
        response = TemplateResponse(
            request, "admin/surveys/study/export_gone.html", context, status=410
        )
        response["Cache-Control"] = "no-store"
        return response
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=job.filename,
        content_type=export_job_content_type(job),
    )
    response["Cache-Control"] = "no-store"
    return response


@admin.register(DatasetExportJob)
class DatasetExportJobAdmin(admin.ModelAdmin):
    """Your background exports (a superuser sees everyone's, without their files): read-only,
    made by the Export data page and the API, deleted by nobody (their files expire)."""

    list_display = (
        "created",
        "study",
        "what",
        "status",
        "progress_percent",
        "rows",
        "expires",
        "page_link",
    )
    list_select_related = ("study", "created_by")
    list_filter = ("status",)
    fields = (
        "study",
        "created_by",
        "what",
        "status",
        "progress_percent",
        "message",
        "filename",
        "rows",
        "size",
        "created",
        "started",
        "finished",
        "expires",
        "page_link",
    )
    readonly_fields = fields

    created = time_with_zone("created_at", "created")
    started = time_with_zone("started_at", "started")
    finished = time_with_zone("finished_at", "finished")
    expires = time_with_zone("expires_at", "expires")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=export_jobs_for_user(user=request.user).values("pk"))

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False  # made by the Export data page and the API

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # files expire; the rows stay, as a record of what was exported

    @admin.display(description="export")
    def what(self, obj: DatasetExportJob) -> str:
        spec = obj.spec
        identified = ", identified" if spec.get("identified") else ""
        return f"{spec.get('shape', '?')}, {spec.get('format', '?')}{identified}"

    @admin.display(description="progress")
    def progress_percent(self, obj: DatasetExportJob) -> str:
        return f"{obj.progress} %"

    @admin.display(description="page")
    def page_link(self, obj: DatasetExportJob) -> str:
        return format_html(
            '<a href="{}">open</a>', reverse("admin:surveys_study_export_job", args=[obj.pk])
        )
