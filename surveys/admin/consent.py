"""Consent texts (versions), consent records with their printable copies, and the audit log."""

import csv
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from surveys import selectors
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin, StudyScopedAdmin
from surveys.audit import audit_log
from surveys.datasets.cells import formula_safe
from surveys.models import AuditEvent, Consent, ConsentVersion, Participant, StaffRole


@admin.register(ConsentVersion)
class ConsentVersionAdmin(StudyScopedAdmin):
    list_display = ("study", "version", "approved_on", "languages", "consents_count")
    list_filter = (("study", RELATED_ONLY),)
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(given=Count("consents"))

    @admin.display(description="languages")
    def languages(self, obj: ConsentVersion) -> str:
        return ", ".join(sorted(lang for lang, text in obj.texts.items() if text))

    @admin.display(description="consents given")
    def consents_count(self, obj: ConsentVersion) -> int:
        return obj.given

    @staticmethod
    def _in_use(obj: ConsentVersion) -> bool:
        """Agreed to, or the text people enrolled for e-consent may be reading right now."""
        return (
            obj.consents.exists()
            or Participant.objects.filter(study_id=obj.study_id, consent_pending=True).exists()
        )

    def has_change_permission(self, request, obj=None):
        # A text someone agreed to (or is reading) is kept as is: a change is a new version.
        if obj is not None and self._in_use(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and self._in_use(obj):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Consent)
class ConsentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Kept as written. Coordinators (their sites) and PIs see them; researchers never do."""

    list_display = (
        "participant",
        "version",
        "method",
        "consented_on",
        "obtained_by",
        "printable",
    )
    list_filter = ("method", ("version", RELATED_ONLY))
    list_select_related = ("participant", "version", "obtained_by")
    search_fields = ("participant__code",)
    fields = (
        "participant",
        "version",
        "method",
        "consented_on",
        "obtained_by",
        "language",
        "agreed_at",
        "recorded_at",
        "recorded_by",
        "text_sha256",
        "printable",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_with_identifiers(user=request.user))
        )

    @admin.display(description="printable copy")
    def printable(self, obj: Consent) -> str:
        return format_html(
            '<a href="{}">Print</a>', reverse("admin:surveys_consent_print", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "<id:consent_id>/print/",
                self.admin_site.admin_view(self.print_view),
                name="surveys_consent_print",
            ),
            *super().get_urls(),
        ]

    def print_view(self, request, consent_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        consent = get_object_or_404(
            self.get_queryset(request).select_related(
                "participant__study", "participant__site", "version", "obtained_by"
            ),
            pk=consent_id,
        )
        participant = consent.participant
        if not selectors.user_may_see_identifiers(user=request.user, study=participant.study):
            raise PermissionDenied
        if consent.text:
            language, text = consent.language, consent.text
        else:  # recorded by staff: the version's text in the participant's language
            language, text = consent.version.text_in(participant.language)
        audit_log(
            action=AuditEvent.Action.CONSENT_VIEW,
            request=request,
            participant=participant,
            obj=consent,
            details={"printable": True},
        )
        return TemplateResponse(
            request,
            "consent/print.html",
            {
                "consent": consent,
                "participant": participant,
                "study": participant.study,
                "language": language,
                "paragraphs": [p.strip() for p in text.split("\n\n") if p.strip()],
                "typed_name": consent.typed_name,
                "for_staff": True,
            },
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The audit log: principal investigators search their studies' events."""

    list_display = ("at", "username", "action", "study", "participant", "object_type", "ip")
    list_filter = ("action", ("study", RELATED_ONLY))
    list_select_related = ("study", "participant")
    search_fields = ("username", "participant__code", "object_id")
    date_hierarchy = "at"
    readonly_fields = (
        "at",
        "user",
        "username",
        "action",
        "study",
        "participant",
        "object_type",
        "object_id",
        "details",
        "ip",
    )

    def get_queryset(self, request):
        events = super().get_queryset(request)
        if request.user.is_superuser:
            return events
        led = selectors.studies_led_by(user=request.user)
        # Sign-ins belong to no study: a PI sees those of their studies' staff.
        staff = StaffRole.objects.filter(study__in=led).values("user")
        return events.filter(Q(study__in=led) | Q(study__isnull=True, user__in=staff))

    actions = ("events_download",)

    @admin.action(description="Download the selected events as CSV")
    def events_download(self, request, queryset):
        """The selected events (all that match the filters with "select all") as a CSV file;
        the download is itself audited."""
        events = queryset.select_related("study", "participant").order_by("at", "id")
        studies = sorted({e.study.slug for e in events if e.study is not None})
        audit_log(
            action=AuditEvent.Action.AUDIT_EXPORT,
            request=request,
            study=events[0].study if len(studies) == 1 and events[0].study else None,
            details={"rows": len(events), "studies": studies},
        )
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        writer = csv.writer(response, lineterminator="\r\n")
        writer.writerow(AUDIT_CSV_COLUMNS)
        for event in events:
            writer.writerow(
                formula_safe(str(value)) if isinstance(value, str) else value
                for value in (
                    event.at.isoformat(),
                    event.username,
                    event.action,
                    event.study.slug if event.study else "",
                    event.participant.code if event.participant else "",
                    event.object_type,
                    event.object_id,
                    json.dumps(event.details, sort_keys=True, default=str),
                    event.ip or "",
                )
            )
        return response


AUDIT_CSV_COLUMNS = (
    "at",
    "username",
    "action",
    "study",
    "participant",
    "object_type",
    "object_id",
    "details",
    "ip",
)
