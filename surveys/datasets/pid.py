"""Pseudonymous participant IDs for datasets.

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
