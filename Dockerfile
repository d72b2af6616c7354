# One image for the web app, the Celery worker and Celery beat (docker-compose.yml runs all three).
#
#   docker build -t recovery-app .
#
# The default command serves the site with gunicorn on port 8000; compose runs the migrations
# first for the web service and overrides the command for the worker and beat.

# --- Stage 1: the source tree without local state ------------------------------------------
# The build context is the whole working copy, which may hold a developer's .env (secrets),
# .venv, var/ (SQLite database, outbox) and .git. They are deleted here, and only this cleaned
# tree is copied into the final image, so none of them reach its layers.
FROM python:3.12-slim AS source
COPY . /src
RUN cd /src \
    && rm -rf .git .venv venv var staticfiles .pytest_cache .ruff_cache .mypy_cache \
    && find . -maxdepth 1 -name '.env*' ! -name .env.example -exec rm -rf {} + \
    && find . \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +

# --- Stage 2: the runtime image ------------------------------------------------------------
FROM python:3.12-slim

# DJANGO_READ_DOT_ENV_FILE=false: containers get their configuration from the environment
# (compose's env_file), never from a file baked into the image.
# WEB_CONCURRENCY: gunicorn's worker count (about 2 x cores + 1 for a small host); override it
# in .env.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=recovery.settings.production \
    DJANGO_READ_DOT_ENV_FILE=false \
    VAR_DIR=/app/var \
    WEB_CONCURRENCY=3

WORKDIR /app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

# Dependencies first, so that code changes do not reinstall them. requirements.txt pins every
# package; psycopg2-binary ships its own libpq, so no compiler or system library is needed.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root (read-only for the app user).
COPY --from=source /src/ ./

# Static files are collected into the image (/app/staticfiles) and served by whitenoise.
# The production settings refuse to load without their secrets, so this one command gets
# BUILD-ONLY DUMMY VALUES: they are set inline for collectstatic alone, are not stored in the
# image's environment and are never used at run time (no database or broker is contacted).
# The real values come from .env when a container starts.
RUN DJANGO_SECRET_KEY=build-only-dummy-secret-key-never-used-at-run-time-0123456789 \
    DJANGO_ALLOWED_HOSTS=build-only.invalid \
    FIELD_ENCRYPTION_KEYS=ZG9ja2VyLWJ1aWxkLW9ubHktbmV2ZXItZm9yLWRhdGE= \
    CONTACT_LOOKUP_KEY=build-only-dummy-lookup-key \
    EMAIL_URL=consolemail:// \
    DATABASE_URL=sqlite:////tmp/build-only.sqlite3 \
    REDIS_URL=redis://build-only.invalid:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p "$VAR_DIR/exports" \
    && chown app:app "$VAR_DIR" "$VAR_DIR/exports" \
    && chmod 0700 "$VAR_DIR/exports"

# The only writable folder: VAR_DIR (beat keeps its schedule file there, the worker writes
# background exports to VAR_DIR/exports; compose mounts volumes on both).
USER 10001:10001

EXPOSE 8000

# --timeout 90: the longest request is a CSV import of the largest file allowed (2,000 people,
# about 20 s measured on a busy 2-core machine), well inside it.
CMD ["gunicorn", "recovery.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--worker-tmp-dir", "/dev/shm", "--timeout", "90"]
