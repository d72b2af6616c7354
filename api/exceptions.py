"""One error contract for the API: services raise, this turns it into a response.

* Django ``ValidationError`` -> 400 ``{"errors": {field: [messages]}}``
* ``SubmissionConflict``     -> 409 ``{"code": ..., "detail": ...}``
* everything DRF already knows (401/403/404/405, parse errors) keeps DRF's handling.
"""

import sys

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import translation
from django.views import defaults as django_defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from surveys.submission import SubmissionConflict


def api_exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field": exc.messages}
        # Django names a model's or a service's errors on no field "__all__"; the documented
        # shape says non_field, as DRF's own errors are (found by review).
        errors = {
            "non_field" if name == NON_FIELD_ERRORS else name: messages
            for name, messages in errors.items()
        }
        return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SubmissionConflict):
        return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_409_CONFLICT)
    response = exception_handler(exc, context)
    if response is not None and response.status_code == 400 and "errors" not in response.data:
        response.data = {"errors": flat_errors(response.data)}
    return response


def flat_errors(data, prefix: str = "") -> dict[str, list[str]]:
    """DRF's errors as the one documented shape, field name to a list of messages: a parse
    error's ``{"detail": "..."}`` becomes ``{"non_field": ["..."]}``, nested fields are named
    with dots (``answers.craving``), list positions by number."""
    if isinstance(data, dict):
        flat: dict[str, list[str]] = {}
        for key, value in data.items():
            name = "non_field" if key in ("detail", "non_field_errors") and not prefix else key
            for field, messages in flat_errors(
                value, f"{prefix}.{name}" if prefix else name
            ).items():
                flat.setdefault(field, []).extend(messages)
        return flat
    if isinstance(data, list) and all(not isinstance(v, dict | list) for v in data):
        return {prefix or "non_field": [str(v) for v in data]}
    if isinstance(data, list):
        flat = {}
        for index, value in enumerate(data):
            for field, messages in flat_errors(value, f"{prefix}.{index}").items():
                flat.setdefault(field, []).extend(messages)
        return flat
    return {prefix or "non_field": [str(data)]}


# --- Errors outside the API's views ----------------------------------------------------------
# A URL under /api/ that matches no route, or an error before a view runs, would get Django's
# HTML page; an API client gets the API's JSON shape instead (recovery/urls.py handler400,
# handler404 and handler500).


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return django_defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    # Django refuses some requests before the API's views can answer: a body over
    # DATA_UPLOAD_MAX_MEMORY_SIZE (a participant's phone sending a huge draft), too many
    # parameters. An API client reads the API's 400 shape, not an HTML page it cannot parse.
    if not request.path.startswith("/api/"):
        return django_defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        megabytes = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1024 / 1024
        message = f"The request is too large: at most {megabytes:.1f} MB."
    else:
        message = "The request is malformed."
    return JsonResponse({"errors": {"non_field": [message]}}, status=400)


# Seconds a client is told to wait when the database cannot be reached.
UNAVAILABLE_RETRY_AFTER = 30


def server_error(request):
    # Django calls this while handling the exception: it is the one being handled.
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        return service_unavailable(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return django_defaults.server_error(request)


def service_unavailable(request) -> HttpResponse:
    """The answer when the database could not be reached or dropped the connection (down,
    restarting, a failover, a statement cancelled): 503 with ``Retry-After``, rather than a
    server error. What the request was writing was rolled back with its transaction, unless
    the database went away after it committed (then the answer is lost, not the write): either
    way sending it again is safe, since a submission's replay stores nothing twice. Touches no
    database: the page is in the browser's language (``Accept-Language``), since the
    participant's own setting is in the database."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "detail": "The service is briefly unavailable: its database could not be "
                "reached. Send the request again in a minute (a submission sent again is "
                "stored once)."
            },
            status=503,
        )
    else:
        with translation.override(translation.get_language_from_request(request)):
            response = HttpResponse(render_to_string("participant/unavailable.html"), status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response
