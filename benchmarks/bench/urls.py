"""The app's URLs plus a bare one-row-insert endpoint on the same stack, as a baseline."""

import json

from django.db import connection
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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


urlpatterns = [path("bench/insert/", BareInsertApi.as_view()), *app_urlpatterns]
