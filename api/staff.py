"""Staff endpoints for coordinators' work: enrolment, the call list and the retention summary,
and researchers' dataset exports (streamed, or as background jobs when large). Scoped by the
same selectors as the admin pages; identifiers only for those who may see them."""

import contextlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.auth import TokenScope
from api.query import query_param, query_params
from api.views import CONFLICT, ERRORS, ClientIdField
from surveys import exports, retention, selectors
from surveys.audit import phones_shown_audit
from surveys.consent import ConsentInput
from surveys.models import Consent, DatasetExportJob, Language, Participant, StaffRole, Study
from surveys.participant_import import contact_already_enrolled
from surveys.services import CONTACT_FIELDS, participant_enrol, participant_today


class ParticipantEnrolApi(APIView):
    """Enrol a participant at one of your sites, with their consent; the study ID is the
    site's next unless given. Coordinators (their sites) and principal investigators."""

    @extend_schema_serializer(component_name="EnrolContact")
    class ContactSerializer(serializers.Serializer):
        first_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
        last_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
        email = serializers.CharField(required=False, allow_blank=True, max_length=254)
        phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
        alternative_contacts = serializers.CharField(required=False, allow_blank=True)
        locator_notes = serializers.CharField(required=False, allow_blank=True)

    @extend_schema_serializer(component_name="EnrolConsent")
    class ConsentSerializer(serializers.Serializer):
        method = serializers.ChoiceField(choices=Consent.Method.values)
        version = serializers.CharField(required=False, help_text="Default: the current one.")
        date = serializers.DateField(required=False, help_text="Paper or verbal consent.")
        obtained_by = serializers.CharField(
            required=False, help_text="A staff username; default: you."
        )

    @extend_schema_serializer(component_name="Enrolment")
    class InputSerializer(serializers.Serializer):
        client_id = ClientIdField(
            required=False,
            help_text="A random UUID the client makes for this enrolment: sent again (a reply "
            "lost), the answer is 200 with the participant it enrolled, not a second one.",
        )
        site = serializers.CharField(help_text="The site's code, e.g. NYC.")
        study_id = serializers.CharField(required=False, allow_blank=True, max_length=32)
        enrolled_on = serializers.DateField(required=False)
        timezone = serializers.CharField(required=False, help_text="Default: the site's.")
        language = serializers.ChoiceField(choices=Language.values, required=False)
        preferred_channel = serializers.ChoiceField(
            choices=Participant.Channel.values, required=False
        )
        contact = serializers.DictField(required=False, help_text="See EnrolContact.")
        consent = serializers.DictField(help_text="See EnrolConsent.")

    @extend_schema_serializer(component_name="Enrolled")
    class OutputSerializer(serializers.Serializer):
        study_id = serializers.CharField(source="code")
        site = serializers.CharField(source="site.code")
        status = serializers.CharField()
        enrolled_on = serializers.DateField()
        consent_pending = serializers.BooleanField()
        assignments = serializers.IntegerField(source="assignments_count")

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: ERRORS,
            403: None,
            409: CONFLICT,
        },
    )
    def post(self, request: Request, study_slug: str) -> Response:
        study = get_object_or_404(selectors.studies_for_user(user=request.user), slug=study_slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        site = study.sites.filter(code=fields["site"]).first()
        if site is None:
            return _errors({"site": [f"The study has no site {fields['site']}."]})
        if not selectors.site_enrolment_allowed(user=request.user, site=site):
            raise PermissionDenied("Only the site's coordinators and the PIs enrol participants.")
        contact = self.ContactSerializer(data=fields.get("contact", {}))
        consent = self.ConsentSerializer(data=fields["consent"])
        errors = {}
        if not contact.is_valid():
            errors |= {f"contact.{k}": v for k, v in contact.errors.items()}
        if not consent.is_valid():
            errors |= {f"consent.{k}": v for k, v in consent.errors.items()}
        if errors:
            return _errors(errors)
        unknown = set(fields.get("contact", {})) - set(CONTACT_FIELDS)
        if unknown:
            return _errors({"contact": [f"Unknown fields: {', '.join(sorted(unknown))}."]})
        given = consent.validated_data
        version = None
        if given.get("version"):
            version = study.consent_versions.filter(version=given["version"]).first()
            if version is None:
                return _errors({"consent.version": [f"No consent version {given['version']}."]})
        obtained_by = request.user
        if given.get("obtained_by"):
            obtained_by = (
                StaffRole.objects.filter(study=study, user__username=given["obtained_by"])
                .select_related("user")
                .first()
            )
            if obtained_by is None:
                return _errors(
                    {"consent.obtained_by": [f"{given['obtained_by']} has no role in the study."]}
                )
            obtained_by = obtained_by.user
        zone = fields.get("timezone") or site.timezone
        participant = Participant(
            study=study,
            site=site,
            enrolment_client_id=fields.get("client_id"),
            code=fields.get("study_id", ""),
            # Not given: today on the participant's clock (the server's is UTC, a day ahead of
            # New York's every evening), as an import's line does.
            enrolled_on=fields.get("enrolled_on") or participant_today(timezone_name=zone),
            timezone=zone,
            language=fields.get("language") or study.default_language,
            preferred_channel=fields.get("preferred_channel")
            or (
                Participant.Channel.EMAIL
                if contact.validated_data.get("email")
                else Participant.Channel.SMS
            ),
        )
        with transaction.atomic():
            # One enrolment of the study at a time past this point, as an import's: the same
            # enrolment sent again while the first is still being saved waits, then finds the
            # person enrolled.
            Study.objects.select_for_update().filter(pk=study.pk).exists()
            if fields.get("client_id"):
                earlier = Participant.objects.filter(
                    study=study, enrolment_client_id=fields["client_id"]
                ).first()
                if earlier is not None and earlier.site_id != site.pk:
                    return Response(
                        {
                            "code": "client_id_used",
                            "detail": "This id belongs to another enrolment.",
                        },
                        status=status.HTTP_409_CONFLICT,
                    )
                if earlier is not None:  # the same enrolment again: its first answer
                    earlier.assignments_count = earlier.assignments.count()
                    return Response(self.OutputSerializer(earlier).data, status=status.HTTP_200_OK)
            if (
                participant.code
                and Participant.objects.filter(study=study, code=participant.code).exists()
            ):
                # on the field sent, not as the model's error on none
                return _errors({"study_id": ["A participant of this study has this study ID."]})
            taken = contact_already_enrolled(
                study=study, contact=contact.validated_data, user=request.user, request=request
            )
            if taken:
                return _errors({f"contact.{name}": [problem] for name, problem in taken.items()})
            participant = participant_enrol(
                participant=participant,
                contact=dict(contact.validated_data),
                consent=ConsentInput(
                    method=given["method"],
                    version=version,
                    consented_on=given.get("date"),
                    obtained_by=obtained_by,
                ),
                enrolled_by=request.user,
            )
        participant.assignments_count = participant.assignments.count()
        return Response(self.OutputSerializer(participant).data, status=status.HTTP_201_CREATED)


def _errors(errors: dict) -> Response:
    return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)


