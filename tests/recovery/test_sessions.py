"""The session store and the session's user, each read with one prepared statement
(recovery/sessions.py, surveys/two_factor.py): they must behave as Django's own."""

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from recovery.sessions import SessionStore


def test_the_settings_use_this_store():
    assert import_module(settings.SESSION_ENGINE).SessionStore is SessionStore


def test_a_session_is_read_until_it_expires_and_an_unknown_key_reads_empty(db):
    store = SessionStore()
    store["seen"] = "yes"
    store.save()
    key = store.session_key
    assert SessionStore(key)["seen"] == "yes"
    assert SessionStore(key).session_key == key

    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = SessionStore(key)
    assert expired.get("seen") is None
    assert expired.session_key is None  # a new one is made if anything is stored

    unknown = SessionStore("x" * 32)
    assert unknown.get("seen") is None and unknown.session_key is None


def test_a_staff_session_ends_with_the_account(client, coordinator_a):
    """The user is loaded by the backend's own statement; a deactivated account (or one deleted)
    is signed out at its next request, as with Django's loader."""
    client.force_login(coordinator_a)
    assert client.get("/api/v1/studies/").status_code == 200
    coordinator_a.is_active = False
    coordinator_a.save()
    assert client.get("/api/v1/studies/").status_code == 401  # not signed in
    coordinator_a.is_active = True
    coordinator_a.save()
    client.force_login(coordinator_a)
    assert client.get("/api/v1/studies/").status_code == 200
    coordinator_a.delete()
    assert client.get("/api/v1/studies/").status_code == 401


def test_the_user_loaded_with_the_session_is_the_whole_user(client, coordinator_a):
    """Every field as Django's ORM reads it (types included), on SQLite and PostgreSQL."""
    from surveys.two_factor import user_with_two_factor_state

    coordinator_a.last_login = timezone.now()
    coordinator_a.save()
    loaded = user_with_two_factor_state(str(coordinator_a.pk))
    fresh = type(coordinator_a).objects.get(pk=coordinator_a.pk)
    for field in fresh._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(fresh, field.attname), field.name
        assert type(getattr(loaded, field.attname)) is type(getattr(fresh, field.attname))
    assert user_with_two_factor_state(coordinator_a.pk + 1000) is None
    assert user_with_two_factor_state("not a number") is None
