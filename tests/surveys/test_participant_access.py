"""Getting back in: "send me a new link" (keyed-hash lookup, the same answer either way, rate
limits, only the digest in the broker) and the optional PIN for a shared phone."""

import io
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from surveys import sms
from surveys.access import PIN_MAX_FAILURES, new_link_send, participant_pin_set
from surveys.fields import contact_lookup
from surveys.links import participant_link_create
from surveys.models import Participant, ParticipantContact, ParticipantLink
from surveys.participant_views import SESSION_KEY


@pytest.fixture(autouse=True)
def empty_sms_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def participant(site_a, enrol):
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"email": "Dana.R@Example.org", "phone": "+1 (555) 010-4477"},
    )


def ask(client, value, **headers):
    return client.post("/p/new-link", {"contact": value, "language": "en"}, **headers)


def run_queued(callbacks):
    for callback in callbacks:
        callback()


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://\S+/p/[A-Za-z0-9_-]{40,}", text)


# --- Keyed lookups ----------------------------------------------------------------------------


def test_contacts_are_found_by_keyed_digest_whatever_the_typing(participant):
    row = ParticipantContact.objects.get(participant=participant)
    assert row.email_lookup == contact_lookup("email", "  dana.r@example.ORG ")
    for typed in ("555-010-4477", "(555) 010 4477", "001 555 010 4477", "+15550104477"):
        assert row.phone_lookup == contact_lookup("phone", typed), typed
    # Neither the digest nor the stored column holds the address or number in clear.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT email, phone, email_lookup, phone_lookup FROM surveys_participantcontact"
        )
        stored = " ".join(cursor.fetchone())
    assert "example.org" not in stored.lower() and "0104477" not in stored


def test_the_digest_depends_on_the_key(settings, participant):
    before = contact_lookup("email", "dana.r@example.org")
    settings.CONTACT_LOOKUP_KEY = "another-key"
    assert contact_lookup("email", "dana.r@example.org") != before


def test_editing_a_contact_recomputes_its_digests(participant):
    row = ParticipantContact.objects.get(participant=participant)
    row.email = "new@example.org"
    row.save(update_fields=["email"])
    row.refresh_from_db()
    assert row.email_lookup == contact_lookup("email", "new@example.org")


# --- Send me a new link -----------------------------------------------------------------------


