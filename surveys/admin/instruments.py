"""Instruments, versions, items and waves (content is read-only: see the dictionary)."""

from django.contrib import admin
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from surveys import selectors
from surveys.admin.base import RELATED_ONLY, ReadOnlyMixin, StudyScopedAdmin
from surveys.models import (
    Instrument,
    InstrumentVersion,
    Item,
    Wave,
    WaveInstrument,
)


class InstrumentVersionInline(ReadOnlyMixin, admin.TabularInline):
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


class ItemInline(ReadOnlyMixin, admin.TabularInline):
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
class InstrumentVersionAdmin(ReadOnlyMixin, StudyScopedAdmin):
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
                "<id:version_id>/preview/",
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
class ItemAdmin(ReadOnlyMixin, StudyScopedAdmin):
    study_path = "version__instrument__study"
    list_display = ("variable", "kind", "version", "position", "required")
    list_filter = ("kind", ("version__instrument", RELATED_ONLY))
    list_select_related = ("version__instrument",)
    search_fields = ("variable",)


class WaveInstrumentInline(admin.TabularInline):
    model = WaveInstrument
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "instrument":
            kwargs["queryset"] = Instrument.objects.filter(
                study__in=selectors.studies_led_by(user=request.user)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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
