"""Staff roles, given by principal investigators in the studies they lead."""

from django import forms
from django.contrib import admin

from surveys import selectors, services
from surveys.admin.base import RELATED_ONLY
from surveys.models import (
    Site,
    StaffRole,
)


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
            request=request,
        )
        obj.pk, obj.created_at = staff_role.pk, staff_role.created_at

    def save_related(self, request, form, formsets, change):
        # The service has set the sites already; nothing else is related.
        pass

    def delete_model(self, request, obj):
        services.staff_role_remove(staff_role=obj, request=request)

    def delete_queryset(self, request, queryset):
        for staff_role in queryset.select_related("user"):
            services.staff_role_remove(staff_role=staff_role, request=request)
