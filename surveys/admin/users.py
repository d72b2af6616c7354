"""Django's own Users and Groups pages, with what they change that gives or takes away power
audited: superuser and staff status, being active, groups and direct permissions — who did it,
from where, before and after (``role_change``, like a study role)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from surveys.audit import audit_log
from surveys.models import AuditEvent

User = get_user_model()


def _powers(user) -> dict:
    if user.pk is None:
        return {}
    fresh = User.objects.get(pk=user.pk)
    return {
        "is_superuser": fresh.is_superuser,
        "is_staff": fresh.is_staff,
        "is_active": fresh.is_active,
        "groups": sorted(fresh.groups.values_list("name", flat=True)),
        "permissions": sorted(fresh.user_permissions.values_list("codename", flat=True)),
    }


class AuditedUserAdmin(UserAdmin):
    def save_model(self, request, obj, form, change):
        request._powers_before = _powers(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # groups are saved here
        before = getattr(request, "_powers_before", None)
        after = _powers(form.instance)
        if before != after:
            changed = (
                {k: {"before": before[k], "after": v} for k, v in after.items() if before[k] != v}
                if before
                else {k: {"before": None, "after": v} for k, v in after.items()}
            )
            audit_log(
                action=AuditEvent.Action.ROLE_CHANGE,
                request=request,
                obj=form.instance,
                details={"staff": form.instance.get_username(), "account": changed},
            )

    def delete_model(self, request, obj):
        audit_log(
            action=AuditEvent.Action.ROLE_CHANGE,
            request=request,
            details={"staff": obj.get_username(), "account": "deleted"},
        )
        super().delete_model(request, obj)


class AuditedGroupAdmin(GroupAdmin):
    def save_related(self, request, form, formsets, change):
        before = (
            sorted(
                Group.objects.get(pk=form.instance.pk).permissions.values_list(
                    "codename", flat=True
                )
            )
            if change
            else None
        )
        super().save_related(request, form, formsets, change)
        after = sorted(form.instance.permissions.values_list("codename", flat=True))
        if before != after:
            audit_log(
                action=AuditEvent.Action.ROLE_CHANGE,
                request=request,
                obj=form.instance,
                details={
                    "group": form.instance.name,
                    "permissions": {"before": before, "after": after},
                },
            )


for model, model_admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
