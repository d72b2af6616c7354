"""Encrypted model fields for participant identifiers.

Values are stored as Fernet tokens (AES-128-CBC + HMAC-SHA256) under the first key of
``settings.FIELD_ENCRYPTION_KEYS``; every listed key can decrypt, so a new key can be put first
and old rows re-encrypted later. Ciphertext is randomised, so these columns cannot be filtered or
ordered on; equality lookups need a separate keyed hash.
"""

import hashlib
import hmac
import unicodedata
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must list at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds an invalid key: {exc}") from exc


def field_cipher() -> MultiFernet:
    return _multi_fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return field_cipher().encrypt(str(value).encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return field_cipher().decrypt(value.encode()).decode()


# --- Keyed lookups of encrypted contact details -----------------------------------------------
# Ciphertext cannot be searched, so each contact row also keeps an HMAC-SHA256 of its normalised
# e-mail and phone under CONTACT_LOOKUP_KEY: equal inputs give equal digests, and without the key
# a copy of the database cannot test guesses against them.

PHONE_DIGITS_COMPARED = 9


def ascii_digits(value: str) -> str:
    """Digits of any script as 0–9: a Persian or Arabic keyboard types ۴۸۲۱ or ٤٨٢١."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in value)


def email_normalise(value: str) -> str:
    return value.strip().lower()


def phone_normalise(value: str) -> str:
    """The last nine digits: the same number typed with or without its country code, trunk
    prefix, spaces or dashes (+1 (555) 010-4477, 555 010 4477) compares equal. Nine digits is
    the shortest mobile number length among the study's countries; '' when fewer digits."""
    digits = "".join(ch for ch in ascii_digits(value) if "0" <= ch <= "9")
    return digits[-PHONE_DIGITS_COMPARED:] if len(digits) >= PHONE_DIGITS_COMPARED else ""


def contact_lookup(kind: str, value: str) -> str:
    """The keyed digest of an e-mail address (kind 'email') or phone number (kind 'phone');
    '' for a blank or unusable value, which matches nothing."""
    normalised = {"email": email_normalise, "phone": phone_normalise}[kind](value or "")
    if not normalised:
        return ""
    key = settings.CONTACT_LOOKUP_KEY
    if not key:
        raise ImproperlyConfigured("CONTACT_LOOKUP_KEY must be set.")
    message = f"{kind}:{normalised}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
