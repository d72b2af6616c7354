"""Shared pieces of the admin: study scoping and read-only records."""

from django.conf import settings
from django.contrib import admin
from django.utils import formats, timezone

from surveys import selectors
from surveys.models import (
    Instrument,
    InstrumentVersion,
    Study,
    Wave,
)

RELATED_ONLY = admin.RelatedOnlyFieldListFilter


def time_with_zone(field: str, label: str):
    """An admin column or read-only field showing the model's ``field``, labelled with the zone
    the admin shows times in ("Sent (UTC)"): participants live in several zones, so a time
    without its zone is read as the reader's own or the participant's."""

    @admin.display(description=f"{label} ({settings.TIME_ZONE})", ordering=field)
    def shown(self, obj) -> str:
        value = getattr(obj, field)
        # Formatted here: a read-only field on a change page shows a method's value as it is
        # ("2027-01-05 14:30:00+00:00", "None"), where a list formats it as the admin's dates.
        if value is None:
            return self.get_empty_value_display()
        return formats.localize(timezone.localtime(value))

    return shown


class ReadOnlyMixin:
    """Shown in the admin, never added, changed or deleted there; each is written by its
    service. Instrument content comes from a dictionary import (which validates it and makes a
    new version when responses exist), assignments from enrolment, responses from submission,
    status history and personal links from their services."""

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

    def _leads(self, request, obj) -> bool:
        study = obj
        for part in self.study_path.split("__"):
            study = getattr(study, part)
        return selectors.studies_led_by(user=request.user).filter(pk=study.pk).exists()

    def has_change_permission(self, request, obj=None):
        # Seen by everyone of the study; changed only by its principal investigators (a PI
        # of one study may be a researcher in another).
        if obj is not None and not self._leads(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not self._leads(request, obj):
            return False
        return super().has_delete_permission(request, obj)

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
