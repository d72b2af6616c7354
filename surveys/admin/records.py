"""Assignments and responses: read-only records made by enrolment and submission."""

from django.contrib import admin

from surveys import selectors
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin
from surveys.models import (
    Assignment,
    Response,
)


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Read-only: assignments are made by enrolment and moved by services, never by hand."""

    list_display = (
        "participant",
        "wave",
        "occurrence",
        "status",
        "opens_at",
        "due_at",
        "closes_at",
        "completed_at",
    )
    list_filter = ("status", ("wave", RELATED_ONLY))
    list_select_related = ("participant", "wave")
    search_fields = ("participant__code",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_for_user(user=request.user))
        )


@admin.register(Response)
class ResponseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("assignment", "instrument", "instrument_version", "status", "submitted_at")
    list_filter = ("status", ("instrument", RELATED_ONLY))
    list_select_related = (
        "assignment__participant",
        "assignment__wave",
        "instrument",
        "instrument_version__instrument",
    )
    search_fields = ("assignment__participant__code",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(assignment__participant__in=selectors.participants_for_user(user=request.user))
        )
