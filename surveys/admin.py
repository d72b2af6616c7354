"""The staff admin. Every list is narrowed by the selectors to what the user's roles allow."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from surveys import selectors, services
from surveys.dictionary import DictionaryError, dictionary_export, dictionary_import_forms
from surveys.models import (
    Assignment,
    Instrument,
    InstrumentVersion,
    Item,
    Language,
    Participant,
    ParticipantContact,
    ParticipantStatusChange,
    Response,
    Site,
    StaffRole,
    Study,
    Wave,
    WaveInstrument,
)

RELATED_ONLY = admin.RelatedOnlyFieldListFilter


class ReadOnlyContentMixin:
    """Instrument content is changed only by importing a data dictionary, which validates the
    whole instrument and makes a new version when responses exist; never edited in place."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StudyScopedAdmin(admin.ModelAdmin):
    """Shows only objects of the user's studies; ``study_path`` leads from the model to Study."""

    study_path = "study"

    def get_queryset(self, request):
        studies = selectors.studies_for_user(user=request.user)
        return super().get_queryset(request).filter(**{f"{self.study_path}__in": studies})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # New design objects go only into studies the user leads.
        led = selectors.studies_led_by(user=request.user)
        if db_field.related_model is Study:
            kwargs["queryset"] = led
        elif db_field.related_model is Instrument:
            kwargs["queryset"] = Instrument.objects.filter(study__in=led)
        elif db_field.related_model is InstrumentVersion:
            kwargs["queryset"] = InstrumentVersion.objects.filter(instrument__study__in=led)
        elif db_field.related_model is Wave:
            kwargs["queryset"] = Wave.objects.filter(study__in=led)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SiteInline(admin.TabularInline):
    model = Site
    extra = 0
    fields = ("code", "name", "timezone")


class WaveInline(admin.TabularInline):
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
        "dictionary_links",
    )
    search_fields = ("name", "slug")
    readonly_fields = ("created_at", "updated_at", "synthetic_params")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (SiteInline, WaveInline)

    def get_queryset(self, request):
        return selectors.studies_for_user(user=request.user)

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
                "<int:study_id>/dictionary/export/",
                wrap(self.dictionary_export_view),
                name="surveys_study_dictionary_export",
            ),
            path(
                "<int:study_id>/dictionary/import/",
                wrap(self.dictionary_import_view),
                name="surveys_study_dictionary_import",
            ),
            *super().get_urls(),
        ]

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
        # Encrypted columns are text in the database; on screen most are one line.
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "off"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "off"}),
            "email": forms.EmailInput(attrs={"autocomplete": "off"}),
            "phone": forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
            "alternative_contacts": forms.Textarea(attrs={"rows": 3}),
            "locator_notes": forms.Textarea(attrs={"rows": 3}),
        }


class ParticipantContactInline(admin.StackedInline):
    model = ParticipantContact
    form = ParticipantContactForm
    can_delete = False
    extra = 1
    max_num = 1


class AssignmentInline(admin.TabularInline):
    model = Assignment
    extra = 0
    can_delete = False
    fields = ("wave", "status", "window_local", "completed_at")
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("wave", "participant")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="window (participant's local dates)")
    def window_local(self, obj: Assignment) -> str:
        opens, due, closes = obj.local_window()
        last_day = closes - timedelta(days=1)
        return (
            f"{opens:%d %b %Y} to {last_day:%d %b %Y}, due {due:%d %b %Y} "
            f"({obj.participant.timezone})"
        )


class ParticipantStatusChangeInline(admin.TabularInline):
    model = ParticipantStatusChange
    extra = 0
    can_delete = False
    fields = ("changed_at", "from_status", "to_status", "reason", "changed_by")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ParticipantForm(forms.ModelForm):
    status_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason for a status change",
        help_text="Required when withdrawing. Kept in the participant's status history.",
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

    def clean(self):
        cleaned = super().clean()
        changed_to = cleaned.get("status")
        if (
            self.instance.pk
            and changed_to
            and changed_to != self.instance.status
            and changed_to == Participant.Status.WITHDRAWN
            and not cleaned.get("status_reason", "").strip()
        ):
            self.add_error("status_reason", "Say why the participant withdrew.")
        return cleaned


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    form = ParticipantForm
    list_display = ("code", "study", "site", "status", "enrolled_on", "timezone", "language")
    list_filter = (("study", RELATED_ONLY), ("site", RELATED_ONLY), "status", "language")
    list_select_related = ("study", "site")
    search_fields = ("code",)
    date_hierarchy = "enrolled_on"
    readonly_fields = ("created_at", "updated_at")
    inlines = (ParticipantContactInline, AssignmentInline, ParticipantStatusChangeInline)

    def get_queryset(self, request):
        return selectors.participants_for_user(user=request.user)

    def get_inlines(self, request, obj):
        if obj is None:
            return (ParticipantContactInline,)
        if not selectors.user_may_see_identifiers(user=request.user, study=obj.study):
            return (AssignmentInline, ParticipantStatusChangeInline)
        return self.inlines

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            # Windows were computed from these at enrolment; changing them needs a service
            # that re-plans the assignments (coming with the coordinator tools).
            return (*self.readonly_fields, "study", "enrolled_on", "timezone")
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
            kwargs["queryset"] = selectors.sites_for_user(user=request.user)
        if db_field.name == "study":
            kwargs["queryset"] = selectors.studies_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            services.participant_enrol(participant=obj)
            return
        new_status = obj.status
        if "status" in form.changed_data:
            # The status moves through its service (history, cancelled assignments); the
            # other fields are saved as they are.
            obj.status = form.initial["status"]
        super().save_model(request, obj, form, change)
        if new_status != obj.status:
            services.participant_status_change(
                participant=obj,
                status=new_status,
                changed_by=request.user,
                reason=form.cleaned_data.get("status_reason", ""),
            )


