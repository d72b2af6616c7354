"""Settings shared by every environment. Every value comes from the environment.

Embedded defaults let a fresh laptop run everything with nothing installed: SQLite instead of
PostgreSQL and kombu's filesystem transport instead of Redis. Setting ``DATABASE_URL`` and
``REDIS_URL`` switches to the real services (CI, docker compose, production).
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
# A developer may keep variables in ./.env; it is read only when asked, so that a stray file
# never changes `make test` or `make demo` (docker compose passes .env as the environment).
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False) and (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

# Runtime files of the embedded defaults (SQLite database, broker folders, outbox).
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

# SECRET_KEY and FIELD_ENCRYPTION_KEYS are set per environment: local.py has development
# defaults, production.py has none.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# The address participants' personal links start with (no trailing slash).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# How long a personal link works; each new message carries a new one.
PARTICIPANT_LINK_DAYS = env.int("PARTICIPANT_LINK_DAYS", default=60)
# Text messages (surveys/sms.py). Production has none until a provider backend is configured.
SMS_BACKEND = env("SMS_BACKEND", default="surveys.sms.DisabledBackend")
# surveys.sms.TwilioBackend: the account, and a sender number and/or Messaging Service. The auth
# token also verifies the signature of Twilio's inbound-SMS webhook (/hooks/sms/twilio).
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env("TWILIO_MESSAGING_SERVICE_SID", default="")
# Reverse proxies in front of the app that append the client to X-Forwarded-For (rate limits
# count per client address).
NUM_PROXIES = env.int("DJANGO_NUM_PROXIES", default=0)
# Dataset exports of at least this many participants run in the background (a Celery task)
# and are downloaded later from a private folder, never served as static or media files.
EXPORT_BACKGROUND_PARTICIPANTS = env.int("EXPORT_BACKGROUND_PARTICIPANTS", default=2000)
EXPORT_ROOT = Path(env("EXPORT_ROOT", default=str(VAR_DIR / "exports")))
# Hours a finished background export can be downloaded before its file is deleted.
EXPORT_DOWNLOAD_HOURS = env.int("EXPORT_DOWNLOAD_HOURS", default=24)
# De-identified CSV exports keep each participant's lines and write again only those whose
# data changed (surveys.datasets.linecache); off: every export builds every line.
EXPORT_LINE_CACHE = env.bool("EXPORT_LINE_CACHE", default=True)
# The beat keeps the lines of every study's whole-study wide and long CSV (de-identified, codes)
# ready before anyone exports them, as well as those of recent exports.
EXPORT_LINES_READY = env.bool("EXPORT_LINES_READY", default=True)
# Analyses of at least this many participants run as a Celery task (with progress) instead of
# in the request.
ANALYSIS_BACKGROUND_PARTICIPANTS = env.int("ANALYSIS_BACKGROUND_PARTICIPANTS", default=2000)
# Rows per page of the admin's call list (the API's call list is not paged).
CALL_LIST_PAGE_SIZE = 100
# The application's commit, recorded with every analysis run (an image has no .git folder).
APP_COMMIT = env("APP_COMMIT", default="")

INSTALLED_APPS = [
    "recovery.apps.StudyAdminConfig",  # django.contrib.admin with the site of recovery.admin_site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "surveys",
    "recovery",
    "api",
]

# Messages ("Meeting logged: …") live in the session, not in a cookie of their own: one never
# shown goes with the session at sign-out instead of staying on a shared phone.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# A participant's form sent with a stale token gets a page in their language (staff, Django's).
CSRF_FAILURE_VIEW = "surveys.participant_access.csrf_failure"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # These two only add headers to responses: early, so that every response has them, also
    # the rate limiter's 429.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Floods of the public paths (participants' pages and API) stop here, before a session or
    # the database is touched.
    "surveys.ratelimit.PublicRateLimitMiddleware",
    # Pages go compressed (static files come precompressed from WhiteNoise, above). Django's
    # gzip adds random padding to each response against BREACH-style attacks on CSRF tokens.
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "surveys.signin.StaffSessionExpiryMiddleware",
    "surveys.two_factor.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

# Content-Security-Policy on every page: scripts only from this site's own files (no inline
# script, no eval, no other host), nothing framed or framing, forms post only here. Inline
# styles stay allowed: the admin's widgets and the SVG charts drawn on the server use style
# attributes, which cannot carry a nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF],
    "manifest-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

ROOT_URLCONF = "recovery.urls"
WSGI_APPLICATION = "recovery.wsgi.application"
ASGI_APPLICATION = "recovery.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process, the worker and beat share the file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker, results, cache -----------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
    # A task taken but not acknowledged (acks_late: its worker died) is handed out again
    # after this many seconds; longer than any task runs or waits for its retry
    # (checked: recovery.checks).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    }
    CACHES = {
        "default": {
            "BACKEND": "recovery.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "recovery",
        }
    }
else:
    # kombu's filesystem transport: a real broker with no server, for a laptop.
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
    CELERY_RESULT_BACKEND = env(
        "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery-results'}"
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Moves assignments scheduled -> open -> missed as windows open and close.
    "assignments-refresh-statuses": {
        "task": "surveys.tasks.assignment_statuses_refresh",
        "schedule": crontab(minute="*/5"),
    },
    # E-mails safety alerts whose own task never ran (the broker was down at the time).
    "safety-alerts-sweep": {
        "task": "surveys.tasks.safety_alerts_sweep",
        "schedule": crontab(minute="*/5"),
    },
    # Sends the invitations and reminders that are due (surveys/dispatch.py).
    "reminders-dispatch": {
        "task": "surveys.tasks.reminders_dispatch",
        "schedule": crontab(minute="*"),
    },
    # Creates the coming weekly check-ins of studies that have them switched on.
    "recurring-assignments-extend": {
        "task": "surveys.tasks.recurring_assignments_extend",
        "schedule": crontab(minute=17),
    },
    # Deletes the files of background exports past their download window.
    "analysis-runs-sweep": {
        "task": "recovery.tasks.analysis_runs_sweep",
        "schedule": crontab(minute="*/15"),
    },
    "export-jobs-expire": {
        "task": "surveys.tasks.export_jobs_expire",
        "schedule": crontab(minute="*/15"),
    },
    # Builds the CSV lines of participants whose data changed since the last export of each
    # recently used export (surveys.datasets.linecache), so the next one reads them back.
    "export-lines-warm": {
        "task": "surveys.tasks.export_lines_warm",
        "schedule": crontab(minute="*/5"),
        # a run still queued when the next is due is dropped; one running makes the next skip
        "options": {"expires": 5 * 60},
    },
}

# --- Field encryption -----------------------------------------------------------------------
# FIELD_ENCRYPTION_KEYS: comma-separated Fernet keys; the first encrypts, all decrypt (so keys
# can be rotated). Set in local.py (development default) and production.py (required).

# --- Auth -----------------------------------------------------------------------------------
# Staff sign-ins go through a backend that refuses a locked account or address
# (surveys/signin.py): so many failures within the window lock it for the rest of the window.
AUTHENTICATION_BACKENDS = ["surveys.signin.LockoutModelBackend"]
# Django's database sessions, each read with a prepared statement (recovery/sessions.py).
SESSION_ENGINE = "recovery.sessions"
SIGNIN_FAILURES_PER_ACCOUNT = env.int("SIGNIN_FAILURES_PER_ACCOUNT", default=5)
SIGNIN_FAILURES_PER_ADDRESS = env.int("SIGNIN_FAILURES_PER_ADDRESS", default=20)
SIGNIN_LOCK_MINUTES = env.int("SIGNIN_LOCK_MINUTES", default=15)
# Requests a minute from one address to the public paths (0: no limit), and unknown personal
# links an address may try in an hour before further unknown ones get 429 (0: no limit).
PARTICIPANT_REQUESTS_PER_MINUTE = env.int("PARTICIPANT_REQUESTS_PER_MINUTE", default=300)
PARTICIPANT_BAD_LINKS_PER_HOUR = env.int("PARTICIPANT_BAD_LINKS_PER_HOUR", default=30)
# Staff sessions end after this long without a request, and this long after sign-in.
STAFF_SESSION_IDLE_MINUTES = env.int("STAFF_SESSION_IDLE_MINUTES", default=30)
STAFF_SESSION_MAX_HOURS = env.int("STAFF_SESSION_MAX_HOURS", default=12)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- I18N -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español"), ("fa", "فارسی")]
TIME_ZONE = "UTC"
USE_I18N = True
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


# --- E-mail ---------------------------------------------------------------------------------
def mailer_from_url(url: str) -> dict:
    """A MAILERS entry (Django 6.1) from an EMAIL_URL such as smtp+tls://user:pw@host:587."""
    config = environ.Env.email_url_config(url)
    backend = config["EMAIL_BACKEND"]
    options: dict = {}
    if backend.endswith("smtp.EmailBackend"):
        options = {
            "host": config.get("EMAIL_HOST") or "localhost",
            "port": config.get("EMAIL_PORT"),
            "username": config.get("EMAIL_HOST_USER"),
            "password": config.get("EMAIL_HOST_PASSWORD"),
            "use_tls": config.get("EMAIL_USE_TLS"),
            "use_ssl": config.get("EMAIL_USE_SSL"),
        }
        options = {key: value for key, value in options.items() if value not in (None, "")}
    elif config.get("EMAIL_FILE_PATH"):
        options = {"file_path": config["EMAIL_FILE_PATH"]}
    return {"BACKEND": backend, "OPTIONS": options}