class CallListApi(APIView):
    """Surveys not done that are overdue or closing within 7 days, at your sites, most urgent
    first. Phones only for coordinators and PIs."""

    api_scope = "contacts"

    @extend_schema_serializer(component_name="CallListRow")
    class OutputSerializer(serializers.Serializer):
        study = serializers.CharField(source="participant.study.slug")
        study_id = serializers.CharField(source="participant.code")
        site = serializers.CharField(source="participant.site.code")
        wave = serializers.CharField(source="wave.slug")
        assignment = serializers.IntegerField(source="pk")
        status = serializers.CharField()
        due_at = serializers.DateTimeField()
        closes_at = serializers.DateTimeField()
        overdue = serializers.BooleanField()
        earlier_misses = serializers.IntegerField()
        last_attempt_at = serializers.DateTimeField(allow_null=True)
        last_attempt_method = serializers.CharField(allow_null=True)
        last_attempt_outcome = serializers.CharField(allow_null=True)
        phone = serializers.CharField(allow_null=True, help_text="Null for researchers.")

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        now = timezone.now()
        rows = selectors.call_list_rows(user=request.user, now=now)
        phones_shown_audit(request=request, rows=rows, where="call list API")
        return Response(self.OutputSerializer(rows, many=True).data)


class _WaveCountsSerializer(serializers.Serializer):
    name = serializers.CharField()
    recurring = serializers.BooleanField()
    due = serializers.IntegerField(
        help_text="Completed or missed; in-window, not-yet-open and cancelled surveys are not due."
    )
    completed = serializers.IntegerField()
    in_window = serializers.IntegerField()
    missed = serializers.IntegerField()
    rate = serializers.FloatField(
        allow_null=True, help_text="completed ÷ due; null while none is due."
    )


