"""Hypothesis fuzz of every form a participant's phone can post (issue 9: "a fuzz of every
input finds no 5xx"): the survey's no-JavaScript form, the meeting diary and removing a meeting
from it, setting a PIN and the PIN screen, the language switch, "send me a new link", e-consent
and unsubscribe — with made-up fields and values of any text (NUL bytes, very long, other
scripts), and made-up ids and tokens in the path. Each answer must be a page or a redirect,
never a server error, and a refused post changes nothing: a survey that was not accepted has no
submitted response, a wrong PIN opens no session, a meeting that is not yours stays, a link that
is not a real unsubscribe link opts no one out. (The API is fuzzed by schemathesis; the SMS
webhook in test_sms_hook_fuzz.py.)"""

import itertools
import os
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from surveys.access import participant_pin_set
from surveys.consent import ConsentInput
from surveys.fields import ascii_digits
from surveys.links import participant_link_create
from surveys.models import Consent, DiaryEntry, Message, Participant, Response
from surveys.unsubscribe import SALT, unsubscribe_token
from tests.surveys.test_participant_survey import month1, participant  # noqa: F401

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", "0", "-1", "1e309", "NaN", "\x00", "a\x00b", "9" * 40, "today", "'; --"]),
)
FIELDS = {
    "survey": ["client_id", "attended_any", "craving", "fellowships", "overdose", "mat_status"],
    "diary": ["group", "format", "occurred_on", "client_id"],
    "pin": ["action", "pin", "repeat", "current"],
    "language": ["language", "next"],
    "new-link": ["contact", "language"],
    "consent": ["version", "typed_name", "agree", "text", "action"],
    "unsubscribe": ["confirm", "channel"],
    "unlock": ["pin"],
    "diary-delete": ["confirm", "entry"],
}


def form_data(form: str, values=TEXT):
    return st.dictionaries(
        st.one_of(st.sampled_from(FIELDS[form]), st.text(min_size=1, max_size=12)),
        st.one_of(values, st.lists(values, max_size=3)),
        max_size=6,
    )


