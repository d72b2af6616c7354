"""Logging filters: nothing that opens a participant's surveys reaches a log.

Django logs every 4xx and 5xx response with its path (``Not Found: /p/<token>``); a personal
link's or an unsubscribe link's token in that path would let whoever reads the logs open the
participant's surveys. ``RedactLinks`` replaces such tokens with ``[link]`` in every record the
console handler writes."""

import logging
import re

# /p/<token> and /p/unsubscribe/<token>: the catch-all personal link takes any segment that is
# not one of the participant pages' own names.
_PAGES = "language|manifest\\.webmanifest|sw\\.js|s|consent|new-link|unlock|pin|sign-out|diary"
_TOKEN = re.compile(rf"(/p/(?:unsubscribe/)?)(?!(?:{_PAGES})(?:[/?\s\"']|$))([^/?\s\"']+)")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[link]", text)


class RedactLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
