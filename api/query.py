"""Query parameters as the API's views read them: every raw read goes through here."""

from django.core.exceptions import ValidationError
from rest_framework.fields import ProhibitNullCharactersValidator
from rest_framework.request import Request


def query_param(request: Request, name: str) -> str | None:
    """The parameter's value (its last, if given more than once), or None."""
    value = request.query_params.get(name)
    if value is not None:
        _refuse_nul(name, value)
    return value


def query_params(request: Request, name: str) -> list[str]:
    """Every value of a parameter that may be given more than once (``?site=A&site=B``)."""
    values = request.query_params.getlist(name)
    for value in values:
        _refuse_nul(name, value)
    return values


def _refuse_nul(name: str, value: str) -> None:
    # PostgreSQL cannot hold or compare text with a NUL character: its driver refuses the
    # query, and the caller got a server error instead of a word on what they sent. Refused
    # as DRF refuses one in a body's text, a 400 on the parameter, before any query.
    if "\x00" in value:
        raise ValidationError({name: [str(ProhibitNullCharactersValidator.message)]})
