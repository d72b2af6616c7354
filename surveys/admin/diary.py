"""The meeting diary participants keep on their phones: read-only, scoped, de-identified.

Entries are written by the participant (surveys/participant_diary.py), never here. Days are
shown as days since enrolment, never as calendar dates, so every staff role sees the same
de-identified view; the CSV download is the dataset export's diary table.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from surveys import diary, selectors
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin
from surveys.exports import ExportSpec, dataset_export
from surveys.models import DiaryEntry


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter by a diary code, listing the registered choices with their English labels."""

    def lookups(self, request, model_admin):
        return self.registered("en")

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class GroupFilter(_ChoiceFilter):
    title = "group"
    parameter_name = "group"
    registered = staticmethod(diary.group_choices)


class FormatFilter(_ChoiceFilter):
    title = "format"
    parameter_name = "format"
    registered = staticmethod(diary.format_choices)


@admin.register(DiaryEntry)
class DiaryEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "participant",
        "site",
        "group_label",
        "format_label",
        "occurred_day",
        "logged_day",
    )
    list_filter = (("participant__site", RELATED_ONLY), GroupFilter, FormatFilter)
    list_select_related = ("participant__site",)
    search_fields = ("participant__code",)
    ordering = ("participant__code", "-occurred_on", "-id")
    fields = list_display
    readonly_fields = list_display
    change_list_template = "admin/surveys/diaryentry/change_list.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_for_user(user=request.user))
        )

    @admin.display(description="site", ordering="participant__site__code")
    def site(self, obj: DiaryEntry) -> str:
        return obj.participant.site.code

    @admin.display(description="group", ordering="group")
    def group_label(self, obj: DiaryEntry) -> str:
        return f"{diary.group_label(obj.group, 'en')} ({obj.group})"

    @admin.display(description="format", ordering="format")
    def format_label(self, obj: DiaryEntry) -> str:
        return diary.format_label(obj.format, "en")

    @admin.display(description="meeting day (days since enrolment)", ordering="occurred_on")
    def occurred_day(self, obj: DiaryEntry) -> int:
        return (obj.occurred_on - obj.participant.enrolled_on).days

    @admin.display(description="logged on day (days since enrolment)", ordering="created_at")
    def logged_day(self, obj: DiaryEntry) -> int:
        logged_on = diary.local_today(obj.participant.timezone, obj.created_at)
        return (logged_on - obj.participant.enrolled_on).days

    def get_urls(self):
        return [
            path(
                "export/<id:study_id>/",
                self.admin_site.admin_view(self.export_view),
                name="surveys_diaryentry_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "diary_studies": selectors.studies_for_user(user=request.user).order_by("name"),
        }
        return super().changelist_view(request, extra_context)

    def export_view(self, request, study_id: int):
        """The study's diary as a tidy long CSV (one row per meeting), within the user's
        sites: the dataset export's diary table (``dataset_export``, shape "diary"), so the
        same pseudonymous pid as the study's datasets (a researcher joins the two on it), days
        since enrolment, and audited like every export."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        study = get_object_or_404(selectors.studies_for_user(user=request.user), pk=study_id)
        export = dataset_export(
            user=request.user, study=study, spec=ExportSpec(shape="diary"), request=request
        )
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response
