"""Enrolment from a CSV file in the admin: upload → preview → confirm, and a template file.

The preview page carries the file to the confirmation sealed (encrypted, authenticated, dated:
``participant_import.import_payload_seal``), so the server keeps no copy of identifiers in
between. Confirming re-reads and re-checks the whole file.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from surveys.models import Study
from surveys.participant_import import (
    COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    ImportResult,
    PayloadInvalid,
    import_payload_open,
    import_payload_seal,
    import_template_csv,
    participants_import,
    sites_user_may_enrol,
    studies_user_may_enrol,
)

TEMPLATE = "admin/surveys/participant/import.html"
SESSION_KEY = "surveys_participant_import_done"
# A preview lists this many rows at most; the summary above it counts them all.
PREVIEW_ROWS = 1000


class ImportUploadForm(forms.Form):
    study = forms.ModelChoiceField(queryset=Study.objects.none(), empty_label=None)
    file = forms.FileField(
        label="CSV file",
        allow_empty_file=True,  # the import says so, with the other problems of a file
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )

    def __init__(self, *args, studies: QuerySet[Study], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["study"].queryset = studies
        if len(studies) == 1:
            self.fields["study"].initial = studies[0].pk
            self.fields["study"].widget = forms.HiddenInput()


def participant_import_urls(model_admin: admin.ModelAdmin) -> list:
    views = ParticipantImportViews(model_admin)
    wrap = model_admin.admin_site.admin_view
    return [
        path("import/", wrap(views.upload), name="surveys_participant_import"),
        path("import/confirm/", wrap(views.confirm), name="surveys_participant_import_confirm"),
        path("import/done/", wrap(views.done), name="surveys_participant_import_done"),
        path(
            "import/template.csv",
            wrap(views.template),
            name="surveys_participant_import_template",
        ),
    ]


class ParticipantImportViews:
    def __init__(self, model_admin: admin.ModelAdmin):
        self.model_admin = model_admin

    def _studies(self, request) -> QuerySet[Study]:
        """The studies the user enrols in; 403 for everyone else (researchers never import)."""
        studies = studies_user_may_enrol(user=request.user).order_by("name")
        if not request.user.has_perm("surveys.add_participant") or not studies:
            raise PermissionDenied
        return studies

    def _render(self, request, step: str, status: int = 200, **context) -> TemplateResponse:
        titles = {
            "upload": "Import participants from a CSV file",
            "preview": "Check the import, then confirm",
            "done": "Participants imported",
        }
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.model._meta,
            "title": titles[step],
            "step": step,
            "columns": COLUMNS,
            "max_rows": MAX_ROWS,
            "max_megabytes": MAX_FILE_BYTES // 1024 // 1024,
            "preview_rows": PREVIEW_ROWS,
            **context,
        }
        return TemplateResponse(request, TEMPLATE, context, status=status)

    def upload(self, request):
        studies = self._studies(request)
        form = ImportUploadForm(request.POST or None, request.FILES or None, studies=studies)
        if request.method != "POST" or not form.is_valid():
            return self._render(request, "upload", form=form, study=studies[0])
        study = form.cleaned_data["study"]
        # One byte past the limit is enough to say the file is too big.
        data = form.cleaned_data["file"].read(MAX_FILE_BYTES + 1)
        result = participants_import(
            study=study, user=request.user, file_bytes=data, commit=False, request=request
        )
        if not result.ok:
            return self._render(request, "upload", form=form, study=study, result=result)
        return self._render(
            request,
            "preview",
            study=study,
            result=result,
            payload=import_payload_seal(study=study, user=request.user, file_bytes=data),
        )

    def confirm(self, request):
        studies = self._studies(request)
        if request.method != "POST":
            return redirect("admin:surveys_participant_import")
        form = ImportUploadForm(studies=studies)
        try:
            study_pk, data = import_payload_open(
                payload=request.POST.get("payload", ""), user=request.user
            )
        except PayloadInvalid as exc:
            return self._render(
                request, "upload", status=400, form=form, study=studies[0], refused=str(exc)
            )
        study = studies.filter(pk=study_pk).first()
        if study is None:  # the user's role changed since the preview
            raise PermissionDenied
        result = participants_import(
            study=study, user=request.user, file_bytes=data, commit=True, request=request
        )
        if not result.ok:
            return self._render(
                request, "upload", form=form, study=study, result=result, confirming=True
            )
        request.session[SESSION_KEY] = _done_summary(study, result)
        return redirect("admin:surveys_participant_import_done")

    def done(self, request):
        studies = self._studies(request)
        summary = request.session.pop(SESSION_KEY, None)
        if summary is None:
            return redirect("admin:surveys_participant_changelist")
        study = studies.filter(pk=summary.pop("study_id")).first()
        return self._render(request, "done", study=study, **summary)

    def template(self, request):
        studies = self._studies(request)
        wanted = request.GET.get("study", "")
        study = (studies.filter(pk=wanted).first() if wanted.isdecimal() else None) or studies[0]
        response = HttpResponse(
            import_template_csv(
                study=study, sites=sites_user_may_enrol(user=request.user, study=study)
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{study.slug}_participants_template.csv"'
        )
        return response


def _done_summary(study: Study, result: ImportResult) -> dict:
    """What the result page shows, kept in the session for one redirect: study IDs (pseudonyms)
    and counts, never a contact detail."""
    return {
        "study_id": study.pk,
        "enrolled": [[row.participant_id, row.code, row.site_code] for row in result.rows],
        "sites": result.sites,
        "assignments": result.assignments,
        "invitations": result.invitations,
        "consent_pending": sum(row.consent_method == "electronic" for row in result.rows),
    }
