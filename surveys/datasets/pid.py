"""Participant IDs and date shifts for datasets.

``pid`` is an HMAC-SHA256 of the participant's primary key under a key derived from
``settings.SECRET_KEY`` and the study's primary key (``django.utils.crypto.salted_hmac``): stable
for a participant across every export of one study, unrelated across studies (two studies'
datasets cannot be linked by it), and neither the primary key nor the study ID, which staff
see. Whoever has the secret key can recompute it; rotating the secret key changes every pid.
"""

from django.utils.crypto import salted_hmac

_SALT = "surveys.datasets.pid"
# 16 hex digits (64 bits): no collision in practice at any study's size; the "P" prefix keeps a
# spreadsheet from reading an ID such as "1e5..." as a number.
_DIGITS = 16


def pseudonymous_id(*, study_id: int, participant_id: int) -> str:
    digest = salted_hmac(f"{_SALT}:{study_id}", str(participant_id), algorithm="sha256")
    return "P" + digest.hexdigest()[:_DIGITS]


# A date shift moves every calendar date of one participant back by the same number of days,
# 0 to 364: intervals between a participant's dates hold, the dates themselves do not give the
# day of enrolment away. Keyed like the pid, so it is the same in every export of the study.
SHIFT_DAYS = 365


def date_offset(*, study_id: int, participant_id: int) -> int:
    """Days to take off every date of the participant in a date-shifted export (0-364)."""
    digest = salted_hmac(f"{_SALT}:shift:{study_id}", str(participant_id), algorithm="sha256")
    return int(digest.hexdigest()[:12], 16) % SHIFT_DAYS


def export_pid(study, *, participant_id: int, code: str) -> str:
    """The pid column's value: the study ID where the study says so, else the keyed hash."""
    if getattr(study, "export_id", "pseudonym") == "study_id":
        return code
    return pseudonymous_id(study_id=study.pk, participant_id=participant_id)
