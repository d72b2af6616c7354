"""Hypothesis fuzz of the inbound-SMS webhook, ``POST /hooks/sms/twilio`` (issue 9: "a fuzz of
every input finds no 5xx"). Bodies of made-up fields and values (any text, several values per
field, other scripts' digits), raw bytes under any content type, made-up query strings, each
sent signed the way Twilio signs (so the view reads them all) or unsigned, with junk or with a
signature that is not for this request. Never a server error; a request not signed with our
Auth Token for exactly this URL and body changes nothing; a signed one changes something only
for a STOP or START from an enrolled number, and then does what the keyword says."""

import os
from urllib.parse import urlencode

from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from surveys.hooks import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS
from surveys.models import Message, Participant
from surveys.optout import OPTED_OUT_REASON
from tests.surveys.test_sms import (  # noqa: F401
    AUTH_TOKEN,
    HOOK,
    PHONE,
    SITE_URL,
    hook_settings,
    people,
    snapshot,
)

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", "0", "\x00", "a\x00b", "9" * 40, "'; --", "%", "&=&", "+"]),
)
# Dana's number as Twilio sends it and as people type it (also in Persian digits); Sam's.
DANA = (PHONE, "+1 (555) 010-4477", "+۱۵۵۵۰۱۰۴۴۷۷")
SAM = ("+15550109999",)
FIELD_VALUES = {
    "Body": st.one_of(
        st.sampled_from(["STOP", " stop. ", "StopAll!", "cancel"]),
        st.sampled_from(["START", "unstop", "Yes"]),
        st.sampled_from(["PARAR", "Stop sending these please", "HELP"]),
        TEXT,
    ),
    "From": st.one_of(
        st.sampled_from(DANA),
        st.sampled_from(SAM),
        st.sampled_from(["12345", "+15550107777", "", "+1555010447"]),
        TEXT,
    ),
    "OptOutType": st.one_of(TEXT, st.sampled_from(["STOP", "START", "HELP", " stop "])),
    "To": TEXT,
    "MessageSid": TEXT,
    "AccountSid": TEXT,
    "NumMedia": TEXT,
}
JUNK_FIELDS = st.lists(st.tuples(st.text(min_size=1, max_size=12), TEXT), max_size=4)
# Mostly what Twilio sends (a From and a Body, sometimes more), in any order with made-up
# fields between; sometimes several values for one field.
TWILIO_LIKE = st.tuples(
    st.fixed_dictionaries(
        {"From": FIELD_VALUES["From"], "Body": FIELD_VALUES["Body"]},
        optional={k: v for k, v in FIELD_VALUES.items() if k not in ("From", "Body")},
    ),
    JUNK_FIELDS,
).map(lambda parts: [*parts[0].items(), *parts[1]])
FIELDS = st.one_of(
    TWILIO_LIKE,
    TWILIO_LIKE,
    st.lists(
        st.one_of(
            st.sampled_from(sorted(FIELD_VALUES)).flatmap(
                lambda name: st.tuples(st.just(name), FIELD_VALUES[name])
            ),
            st.tuples(st.text(min_size=1, max_size=12), TEXT),
        ),
        max_size=8,
    ),
).flatmap(st.permutations)
FORM = "application/x-www-form-urlencoded"
BODIES = st.one_of(
    FIELDS.map(lambda pairs: (urlencode(pairs).encode(), FORM)),
    st.tuples(
        st.binary(max_size=300),
        st.sampled_from(
            [
                FORM,
                f"{FORM}; charset=latin-1",
                "multipart/form-data; boundary=xyz",
                "multipart/form-data",
                "application/json",
                "text/plain",
                "",
            ]
        ),
    ),
)
QUERIES = st.one_of(
    st.just(""),
    st.lists(st.tuples(st.text(max_size=10), TEXT), max_size=3).map(
        lambda pairs: "?" + urlencode(pairs)
    ),
)
SIGNING = st.sampled_from(
    ["valid", "valid", "valid", "missing", "empty", "other-token", "other-url", "other-body"]
)


