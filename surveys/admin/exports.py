"""The dataset export page of a study (``StudyAdmin.get_urls``): choose the shape, codes or
labels and the filters; the CSV streams back, and the export is written to the audit log."""

from django import forms
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from surveys import selectors
from surveys.exports import ExportSpec, dataset_export
from surveys.models import Participant

SHAPE_CHOICES = [
    ("long", "Long: one row per participant and wave"),
    ("wide", "Wide: one row per participant, <variable>_<wave> columns"),
    ("diary", "Meeting diary: one row per meeting logged"),
    ("codebook", "Codebook of the long dataset"),
]


class ExportForm(forms.Form):
    shape = forms.ChoiceField(choices=SHAPE_CHOICES, widget=forms.RadioSelect, initial="long")
    format = forms.ChoiceField(
        choices=[
            ("csv", "CSV"),
            ("xlsx", "Excel (.xlsx, with a codebook sheet)"),
            ("sav", "SPSS (.sav, with variable and value labels)"),
            ("dta", "Stata (.dta, with variable and value labels)"),
            ("parquet", "Parquet (for Python, R arrow, DuckDB)"),
        ],
        initial="csv",
    )
    labels = forms.BooleanField(
        required=False, label="Write value labels instead of codes (e.g. “Yes” for 1)"
    )
    sites = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all yours."
    )
    waves = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: all."
    )
    statuses = forms.MultipleChoiceField(
        required=False,
        choices=Participant.Status.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Participant status",
        help_text="None ticked: all.",
    )
    enrolled_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Enrolled from"
    )
    enrolled_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Enrolled up to"
    )

    identified = forms.BooleanField(
        required=False,
        label="Identified export (principal investigators)",
        help_text="Adds study IDs, answers marked as identifiers and free text; never contact "
        "details. Audited with your reason.",
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why identified data is needed",
    )

    def __init__(self, *args, study, sites, leads: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not leads:
            del self.fields["identified"], self.fields["reason"]
        self.fields["sites"].choices = [(s.code, str(s)) for s in sites]
        self.fields["waves"].choices = [
            (w.slug, w.name) for w in study.waves.order_by("position", "pk")
        ]


def export_view(model_admin, request, study_id: int):
    study = get_object_or_404(selectors.studies_for_user(user=request.user), pk=study_id)
    sites = selectors.sites_for_user(user=request.user).filter(study=study)
    leads = selectors.studies_led_by(user=request.user).filter(pk=study.pk).exists()
    form = ExportForm(request.POST or None, study=study, sites=sites, leads=leads)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec = ExportSpec(
            shape=data["shape"],
            format=data["format"],
            labels=data["labels"],
            sites=tuple(data["sites"]),
            waves=tuple(data["waves"]),
            statuses=tuple(data["statuses"]),
            enrolled_from=data["enrolled_from"],
            enrolled_to=data["enrolled_to"],
            identified=data.get("identified", False),
            reason=data.get("reason", ""),
        )
        try:
            export = dataset_export(user=request.user, study=study, spec=spec, request=request)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, messages)
        else:
            response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
            response["Cache-Control"] = "no-store"
            return response
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Export data: {study.name}",
        "study": study,
        "form": form,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/surveys/study/export.html", context)
