"""Participant IDs and date shifts for datasets.

``pid`` is an HMAC-SHA256 of the participant's primary key under a key derived from
``settings.SECRET_KEY`` and the study's primary key (``django.utils.crypto.salted_hmac``): stable
for a participant across every export of one study, unrelated across studies (two studies'
datasets cannot be linked by it), and neither the primary key nor the study ID, which staff
see. Whoever has the secret key can recompute it; rotating the secret key changes every pid.
"""

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

_SALT = "surveys.datasets.pid"
# 16 hex digits (64 bits): no collision in practice at any study's size; the "P" prefix keeps a
# spreadsheet from reading an ID such as "1e5..." as a number.
_DIGITS = 16


@lru_cache(maxsize=64)
def _key(key_salt: str, secret: str) -> bytes:
    return hashlib.sha256(key_salt.encode() + secret.encode()).digest()


def _hexdigest(key_salt: str, value: str) -> str:
    """``django.utils.crypto.salted_hmac(key_salt, value, algorithm="sha256").hexdigest()``,
    its key derived once (an export hashes thousands of participants)."""
    return hmac.digest(_key(key_salt, settings.SECRET_KEY), value.encode(), "sha256").hex()


def pseudonymous_id(*, study_id: int, participant_id: int) -> str:
    return "P" + _hexdigest(f"{_SALT}:{study_id}", str(participant_id))[:_DIGITS]


# A date shift moves every calendar date of one participant back by the same number of days,
# 0 to 364: intervals between a participant's dates hold, the dates themselves do not give the
# day of enrolment away. Keyed like the pid, so it is the same in every export of the study.
SHIFT_DAYS = 365


def date_offset(*, study_id: int, participant_id: int) -> int:
    """Days to take off every date of the participant in a date-shifted export (0-364)."""
    digest = _hexdigest(f"{_SALT}:shift:{study_id}", str(participant_id))
    return int(digest[:12], 16) % SHIFT_DAYS


def export_pid(study, *, participant_id: int, code: str) -> str:
    """The pid column's value: the study ID where the study says so, else the keyed hash."""
    if getattr(study, "export_id", "pseudonym") == "study_id":
        return code
    return pseudonymous_id(study_id=study.pk, participant_id=participant_id)