def _as_received(path: str, body: bytes, content_type: str):
    """The request as the view sees it (the URL Twilio signs, the POST it reads), or None when
    the body cannot be read as a form at all."""
    request = RequestFactory().generic("POST", path, body, content_type=content_type)
    try:
        request.POST  # noqa: B018 (parsing is what may fail)
    except Exception:
        return None
    return request


def _signature(how: str, request, junk: str) -> str | None:
    url = django_settings.SITE_URL + request.get_full_path() if request else SITE_URL + HOOK
    params = request.POST if request else {}
    return {
        "valid": lambda: RequestValidator(AUTH_TOKEN).compute_signature(url, params),
        "missing": lambda: None,
        "empty": lambda: "",
        "other-token": lambda: RequestValidator("not-our-token").compute_signature(url, params),
        "other-url": lambda: RequestValidator(AUTH_TOKEN).compute_signature(
            "https://evil.example" + HOOK, params
        ),
        "other-body": lambda: (
            RequestValidator(AUTH_TOKEN).compute_signature(
                url, {"Body": "STOP", "From": PHONE, "Junk": junk}
            )
            or junk
        ),
    }[how]()


def _reset(enrolled, *, opted_out: bool) -> None:
    """Each example starts with Dana and Sam both texted or both opted out, their queued texts
    queued, so that whatever a request changes shows."""
    Message.objects.filter(reason=OPTED_OUT_REASON).update(status=Message.Status.QUEUED, reason="")
    Participant.objects.filter(pk__in=[person.pk for person in enrolled.values()]).update(
        sms_opt_out_at=timezone.now() if opted_out else None
    )


def _keyword(post) -> str:
    opt_out_type = post.get("OptOutType", "").strip().upper()
    if opt_out_type in ("STOP", "START"):
        return opt_out_type.lower()
    word = post.get("Body", "").strip().strip(".!").strip().upper()
    return "stop" if word in OPT_OUT_KEYWORDS else "start" if word in OPT_IN_KEYWORDS else ""


@settings(
    max_examples=int(os.environ.get("SMS_HOOK_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(body=BODIES, query=QUERIES, how=SIGNING, junk=TEXT, opted_out=st.booleans())
def test_no_webhook_request_gets_a_server_error_and_only_a_signed_keyword_acts(
    hook_settings,  # noqa: F811
    people,  # noqa: F811
    body,
    query,
    how,
    junk,
    opted_out,
):
    _reset(people, opted_out=opted_out)
    raw, content_type = body
    path = HOOK + query
    received = _as_received(path, raw, content_type)
    signature = _signature(how, received, junk)
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    before = snapshot()

    reply = Client().generic("POST", path, raw, content_type=content_type, headers=headers)

    assert reply.status_code < 500, (raw, content_type, query, how, reply.status_code)
    changed = snapshot() != before
    if how != "valid" or received is None:
        event(f"SMS hook: {how}, {'unreadable' if received is None else 'form'} body")
        # Refused before anything is read (403), or the body is unreadable (400).
        assert reply.status_code in (400, 403), (how, reply.status_code)
        assert not changed
        return
    keyword, sender = _keyword(received.POST), received.POST.get("From", "")
    enrolled = sender in DANA + SAM
    event(f"SMS hook: signed, keyword {keyword or 'none'}, {'enrolled' if enrolled else 'other'}")
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/xml")
    if changed:
        assert keyword and enrolled, (keyword, sender)
    if keyword and enrolled:
        person = people["dana"] if sender in DANA else people["sam"]
        opted_out = Participant.objects.get(pk=person.pk).sms_opt_out_at is not None
        assert opted_out == (keyword == "stop"), (keyword, sender)
        if keyword == "stop":
            assert not Message.objects.filter(
                assignment__participant=person, channel="sms", status="queued"
            ).exists()
