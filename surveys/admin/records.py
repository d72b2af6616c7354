"""Assignments and responses: read-only records made by enrolment and submission."""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from surveys import selectors, services
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin, time_with_zone
from surveys.audit import audit_log, phones_shown_audit
from surveys.models import (
    Assignment,
    AuditEvent,
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
        "opens",
        "due",
        "closes",
        "completed",
    )
    list_filter = ("status", ("wave", RELATED_ONLY))
    list_select_related = ("participant", "wave")
    search_fields = ("participant__code",)

    # The window's instants, on UTC's clock (the participant's own dates are on their page and
    # the call list).
    opens = time_with_zone("opens_at", "opens")
    due = time_with_zone("due_at", "due")
    closes = time_with_zone("closes_at", "closes")
    completed = time_with_zone("completed_at", "completed")
    status_changed = time_with_zone("status_changed_at", "status changed")
    first_message = time_with_zone("first_message_at", "first message")
    created = time_with_zone("created_at", "created")
    # The page of one assignment: the list's columns, then the rest, each time with its zone.
    fields = (*list_display, "status_changed", "messages_sent", "first_message", "created")
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_for_user(user=request.user))
        )

    def get_urls(self):
        return [
            path(
                "call-list/",
                self.admin_site.admin_view(self.call_list_view),
                name="surveys_assignment_call_list",
            ),
            path(
                "<id:assignment_id>/send-now/",
                self.admin_site.admin_view(self.send_now_view),
                name="surveys_assignment_send_now",
            ),
            *super().get_urls(),
        ]

    def call_list_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        page = selectors.call_list_page(
            user=request.user,
            number=request.GET.get("page"),
            per_page=settings.CALL_LIST_PAGE_SIZE,
            now=now,
        )
        rows = page.object_list
        show_phone = any(row.phone is not None for row in rows)
        phones_shown_audit(request=request, rows=rows, where="call list page")
        context = {
            **self.admin_site.each_context(request),
            "rows": rows,
            "page_obj": page,
            "paginator": page.paginator,
            "soon_days": selectors.CLOSING_SOON_DAYS,
            "show_phone": show_phone,
        }
        return TemplateResponse(request, "admin/surveys/assignment/call_list.html", context)

    def send_now_view(self, request, assignment_id: int):
        if request.method != "POST" or not request.user.has_perm("surveys.change_assignment"):
            raise PermissionDenied
        assignment = get_object_or_404(self.get_queryset(request), pk=assignment_id)
        # The group permission may come from another study, where the user is PI: here they
        # may be a researcher, who sees the survey and contacts nobody.
        if not selectors.participant_editable_by(
            user=request.user, participant=assignment.participant
        ):
            raise PermissionDenied
        if services.assignment_send_now(assignment=assignment):
            self.message_user(request, "A reminder goes within a minute.", messages.SUCCESS)
        else:
            self.message_user(request, "No reminder is waiting for this survey.", messages.WARNING)
        # Back to the page of the list the button was on (the form posts its query string).
        back = reverse("admin:surveys_assignment_call_list")
        return redirect(f"{back}?{request.GET.urlencode()}" if request.GET else back)


@admin.register(Response)
class ResponseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("assignment", "instrument", "instrument_version", "status", "submitted")
    list_filter = ("status", ("instrument", RELATED_ONLY))
    list_select_related = (
        "assignment__participant",
        "assignment__wave",
        "instrument",
        "instrument_version__instrument",
    )
    search_fields = ("assignment__participant__code",)
    fields = (
        "assignment",
        "instrument",
        "instrument_version",
        "status",
        "started",
        "submitted",
        "changes_refused",
    )
    readonly_fields = fields

    started = time_with_zone("started_at", "started")
    submitted = time_with_zone("submitted_at", "submitted")
    changes_refused = time_with_zone("changes_refused_at", "changes refused")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(assignment__participant__in=selectors.participants_for_user(user=request.user))
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The answers, question by question; opening them is audited."""
        opened = self.get_object(request, unquote(object_id))
        if opened is None or not self.has_view_permission(request, opened):
            return super().change_view(request, object_id, form_url, extra_context)
        may_see = selectors.user_may_see_identifiers(
            user=request.user, study=opened.assignment.participant.study
        )
        extra_context = {
            **(extra_context or {}),
            "answer_rows": selectors.response_answer_rows(
                response=opened, show_identifiers=may_see
            ),
        }
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            audit_log(
                action=AuditEvent.Action.RESPONSE_VIEW,
                request=request,
                participant=opened.assignment.participant,
                obj=opened,
                details={"instrument": opened.instrument.slug, "status": opened.status},
            )
        return response


@admin.register(SafetyAlert)
class SafetyAlertAdmin(admin.ModelAdmin):
    """Dangerous answers for the study team to follow up: only the follow-up is edited here."""

    list_display = (
        "created",
        "participant",
        "variable",
        "answer",
        "emailed",
        "acknowledged",
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
        "created",
        "emailed",
        "acknowledged",
        "acknowledged_by",
    )
    fields = (*readonly_fields, "follow_up_note")
    created = time_with_zone("created_at", "created")
    emailed = time_with_zone("emailed_at", "emailed")
    acknowledged = time_with_zone("acknowledged_at", "acknowledged")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_with_identifiers(user=request.user))
        )

    def save_model(self, request, obj, form, change) -> None:
        safety_alert_follow_up(alert=obj, user=request.user, note=obj.follow_up_note)
