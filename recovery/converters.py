"""URL converters.

``id``: a database id in a path, as Django's ``int`` but at most 18 digits, so it always fits
PostgreSQL's bigint (and SQLite's integer). A longer number matches no route and answers 404,
instead of reaching a query that overflows (a 500 a fuzzer found)."""

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


def converters_register() -> None:
    register_converter(IdConverter, "id")
