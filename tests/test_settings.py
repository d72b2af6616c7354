"""Settings come from the environment: embedded defaults, or the real services when set."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), 'broker': settings.CELERY_BROKER_URL, "
    "'backend': settings.CELERY_RESULT_BACKEND, 'cache': settings.CACHES['default']['BACKEND'], "
    "'mailer': settings.MAILERS['default']['BACKEND']}))"
)


def _settings_with(tmp_path, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
            "VAR_DIR": str(tmp_path),
            "DJANGO_READ_DOT_ENV_FILE": "false",
            **overrides,
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_urls_a_laptop_gets_sqlite_and_a_serverless_broker(tmp_path):
    found = _settings_with(tmp_path)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(tmp_path / "db.sqlite3")
    assert found["broker"] == "filesystem://"
    assert found["backend"].startswith("file://")
    assert (tmp_path / "broker" / "queue").is_dir()
    assert found["mailer"] == "django.core.mail.backends.filebased.EmailBackend"


def test_database_url_and_redis_url_switch_to_postgresql_and_redis(tmp_path):
    found = _settings_with(
        tmp_path,
        DATABASE_URL="postgres://u:p@db.internal:5432/recovery",
        REDIS_URL="redis://cache.internal:6379/0",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.org:587",
    )
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["name"] == "recovery"
    assert found["broker"] == "redis://cache.internal:6379/0"
    assert found["backend"] == "redis://cache.internal:6379/0"
    assert found["cache"] == "recovery.cache.RedisCache"
    assert found["mailer"] == "django.core.mail.backends.smtp.EmailBackend"


def test_smtp_url_becomes_a_mailers_entry():
    from recovery.settings.base import mailer_from_url

    mailer = mailer_from_url("smtp+tls://mailer:p%40ss@smtp.example.org:587")
    assert mailer == {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": "smtp.example.org",
            "port": 587,
            "username": "mailer",
            "password": "p@ss",
            "use_tls": True,
        },
    }


def test_the_test_suite_runs_on_postgresql_when_ci_sets_database_url(settings):
    expected = (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite3"
    )
    assert settings.DATABASES["default"]["ENGINE"].endswith(expected)


def test_personal_link_tokens_never_reach_the_log(client, db, caplog):
    import logging

    from recovery.logfilters import RedactLinks, redact

    token = "Zx8-secret_Token-9"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(f"/p/{token}").status_code == 404
        assert client.get(f"/p/unsubscribe/{token}").status_code in (404, 400, 410)
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged, "Django logs a 4xx with its path"
    for record in logged:
        RedactLinks().filter(record)
        assert token not in record.getMessage()
        assert "/p/[link]" in record.getMessage() or "/p/unsubscribe/[link]" in record.getMessage()
    # and the app's log handler applies that filter to every record it writes
    for logger in ("", "django.server"):  # the app's records, and the dev server's requests
        handlers = logging.getLogger(logger).handlers
        assert any(isinstance(f, RedactLinks) for h in handlers for f in h.filters), logger
    # the participant pages' own paths stay readable
    for path in ("/p/", "/p/new-link", "/p/s/12/followup/", "/p/consent/copy", "/p/diary/3/delete"):
        assert redact(f"Not Found: {path}") == f"Not Found: {path}"


def test_a_visibility_timeout_shorter_than_a_task_may_run_fails_the_check(tmp_path):
    """On Redis, a task whose worker died is handed out again after the visibility timeout:
    set below the hard time limit, a slow task would run twice at once, so `manage.py check`
    (which every deploy runs) refuses it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="recovery.settings.local",
        VAR_DIR=str(tmp_path),
        DJANGO_READ_DOT_ENV_FILE="false",
        REDIS_URL="redis://cache.internal:6379/0",
    )

    def check(**extra):
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
        )

    assert check().returncode == 0  # the default, 3600 seconds
    short = check(CELERY_VISIBILITY_TIMEOUT="120")
    assert short.returncode == 1
    assert "recovery.E001" in short.stderr and "CELERY_VISIBILITY_TIMEOUT is 120" in short.stderr
    # above the hard time limit (300) but below the longest reminder retry wait (8 minutes)
    assert check(CELERY_VISIBILITY_TIMEOUT="400").returncode == 1
    assert check(CELERY_VISIBILITY_TIMEOUT="600").returncode == 0


def test_without_redis_there_is_no_visibility_timeout_to_check(settings):
    from recovery.checks import visibility_timeout_check

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": "var/broker/queue"}
    assert visibility_timeout_check() == []
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
    assert [e.id for e in visibility_timeout_check()] == ["recovery.E001"]


def _site_url(tmp_path, **overrides) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DEMO_PORT", "SITE_URL", "DATABASE_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
            "VAR_DIR": str(tmp_path),
            "DJANGO_READ_DOT_ENV_FILE": "false",
            **overrides,
        }
    )
    probe = "import django; django.setup(); from django.conf import settings; "
    probe += "print(settings.SITE_URL)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_make_demo_on_another_port_links_to_that_port(tmp_path):
    """`make demo DEMO_PORT=8123` passes DEMO_PORT to seed_demo and the server: the personal
    links they print and the demo's messages carry must point at the port the server is on."""
    assert _site_url(tmp_path) == "http://127.0.0.1:8000"
    assert _site_url(tmp_path, DEMO_PORT="8123") == "http://127.0.0.1:8123"
    # An address set on purpose (a tunnel, say) wins.
    assert (
        _site_url(tmp_path, DEMO_PORT="8123", SITE_URL="https://demo.example.org/")
        == "https://demo.example.org"
    )
