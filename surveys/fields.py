"""Encrypted model fields for participant identifiers.

Values are stored as Fernet tokens (AES-128-CBC + HMAC-SHA256) under the first key of
``settings.FIELD_ENCRYPTION_KEYS``; every listed key can decrypt, so a new key can be put first
and old rows re-encrypted later. Ciphertext is randomised, so these columns cannot be filtered or
ordered on; equality lookups need a separate keyed hash.
"""

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
