"""Invitations and reminders for the study team: the study outbox (every message, its status
and reason), the rules per wave, and "send now" for a participant's open survey."""

from collections import Counter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from surveys import selectors, services
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin, StudyScopedAdmin, time_with_zone
from surveys.dispatch import reminders_dry_run
from surveys.models import Message, ReminderRule
from surveys.reminders import wave_replan


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The study outbox. Rows are planned and moved by the dispatcher, never edited by hand."""

    list_display = (
        "scheduled",
        "participant",
        "wave",
        "number",
        "channel",
        "status",
        "reason",
        "attempts",
        "sent",
    )
    list_filter = (
        "status",
        "channel",
        ("assignment__wave", RELATED_ONLY),
        ("assignment__participant__site", RELATED_ONLY),
    )
    list_select_related = ("assignment__participant", "assignment__wave")
    search_fields = ("assignment__participant__code",)
    date_hierarchy = "scheduled_at"
    actions = ("send_now",)

    # The page of one message: its fields as the list shows them, each time with its zone.
    fields = (
        "assignment",
        "sequence",
        "channel",
        "rule",
        "scheduled",
        "status",
        "reason",
        "provider_id",
        "attempts",
        "claimed",
        "send_started",
        "sent",
    )
    readonly_fields = fields

    # The admin shows times in the server's zone (UTC), as the other staff pages say they do.
    scheduled = time_with_zone("scheduled_at", "scheduled")
    sent = time_with_zone("sent_at", "sent")
    claimed = time_with_zone("claimed_at", "claimed")
    send_started = time_with_zone("send_started_at", "send started")

    # "#", as in the participant's message history (0 is the invitation): the word took a
    # column's room that the times needed at a laptop's width.
    @admin.display(description="#", ordering="sequence")
    def number(self, obj):
        return obj.sequence

    @admin.display(description="participant", ordering="assignment__participant__code")
    def participant(self, obj):
        return obj.assignment.participant.code

    @admin.display(description="wave")
    def wave(self, obj):
        return obj.assignment.wave.name

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(assignment__participant__in=selectors.participants_for_user(user=request.user))
        )

    def get_urls(self):
        return [
            path(
                "dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="surveys_message_dry_run",
            ),
            *super().get_urls(),
        ]

    def dry_run_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        due = reminders_dry_run(
            now=now, participants=selectors.participants_for_user(user=request.user)
        )
        counts = Counter(m.would if m.would in ("send", "wait") else "not_going" for m in due)
        context = {
            **self.admin_site.each_context(request),
            "messages_due": due,
            "counts": {key: counts[key] for key in ("send", "wait", "not_going")},
            "now": now,
        }
        return TemplateResponse(request, "admin/surveys/message/dry_run.html", context)

    def has_send_permission(self, request) -> bool:
        return request.user.has_perm("surveys.change_assignment")

    @admin.action(
        description="Send now (queued or failed messages of open surveys)", permissions=["send"]
    )
    def send_now(self, request, queryset):
        """Bring queued messages forward to now, and queue failed ones again: the next cycle
        (within a minute) sends them, after the usual checks (still open, not completed, not
        opted out)."""
        # Only for participants the user may contact: the group permission may come from
        # another study, where the user is PI; here they may be a researcher.
        editable = selectors.participants_editable_by(user=request.user)
        allowed = queryset.filter(assignment__participant__in=editable)
        refused = queryset.count() - allowed.count()
        moved = services.messages_send_now(messages=allowed)
        self.message_user(
            request,
            f"{moved} message(s) will go within a minute; others were neither queued nor "
            "failed, or their survey is not open."
            + (
                f" {refused} message(s) of participants you may not contact were left alone."
                if refused
                else ""
            ),
            messages.SUCCESS if moved else messages.WARNING,
        )


@admin.register(ReminderRule)
class ReminderRuleAdmin(StudyScopedAdmin):
    """Listed for everyone of the study; written only into studies the user leads (the study
    and wave choices, and the object's own study)."""

    list_display = ("study", "wave", "position", "kind", "is_active")
    list_filter = (("study", RELATED_ONLY), "kind", "is_active")
    list_select_related = ("study", "wave")

    def save_model(self, request, obj, form, change):
        before = (form.initial.get("wave"), form.initial.get("study")) if change else None
        super().save_model(request, obj, form, change)
        replanned = wave_replan(wave=obj.wave, study=obj.study)
        if before and before[0] != obj.wave_id:
            # The rule moved from another wave (or the default): plan that one again too.
            old_wave = obj.study.waves.filter(pk=before[0]).first() if before[0] else None
            replanned += wave_replan(wave=old_wave, study=obj.study)
        self.message_user(request, f"{replanned} unsent message(s) planned again.")

    def delete_model(self, request, obj):
        wave, study = obj.wave, obj.study
        super().delete_model(request, obj)
        wave_replan(wave=wave, study=study)

    def delete_queryset(self, request, queryset):
        affected = {(rule.wave, rule.study) for rule in queryset.select_related("wave", "study")}
        super().delete_queryset(request, queryset)
        for wave, study in affected:
            wave_replan(wave=wave, study=study)