class RetentionSummaryApi(APIView):
    """The retention dashboard's numbers: per wave due, completed, in window, missed and the
    completion rate; optionally split by a subgroup; time from invitation to completion and
    the reminder people completed after. Coordinators see their sites only."""

    @extend_schema_serializer(component_name="RetentionSubgroupValue")
    class SubgroupValueSerializer(serializers.Serializer):
        code = serializers.CharField()
        label = serializers.CharField()
        waves = _WaveCountsSerializer(many=True)

    @extend_schema_serializer(component_name="RetentionSummary")
    class OutputSerializer(serializers.Serializer):
        study = serializers.CharField()
        site = serializers.CharField(allow_null=True)
        waves = _WaveCountsSerializer(many=True)
        subgroup = serializers.DictField(allow_null=True)
        day_edges = serializers.ListField(child=serializers.IntegerField())
        timing = serializers.ListField(child=serializers.DictField())
        reminders = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[
            OpenApiParameter("site", str, description="A site code; default: all yours."),
            OpenApiParameter("subgroup", str, description="A subgroup name to split by."),
        ],
        responses={200: OutputSerializer, 400: ERRORS, 404: None},
    )
    def get(self, request: Request, study_slug: str) -> Response:
        study = get_object_or_404(selectors.studies_for_user(user=request.user), slug=study_slug)
        site = None
        if code := query_param(request, "site"):
            site = (
                selectors.sites_for_user(user=request.user).filter(study=study, code=code).first()
            )
            if site is None:
                return _errors({"site": [f"{code} is not one of your sites in this study."]})
        subgroup = query_param(request, "subgroup") or None
        if subgroup is not None and retention.subgroup_get(subgroup) is None:
            names = ", ".join(s.name for s in retention.subgroups())
            return _errors({"subgroup": [f"Choose one of: {names}."]})
        summary = retention.retention_summary(
            user=request.user, study=study, site=site, subgroup=subgroup
        )
        split = None
        if summary.subgroup is not None:
            split = {
                "name": summary.subgroup.subgroup.name,
                "label": summary.subgroup.subgroup.label,
                "source": summary.subgroup.source,
                "values": self.SubgroupValueSerializer(summary.subgroup.values, many=True).data,
            }
        return Response(
            {
                "study": study.slug,
                "site": site.code if site else None,
                "waves": _WaveCountsSerializer(summary.waves, many=True).data,
                "subgroup": split,
                "day_edges": list(retention.DAY_EDGES),
                "timing": [
                    {
                        "wave": row.wave_name,
                        "completed": row.completed,
                        "without_message": row.without_message,
                        "buckets": row.buckets,
                    }
                    for row in summary.timing
                ],
                "reminders": [
                    {
                        "wave": row.wave_name,
                        "completed": row.completed,
                        "without_message": row.without_message,
                        "by_reminders": row.by_reminders,
                    }
                    for row in summary.reminders
                ],
            }
        )


