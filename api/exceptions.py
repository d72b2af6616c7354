"""One error contract for the API: services raise, this turns it into a response.

* Django ``ValidationError`` -> 400 ``{"errors": {field: [messages]}}``
* ``SubmissionConflict``     -> 409 ``{"code": ..., "detail": ...}``
* everything DRF already knows (401/403/404/405, parse errors) keeps DRF's handling.
"""

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from surveys.submission import SubmissionConflict


def api_exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field": exc.messages}
        return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SubmissionConflict):
        return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_409_CONFLICT)
    response = exception_handler(exc, context)
    if response is not None and response.status_code == 400 and "errors" not in response.data:
        response.data = {"errors": response.data}
    return response
