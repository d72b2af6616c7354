"""A developer's laptop and `make demo`: SQLite, filesystem broker, e-mails as files."""

import os

from .base import *  # noqa: F403
from .base import CELERY_BROKER_DIR, STATIC_ROOT, VAR_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The port `make demo` serves on (Makefile, scripts/run_demo.py): personal links printed by
# seed_demo and sent in the demo's messages point at it unless SITE_URL says otherwise.
DEMO_PORT = env.int("DEMO_PORT", default=8000)
SITE_URL = env("SITE_URL", default=f"http://127.0.0.1:{DEMO_PORT}").rstrip("/")
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-only-key-do-not-deploy-4c7d2a9e")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# A fixed key for local data only; production has no default (see production.py).
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEYS", default=["bG9jYWwtb25seS1rZXktZG8tbm90LWRlcGxveS0wMDA="]
)
# Keys the digests that find a participant by e-mail or phone ("send me a new link").
CONTACT_LOOKUP_KEY = env("CONTACT_LOOKUP_KEY", default="local-only-lookup-key-do-not-deploy-91f3")
# Text messages are written as files to var/sms-outbox unless SMS_BACKEND says otherwise.
SMS_BACKEND = env("SMS_BACKEND", default="surveys.sms.FileBackend")
# E-mails are written as files to var/outbox unless EMAIL_URL says otherwise.
if not env("EMAIL_URL", default=""):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(VAR_DIR / "outbox")},
        }
    }
# Serve static files straight from the apps (no collectstatic needed on a laptop).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

for folder in (
    VAR_DIR,
    VAR_DIR / "outbox",
    CELERY_BROKER_DIR / "queue",
    CELERY_BROKER_DIR / "control",
    CELERY_BROKER_DIR / "processed",
    VAR_DIR / "celery-results",
    STATIC_ROOT,
):
    os.makedirs(folder, exist_ok=True)
