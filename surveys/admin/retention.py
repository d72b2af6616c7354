"""The retention dashboard: an extra page of the study admin (``StudyAdmin.get_urls``).

It shows aggregates only: counts and rates per wave, site and subgroup. No participant is
listed and no identifier (name, phone, e-mail) is read, so every staff role of the study may
open it: principal investigators and researchers for all sites, coordinators for their own.
"""

from dataclasses import dataclass

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from surveys import charts, retention, selectors
from surveys.due import DEFINITIONS
from surveys.models import Site

DAY_LABELS = [f"{days} day{'s' if days > 1 else ''}" for days in retention.DAY_EDGES]


class RetentionFilterForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=Site.objects.none(), required=False, empty_label="All the sites you can see"
    )
    subgroup = forms.ChoiceField(required=False, label="Split by")

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["subgroup"].choices = [("", "No split")] + [
            (subgroup.name, subgroup.label) for subgroup in retention.subgroups()
        ]


@dataclass(frozen=True)
class Table:
    """An accessible table: a caption, column headings, and rows of (row heading, cells)."""

    caption: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    corner: str = ""


def in_sentence(label: str) -> str:
    """A label as it reads inside a sentence: "Gender" → "gender", "MAT status" unchanged."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _rate_cell(counts: retention.WaveCounts) -> str:
    if counts.rate is None:
        return f"– (0 of 0; {counts.in_window} in window)" if counts.in_window else "–"
    return f"{_percent(counts.rate)} ({counts.completed} of {counts.due})"


def _waves_section(summary: retention.RetentionSummary) -> dict:
    names = [w.name + (" (all occurrences)" if w.recurring else "") for w in summary.waves]
    chart = charts.bar_chart(
        chart_id="chart-waves",
        title="Surveys by wave",
        description="Bar chart of completed, missed and in-window surveys per wave; the same "
        "numbers are in the table 'Surveys by wave'.",
        categories=names,
        series=[
            charts.Series("Completed", [w.completed for w in summary.waves]),
            charts.Series("Missed", [w.missed for w in summary.waves]),
            charts.Series("In window now", [w.in_window for w in summary.waves]),
        ],
        y_label="Surveys",
        x_label="Wave",
    )
    rows = [
        (
            name,
            [
                f"{w.due:,}",
                f"{w.completed:,}",
                f"{w.missed:,}",
                _rate_cell(w),
                f"{w.in_window:,}",
            ],
        )
        for name, w in zip(names, summary.waves, strict=True)
    ]
    t = summary.totals
    rows.append(
        (
            "All waves",
            [f"{t.due:,}", f"{t.completed:,}", f"{t.missed:,}", _rate_cell(t), f"{t.in_window:,}"],
        )
    )
    table = Table(
        caption="Surveys by wave",
        corner="Wave",
        columns=["Due", "Completed", "Missed", "Completion rate", "In window now"],
        rows=rows,
    )
    return {"chart": chart, "table": table}


def _curve_section(summary: retention.RetentionSummary) -> dict:
    curve = summary.curve
    categories = [w.name for w in curve]
    lines = [("All participants", curve)]
    split = summary.subgroup
    if split is not None:
        lines += [(value.label, value.waves) for value in split.values]
    series = [
        charts.Series(
            name,
            [w.rate for w in waves],
            notes=[f"{name}, {w.name}: {_rate_cell(w)}" for w in waves],
            emphasis=index == 0 and split is not None,
        )
        for index, (name, waves) in enumerate(lines)
    ]
    by = f" by {in_sentence(split.subgroup.label)}" if split else ""
    chart = charts.line_chart(
        chart_id="chart-curve",
        title=f"Retention curve{by}",
        description=f"Line chart of the completion rate at each wave{by}, one line per "
        "group; the same numbers are in the table next to it.",
        categories=categories,
        series=series,
        y_label="Completion rate",
        x_label="Wave",
    )
    table = Table(
        caption=f"Completion rate by wave{by}: completed ÷ due",
        corner=split.subgroup.label if split else "",
        columns=categories,
        rows=[(name, [_rate_cell(w) for w in waves]) for name, waves in lines],
    )
    return {"chart": chart, "table": table}


def _timing_section(summary: retention.RetentionSummary) -> dict | None:
    rows = summary.timing
    if not rows:
        return None
    per_wave = rows[:-1]
    series = [
        charts.Series(
            row.wave_name,
            row.cumulative_shares,
            notes=[
                f"{row.wave_name}, by {day}: {_percent(share)}"
                for day, share in zip(DAY_LABELS, row.cumulative_shares, strict=True)
            ],
        )
        for row in per_wave
        if row.after_message
    ]
    chart = charts.line_chart(
        chart_id="chart-timing",
        title="Time from the first message to completion",
        description="Line chart of the share of surveys completed after a message that were "
        "completed within 1, 3, 7, 14 and 28 days of the first message, one line per wave; "
        "the same numbers are in the table next to it.",
        categories=DAY_LABELS,
        series=series,
        y_label="Completed by then (cumulative)",
        x_label="Days after the first message (the invitation)",
    )
    table_rows = []
    for row in rows:
        running, cells = 0, []
        for count, share in zip(row.buckets, row.cumulative_shares, strict=False):
            running += count
            cells.append(f"{_percent(share)} ({running:,})")
        table_rows.append(
            (
                row.wave_name,
                [
                    f"{row.completed:,}",
                    f"{row.without_message:,}",
                    f"{row.after_message:,}",
                    *cells,
                    f"{row.buckets[-1]:,}",
                ],
            )
        )
    table = Table(
        caption="Completed within n days of the first message: cumulative share of the "
        "surveys completed after a message (and their number)",
        corner="Wave",
        columns=[
            "Completed",
            "Without a message",
            "After a message",
            *[f"Within {day}" for day in DAY_LABELS],
            f"Later than {DAY_LABELS[-1]}",
        ],
        rows=table_rows,
    )
    return {"chart": chart, "table": table}


def _reminder_labels(max_reminders: int) -> list[str]:
    return ["No message sent", "Invitation only"] + [
        f"Reminder {k}" for k in range(1, max_reminders + 1)
    ]


def _reminders_section(summary: retention.RetentionSummary) -> dict | None:
    rows = summary.reminders
    if not rows:
        return None
    labels = _reminder_labels(summary.max_reminders)
    total = rows[-1]
    values = [total.without_message, *total.by_reminders]
    chart = charts.bar_chart(
        chart_id="chart-reminders",
        title="Completed after which message (all waves)",
        description="Bar chart of the completed surveys by the last message sent before "
        "completion, all waves together; the numbers per wave are in the table next to it.",
        categories=labels,
        series=[
            charts.Series(
                "Completed surveys",
                values,
                notes=[f"{label}: {value:,}" for label, value in zip(labels, values, strict=True)],
            )
        ],
        y_label="Completed surveys",
        x_label="Last message before completion",
    )
    table = Table(
        caption="Completed surveys by the last message sent before completion",
        corner="Wave",
        columns=["Completed", *labels],
        rows=[
            (
                row.wave_name,
                [f"{row.completed:,}", f"{row.without_message:,}"]
                + [f"{n:,}" for n in row.by_reminders],
            )
            for row in rows
        ],
    )
    return {"chart": chart, "table": table}


def retention_view(model_admin, request, study_id: int):
    """GET /admin/surveys/study/<id>/retention/?site=<id>&subgroup=<name>"""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    user = request.user
    # A study the user has no role in does not exist for them.
    study = get_object_or_404(selectors.studies_for_user(user=user), pk=study_id)
    sites = selectors.sites_for_user(user=user).filter(study=study).order_by("code")
    form = RetentionFilterForm(request.GET or None, sites=sites)
    if form.is_bound and not form.is_valid():
        # A site outside the user's scope (or an unknown split) is refused, never shown.
        raise Http404("No such site or split.")
    choice = form.cleaned_data if form.is_bound else {}
    site = choice.get("site")
    subgroup = choice.get("subgroup") or None
    summary = retention.retention_summary(user=user, study=study, site=site, subgroup=subgroup)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Retention: {study.name}",
        "opts": model_admin.model._meta,
        "study": study,
        "form": form,
        "summary": summary,
        "scope": f"site {site.code}" if site else "all the sites you can see",
        "split_label": in_sentence(summary.subgroup.subgroup.label) if summary.subgroup else "",
        "site_codes": [s.code for s in sites],
        "waves": _waves_section(summary),
        "curve": _curve_section(summary),
        "timing": _timing_section(summary),
        "reminders": _reminders_section(summary),
        "day_edges": retention.DAY_EDGES,
        "definitions": DEFINITIONS,
    }
    return TemplateResponse(request, "admin/surveys/study/retention.html", context)
