"""Studies, sites and their data dictionaries."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from surveys import selectors
from surveys.admin.base import RELATED_ONLY, StudyScopedAdmin
from surveys.admin.exports import export_download_view, export_job_view, export_view
from surveys.admin.retention import retention_view
from surveys.dictionary import DictionaryError, dictionary_export, dictionary_import_forms
from surveys.models import (
    Language,
    Site,
    Study,
    Wave,
)


def _leads(request, study: Study | None) -> bool:
    """Whether the user is a principal investigator of ``study`` (a superuser leads them all).
    Group permissions alone do not tell: a PI of one study may be a researcher in another."""
    if study is None or request.user.is_superuser:
        return True
    return selectors.studies_led_by(user=request.user).filter(pk=study.pk).exists()


class LedStudyInline(admin.TabularInline):
    """A study's rows, added, changed and deleted only by the study's principal investigators
    (``obj`` is the study)."""

    def has_add_permission(self, request, obj=None):
        return _leads(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return _leads(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _leads(request, obj) and super().has_delete_permission(request, obj)


class SiteInline(LedStudyInline):
    model = Site
    extra = 0
    fields = ("code", "name", "timezone")

    def get_queryset(self, request):
        # A coordinator sees only their own sites, here as everywhere.
        return (
            super().get_queryset(request).filter(pk__in=selectors.sites_for_user(user=request.user))
        )


class WaveInline(LedStudyInline):
    model = Wave
    extra = 0
    fields = (
        "position",
        "slug",
        "name",
        "offset_days",
        "window_before_days",
        "window_after_days",
        "recurrence_days",
        "is_active",
    )


class DictionaryUploadForm(forms.Form):
    file = forms.FileField(label="REDCap data dictionary (CSV)")
    language = forms.ChoiceField(
        choices=Language.choices,
        initial=Language.ENGLISH,
        help_text="The language of the labels in the file.",
    )


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "default_language",
        "default_timezone",
        "is_synthetic",
        "retention_link",
        "dictionary_links",
    )
    search_fields = ("name", "slug")
    readonly_fields = ("created_at", "updated_at", "synthetic_params")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (SiteInline, WaveInline)

    def get_queryset(self, request):
        return selectors.studies_for_user(user=request.user)

    def has_change_permission(self, request, obj=None):
        # Seen by everyone of the study; changed (export ID, alert e-mail, sites, waves) only
        # by its principal investigators.
        return _leads(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _leads(request, obj) and super().has_delete_permission(request, obj)

    @admin.display(description="retention and data")
    def retention_link(self, obj: Study) -> str:
        return format_html(
            '<a href="{}">dashboard</a> · <a href="{}">export</a>',
            reverse("admin:surveys_study_retention", args=[obj.pk]),
            reverse("admin:surveys_study_export", args=[obj.pk]),
        )

    @admin.display(description="data dictionary")
    def dictionary_links(self, obj: Study) -> str:
        return format_html(
            '<a href="{}">download</a> · <a href="{}">upload</a>',
            reverse("admin:surveys_study_dictionary_export", args=[obj.pk]),
            reverse("admin:surveys_study_dictionary_import", args=[obj.pk]),
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<id:study_id>/retention/",
                wrap(self.retention_view),
                name="surveys_study_retention",
            ),
            path(
                "<id:study_id>/export/",
                wrap(self.export_view),
                name="surveys_study_export",
            ),
            # A background export's page and file, named by the job alone (it knows its study;
            # only its creator opens either).
            path(
                "exports/<id:job_id>/",
                wrap(self.export_job_view),
                name="surveys_study_export_job",
            ),
            path(
                "exports/<id:job_id>/download/",
                wrap(self.export_download_view),
                name="surveys_study_export_download",
            ),
            path(
                "<id:study_id>/dictionary/export/",
                wrap(self.dictionary_export_view),
                name="surveys_study_dictionary_export",
            ),
            path(
                "<id:study_id>/dictionary/import/",
                wrap(self.dictionary_import_view),
                name="surveys_study_dictionary_import",
            ),
            *super().get_urls(),
        ]

    def retention_view(self, request, study_id: int):
        return retention_view(self, request, study_id)

    def export_view(self, request, study_id: int):
        return export_view(self, request, study_id)

    def export_job_view(self, request, job_id: int):
        return export_job_view(self, request, job_id)

    def export_download_view(self, request, job_id: int):
        return export_download_view(self, request, job_id)

    def dictionary_export_view(self, request, study_id: int):
        study = get_object_or_404(selectors.studies_for_user(user=request.user), pk=study_id)
        language = request.GET.get("language") or study.default_language
        if language not in Language.values:
            language = study.default_language
        response = HttpResponse(
            dictionary_export(study=study, language=language),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{study.slug}_data_dictionary_{language}.csv"'
        )
        return response

    def dictionary_import_view(self, request, study_id: int):
        # Changing instruments is the principal investigator's job.
        study = get_object_or_404(selectors.studies_led_by(user=request.user), pk=study_id)
        errors: list[tuple[int, str, str]] = []
        results = None
        form = DictionaryUploadForm(
            request.POST or None,
            request.FILES or None,
            initial={"language": study.default_language},
        )
        if request.method == "POST" and form.is_valid():
            raw = form.cleaned_data["file"].read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                errors = [(0, "", "The file is not UTF-8 text; save it as CSV (UTF-8).")]
            else:
                try:
                    results = dictionary_import_forms(
                        study=study, text=text, language=form.cleaned_data["language"]
                    )
                except DictionaryError as exc:
                    errors = exc.errors
                else:
                    messages.success(request, "The data dictionary was imported.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload a data dictionary to {study.name}",
            "opts": self.model._meta,
            "study": study,
            "form": form,
            "errors": errors,
            "results": results,
        }
        return TemplateResponse(request, "admin/surveys/study/dictionary_import.html", context)


@admin.register(Site)
class SiteAdmin(StudyScopedAdmin):
    list_display = ("code", "name", "study", "timezone")
    list_filter = (("study", RELATED_ONLY),)
    list_select_related = ("study",)
    search_fields = ("code", "name")

    def get_queryset(self, request):
        return selectors.sites_for_user(user=request.user).select_related("study")