PAGE_FORMS = ("survey", "diary", "pin", "language", "new-link", "consent")
FORMS = st.sampled_from(PAGE_FORMS).flatmap(lambda form: st.tuples(st.just(form), form_data(form)))
FUZZ = settings(
    max_examples=int(os.environ.get("FORM_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def _clean(data: dict) -> dict:
    # The test client cannot encode None; every other value goes as typed.
    return {k: v for k, v in data.items() if v is not None}


def _posted(data: dict, name: str) -> str | None:
    """What the view reads with request.POST.get(name): the last of several values."""
    value = data.get(name)
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _path_part(text: str) -> str:
    # Percent-encoded as a phone would send it; "/" stays encoded (and is decoded back by the
    # server, so a token with a slash reaches no view: a 404 too).
    return quote(text, safe=":")


@pytest.fixture
def open_doors(settings):
    # One address sends every request here: the public rate limits would answer 429 instead.
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 0
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 0


@pytest.fixture
def phones(participant, month1, site_a, enrol, open_doors):  # noqa: F811
    signed = Client()
    _, token = participant_link_create(participant=participant)
    assert signed.get(f"/p/{token}").status_code == 302
    pending = enrol(
        site=site_a, code="NYC-0777", consent=ConsentInput(method=Consent.Method.ELECTRONIC)
    )
    consenting = Client()
    _, other = participant_link_create(participant=pending)
    consenting.get(f"/p/{other}")
    return {
        "participant": participant,
        "signed": signed,
        "consenting": consenting,
        "month1": month1,
        "token": token,
    }


@FUZZ
@given(form=FORMS)
def test_no_form_a_phone_can_post_gets_a_server_error(phones, form):
    name, data = form
    data = _clean(data)
    assignment = phones["month1"]
    path, client = {
        "survey": (f"/p/s/{assignment.pk}/followup/", phones["signed"]),
        "diary": ("/p/diary", phones["signed"]),
        "pin": ("/p/pin", phones["signed"]),
        "language": ("/p/language", phones["signed"]),
        "new-link": ("/p/new-link", Client()),
        "consent": ("/p/consent", phones["consenting"]),
    }[name]
    submitted_before = Response.objects.filter(status=Response.Status.SUBMITTED).count()
    reply = client.post(path, data)
    assert reply.status_code < 500, (name, data, reply.status_code)
    if reply.status_code >= 400:  # refused: nothing was submitted by it
        assert Response.objects.filter(status=Response.Status.SUBMITTED).count() == submitted_before


# --- Unsubscribe: the signed link of e-mails, and every kind of token that is not one ----------


def _tampered(token: str, where: int, char: str) -> str:
    where %= len(token)
    if char == token[where]:
        char = "A" if char != "A" else "B"
    return token[:where] + char + token[where + 1 :]


UNSUBSCRIBE_TOKENS = st.one_of(
    st.sampled_from(
        ["real", "personal-link", "other-salt", "other-key", "no-such-participant"]
    ).map(lambda kind: (kind, None)),
    st.tuples(st.just("truncated"), st.integers(min_value=0, max_value=200)),
    st.tuples(
        st.just("tampered"),
        st.tuples(st.integers(min_value=0, max_value=200), st.characters(codec="utf-8")),
    ),
    st.tuples(st.just("suffixed"), st.text(min_size=1, max_size=40)),
    st.tuples(st.just("junk"), st.one_of(TEXT, st.text(min_size=1, max_size=200))),
)


def _unsubscribe_token(kind: str, arg, *, person, personal_link: str) -> str:
    real = unsubscribe_token(person.pk)
    return {
        "real": lambda: real,
        "personal-link": lambda: personal_link,
        # Signed, but for another purpose, with another key, or for no one enrolled.
        "other-salt": lambda: signing.dumps(person.pk, salt="surveys.other", compress=True),
        "other-key": lambda: signing.dumps(
            person.pk, key="not-the-secret-key", salt=SALT, compress=True
        ),
        "no-such-participant": lambda: unsubscribe_token(person.pk + 10**6),
        "truncated": lambda: real[: arg % len(real)],
        "tampered": lambda: _tampered(real, *arg) if arg else real,
        "suffixed": lambda: real + (arg or ""),
        "junk": lambda: arg or "",
    }[kind]()


def _opt_outs() -> tuple:
    """Everything an unsubscribe may change."""
    return (
        sorted(Participant.objects.values_list("pk", "email_opt_out_at")),
        sorted(Message.objects.values_list("pk", "status", "reason")),
    )


@FUZZ
@given(
    token=UNSUBSCRIBE_TOKENS,
    method=st.sampled_from(["post", "get"]),
    data=form_data("unsubscribe"),
)
def test_no_unsubscribe_link_gets_a_server_error_and_only_a_real_one_opts_out(
    phones, token, method, data
):
    person = phones["participant"]
    Participant.objects.filter(pk=person.pk).update(email_opt_out_at=None)
    kind, arg = token
    text = _unsubscribe_token(kind, arg, person=person, personal_link=phones["token"])
    before = _opt_outs()

    send = Client().post if method == "post" else Client().get
    reply = send(f"/p/unsubscribe/{_path_part(text)}", _clean(data))

    assert reply.status_code < 500, (kind, text, data, reply.status_code)
    event(f"unsubscribe: {kind} token, {method}, {reply.status_code}")
    if kind == "real":
        assert reply.status_code == 200
        opted_out = Participant.objects.get(pk=person.pk).email_opt_out_at
        assert (opted_out is not None) == (method == "post")  # a GET alone changes nothing
    else:
        assert 400 <= reply.status_code < 500, (kind, text, reply.status_code)
        assert _opt_outs() == before


# --- The PIN screen: a phone that opened a PIN-protected participant's link ---------------------

RIGHT_PIN = "4821"
PINS = st.one_of(
    TEXT,
    st.sampled_from([RIGHT_PIN, f" {RIGHT_PIN} ", "۴۸۲۱", "٤٨٢١", "4821\x00", "48210", "1234"]),
)
# A new client address per example: the PIN screen's per-address limit (30 an hour) would
# otherwise answer 429 after a few dozen examples.
ADDRESSES = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in itertools.count(1))


@pytest.fixture
def pin_protected(site_a, enrol, open_doors):
    person = enrol(site=site_a, code="NYC-0779")
    participant_pin_set(participant=person, pin=RIGHT_PIN, repeat=RIGHT_PIN)
    _, token = participant_link_create(participant=person)
    return person, token


@FUZZ
@given(data=form_data("unlock", PINS), locked=st.booleans())
def test_no_pin_typed_at_the_pin_screen_gets_a_server_error_and_only_the_right_one_opens(
    pin_protected, data, locked
):
    person, token = pin_protected
    until = timezone.now() + timedelta(minutes=10) if locked else None
    Participant.objects.filter(pk=person.pk).update(pin_failures=0, pin_locked_until=until)
    phone = Client(REMOTE_ADDR=next(ADDRESSES))
    assert phone.get(f"/p/{token}")["Location"] == "/p/unlock"
    data = _clean(data)
    pin_before = Participant.objects.values_list("pin_hash", "access_epoch").get(pk=person.pk)

    reply = phone.post("/p/unlock", data)

    assert reply.status_code < 500, (data, reply.status_code)
    typed = _posted(data, "pin") or ""
    right = ascii_digits(typed.strip()) == RIGHT_PIN and not locked
    signed_in = phone.get("/p/").status_code != 404
    event(f"PIN screen: {'locked' if locked else 'right' if right else 'wrong'} PIN")
    if right:
        assert reply.status_code == 302 and reply["Location"] == "/p/", data
        assert signed_in
    else:
        assert reply.status_code == (429 if locked else 400), (data, reply.status_code)
        assert not signed_in
    # The PIN screen checks the PIN; it never changes it or ends other sessions.
    assert Participant.objects.values_list("pin_hash", "access_epoch").get(pk=person.pk) == (
        pin_before
    )


# --- Removing a meeting from the diary: one's own, another participant's, made-up ids ----------

ENTRY_IDS = st.one_of(
    st.sampled_from(["own", "theirs", "gone"]),
    st.integers(min_value=0, max_value=10**18 - 1).map(str),
    st.sampled_from(["-1", "1e3", "0x10", "9" * 18, "9" * 19, "١٢", " 1", "1 ", "01"]),
    st.text(min_size=1, max_size=30),
)


def _meeting(person) -> DiaryEntry:
    return DiaryEntry.objects.create(
        participant=person, group="1", format="inperson", occurred_on=timezone.localdate()
    )


@pytest.fixture
def someone_elses_meeting(site_a, enrol):
    other = enrol(
        site=site_a, code="NYC-0778", enrolled_on=timezone.localdate() - timedelta(days=5)
    )
    return _meeting(other)


@FUZZ
@given(target=ENTRY_IDS, data=form_data("diary-delete"), signed=st.booleans())
def test_no_meeting_removal_gets_a_server_error_and_only_ones_own_meeting_goes(
    phones, someone_elses_meeting, target, data, signed
):
    person = phones["participant"]
    own = _meeting(person)
    gone = _meeting(person)
    gone_id = gone.pk
    gone.delete()
    entry_id = {"own": own.pk, "theirs": someone_elses_meeting.pk, "gone": gone_id}.get(
        target, target
    )
    entry_id = str(entry_id)
    # The path takes 1 to 18 ASCII digits; anything else reaches no view.
    mine = (
        signed
        and re.fullmatch(r"[0-9]{1,18}", entry_id) is not None
        and DiaryEntry.objects.filter(pk=int(entry_id), participant=person).exists()
    )
    before = set(DiaryEntry.objects.values_list("pk", flat=True))
    client = phones["signed"] if signed else Client()

    reply = client.post(f"/p/diary/{_path_part(entry_id)}/delete", _clean(data))

    assert reply.status_code < 500, (entry_id, data, reply.status_code)
    after = set(DiaryEntry.objects.values_list("pk", flat=True))
    event(f"diary removal: {'own' if mine else 'refused'}, {reply.status_code}")
    if mine:
        assert reply.status_code == 302 and reply["Location"] == "/p/#diary"
        assert after == before - {int(entry_id)}
    else:
        assert 400 <= reply.status_code < 500, (entry_id, reply.status_code)
        assert after == before
