"""Settings for benchmark servers: production settings plus the baseline endpoint's URL."""

from recovery.settings.production import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench.urls"
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
LOGGING = {"version": 1, "disable_existing_loggers": True}
