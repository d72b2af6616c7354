"""Participants: enrolment, contact details, assignments and status history."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from surveys import selectors, services
from surveys.access import participant_pin_remove
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin, time_with_zone
from surveys.admin.imports import participant_import_urls
from surveys.audit import audit_log
from surveys.consent import (
    ConsentInput,
    consent_validate,
    participant_answers_erase,
    participant_identifiers_erase,
)
from surveys.links import participant_links_revoke
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    ConsentVersion,
    ContactAttempt,
    Message,
    Participant,
    ParticipantContact,
    ParticipantLink,
    ParticipantStatusChange,
    Study,
)
from surveys.participant_import import contact_already_enrolled
from surveys.reminders import reminders_plan

CONSENT_FIELDS = ("consent_method", "consent_version", "consent_date", "consent_obtained_by")


class ParticipantContactForm(forms.ModelForm):
    class Meta:
        model = ParticipantContact
        fields = (
            "first_name",
            "last_name",
            "email",
            "phone",
            "alternative_contacts",
            "locator_notes",
        )
        # Encrypted columns are text in the database; on screen most are one line. An e-mail
        # address takes 40 characters or so: the browser's 20 cut a typical one short.
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "off"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "off"}),
            "email": forms.EmailInput(attrs={"autocomplete": "off", "size": 40}),
            "phone": forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
            "alternative_contacts": forms.Textarea(attrs={"rows": 3}),
            "locator_notes": forms.Textarea(attrs={"rows": 3}),
        }


class WithParticipantCode:
    """For inlines whose rows are titled by their ``__str__``, which names the participant by
    study ID: the participant (and what else a row shows, ``row_select_related``) comes with
    each row, not in a query of its own."""

    row_select_related: tuple[str, ...] = ("participant",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*self.row_select_related)


class EnrolmentContactFormSet(forms.BaseInlineFormSet):
    """The Add form's contact: refused where another participant of the study already has
    the e-mail address or phone number, as the API's enrolment and an import's line are
    (a coordinator enrolling someone already enrolled would otherwise make two records of one
    person, each sent every survey)."""

    user = None
    request = None

    def clean(self):
        super().clean()
        if self.instance.pk is not None or not self.instance.study_id:
            return  # a change, or the participant form's own errors first
        study = self.instance.study
        # One enrolment of the study at a time from here to the end of the admin's
        # transaction (its change view is atomic), as the API's and an import's.
        Study.objects.select_for_update().filter(pk=study.pk).exists()
        for form in self.forms:
            contact = getattr(form, "cleaned_data", None)
            if not contact:
                continue
            taken = contact_already_enrolled(
                study=study, contact=contact, user=self.user, request=self.request, by="admin"
            )
            for field, problem in taken.items():
                form.add_error(field, problem)


class ParticipantContactInline(WithParticipantCode, admin.StackedInline):
    model = ParticipantContact
    form = ParticipantContactForm
    can_delete = False
    extra = 1
    max_num = 1

    def get_formset(self, request, obj=None, **kwargs):
        if obj is not None:
            return super().get_formset(request, obj, **kwargs)
        formset = super().get_formset(request, obj, formset=EnrolmentContactFormSet, **kwargs)
        return type(formset.__name__, (formset,), {"user": request.user, "request": request})


class ContactAttemptForm(forms.ModelForm):
    # A little ahead of the server's clock is a laptop's clock set a minute fast, not a
    # mistyped day.
    SKEW = timedelta(minutes=5)

    def clean_attempted_at(self):
        # A mistyped day ahead (2027 for 2026) would stay the call list's "last attempt" for a
        # year, above every real one (found by review).
        attempted_at = self.cleaned_data.get("attempted_at")
        if attempted_at and attempted_at > timezone.now() + self.SKEW:
            raise ValidationError("An attempt is logged when it was made: not in the future.")
        return attempted_at


class ContactAttemptInline(WithParticipantCode, admin.TabularInline):
    """The contact log: coordinators add an attempt here (who and when are filled in)."""

    model = ContactAttempt
    form = ContactAttemptForm
    row_select_related = ("participant", "by")
    extra = 1
    fields = ("attempted_at", "method", "outcome", "assignment", "note", "by")
    readonly_fields = ("by",)
    can_delete = False
    ordering = ("-attempted_at",)

    def get_formset(self, request, obj=None, **kwargs):
        # Typed and shown on the admin's clock, as every staff time is labelled (the form's
        # labels also head the rows already logged, which are read-only).
        labels = {"attempted_at": f"Attempted at ({settings.TIME_ZONE})"}
        formset = super().get_formset(request, obj, labels=labels, **kwargs)
        form = formset.form
        form.base_fields["attempted_at"].initial = timezone.now
        # The empty row's time is "now" when shown; compared with that (not with the time of
        # saving) it stays unchanged, so saving the page for another reason adds no attempt.
        form.base_fields["attempted_at"].show_hidden_initial = True
        if obj is not None:
            form.base_fields["assignment"].queryset = obj.assignments.select_related("wave")
        return formset

    def has_change_permission(self, request, obj=None):
        return False  # the log is kept as written

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "note":
            # A few lines; its width is the row's room (the page's style).
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class AssignmentInline(ReadOnlyMixin, admin.TabularInline):
    model = Assignment
    extra = 0
    fields = ("wave", "status", "window_local", "completed")
    readonly_fields = fields
    show_change_link = True
    completed = time_with_zone("completed_at", "completed")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("wave", "participant")

    @admin.display(description="window (participant's local dates)")
    def window_local(self, obj: Assignment) -> str:
        opens, due, closes = obj.local_window()
        last_day = closes - timedelta(days=1)
        return (
            f"{opens:%d %b %Y} to {last_day:%d %b %Y}, due {due:%d %b %Y} "
            f"({obj.participant.timezone})"
        )


class ConsentInline(WithParticipantCode, ReadOnlyMixin, admin.TabularInline):
    """Kept as written; the printable copy opens from here (and is audited)."""

    model = Consent
    row_select_related = ("participant", "version", "obtained_by")
    extra = 0
    fields = ("version", "method", "consented_on", "obtained_by", "agreed_at", "printable")
    readonly_fields = fields

    @admin.display(description="copy")
    def printable(self, obj: Consent) -> str:
        return format_html(
            '<a href="{}">Printable copy</a>', reverse("admin:surveys_consent_print", args=[obj.pk])
        )


class ParticipantStatusChangeInline(WithParticipantCode, ReadOnlyMixin, admin.TabularInline):
    model = ParticipantStatusChange
    row_select_related = ("participant", "changed_by")
    extra = 0
    fields = ("changed_at", "from_status", "to_status", "reason", "changed_by")
    readonly_fields = fields

    def get_fields(self, request, obj=None):
        # Reasons are staff's free text (they may name people): not for researchers.
        if obj is not None and not selectors.user_may_see_identifiers(
            user=request.user, study=obj.study
        ):
            return tuple(f for f in self.fields if f != "reason")
        return self.fields


class ParticipantLinkInline(WithParticipantCode, ReadOnlyMixin, admin.TabularInline):
    """When the participant's personal links were made, until when they work, whether they were
    revoked and last used. The token itself is never stored, so it cannot be shown."""

    model = ParticipantLink
    row_select_related = ("participant", "revoked_by")
    extra = 0
    fields = ("created", "expires", "last_used", "revoked", "revoked_by")
    readonly_fields = fields
    created = time_with_zone("created_at", "created")
    expires = time_with_zone("expires_at", "expires")
    last_used = time_with_zone("last_used_at", "last used")
    revoked = time_with_zone("revoked_at", "revoked")


class ParticipantForm(forms.ModelForm):
    status_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason for a status change",
        help_text="Required when withdrawing. Kept in the participant's status history.",
    )
    erase_identifiers = forms.BooleanField(
        required=False,
        label="On withdrawal, also erase identifiers",
        help_text="When the participant asks for it and their consent allows: the contact and "
        "locator details, the typed consent name, staff notes and status reasons (this one "
        "too) and answers marked as identifiers are erased for good; de-identified answers are "
        "kept. Audited.",
    )
    erase_answers = forms.BooleanField(
        required=False,
        label="On withdrawal, also erase their answers",
        help_text="Only when the participant asks for it and their consent allows it: every "
        "survey answer and meeting-diary entry of theirs is deleted for good, and the answer "
        "copied into a safety alert blanked; the record of which surveys they were sent stays. "
        "Exports made before keep what they held. Audited.",
    )
    # Enrolment only: how the participant consented (surveys/consent.py).
    consent_method = forms.ChoiceField(
        label="Consent",
        choices=[("", "---------"), *Consent.Method.choices],
        help_text="E-consent: the participant reads the consent text on their phone, types "
        "their name and agrees before the first survey.",
    )
    consent_version = forms.ModelChoiceField(
        queryset=ConsentVersion.objects.none(),
        required=False,
        help_text="Empty: the study's current version.",
    )
    consent_date = forms.DateField(
        required=False,
        label="Date of consent",
        help_text="Signed on paper or verbal consent: the date it was given.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    consent_obtained_by = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        label="Consent obtained by",
        help_text="Signed on paper or verbal consent. Empty: you.",
    )

    class Meta:
        model = Participant
        fields = (
            "study",
            "site",
            "code",
            "status",
            "enrolled_on",
            "timezone",
            "language",
            "preferred_channel",
        )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if self.instance.pk:
            for name in CONSENT_FIELDS:
                self.fields.pop(name, None)
        else:
            self.fields.pop("erase_identifiers", None)
            self.fields.pop("erase_answers", None)
            studies = selectors.studies_for_user(user=user) if user else Study.objects.none()
            self.fields["consent_version"].queryset = ConsentVersion.objects.filter(
                study__in=studies
            ).select_related("study")
            self.fields["consent_obtained_by"].queryset = (
                get_user_model()
                .objects.filter(study_roles__study__in=studies)
                .distinct()
                .order_by("username")
            )
        if not self.instance.pk and "code" in self.fields:
            self.fields["code"].required = False
            self.fields[
                "code"
            ].help_text = "Leave empty to give the site's next study ID (e.g. NYC-0043)."
        if not self.instance.pk:
            # What a coordinator would otherwise type each time: today, the site's time zone,
            # and their study when they have one.
            if "enrolled_on" in self.fields:
                self.fields["enrolled_on"].initial = timezone.localdate
            if "site" in self.fields:
                sites = list(self.fields["site"].queryset[:2])
                if len(sites) == 1:  # a coordinator of one site: it
                    self.fields["site"].initial = sites[0].pk
                if "enrolled_on" in self.fields:
                    # Today on the sites' clocks, not the server's (a day ahead of New York's
                    # every evening); the earliest where they differ, never tomorrow anywhere.
                    zones = set(self.fields["site"].queryset.values_list("timezone", flat=True))
                    if zones:
                        self.fields["enrolled_on"].initial = min(
                            timezone.localdate(timezone=ZoneInfo(zone)) for zone in zones
                        )
            if "timezone" in self.fields:
                self.fields["timezone"].required = False
                self.fields["timezone"].initial = ""
                self.fields[
                    "timezone"
                ].help_text = "IANA name, e.g. America/Chicago. Empty: the site's time zone."
            if "study" in self.fields:
                studies = list(self.fields["study"].queryset[:2])
                if len(studies) == 1:
                    self.fields["study"].initial = studies[0].pk

    def clean_timezone(self):
        value = self.cleaned_data.get("timezone", "")
        site = self.cleaned_data.get("site")
        if not value and not self.instance.pk:
            return site.timezone if site else "UTC"
        return value

    def clean(self):
        cleaned = super().clean()
        # An empty study ID is given by participant_enrol once everything is valid, so that
        # a form sent back with errors uses up no number.
        changed_to = cleaned.get("status")
        if (
            self.instance.pk
            and changed_to
            and changed_to != self.instance.status
            and changed_to == Participant.Status.WITHDRAWN
            and not cleaned.get("status_reason", "").strip()
        ):
            self.add_error("status_reason", "Say why the participant withdrew.")
        if cleaned.get("erase_identifiers") and changed_to != Participant.Status.WITHDRAWN:
            self.add_error(
                "erase_identifiers", "Identifiers are erased only when the participant withdraws."
            )
        if cleaned.get("erase_answers") and changed_to != Participant.Status.WITHDRAWN:
            self.add_error(
                "erase_answers", "Answers are erased only when the participant withdraws."
            )
        if self.instance.pk:
            return cleaned
        # Enrolment: the checks participant_enrol makes, each shown on its field here (raised
        # in save_model, they would be a server error).
        consent = None
        if "consent_method" in cleaned:
            consent = ConsentInput(
                method=cleaned["consent_method"],
                version=cleaned.get("consent_version"),
                consented_on=cleaned.get("consent_date"),
                obtained_by=cleaned.get("consent_obtained_by") or self.user,
            )
        if consent is not None and cleaned.get("study"):
            try:
                self.consent = consent_validate(
                    study=cleaned["study"],
                    consent=consent,
                    today=services.enrolment_today(
                        timezone_name=cleaned.get("timezone", ""), now=timezone.now()
                    ),
                )
            except ValidationError as exc:
                self._add_service_errors(exc)
        if cleaned.get("enrolled_on"):
            try:
                services.enrolment_date_validate(
                    enrolled_on=cleaned["enrolled_on"],
                    timezone_name=cleaned.get("timezone", ""),
                    consent=consent,
                    now=timezone.now(),
                )
            except ValidationError as exc:
                self._add_service_errors(exc)
        return cleaned

    def _add_service_errors(self, exc: ValidationError) -> None:
        for field, errors in exc.message_dict.items():
            self.add_error(field if field in self.fields else None, errors)


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    form = ParticipantForm
    list_display = ("code", "study", "site", "status", "enrolled_on", "timezone", "language")
    list_filter = (("study", RELATED_ONLY), ("site", RELATED_ONLY), "status", "language")
    list_select_related = ("study", "site")
    search_fields = ("code",)
    date_hierarchy = "enrolled_on"
    readonly_fields = (
        "consent_state",
        "pin_state",
        "message_history",
        "identifiers_erased",
        "created",
        "updated",
    )
    inlines = (
        ParticipantContactInline,
        ConsentInline,
        ContactAttemptInline,
        AssignmentInline,
        ParticipantStatusChangeInline,
        ParticipantLinkInline,
    )
    actions = ("revoke_links", "pin_remove")

    identifiers_erased = time_with_zone("identifiers_erased_at", "identifiers erased")
    created = time_with_zone("created_at", "created")
    updated = time_with_zone("updated_at", "updated")

    @admin.display(description="Invitations and reminders")
    def message_history(self, obj):
        if not obj.pk:
            return "—"
        rows = (
            Message.objects.filter(assignment__participant=obj)
            .select_related("assignment__wave")
            .order_by("scheduled_at", "id")
        )
        if not rows:
            return "None planned."
        return format_html(
            "<table><thead><tr><th>When (UTC)</th><th>Wave</th><th>#</th><th>Channel</th>"
            "<th>Status</th><th>Reason</th><th>Sent</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td></tr>",
                (
                    (
                        f"{m.scheduled_at:%Y-%m-%d %H:%M}",
                        m.assignment.wave.name,
                        m.sequence,
                        m.get_channel_display(),
                        m.get_status_display(),
                        m.reason,
                        f"{m.sent_at:%Y-%m-%d %H:%M}" if m.sent_at else "",
                    )
                    for m in rows
                ),
            ),
        )

    @admin.display(description="Consent")
    def consent_state(self, obj):
        if obj.pk and obj.consent_pending:
            return "Waiting for e-consent on the participant's phone: no survey opens before."
        return "Recorded (see below)" if obj.pk else "—"

    @admin.display(description="PIN")
    def pin_state(self, obj):
        if not obj.pk or not obj.pin_hash:
            return "No PIN"
        return "PIN set by the participant (remove it with the “Remove PIN” action)"

    def get_queryset(self, request):
        return selectors.participants_for_user(user=request.user)

    def get_urls(self):
        return [
            path(
                "<id:participant_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="surveys_participant_timeline",
            ),
            *participant_import_urls(self),
            *super().get_urls(),
        ]

    def timeline_view(self, request, participant_id: int):
        """Waves and their outcomes, responses, messages, contact attempts, consent and status
        changes, newest first, on one page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        participant = get_object_or_404(self.get_queryset(request), pk=participant_id)
        may_see = selectors.user_may_see_identifiers(user=request.user, study=participant.study)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Timeline of {participant.code}",
            "participant": participant,
            "opts": self.model._meta,
            "events": selectors.participant_timeline(
                participant=participant, show_staff_notes=may_see
            ),
        }
        return TemplateResponse(request, "admin/surveys/participant/timeline.html", context)

    def get_inlines(self, request, obj):
        if obj is None:
            return (ParticipantContactInline,)
        if not selectors.user_may_see_identifiers(user=request.user, study=obj.study):
            return (AssignmentInline, ParticipantStatusChangeInline)
        if obj.identifiers_erased_at is not None:
            # Erased at their request: no contact details or notes are taken again.
            return tuple(
                i for i in self.inlines if i not in (ParticipantContactInline, ContactAttemptInline)
            )
        return self.inlines

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            # Windows were computed from the enrolment day; changing it needs a service that
            # re-plans the assignments (the time zone has one: participant_timezone_change).
            return (*self.readonly_fields, "study", "enrolled_on")
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and not selectors.participant_editable_by(
            user=request.user, participant=obj
        ):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # Research data is erased through a dedicated, audited service, not a delete button.
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "site":
            # Enrolling (or moving someone) needs the right to enrol at the site: a PI of one
            # study may be a researcher in another.
            kwargs["queryset"] = selectors.sites_for_enrolment(user=request.user)
        if db_field.name == "study":
            kwargs["queryset"] = selectors.studies_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class WithUser(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, user=request.user, **inner)

        return WithUser

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            left_out = {*CONSENT_FIELDS, *self.readonly_fields, "status", "status_reason"}
            left_out.update(("erase_identifiers", "erase_answers"))
            main = [f for f in fieldsets[0][1]["fields"] if f not in left_out]
            return [
                (None, {"fields": main}),
                ("Consent", {"fields": CONSENT_FIELDS}),
            ]
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in CONSENT_FIELDS]})
            for name, options in fieldsets
        ]

    def save_model(self, request, obj, form, change):
        if not change:
            services.participant_enrol(
                participant=obj, consent=form.consent, enrolled_by=request.user
            )
            return
        if "site" in form.changed_data and form.initial.get("site"):
            services.participant_site_moved_from(participant=obj, site_id=form.initial["site"])
        new_status, new_zone = obj.status, obj.timezone
        if "status" in form.changed_data:
            # The status moves through its service (history, cancelled assignments); the
            # other fields are saved as they are.
            obj.status = form.initial["status"]
        if "timezone" in form.changed_data:
            # So does the time zone (windows not yet open, and the messages, on the new clock).
            obj.timezone = form.initial["timezone"]
        super().save_model(request, obj, form, change)
        if new_zone != obj.timezone:
            services.participant_timezone_change(participant=obj, timezone_name=new_zone)
        if new_status != obj.status:
            services.participant_status_change(
                participant=obj,
                status=new_status,
                changed_by=request.user,
                request=request,
                reason=form.cleaned_data.get("status_reason", ""),
            )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        participant = getattr(response, "context_data", {}).get("original")
        if (
            response.status_code == 200  # shown: on opening, or again with a form's errors
            and request.method != "HEAD"  # headers only: nothing shown
            and participant is not None
            and ParticipantContactInline in self.get_inlines(request, participant)
        ):
            audit_log(
                action=AuditEvent.Action.CONTACT_VIEW,
                request=request,
                participant=participant,
                details={"where": "participant page"},
            )
        return response

    def save_formset(self, request, form, formset, change):
        if formset.model is ParticipantContact and change:
            changed = sorted(
                {name for f in formset.forms if f.has_changed() for name in f.changed_data}
            )
            if changed:
                # which fields, never their values (the audit log holds no identifier)
                audit_log(
                    action=AuditEvent.Action.CONTACT_CHANGE,
                    request=request,
                    participant=form.instance,
                    details={"fields": changed},
                )
        if formset.model is ContactAttempt:
            for attempt in formset.save(commit=False):
                attempt.by = request.user
                attempt.save()
            return
        super().save_formset(request, form, formset, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        participant = form.instance
        if form.cleaned_data.get("erase_answers"):
            participant_answers_erase(participant=participant, by=request.user, request=request)
        if form.cleaned_data.get("erase_identifiers"):
            # After the inline forms are saved, so that nothing typed on the same page (a
            # note of the call in which they asked, an edited address) survives the erasure;
            # also for someone who withdrew earlier and asks now.
            participant_identifiers_erase(participant=participant, by=request.user, request=request)
            return
        # The channel, or the e-mail address or phone number it goes to, changed: plan the
        # messages again. Only then: a re-plan puts every queued message back at its rule's
        # time, so saving the page for a contact attempt would undo a "send now" just made.
        contact_changed = any(
            {"email", "phone"} & set(contact_form.changed_data)
            for formset in formsets
            if formset.model is ParticipantContact
            for contact_form in formset.forms
        )
        if contact_changed or "preferred_channel" in form.changed_data:
            reminders_plan(assignments=list(participant.assignments.all()))

    def _on_editable(self, request, queryset, work, *, done: str, verb: str) -> None:
        """Run ``work(participant) -> count`` on the participants the user may change, and say
        how many were done and how many skipped."""
        total = skipped = 0
        for participant in queryset:
            if selectors.participant_editable_by(user=request.user, participant=participant):
                total += work(participant)
            else:
                skipped += 1
        self.message_user(request, done.format(total))
        if skipped:
            self.message_user(
                request,
                f"{skipped} participant(s) skipped: only their site's coordinators and the PIs "
                f"{verb}.",
                messages.WARNING,
            )

    @admin.action(description="Revoke personal links (e.g. a lost or shared phone)")
    def revoke_links(self, request, queryset):
        self._on_editable(
            request,
            queryset,
            lambda p: participant_links_revoke(participant=p, revoked_by=request.user),
            done="{} link(s) revoked.",
            verb="revoke links",
        )

    @admin.action(description="Remove PIN (the participant forgot it)")
    def pin_remove(self, request, queryset):
        def remove(participant) -> int:
            if not participant.pin_hash:
                return 0
            participant_pin_remove(participant=participant)
            return 1

        self._on_editable(
            request, queryset, remove, done="PIN removed for {} participant(s).", verb="remove PINs"
        )
