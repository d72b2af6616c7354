from datetime import UTC

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.query import query_param
from surveys.dictionary import DictionaryError, dictionary_export, dictionary_import_forms
from surveys.models import Assignment, Instrument, Language
from surveys.selectors import (
    STAFF_ENTRY_COLUMNS,
    staff_entry_rights,
    studies_for_user,
    studies_led_by,
)
from surveys.submission import response_draft_save, response_submit, sent_before_changes

ERRORS = inline_serializer(
    "ValidationErrors",
    {"errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()))},
)
DICTIONARY_ERRORS = inline_serializer(
    "DictionaryErrors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "DictionaryError",
                {
                    "line": serializers.IntegerField(),
                    "column": serializers.CharField(),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)
CONFLICT = inline_serializer(
    "Conflict", {"code": serializers.CharField(), "detail": serializers.CharField()}
)


class StudyListApi(APIView):
    @extend_schema_serializer(component_name="Study")
    class OutputSerializer(serializers.Serializer):
        slug = serializers.SlugField()
        name = serializers.CharField()
        default_language = serializers.CharField()
        default_timezone = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        studies = studies_for_user(user=request.user)
        return Response(self.OutputSerializer(studies, many=True).data)


class ResponseOutputSerializer(serializers.Serializer):
    client_id = serializers.UUIDField()
    status = serializers.CharField()
    instrument = serializers.CharField(source="instrument.slug")
    instrument_version = serializers.IntegerField(source="instrument_version.number")
    answers = serializers.DictField()
    position = serializers.CharField(source="resume_at")
    started_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)


class SubmitOutputSerializer(serializers.Serializer):
    """The confirmation of a submit (the answers are not echoed back to the phone)."""

    client_id = serializers.UUIDField()
    status = serializers.CharField()
    instrument = serializers.CharField(source="instrument.slug")
    instrument_version = serializers.IntegerField(source="instrument_version.number")
    submitted_at = serializers.DateTimeField()


def submit_reply(response) -> dict:
    """``SubmitOutputSerializer``'s output, built directly: the serializer machinery was a
    measurable share of the busiest request (benchmarks/README.md); a test holds them equal."""
    return {
        "client_id": str(response.client_id),
        "status": response.status,
        "instrument": response.instrument.slug,
        "instrument_version": response.instrument_version.number,
        # As DRF's DateTimeField writes it in UTC (TIME_ZONE): ISO 8601 ending in Z.
        "submitted_at": response.submitted_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


class ClientIdField(serializers.UUIDField):
    """A submission's idempotency key: a UUID written as text. DRF's field would also take a
    JSON number or ``true`` (as ``UUID(int=1)``) and the nil UUID: keys a buggy client could
    send for every participant alike, each then told 409 ``client_id_used`` about another's
    response. Refused instead, as a 400 on ``client_id``."""

    default_error_messages = {
        "nil": _("The nil UUID is not an id: send a random one (a version 4 UUID)."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        value = super().to_internal_value(data)
        if value.int == 0:
            self.fail("nil")
        return value


class AnswersInputSerializer(serializers.Serializer):
    client_id = ClientIdField()
    answers = serializers.DictField()


class DraftInputSerializer(AnswersInputSerializer):
    position = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="The first question of the screen the person is on, or #review for the "
        "review before sending, to resume there.",
    )


class StaffEntryGate:
    """Staff may enter answers (surveys.selectors.staff_entry_rights), checked in the
    statement that locks the assignment; else 404 (not theirs to see) or 403."""

    name = "staff"
    columns = STAFF_ENTRY_COLUMNS
    # Staff's refusals say why (404 or 403), so their rights are read as columns: a refused
    # request locks the row for as long as its statement and rollback take.
    where = ""
    where_params = ()

    def __init__(self, user):
        self.user = user
        self.params = (user.pk, user.pk)

    def check(self, values, *, instrument_found: bool, instrument_in_wave: bool) -> None:
        if values is None:
            raise Http404("No such survey.")
        rights = staff_entry_rights(user=self.user, values=values)
        if not rights.may_see:
            raise Http404("No such survey.")
        if rights.consent_pending:
            raise PermissionDenied("The participant has not given consent yet: no answers before.")
        if not rights.may_enter:
            # Researchers can see the participant but never answer for them.
            raise PermissionDenied("Only the study's coordinators and PIs enter answers.")
        if not instrument_found:
            raise Http404("No such instrument in this study.")


class AnswersEntryApi(APIView):
    """Staff entering answers; the participant's own API overrides ``gate`` (and is not
    audited: the participant's own answers are the record). The services lock the assignment
    and check the gate in one statement; they need only its key and the instrument's slug."""

    audit_entries = True

    def gate(self, request: Request):
        return StaffEntryGate(request.user)

    def staff_request(self, request: Request):
        """Whose change the services audit, in their own transaction: staff's, never the
        participant's."""
        return request._request if self.audit_entries else None

    def entry(self, request: Request, assignment_id: int, instrument_slug: str) -> dict:
        """The services' arguments for this request."""
        return {
            "assignment": Assignment(pk=assignment_id),
            "instrument": Instrument(slug=instrument_slug),
            "gate": self.gate(request),
            "staff_request": self.staff_request(request),
        }


class ResponseDraftSaveApi(AnswersEntryApi):
    """Save the answers so far (they replace the draft's). Every answer given must be valid;
    required questions are not enforced until the final submit."""

    @extend_schema(
        request=DraftInputSerializer,
        responses={200: ResponseOutputSerializer, 400: ERRORS, 409: CONFLICT},
    )
    def put(self, request: Request, assignment_id: int, instrument_slug: str) -> Response:
        data = DraftInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        response = response_draft_save(
            **self.entry(request, assignment_id, instrument_slug), **data.validated_data
        )
        return Response(ResponseOutputSerializer(response).data)


class ResponseSubmitApi(AnswersEntryApi):
    """Submit the final answers. Idempotent on ``client_id``: a replay answers 200 with the
    response stored the first time; a replay whose answers differ from those stored (changed
    after a send whose reply was lost) answers 409 ``sent_before_changes`` and stores nothing."""

    @extend_schema(
        request=AnswersInputSerializer,
        responses={
            201: SubmitOutputSerializer,
            200: OpenApiResponse(SubmitOutputSerializer, description="A replay"),
            400: ERRORS,
            409: CONFLICT,
        },
    )
    def post(self, request: Request, assignment_id: int, instrument_slug: str) -> Response:
        data = AnswersInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = response_submit(
            **self.entry(request, assignment_id, instrument_slug), **data.validated_data
        )
        if result.changes_refused:  # after the commit: the response keeps the time of it
            raise sent_before_changes()
        code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
        return Response(submit_reply(result.response), status=code)


class DictionaryApi(APIView):
    """The study's REDCap data dictionary: GET downloads it (CSV); POST imports one."""

    @extend_schema_serializer(component_name="DictionaryUpload")
    class InputSerializer(serializers.Serializer):
        csv = serializers.CharField(trim_whitespace=False)
        language = serializers.ChoiceField(choices=Language.values, required=False)

    @extend_schema_serializer(component_name="DictionaryImportResult")
    class OutputSerializer(serializers.Serializer):
        instrument = serializers.CharField(source="instrument.slug")
        outcome = serializers.CharField()
        version = serializers.IntegerField(source="version.number")
        items = serializers.IntegerField()
        stale_translations = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        parameters=[OpenApiParameter("language", str, enum=Language.values)],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, study_slug: str) -> HttpResponse:
        study = get_object_or_404(studies_for_user(user=request.user), slug=study_slug)
        language = query_param(request, "language") or study.default_language
        if language not in Language.values:
            raise ValidationError({"language": [f"Choose one of {', '.join(Language.values)}."]})
        return HttpResponse(
            dictionary_export(study=study, language=language),
            content_type="text/csv; charset=utf-8",
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer(many=True), 400: DICTIONARY_ERRORS, 403: None},
    )
    def post(self, request: Request, study_slug: str) -> Response:
        study = get_object_or_404(studies_for_user(user=request.user), slug=study_slug)
        if not studies_led_by(user=request.user).filter(pk=study.pk).exists():
            raise PermissionDenied("Only the study's principal investigators change instruments.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            forms = dictionary_import_forms(
                study=study,
                text=data.validated_data["csv"],
                language=data.validated_data.get("language"),
            )
        except DictionaryError as exc:
            return Response(
                {
                    "errors": [
                        {"line": line, "column": column, "message": message}
                        for line, column, message in exc.errors
                    ]
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(self.OutputSerializer(forms, many=True).data)
