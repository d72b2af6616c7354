"""Assignments and responses: read-only records made by enrolment and submission."""

from django.contrib import admin

from surveys import selectors
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin
from surveys.models import (
    Assignment,
    Response,
    SafetyAlert,
)
from surveys.safety import safety_alert_follow_up


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


@admin.register(SafetyAlert)
class SafetyAlertAdmin(admin.ModelAdmin):
    """Dangerous answers for the study team to follow up: only the follow-up is edited here."""

    list_display = (
        "created_at",
        "participant",
        "variable",
        "answer",
        "emailed_at",
        "acknowledged_at",
    )
    list_filter = (("acknowledged_at", admin.EmptyFieldListFilter), "variable")
    list_select_related = ("participant", "assignment__wave")
    search_fields = ("participant__code",)
    readonly_fields = (
        "study",
        "participant",
        "assignment",
        "variable",
        "question",
        "answer",
        "created_at",
        "emailed_at",
        "acknowledged_at",
        "acknowledged_by",
    )
    fields = (*readonly_fields, "follow_up_note")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_for_user(user=request.user))
        )

    def save_model(self, request, obj, form, change) -> None:
        safety_alert_follow_up(alert=obj, user=request.user, note=obj.follow_up_note)