MAILERS = {"default": mailer_from_url(env("EMAIL_URL", default="") or "consolemail://")}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="study-team@localhost")

# --- REST framework and OpenAPI -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.StaffTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.auth.TokenScope",
        "surveys.two_factor.TwoFactorInForce",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "api.exceptions.api_exception_handler",
    # ``?format=`` is the dataset export's file format (csv, xlsx, sav, dta, parquet), not DRF's
    # renderer override: the API answers JSON, or the file asked for.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recovery study API",
    "DESCRIPTION": "Longitudinal research on mutual-help groups: studies, participants, surveys.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Self-hosted Swagger UI assets: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Ids in paths: integers of at most 18 digits (recovery/converters.py).
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
    },
    # Every operation documents the errors authentication, permissions, routing, parsing and
    # rate limits answer with, and that text never holds a NUL character (api/docs.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.docs.error_responses_add",
        "api.docs.refused_nul_document",
    ],
}

# --- Logging --------------------------------------------------------------------------------
# Never log request bodies or participant identifiers; only levels and messages we write.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    # Personal-link tokens in logged paths become [link] (recovery/logfilters.py).
    "filters": {"redact_links": {"()": "recovery.logfilters.RedactLinks"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_links"],
        },
        # The development server's request lines (make demo), with the same filter.
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_links"],
        },
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # The twilio package logs every API request and response header at INFO.
        "twilio.http_client": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
