"""The API's request parser."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with JSON nested deeper than Python's parser goes (a few hundred
    kilobytes of ``[[[…]]]``) refused as malformed, 400, like any other: DRF turns only a
    ``ValueError`` into a parse error, and the recursion error was a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the JSON is nested too deeply.") from None
