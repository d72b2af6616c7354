"""The contact log: coordinators record their attempts to reach a participant."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from surveys.models import ContactAttempt
from surveys.services import contact_attempt_log


@pytest.fixture
def participant(site_a, enrol):
    return enrol(
        site=site_a, code="NYC-0042", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4477"},
    )  # fmt: skip


def test_an_attempt_is_logged_with_who_and_when(participant, coordinator_a):
    month1 = participant.assignments.get(wave__slug="m1")
    attempt = contact_attempt_log(
        participant=participant, method="call", outcome="left_message", by=coordinator_a,
        note="Voicemail; will try Friday.", assignment=month1,
    )  # fmt: skip
    assert attempt.by == coordinator_a and attempt.attempted_at <= timezone.now()
    assert participant.contact_attempts.get().get_outcome_display() == "Left a message"


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"method": "pigeon"}, "method"), ({"outcome": "maybe"}, "outcome")],
)
def test_bad_values_are_refused_and_nothing_is_saved(participant, coordinator_a, fields, error):
    values = {"method": "call", "outcome": "no_answer", **fields}
    with pytest.raises(ValidationError) as refused:
        contact_attempt_log(participant=participant, by=coordinator_a, **values)
    assert error in refused.value.message_dict
    assert not ContactAttempt.objects.exists()


def test_another_participants_survey_is_refused(participant, site_a, enrol, coordinator_a):
    other = enrol(site=site_a, code="NYC-0043", enrolled_on=timezone.localdate())
    with pytest.raises(ValidationError):
        contact_attempt_log(
            participant=participant, method="call", outcome="reached", by=coordinator_a,
            assignment=other.assignments.first(),
        )  # fmt: skip


def test_coordinators_log_attempts_in_the_admin_and_researchers_never_see_the_log(
    client, participant, coordinator_a, researcher
):
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    client.force_login(coordinator_a)
    html = client.get(page).text
    assert "Contact attempts" in html and "Left a message" in html
    client.force_login(researcher)
    html = client.get(page).text
    assert "Contact attempts" not in html


def form_fields(html: str) -> dict:
    """The values a browser would send for a Django admin form as rendered."""
    from html.parser import HTMLParser

    fields: dict = {}

    class Parser(HTMLParser):
        select = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            name = a.get("name")
            if tag == "input" and name and a.get("type") not in ("submit", "button"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    return
                fields[name] = a.get("value", "")
            elif tag == "textarea" and name:
                fields[name] = ""
            elif tag == "select" and name:
                self.select = name
                fields.setdefault(name, "")
            elif tag == "option" and self.select and "selected" in a:
                fields[self.select] = a.get("value", "")

        def handle_endtag(self, tag):
            if tag == "select":
                self.select = None

    Parser().feed(html)
    return fields


def test_an_attempt_saved_in_the_admin_records_the_coordinator(client, participant, coordinator_a):
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    client.force_login(coordinator_a)
    data = form_fields(client.get(page).text)
    prefix = next(k for k in data if k.endswith("-TOTAL_FORMS") and "contact_attempt" in k)
    prefix = prefix.removesuffix("-TOTAL_FORMS")
    data.update({
        f"{prefix}-0-method": "call", f"{prefix}-0-outcome": "no_answer",
        f"{prefix}-0-note": "Rang twice.",
        f"{prefix}-0-attempted_at_0": "2026-11-24", f"{prefix}-0-attempted_at_1": "10:30:00",
    })  # fmt: skip
    data.pop("_saveasnew", None)
    reply = client.post(page, data)
    assert reply.status_code == 302, reply.content.decode()[:3000]
    attempt = ContactAttempt.objects.get()
    assert (attempt.by, attempt.outcome, attempt.note) == (
        coordinator_a,
        "no_answer",
        "Rang twice.",
    )