@extend_schema_serializer(component_name="DatasetExportJob")
class DatasetExportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study = serializers.CharField(source="study.slug")
    status = serializers.ChoiceField(choices=DatasetExportJob.Status.choices)
    progress = serializers.IntegerField(help_text="Per cent done, 0–100.")
    message = serializers.CharField(help_text="Why it failed; empty otherwise.")
    filename = serializers.CharField(help_text="The download's file name, once known.")
    rows = serializers.IntegerField(allow_null=True)
    size = serializers.IntegerField(allow_null=True, help_text="Bytes.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="The file is deleted then; downloads answer 410."
    )
    url = serializers.SerializerMethodField(help_text="This job's status.")
    download_url = serializers.SerializerMethodField(help_text="Null until the file is ready.")

    def get_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:export-job", args=[job.pk]))

    def get_download_url(self, job) -> str | None:
        if job.status != DatasetExportJob.Status.DONE or exports.export_job_expired(job):
            return None
        return self.context["request"].build_absolute_uri(
            reverse("api:export-job-download", args=[job.pk])
        )


GONE = inline_serializer("Gone", {"detail": serializers.CharField()})


# An export option's name -> the query parameter that gives it here.
EXPORT_PARAMETERS = {
    "sites": "site",
    "waves": "wave",
    "instruments": "instrument",
    "statuses": "status",
}


@contextlib.contextmanager
def _named_as_parameters():
    """The export's checks name its options (sites, waves, …); this endpoint's errors name
    the parameters sent (site, wave, …)."""
    try:
        yield
    except ValidationError as exc:
        if isinstance(exc, exports.ExportBusy) or not hasattr(exc, "error_dict"):
            raise
        raise ValidationError(
            {
                EXPORT_PARAMETERS.get(name, name): messages
                for name, messages in exc.message_dict.items()
            }
        ) from exc


class DatasetExportApi(APIView):
    """The study's dataset, as the admin's Export data page gives it: de-identified unless a
    principal investigator asks for an identified export with a reason; audited. A scope of
    EXPORT_BACKGROUND_PARTICIPANTS people or more is not streamed: the answer is 202 with a
    background job; poll its ``url`` and download the file from its ``download_url``."""

    api_scope = "export"
    # No HEAD (405): its headers would be those of a file built and audited (or of a background
    # job started) for a request after which no file leaves; a download tool falls back to GET.
    http_method_names = ["get", "options"]

    @extend_schema_serializer(component_name="DatasetExportQuery")
    class InputSerializer(serializers.Serializer):
        shape = serializers.ChoiceField(choices=exports.SHAPES, default="long")
        format = serializers.ChoiceField(choices=exports.FORMATS, default="csv")
        labels = serializers.BooleanField(default=False)
        site = serializers.ListField(child=serializers.CharField(), required=False)
        wave = serializers.ListField(child=serializers.CharField(), required=False)
        instrument = serializers.ListField(child=serializers.CharField(), required=False)
        status = serializers.ListField(child=serializers.CharField(), required=False)
        enrolled_from = serializers.DateField(required=False)
        enrolled_to = serializers.DateField(required=False)
        dates = serializers.ChoiceField(
            choices=exports.DATES,
            default="days",
            help_text="days: days since enrolment only; shifted: also calendar dates, each "
            "participant's moved back by a keyed offset of 0-364 days.",
        )
        identified = serializers.BooleanField(default=False)
        reason = serializers.CharField(required=False, default="")

    @extend_schema(
        parameters=[InputSerializer],
        responses={
            # The file's own type, as a background job's download serves it.
            **{(200, media): OpenApiTypes.BINARY for media in exports.FILE_MEDIA_TYPES},
            202: DatasetExportJobSerializer,
            400: ERRORS,
            404: None,
            409: inline_serializer(
                "ExportRunning",
                {
                    "code": serializers.CharField(),
                    "detail": serializers.CharField(),
                    "job": DatasetExportJobSerializer(),
                },
            ),
        },
    )
    def get(self, request: Request, study_slug: str):
        study = get_object_or_404(selectors.studies_for_user(user=request.user), slug=study_slug)
        query = {
            key: query_params(request, key)
            if key in ("site", "wave", "instrument", "status")
            else query_param(request, key)
            for key in request.query_params
        }
        data = self.InputSerializer(data=query)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if given["identified"]:
            # identifiers leave in this file: a token needs the contacts scope as well
            TokenScope.require(request, "contacts")
        spec = exports.ExportSpec(
            shape=given["shape"],
            format=given["format"],
            labels=given["labels"],
            sites=tuple(given.get("site", ())),
            waves=tuple(given.get("wave", ())),
            instruments=tuple(given.get("instrument", ())),
            statuses=tuple(given.get("status", ())),
            enrolled_from=given.get("enrolled_from"),
            enrolled_to=given.get("enrolled_to"),
            dates=given["dates"],
            identified=given["identified"],
            reason=given["reason"],
        )
        with _named_as_parameters():
            return self._export(request, study, spec)

    def _export(self, request: Request, study, spec: exports.ExportSpec):
        people = exports.export_participants(user=request.user, study=study, spec=spec)
        if exports.export_should_run_in_background(people.count()):
            try:
                job = exports.export_job_start(
                    user=request.user, study=study, spec=spec, request=request._request
                )
            except exports.ExportBusy as busy:
                # A client polling for its export sent it again: the running one, to poll
                # (found by review: a 400 with no word on where it was).
                running = DatasetExportJobSerializer(busy.job, context={"request": request}).data
                return Response(
                    {
                        "code": "export_running",
                        "detail": busy.messages[0],
                        "job": running,
                    },
                    status=status.HTTP_409_CONFLICT,
                    headers={"Location": running["url"], "Cache-Control": "no-store"},
                )
            data = DatasetExportJobSerializer(job, context={"request": request}).data
            return Response(
                data,
                status=status.HTTP_202_ACCEPTED,
                headers={"Location": data["url"], "Cache-Control": "no-store"},
            )
        export = exports.dataset_export(
            user=request.user, study=study, spec=spec, request=request._request
        )
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response


