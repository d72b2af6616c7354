from datetime import timedelta

from django import forms
from django.contrib import admin

from surveys import selectors, services
from surveys.models import (
    Assignment,
    Instrument,
    InstrumentVersion,
    Item,
    Participant,
    ParticipantContact,
    Response,
    Site,
    StaffRole,
    Study,
    Wave,
    WaveInstrument,
)


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


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "default_language", "default_timezone", "is_synthetic")
    search_fields = ("name", "slug")
    readonly_fields = ("created_at", "updated_at", "synthetic_params")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (SiteInline, WaveInline)

    def get_queryset(self, request):
        return selectors.studies_for_user(user=request.user)


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "study", "timezone")
    list_filter = ("study",)
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
    fields = ("first_name", "last_name", "email", "phone", "alternative_contacts", "locator_notes")


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


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("code", "study", "site", "status", "enrolled_on", "timezone", "language")
    list_filter = ("study", "site", "status", "language")
    list_select_related = ("study", "site")
    search_fields = ("code",)
    date_hierarchy = "enrolled_on"
    readonly_fields = ("created_at", "updated_at")
    inlines = (ParticipantContactInline, AssignmentInline)

    def get_queryset(self, request):
        return selectors.participants_for_user(user=request.user)

    def get_inlines(self, request, obj):
        if obj is not None and not selectors.user_may_see_identifiers(
            user=request.user, study=obj.study
        ):
            return (AssignmentInline,)
        return self.inlines

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "site":
            kwargs["queryset"] = selectors.sites_for_user(user=request.user)
        if db_field.name == "study":
            kwargs["queryset"] = selectors.studies_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.participant_enrol(participant=obj)


class InstrumentVersionInline(admin.TabularInline):
    model = InstrumentVersion
    extra = 0
    fields = ("number", "note", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "study")
    list_filter = ("study",)
    list_select_related = ("study",)
    search_fields = ("name", "slug")
    readonly_fields = ("created_at",)
    inlines = (InstrumentVersionInline,)


class ItemInline(admin.TabularInline):
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


@admin.register(InstrumentVersion)
class InstrumentVersionAdmin(admin.ModelAdmin):
    list_display = ("instrument", "number", "note", "created_at")
    list_filter = ("instrument__study", "instrument")
    list_select_related = ("instrument",)
    readonly_fields = ("created_at",)
    inlines = (ItemInline,)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("variable", "kind", "version", "position", "required")
    list_filter = ("kind", "version__instrument")
    list_select_related = ("version__instrument",)
    search_fields = ("variable",)


class WaveInstrumentInline(admin.TabularInline):
    model = WaveInstrument
    extra = 0


@admin.register(Wave)
class WaveAdmin(admin.ModelAdmin):
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
    list_filter = ("study",)
    list_select_related = ("study",)
    inlines = (WaveInstrumentInline,)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
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
    list_filter = ("status", "wave__study", "wave")
    list_select_related = ("participant", "wave")
    search_fields = ("participant__code",)
    readonly_fields = ("created_at", "status_changed_at")
    raw_id_fields = ("participant",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(participant__in=selectors.participants_for_user(user=request.user))
        )


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ("assignment", "instrument", "instrument_version", "status", "submitted_at")
    list_filter = ("status", "instrument")
    list_select_related = (
        "assignment__participant",
        "assignment__wave",
        "instrument",
        "instrument_version__instrument",
    )
    search_fields = ("assignment__participant__code",)
    readonly_fields = ("client_id", "started_at", "updated_at", "submitted_at")
    raw_id_fields = ("assignment",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(assignment__participant__in=selectors.participants_for_user(user=request.user))
        )


@admin.register(StaffRole)
class StaffRoleAdmin(admin.ModelAdmin):
    list_display = ("user", "study", "role")
    list_filter = ("study", "role")
    list_select_related = ("user", "study")
    filter_horizontal = ("sites",)
    readonly_fields = ("created_at",)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The service enforces the rules (coordinators need sites of the same study) and puts
        # the user in the role's group.
        services.staff_role_assign(
            user=form.instance.user,
            study=form.instance.study,
            role=form.instance.role,
            sites=form.cleaned_data.get("sites", ()),
        )
