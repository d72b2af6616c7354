"""The app's URLs plus a bare one-row-insert endpoint on the same stack, as a baseline."""

import json

from django.db import connection
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.participant import ParticipantScope
from recovery.urls import handler404, handler500  # noqa: F401 - the app's error answers
from recovery.urls import urlpatterns as app_urlpatterns


class BareInsertApi(APIView):
    """Same authentication, parser and renderer as the submission endpoint; one INSERT."""

    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_rows (payload) VALUES (%s) RETURNING id",
                [json.dumps(request.data)],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id}, status=201)


class ParticipantBareInsertApi(ParticipantScope, BareInsertApi):
    """The baseline of the participant's submit: the same participant-session authentication,
    CSRF check and language switch as the phone's endpoint (``api.participant``), under the
    same public prefix (so the same per-address rate limit counts it); one INSERT."""


urlpatterns = [
    path("bench/insert/", BareInsertApi.as_view()),
    path("api/v1/participant/bench-insert/", ParticipantBareInsertApi.as_view()),
    *app_urlpatterns,
]


class MinimalSubmitApi(APIView):
    """Lower bound for a correct submit on this stack (benchmark only, not the product):
    the fewest statements a submission needs, as raw SQL, with the real validation."""

    def post(self, request: Request, assignment_id: int) -> Response:
        import uuid as _uuid

        from django.db import transaction
        from django.utils import timezone

        from surveys.instruments import version_with_items
        from surveys.models import Instrument
        from surveys.validation import answers_clean

        global _CACHED
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.id, a.status, a.closes_at, p.study_id FROM surveys_assignment a "
                "JOIN surveys_participant p ON p.id = a.participant_id WHERE a.id = %s "
                "FOR UPDATE OF a",
                [assignment_id],
            )
            row = cursor.fetchone()
            cursor.execute(
                "SELECT id, status FROM surveys_response WHERE assignment_id = %s "
                "OR client_id = %s",
                [assignment_id, request.data["client_id"]],
            )
            cursor.fetchall()
            if _CACHED is None:
                instrument = Instrument.objects.get(study_id=row[3], slug="followup")
                _CACHED = (instrument.pk, *version_with_items(instrument=instrument))
            instrument_id, version, items = _CACHED
            cleaned = answers_clean(items=items, answers=request.data["answers"], final=True)
            cursor.execute(
                "INSERT INTO surveys_response (assignment_id, instrument_id, "
                "instrument_version_id, client_id, answers, status, started_at, updated_at, "
                "submitted_at) VALUES (%s, %s, %s, %s, %s, 'submitted', %s, %s, %s)",
                [
                    assignment_id,
                    instrument_id,
                    version.pk,
                    _uuid.UUID(request.data["client_id"]),
                    json.dumps(cleaned),
                    now,
                    now,
                    now,
                ],
            )
            cursor.execute(
                "UPDATE surveys_assignment SET status = 'completed', completed_at = %s, "
                "status_changed_at = %s WHERE id = %s",
                [now, now, assignment_id],
            )
        return Response({"status": "submitted"}, status=201)


_CACHED = None
urlpatterns.insert(0, path("bench/minimal/<int:assignment_id>/", MinimalSubmitApi.as_view()))