class DatasetExportJobDetailApi(APIView):
    """A background export's status and progress. Only its creator sees it (404 otherwise)."""

    api_scope = "export"

    @extend_schema(responses={200: DatasetExportJobSerializer, 404: None})
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(exports.export_jobs_for_user(user=request.user), pk=job_id)
        data = DatasetExportJobSerializer(job, context={"request": request}).data
        return Response(data, headers={"Cache-Control": "no-store"})


class _AnyAccept(BaseContentNegotiation):
    """A file endpoint answers with the file's own type whatever the client accepts (its
    errors are JSON)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DatasetExportJobDownloadApi(APIView):
    """A background export's file, for its creator alone (404 for anyone else), once ready
    (409 before) and until it expires or its creator's rights stop covering it (410, code
    ``gone``); a failed job answers 410 with code ``failed`` and its message. Every download
    (GET) is audited. An identified export's file needs a token with the ``contacts`` scope as
    well, as starting the export did (403 otherwise)."""

    api_scope = "export"

    content_negotiation_class = _AnyAccept

    @extend_schema(
        responses={
            **{(200, media): OpenApiTypes.BINARY for media in exports.FILE_MEDIA_TYPES},
            403: None,
            404: None,
            409: CONFLICT,
            410: GONE,
        },
    )
    def get(self, request: Request, job_id: int):
        job = get_object_or_404(exports.export_jobs_for_user(user=request.user), pk=job_id)
        if job.spec.get("identified"):
            # the file holds what starting it needed the contacts scope for
            TokenScope.require(request, "contacts")
        try:
            handle = exports.export_job_download(
                user=request.user, job=job, request=request._request
            )
        except exports.ExportNotReady as exc:
            return Response(
                {"code": "not_ready", "detail": str(exc)}, status=status.HTTP_409_CONFLICT
            )
        except exports.ExportFailed as exc:  # never ready: not a 409 to retry on
            return Response({"code": "failed", "detail": str(exc)}, status=status.HTTP_410_GONE)
        except exports.ExportGone as exc:
            return Response({"code": "gone", "detail": str(exc)}, status=status.HTTP_410_GONE)
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=job.filename,
            content_type=exports.export_job_content_type(job),
        )
        response["Cache-Control"] = "no-store"
        return response