class InstrumentVersionInline(ReadOnlyContentMixin, admin.TabularInline):
    model = InstrumentVersion
    extra = 0
    fields = ("number", "note", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True


@admin.register(Instrument)
class InstrumentAdmin(StudyScopedAdmin):
    list_display = ("name", "slug", "study")
    list_filter = (("study", RELATED_ONLY),)
    list_select_related = ("study",)
    search_fields = ("name", "slug")
    readonly_fields = ("created_at",)
    inlines = (InstrumentVersionInline,)


class ItemInline(ReadOnlyContentMixin, admin.TabularInline):
    model = Item
    extra = 0
    fields = (
        "position",
        "variable",
        "kind",
        "label",
        "required",
        "min_value",
        "max_value",
        "branching",
    )
    readonly_fields = fields


@admin.register(InstrumentVersion)
class InstrumentVersionAdmin(ReadOnlyContentMixin, StudyScopedAdmin):
    study_path = "instrument__study"
    list_display = ("instrument", "number", "note", "created_at", "preview_link")

    @admin.display(description="preview")
    def preview_link(self, obj: InstrumentVersion) -> str:
        url = reverse("admin:surveys_instrumentversion_preview", args=[obj.pk])
        return format_html(
            '<a href="{}">English</a> · <a href="{}?language=es">Español</a>', url, url
        )

    def get_urls(self):
        return [
            path(
                "<int:version_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="surveys_instrumentversion_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, version_id: int):
        """Every question of the version as a participant would read it, with its logic."""
        version = get_object_or_404(
            self.get_queryset(request).select_related("instrument"), pk=version_id
        )
        language = request.GET.get("language", "en")
        rows = []
        for item in version.items.order_by("position"):
            rows.append(
                {
                    "item": item,
                    "section": item.section_header.get(language) or item.section_header.get("en"),
                    "label": item.text(language),
                    "note": item.note.get(language) or item.note.get("en", ""),
                    "choices": [
                        (c["code"], c["label"].get(language) or c["label"].get("en", ""))
                        for c in item.choices
                    ],
                    "left": (item.options.get("left") or {}).get(language, ""),
                    "right": (item.options.get("right") or {}).get(language, ""),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{version.instrument.name}, version {version.number}",
            "opts": self.model._meta,
            "version": version,
            "rows": rows,
            "language": language,
        }
        return TemplateResponse(request, "admin/surveys/instrumentversion/preview.html", context)

    list_filter = (("instrument", RELATED_ONLY),)
    list_select_related = ("instrument",)
    readonly_fields = ("created_at",)
    inlines = (ItemInline,)


@admin.register(Item)
class ItemAdmin(ReadOnlyContentMixin, StudyScopedAdmin):
    study_path = "version__instrument__study"
    list_display = ("variable", "kind", "version", "position", "required")
    list_filter = ("kind", ("version__instrument", RELATED_ONLY))
    list_select_related = ("version__instrument",)
    search_fields = ("variable",)


class WaveInstrumentInline(admin.TabularInline):
    model = WaveInstrument
    extra = 0


@admin.register(Wave)
class WaveAdmin(StudyScopedAdmin):
    list_display = (
        "name",
        "study",
        "position",
        "offset_days",
        "window_before_days",
        "window_after_days",
        "recurrence_days",
        "is_active",
    )
    list_filter = (("study", RELATED_ONLY),)
    list_select_related = ("study",)
    inlines = (WaveInstrumentInline,)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        # Answers change only through the submission service, which validates them.
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaffRoleForm(forms.ModelForm):
    class Meta:
        model = StaffRole
        fields = ("user", "study", "role", "sites")

    def clean(self):
        cleaned = super().clean()
        study = cleaned.get("study") or (self.instance.study if self.instance.pk else None)
        if study and cleaned.get("role"):
            try:
                services.staff_role_validate(
                    study=study, role=cleaned["role"], sites=cleaned.get("sites") or []
                )
            except forms.ValidationError as exc:
                raise forms.ValidationError(exc.message_dict) from exc
        return cleaned


@admin.register(StaffRole)
class StaffRoleAdmin(admin.ModelAdmin):
    """Principal investigators give roles in the studies they lead, and only there."""

    form = StaffRoleForm
    list_display = ("user", "study", "role")
    list_filter = (("study", RELATED_ONLY), "role")
    list_select_related = ("user", "study")
    filter_horizontal = ("sites",)
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(study__in=selectors.studies_led_by(user=request.user))
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "study":
            kwargs["queryset"] = selectors.studies_led_by(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "sites":
            kwargs["queryset"] = Site.objects.filter(
                study__in=selectors.studies_led_by(user=request.user)
            ).select_related("study")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # A role belongs to one person in one study; to move it, remove it and add another.
        return ("user", "study", "created_at") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        staff_role = services.staff_role_assign(
            user=form.cleaned_data.get("user", obj.user if change else None),
            study=form.cleaned_data.get("study", obj.study if change else None),
            role=form.cleaned_data["role"],
            sites=form.cleaned_data.get("sites") or [],
        )
        obj.pk, obj.created_at = staff_role.pk, staff_role.created_at

    def save_related(self, request, form, formsets, change):
        # The service has set the sites already; nothing else is related.
        pass

    def delete_model(self, request, obj):
        services.staff_role_remove(staff_role=obj)

    def delete_queryset(self, request, queryset):
        for staff_role in queryset.select_related("user"):
            services.staff_role_remove(staff_role=staff_role)
