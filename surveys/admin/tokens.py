"""API tokens: each staff member makes and revokes their own; the key is shown once."""

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse

from surveys.audit import audit_log
from surveys.models import AuditEvent, StaffApiToken, StaffTwoFactor
from surveys.tokens import (
    DEFAULT_DAYS,
    DEFAULT_SCOPES,
    MAX_DAYS,
    SCOPES,
    staff_token_create,
    staff_token_revoke,
)


class StaffApiTokenForm(forms.ModelForm):
    days = forms.IntegerField(
        min_value=1,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        label="Valid for (days)",
    )
    scope_choices = forms.MultipleChoiceField(
        choices=list(SCOPES.items()),
        initial=list(DEFAULT_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        label="It may",
        help_text="Only what the script needs; never more than your roles allow.",
    )

    class Meta:
        model = StaffApiToken
        fields = ("name",)


@admin.register(StaffApiToken)
class StaffApiTokenAdmin(admin.ModelAdmin):
    form = StaffApiTokenForm
    list_display = (
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ("revoke",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def get_fields(self, request, obj=None):
        return (
            ("name", "days", "scope_choices")
            if obj is None
            else (*self.readonly_fields[:1], "name", *self.readonly_fields[1:])
        )

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request, obj=None):
        return False  # a key is revoked and replaced, never edited

    def has_delete_permission(self, request, obj=None):
        return False  # kept, revoked, so that its use stays traceable

    def save_model(self, request, obj, form, change):
        token, key = staff_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            days=form.cleaned_data["days"],
            scopes=form.cleaned_data["scope_choices"],
        )
        obj.pk, obj.user, obj.prefix, obj.scopes = token.pk, token.user, token.prefix, token.scopes
        obj.created_at, obj.expires_at = token.created_at, token.expires_at
        # Shown on the next page only: never in a message (the messages cookie is signed, not
        # encrypted) nor anywhere stored.
        request.staff_api_key = key

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "staff_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/surveys/staffapitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "title": "Your new API key",
                "opts": self.model._meta,
                "token": obj,
                "key": key,
            },
        )
        return response

    def log_addition(self, request, obj, message):
        return None  # the admin's log would store the object's text; the key is never in it

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            staff_token_revoke(token=token)
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


@admin.register(StaffTwoFactor)
class StaffTwoFactorAdmin(admin.ModelAdmin):
    """Who has two-factor sign-in on. Each staff member turns it on on their own page
    (/admin/two-factor/); an administrator deletes it for someone who lost their phone. The
    secret is never shown here."""

    list_display = ("user", "confirmed_at", "created_at")
    fields = ("user", "confirmed_at", "created_at")
    readonly_fields = fields
    list_select_related = ("user",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False  # made on the set-up page, with a first code

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def delete_model(self, request, obj):
        audit_log(
            action=AuditEvent.Action.TWO_FACTOR_OFF,
            request=request,
            details={"staff": obj.user.get_username()},
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for device in queryset.select_related("user"):
            self.delete_model(request, device)