def test_a_matching_email_gets_a_new_working_link_by_email(
    client, participant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        reply = ask(client, "dana.r@example.org")
    assert reply.status_code == 200
    assert "Check your messages" in reply.text
    assert len(callbacks) == 1
    # The task runs as the worker would (eagerly here); the link in the e-mail opens the home.
    from surveys.tasks import new_link_send as task

    kind, lookup = "email", contact_lookup("email", "dana.r@example.org")
    assert task.apply(args=(kind, lookup)).get() is None  # no result says whether it matched
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Dana.R@Example.org"]
    [url] = links_in(message.body)
    path = url.split("://", 1)[1].split("/", 1)[1]
    assert client.get(f"/{path}").status_code == 302
    assert client.get("/p/").status_code == 200


def test_a_matching_phone_gets_the_link_by_text_message(participant):
    assert new_link_send(kind="phone", lookup=contact_lookup("phone", "555 010 4477")) == 1
    [text] = sms.outbox
    assert text["to"] == "+1 (555) 010-4477"
    assert links_in(text["body"])
    assert not mail.outbox


def test_without_an_sms_provider_a_phone_request_falls_back_to_email(settings, participant):
    settings.SMS_BACKEND = "surveys.sms.DisabledBackend"
    assert new_link_send(kind="phone", lookup=contact_lookup("phone", "5550104477")) == 1
    assert not sms.outbox
    assert mail.outbox[0].to == ["Dana.R@Example.org"]


def test_the_message_is_in_the_participants_language(participant):
    Participant.objects.filter(pk=participant.pk).update(language="es")
    new_link_send(kind="email", lookup=contact_lookup("email", "dana.r@example.org"))
    assert mail.outbox[0].subject == "Su nuevo enlace para las encuestas"


def test_the_answer_is_the_same_whether_or_not_the_contact_matched(
    client, participant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as known_callbacks:
        known = ask(client, "dana.r@example.org")
    with django_capture_on_commit_callbacks() as unknown_callbacks:
        unknown = ask(client, "nobody@example.org")
    strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert known.status_code == unknown.status_code == 200
    assert strip.sub("", known.text) == strip.sub("", unknown.text)
    # The same work is queued either way; the unknown one finds nobody.
    assert len(known_callbacks) == len(unknown_callbacks) == 1
    assert new_link_send(kind="email", lookup=contact_lookup("email", "nobody@example.org")) == 0
    assert not mail.outbox


def test_only_the_digest_goes_through_the_broker(
    client, participant, django_capture_on_commit_callbacks, monkeypatch
):
    from surveys import tasks

    sent = []
    monkeypatch.setattr(tasks.new_link_send, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        ask(client, "Dana.R@example.org")
    assert sent == [("email", contact_lookup("email", "dana.r@example.org"))]
    assert "example" not in repr(sent).lower()


def test_inactive_participants_get_no_link(participant):
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    assert new_link_send(kind="email", lookup=contact_lookup("email", "dana.r@example.org")) == 0
    assert not ParticipantLink.objects.exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Type the e-mail address or mobile number"),
        ("dana@", "That e-mail address is not complete"),
        ("12345", "at least 9 digits"),
        ("hello there", "Type an e-mail address (with @)"),  # no digits: not a number
        ("555-CALL-NOW", "A mobile number cannot contain letters"),
        ("+1 555 010 4477 ext 2", "A mobile number cannot contain letters"),
        ("dana1980.example.org", "An e-mail address needs its @."),  # or the @ is missing
    ],
)
def test_unusable_input_gets_a_specific_error_and_sends_nothing(
    client, participant, typed, message, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        reply = ask(client, typed)
    assert reply.status_code == 400
    assert message in reply.text
    assert 'aria-invalid="true"' in reply.text
    assert not callbacks


def test_one_contact_is_sent_at_most_three_links_an_hour_with_the_same_answer(
    client, participant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        replies = [ask(client, "dana.r@example.org") for _ in range(5)]
    assert [reply.status_code for reply in replies] == [200] * 5
    assert len(callbacks) == 3


def test_one_address_is_refused_after_ten_requests_an_hour(client, participant):
    replies = [ask(client, f"person{n}@example.org") for n in range(11)]
    assert [reply.status_code for reply in replies[:10]] == [200] * 10
    assert replies[10].status_code == 429
    assert "too many requests" in replies[10].text


def test_behind_a_proxy_the_limit_counts_the_forwarded_client(settings, client, participant):
    settings.NUM_PROXIES = 1
    for n in range(10):
        ask(client, f"p{n}@example.org", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert ask(client, "x@example.org", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    # Another phone behind the same proxy is not blocked.
    assert ask(client, "x@example.org", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200


def test_the_expired_page_offers_the_form_in_the_participants_language(client, participant):
    Participant.objects.filter(pk=participant.pk).update(language="es")
    link, token = participant_link_create(participant=participant)
    ParticipantLink.objects.filter(pk=link.pk).update(expires_at=timezone.now())
    page = client.get(f"/p/{token}")
    assert page.status_code == 410
    assert 'lang="es"' in page.text
    assert "Envíenme un enlace nuevo" in page.text
    assert 'name="language" value="es"' in page.text


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("es", "Un número de celular no puede contener letras: escríbalo solo con dígitos."),
        ("fa", "شماره موبایل نمی‌تواند حروف داشته باشد: آن را فقط با رقم وارد کنید."),
    ],
)
def test_a_number_with_letters_is_explained_in_the_pages_language(client, db, language, message):
    reply = client.post("/p/new-link", {"contact": "555-CALL-NOW", "language": language})
    assert reply.status_code == 400
    assert message in reply.text


def test_the_new_link_page_is_reachable_without_a_link(client, db):
    page = client.get("/p/new-link?lang=fa")
    assert page.status_code == 200
    assert 'dir="rtl"' in page.text


# --- PIN --------------------------------------------------------------------------------------


def signed_in(client, participant):
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    return client


def test_a_participant_sets_a_pin_and_the_link_then_asks_for_it(client, participant):
    signed_in(client, participant)
    saved = client.post("/p/pin", {"pin": "4821", "repeat": "4821"})
    assert saved.status_code == 302 and saved["Location"] == "/p/?pin=set"
    participant.refresh_from_db()
    assert participant.pin_hash and "4821" not in participant.pin_hash

    client.cookies.clear()  # another person on the same phone, later
    _, token = participant_link_create(participant=participant)
    opened = client.get(f"/p/{token}")
    assert opened["Location"] == "/p/unlock"
    assert client.get("/p/").status_code == 404  # no session before the PIN
    assert client.post("/p/unlock", {"pin": "1111"}).status_code == 400
    assert client.get("/p/").status_code == 404
    unlocked = client.post("/p/unlock", {"pin": "4821"})
    assert unlocked["Location"] == "/p/"
    assert client.get("/p/").status_code == 200
    assert client.session.get_expire_at_browser_close()


@pytest.mark.parametrize("pin_removed_too", [False, True])
def test_links_revoked_while_the_pin_screen_waits_open_no_session(
    client, participant, pin_removed_too
):
    """A shared phone waits at the PIN screen when the study team revokes the participant's
    links (and, maybe, removes a forgotten PIN): neither the right PIN nor the PIN's removal
    opens a session from that old link; the screen sends them to ask for a new one."""
    from surveys.access import participant_pin_remove
    from surveys.links import participant_links_revoke

    participant_pin_set(participant=participant, pin="4821", repeat="4821")
    _, token = participant_link_create(participant=participant)
    assert client.get(f"/p/{token}")["Location"] == "/p/unlock"
    participant_links_revoke(participant=participant)
    participant.refresh_from_db()
    if pin_removed_too:
        participant_pin_remove(participant=participant)
        tried = client.get("/p/unlock")
    else:
        tried = client.post("/p/unlock", {"pin": "4821"})
    assert tried.status_code == 302 and tried["Location"] == "/p/new-link"
    assert client.get("/p/").status_code == 404


@pytest.mark.parametrize(
    ("pin", "repeat", "message"),
    [
        ("12", "12", "A PIN is 4 to 6 digits"),
        ("1234567", "1234567", "A PIN is 4 to 6 digits"),
        ("12a4", "12a4", "A PIN is 4 to 6 digits"),
        ("0000", "0000", "not one digit repeated"),
        ("4821", "4812", "The two PINs are not the same"),
    ],
)
def test_a_bad_pin_is_refused_with_a_reason(client, participant, pin, repeat, message):
    signed_in(client, participant)
    reply = client.post("/p/pin", {"pin": pin, "repeat": repeat})
    assert reply.status_code == 400
    assert message in reply.text
    participant.refresh_from_db()
    assert not participant.pin_hash


def test_changing_or_removing_the_pin_needs_the_current_one(client, participant):
    signed_in(client, participant)
    client.post("/p/pin", {"pin": "4821", "repeat": "4821"})
    wrong = client.post("/p/pin", {"action": "remove", "current": "9999"})
    assert wrong.status_code == 400 and "not your current PIN" in wrong.text
    participant.refresh_from_db()
    assert participant.pin_hash
    removed = client.post("/p/pin", {"action": "remove", "current": "4821"})
    assert removed["Location"] == "/p/?pin=removed"
    participant.refresh_from_db()
    assert not participant.pin_hash


def test_five_wrong_pins_lock_the_pin_screen_even_for_the_right_pin(client, participant):
    participant_pin_set(participant=participant, pin="4821", repeat="4821")
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    replies = [client.post("/p/unlock", {"pin": "0001"}) for _ in range(PIN_MAX_FAILURES)]
    assert [r.status_code for r in replies] == [400] * (PIN_MAX_FAILURES - 1) + [429]
    assert "Too many wrong tries" in replies[-1].text
    right = client.post("/p/unlock", {"pin": "4821"})
    assert right.status_code == 429
    assert client.get("/p/").status_code == 404
    # After the lock time, the right PIN works again.
    Participant.objects.filter(pk=participant.pk).update(
        pin_locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert client.post("/p/unlock", {"pin": "4821"})["Location"] == "/p/"


def test_the_unlock_page_without_a_pending_link_goes_to_the_new_link_page(client, db):
    assert client.get("/p/unlock")["Location"] == "/p/new-link"


def test_a_coordinator_removes_a_forgotten_pin_in_the_admin(client, participant, coordinator_a):
    participant_pin_set(participant=participant, pin="4821", repeat="4821")
    client.force_login(coordinator_a)
    page = client.get(f"/admin/surveys/participant/{participant.pk}/change/")
    assert "PIN" in page.text
    reply = client.post(
        "/admin/surveys/participant/",
        {"action": "pin_remove", "_selected_action": [participant.pk]},
    )
    assert reply.status_code == 302
    participant.refresh_from_db()
    assert not participant.pin_hash


def test_signing_out_ends_the_session(client, participant):
    signed_in(client, participant)
    out = client.post("/p/sign-out")
    assert out.status_code == 200 and "You are signed out" in out.text
    assert SESSION_KEY not in client.session
    assert client.get("/p/").status_code == 404


def test_signing_out_from_an_older_tab_still_ends_the_session(participant):
    """The link tapped twice: the second tab's session start gave a new CSRF token. "Sign out"
    in the first tab ends the session all the same (it used to answer 403 and leave it open
    for the next person)."""
    from django.test import Client

    phone = Client(enforce_csrf_checks=True)
    _, token = participant_link_create(participant=participant)
    phone.get(f"/p/{token}")
    first_tab = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', phone.get("/p/").text)
    phone.get(f"/p/{token}")  # the second tab
    out = phone.post("/p/sign-out", {"csrfmiddlewaretoken": first_tab.group(1)})
    assert out.status_code == 200 and "You are signed out" in out.text
    assert phone.get("/p/").status_code == 404
    # Another site's form cannot sign anyone out: the session cookie is not sent with it.
    assert phone.cookies["sessionid"]["samesite"] == "Lax"


def test_a_form_from_an_out_of_date_page_says_so_in_the_participants_language(participant):
    """The language form of a tab left open while the link was opened again: its token went
    stale. The participant reads, in Spanish, that nothing was saved and where to go, not
    Django's "CSRF verification failed"; nothing changed."""
    from django.test import Client

    participant.language = "es"
    participant.save(update_fields=["language"])
    phone = Client(enforce_csrf_checks=True)
    _, token = participant_link_create(participant=participant)
    phone.get(f"/p/{token}")
    first_tab = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', phone.get("/p/").text)
    phone.get(f"/p/{token}")  # the second tab
    sent = phone.post(
        "/p/language", {"csrfmiddlewaretoken": first_tab.group(1), "language": "fa", "next": "/p/"}
    )
    assert sent.status_code == 403
    assert "Esta página estaba desactualizada" in sent.text and 'href="/p/"' in sent.text
    assert "CSRF" not in sent.text
    participant.refresh_from_db()
    assert participant.language == "es"
    # Staff pages keep Django's own answer.
    staff = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x"})
    assert staff.status_code == 403 and "CSRF verification failed" in staff.text


def test_pages_say_whose_they_are_for_the_offline_copies(client, participant, site_a, enrol):
    """The service worker keeps a page only with its owner, a keyed hash of the participant
    (never their id), and forgets other owners' copies; a participant with a PIN gets no
    copies at all."""
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    owner = client.get("/p/")["X-Offline-Owner"]
    assert re.fullmatch(r"[0-9a-f]{24}", owner)
    client.get(f"/p/{token}")  # back another day: the same owner, their copies stay
    assert client.get("/p/")["X-Offline-Owner"] == owner
    other = enrol(site=site_a, code="NYC-0099", enrolled_on=timezone.localdate())
    signed_in(client, other)
    assert client.get("/p/")["X-Offline-Owner"] not in ("", owner)
    client.post("/p/sign-out")
    assert "X-Offline-Owner" not in client.get("/p/new-link")
    signed_in(client, participant)
    client.post("/p/pin", {"pin": "4821", "repeat": "4821"})  # now a shared phone
    home = client.get("/p/?pin=set")
    assert home.status_code == 200
    assert home["X-Offline-Copy"] == "no" and "X-Offline-Owner" not in home


def test_after_a_key_change_the_refresh_command_makes_lookups_work_again(settings, participant):
    from django.core.management import call_command

    settings.CONTACT_LOOKUP_KEY = "a-new-key"
    lookup = contact_lookup("email", "dana.r@example.org")
    assert new_link_send(kind="email", lookup=lookup) == 0  # digests made under the old key
    out = io.StringIO()
    call_command("contact_lookups_refresh", stdout=out)
    assert "1 contact row" in out.getvalue()
    assert new_link_send(kind="email", lookup=lookup) == 1


def test_persian_digits_work_for_pins_and_phone_numbers(client, participant):
    signed_in(client, participant)
    assert client.post("/p/pin", {"pin": "۴۸۲۱", "repeat": "۴۸۲۱"}).status_code == 302
    client.cookies.clear()
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    assert client.post("/p/unlock", {"pin": "4821"})["Location"] == "/p/"
    assert contact_lookup("phone", "۵۵۵ ۰۱۰ ۴۴۷۷") == contact_lookup("phone", "555 010 4477")


def test_pin_errors_are_in_the_participants_language(client, participant):
    Participant.objects.filter(pk=participant.pk).update(language="es")
    signed_in(client, participant)
    reply = client.post("/p/pin", {"pin": "12", "repeat": "12"})
    assert reply.status_code == 400
    assert "A PIN is 4 to 6 digits" not in reply.text


def test_setting_a_pin_ends_the_participants_other_sessions(client, participant):
    from django.test import Client

    other_phone = signed_in(Client(), participant)
    assert other_phone.get("/p/").status_code == 200
    signed_in(client, participant)
    client.post("/p/pin", {"pin": "4821", "repeat": "4821"})
    assert client.get("/p/").status_code == 200  # the phone that set it carries on
    assert other_phone.get("/p/").status_code == 404
    month1 = participant.assignments.get(wave__slug="m1")
    draft = other_phone.put(
        f"/api/v1/participant/assignments/{month1.pk}/responses/followup/draft/",
        {"client_id": "6d3b8f0e-8c1a-4f57-9a51-1e0f5b0c2a11", "answers": {}},
        content_type="application/json",
    )
    assert draft.status_code == 404  # as for any survey that is not this session's


def test_revoking_links_ends_the_sessions_they_started(client, participant):
    from surveys.links import participant_links_revoke

    signed_in(client, participant)
    participant_links_revoke(participant=participant)
    assert client.get("/p/").status_code == 404


def test_a_pin_removed_by_the_team_lets_the_waiting_phone_in(client, participant):
    from surveys.access import participant_pin_remove

    participant_pin_set(participant=participant, pin="4821", repeat="4821")
    _, token = participant_link_create(participant=participant)
    assert client.get(f"/p/{token}")["Location"] == "/p/unlock"
    participant_pin_remove(participant=participant)
    assert client.get("/p/unlock")["Location"] == "/p/"
    assert client.get("/p/").status_code == 200


class RefusingSmsBackend(sms.BaseSmsBackend):
    """A provider that refuses, naming the number in its error (as real ones do)."""

    def send(self, *, to, body):
        raise OSError(f"provider refused {to}")


def test_a_refused_message_is_logged_without_the_contact_and_others_still_go(
    settings, site_a, enrol, participant, caplog
):
    settings.SMS_BACKEND = "tests.surveys.test_participant_access.RefusingSmsBackend"
    enrol(
        site=site_a,
        code="NYC-0043",
        enrolled_on=timezone.localdate(),
        contact={"email": "sam@example.org", "phone": "+1 555 010 4477"},  # a shared phone
    )
    Participant.objects.filter(pk=participant.pk).update(language="en")
    with caplog.at_level("WARNING"):
        sent = new_link_send(kind="phone", lookup=contact_lookup("phone", "5550104477"))
    assert sent == 0
    assert "could not be sent (OSError)" in caplog.text
    # The number in any spelling (a bare "4477" could be a participant's id in the log).
    for spelling in ("+15550104477", "5550104477", "010 4477", "0104477", "555 010"):
        assert spelling not in caplog.text
    assert len([r for r in caplog.records if "could not be sent" in r.getMessage()]) == 2
